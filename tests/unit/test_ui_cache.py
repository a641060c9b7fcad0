"""ui/cache.py: the runs list kept by one list and a watch through the Kubernetes adapter's
Protocol (an in-memory fake of it; tests/e2e/test_ui_api.py runs it against a real API
server)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pipesync.ui.cache import RunRows
from tests.unit.kubefakes import WatchedRuns


def run(name: str, version: str, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}, "status": {"phase": phase}}


def row(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": obj["metadata"]["name"], "phase": obj["status"]["phase"]}


def test_the_rows_follow_the_watch_from_the_lists_version_on() -> None:
    kube = WatchedRuns(
        [run("a", "5"), run("b", "5")],
        "5",
        [
            {"type": "MODIFIED", "object": run("a", "6", "Succeeded")},
            {"type": "ADDED", "object": run("c", "7")},
            {"type": "DELETED", "object": run("b", "8")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}},
        ],
    )
    rows = RunRows(kube, "ml", row=row)
    deadline = time.monotonic() + 10
    while len(kube.watched_from) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert kube.watched_from == ["5", "9"]  # the list's version, then the bookmark's
    assert sorted(rows.rows(), key=lambda r: r["name"]) == [
        {"name": "a", "phase": "Succeeded"},
        {"name": "c", "phase": "Running"},
    ]
