"""The Experiment controller's pure logic: runs counted by phase, the newest named."""

from __future__ import annotations

from typing import Any

from pipesync.controllers import experiments

EXPERIMENT = {"metadata": {"name": "e", "generation": 1}, "spec": {}}


def run(name: str, created: str, phase: str | None) -> dict[str, Any]:
    status = {} if phase is None else {"phase": phase, "startedAt": created}
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def test_runs_are_counted_by_phase_and_the_newest_is_the_last_run() -> None:
    status = experiments.desired_status(
        EXPERIMENT,
        [
            run("a", "2026-01-01T00:00:00Z", "Succeeded"),
            run("c", "2026-01-03T00:00:00Z", "Running"),
            run("b", "2026-01-02T00:00:00Z", "Failed"),
            run("d", "2026-01-02T12:00:00Z", None),
            run("e", "2026-01-01T06:00:00Z", "Cancelling"),
        ],
        "2026-01-04T00:00:00Z",
    )
    assert status["runs"] == {
        "total": 5,
        "pending": 1,
        "running": 2,
        "succeeded": 1,
        "failed": 1,
        "cancelled": 0,
    }
    assert status["lastRun"] == {
        "name": "c",
        "phase": "Running",
        "startedAt": "2026-01-03T00:00:00Z",
    }


def test_an_experiment_without_runs_has_zero_counts_and_no_last_run() -> None:
    before = {**EXPERIMENT, "status": {"lastRun": {"name": "gone", "phase": "Succeeded"}}}
    status = experiments.desired_status(before, [], "2026-01-04T00:00:00Z")
    assert status["runs"]["total"] == 0
    assert "lastRun" not in status
