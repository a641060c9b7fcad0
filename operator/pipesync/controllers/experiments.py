"""The Experiment controller's logic: count an experiment's runs by phase, name the last.

Pure: the handlers list the runs (by the `spec.experimentRef.name` field selector the
Run CRD declares) and write back what this returns, only when it differs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pipesync.controllers.conditions import Health, set_health

_BUCKETS = {
    "Pending": "pending",
    "Running": "running",
    "Cancelling": "running",
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Cancelled": "cancelled",
}


def desired_status(
    experiment: Mapping[str, Any], runs: Iterable[Mapping[str, Any]], now: str
) -> dict[str, Any]:
    status = dict(experiment.get("status") or {})
    counts = dict.fromkeys(("total", "pending", "running", "succeeded", "failed", "cancelled"), 0)
    newest: Mapping[str, Any] | None = None
    for run in runs:
        counts["total"] += 1
        phase = (run.get("status") or {}).get("phase") or "Pending"
        counts[_BUCKETS.get(phase, "pending")] += 1
        if newest is None or _created(run) > _created(newest):
            newest = run
    status["runs"] = counts
    if newest is not None:
        run_status = newest.get("status") or {}
        last = {"name": newest["metadata"]["name"], "phase": run_status.get("phase", "Pending")}
        if run_status.get("startedAt"):
            last["startedAt"] = run_status["startedAt"]
        status["lastRun"] = last
    else:
        status.pop("lastRun", None)
    generation = experiment["metadata"].get("generation")
    status["observedGeneration"] = generation
    status["conditions"] = set_health(
        status.get("conditions", []),
        Health.READY,
        reason="RunsCounted",
        message=f"{counts['total']} runs",
        generation=generation,
        now=now,
    )
    return status


def _created(run: Mapping[str, Any]) -> tuple[str, str]:
    metadata = run["metadata"]
    return (str(metadata.get("creationTimestamp", "")), str(metadata.get("name", "")))
