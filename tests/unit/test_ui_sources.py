"""Where the UI's runs come from, without a cluster: the object-store archive read from a
local directory, and the sources asked in order (the live one first, archives on request,
a live run's record from an archive, logs only where the person may read them)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipesync.engine import layout
from pipesync.runtime import storage
from pipesync.ui import views
from pipesync.ui.archived import ArchivedRuns
from pipesync.ui.auth import Access
from pipesync.ui.responses import HttpError
from pipesync.ui.sources import MAX_LOG_BYTES, FoundRun, RunSource, RunSources


def _record(name: str, phase: str = "Succeeded") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ml", "creationTimestamp": f"2026-01-0{len(name)}"},
        "spec": {"pipelineRef": {"name": "digits"}},
        "status": {"phase": phase},
        "pipelineSpec": {"tasks": [{"name": "train", "image": "python"}]},
    }


def _store_with(tmp_path: Path, *records: dict[str, Any]) -> storage.LocalStore:
    store = storage.LocalStore(tmp_path)
    for record in records:
        key = layout.record_key("ml", record["metadata"]["name"])
        store.put_bytes(key, json.dumps(record).encode())
    return store


class LiveRuns:
    """A live source holding Run objects in memory, as the cluster would."""

    live = True
    log_source = "pod"

    def __init__(self, *runs: dict[str, Any], logs: bool = False) -> None:
        self.runs = {run["metadata"]["name"]: run for run in runs}
        self.logs = logs

    def rows(self, namespace: str) -> list[dict[str, Any]]:
        return [views.run_row(run) for run in self.runs.values()]

    def find(self, namespace: str, name: str) -> FoundRun | None:
        run = self.runs.get(name)
        if run is None:
            return None
        finished = (run.get("status") or {}).get("phase") == "Succeeded"
        return FoundRun(run, None, archived=False, wants_record=finished)

    def log_access(self, namespace: str) -> Access | None:
        return Access("get", "pods", namespace, "log", group="")

    def log(
        self, namespace: str, run: str, task: str, instance: int | None, attempt: int
    ) -> bytes | None:
        return b"from the pod" if self.logs and attempt == 1 else None

    def artifact(
        self, namespace: str, run: str, task: str, instance: int | None, artifact: str
    ) -> tuple[str, Iterator[bytes]] | None:
        return None


def _joined(body: bytes | Iterable[bytes]) -> bytes:
    return body if isinstance(body, bytes) else b"".join(body)


# --- the archive ----------------------------------------------------------------------


def test_an_archive_lists_its_records_as_archived_rows(tmp_path: Path) -> None:
    source = ArchivedRuns(_store_with(tmp_path, _record("a"), _record("bb", "Running")))
    rows = sorted(source.rows("ml"), key=lambda row: row["name"])
    assert [(r["name"], r["phase"], r["archived"]) for r in rows] == [
        ("a", "Succeeded", True),
        ("bb", "Running", True),
    ]
    assert source.rows("other") == []


def test_an_archive_keeps_finished_records_and_reads_running_ones_again(tmp_path: Path) -> None:
    store = _store_with(tmp_path, _record("a"), _record("bb", "Running"))
    source = ArchivedRuns(store)
    source.rows("ml")
    for name in ("a", "bb"):
        store.put_bytes(layout.record_key("ml", name), json.dumps(_record(name, "Failed")).encode())
    phases = {row["name"]: row["phase"] for row in source.rows("ml")}
    assert phases == {"a": "Succeeded", "bb": "Failed"}  # a finished record no longer changes


def test_an_archive_finds_a_run_from_its_record_or_not_at_all(tmp_path: Path) -> None:
    store = _store_with(tmp_path, _record("a"))
    store.put_bytes(layout.record_key("ml", "broken"), b"not json")
    source = ArchivedRuns(store)
    found = source.find("ml", "a")
    assert found is not None and found.archived and found.pinned is None
    assert found.record == _record("a") and found.run == views.record_as_run(_record("a"))
    assert source.find("ml", "broken") is None
    assert source.find("ml", "missing") is None


def test_an_archive_streams_the_end_of_a_log_and_says_where_it_came_from(tmp_path: Path) -> None:
    store = storage.LocalStore(tmp_path)
    log = b"x" * (MAX_LOG_BYTES + 10) + b"the end\n"
    store.put_bytes(layout.log_key(layout.node_prefix("ml", "a", "train", 2), 1), log)
    source = ArchivedRuns(store, log_source="local")
    assert source.log_source == "local" and source.log_access("ml") is None
    body = source.log("ml", "a", "train", 2, 1)
    assert body is not None and _joined(body) == log[-MAX_LOG_BYTES:]
    assert source.log("ml", "a", "train", None, 1) is None


def test_an_archive_serves_an_artifact_under_its_layout_key(tmp_path: Path) -> None:
    store = storage.LocalStore(tmp_path)
    key = layout.output_artifact_key(layout.node_prefix("ml", "a", "train", None), "model")
    store.put_bytes(key, b"weights")
    source = ArchivedRuns(store)
    found = source.artifact("ml", "a", "train", None, "model")
    assert found is not None and found[0] == key and b"".join(found[1]) == b"weights"
    assert source.artifact("ml", "a", "train", None, "other") is None


# --- the sources in order -------------------------------------------------------------


def _sources(tmp_path: Path, live: LiveRuns, *records: dict[str, Any]) -> RunSources:
    archive: RunSource = ArchivedRuns(_store_with(tmp_path, *records))
    return RunSources([live, archive])


def test_archived_runs_are_listed_on_request_and_never_twice(tmp_path: Path) -> None:
    running = {**_record("a", "Running"), "pipelineSpec": None}
    sources = _sources(tmp_path, LiveRuns(running), _record("a"), _record("bb"))
    assert [(r["name"], r["archived"]) for r in sources.rows("ml", archived=False)] == [
        ("a", False)
    ]
    listed = sorted((r["name"], r["archived"]) for r in sources.rows("ml", archived=True))
    assert listed == [("a", False), ("bb", True)]  # "a" from the cluster only
    assert [r["name"] for r in sources.live_rows("ml")] == ["a"]
    assert len(sources.archives) == 1


def test_a_run_in_the_cluster_is_shown_from_there_with_its_record_once_finished(
    tmp_path: Path,
) -> None:
    finished = _record("a")
    sources = _sources(tmp_path, LiveRuns(finished, _record("cc", "Running")), _record("a"))
    found = sources.find("ml", "a")
    assert not found.archived and found.run is finished and found.record == _record("a")
    running = sources.find("ml", "cc")
    assert not running.archived and running.record is None  # its status tells everything


def test_a_run_gone_from_the_cluster_is_shown_from_its_record(tmp_path: Path) -> None:
    sources = _sources(tmp_path, LiveRuns(), _record("bb"))
    found = sources.find("ml", "bb")
    assert found.archived and found.record == _record("bb")
    with pytest.raises(HttpError) as refused:
        sources.find("ml", "missing")
    assert refused.value.status == 404 and "nor in S3" in refused.value.message


def test_a_log_comes_from_the_pod_only_for_those_who_may_read_pod_logs(tmp_path: Path) -> None:
    store = _store_with(tmp_path)
    store.put_bytes(layout.log_key(layout.node_prefix("ml", "a", "t", None), 1), b"from s3")
    sources = RunSources([LiveRuns(logs=True), ArchivedRuns(store)])
    where = ("ml", "a", "t", None, 1)
    allowed = sources.log(where, lambda access: True)
    assert allowed is not None and allowed == ("pod", b"from the pod")
    refused = sources.log(where, lambda access: access.resource != "pods")
    assert refused is not None and refused[0] == "s3" and _joined(refused[1]) == b"from s3"
    assert sources.log(("ml", "a", "t", None, 2), lambda access: True) is None
