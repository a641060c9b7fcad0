"""Reading the run record `pipesync run` writes (the RunRecord format of the S3 mirror)
as rows, the way the local-run tests look at it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api import runstatus, times


def task_rows(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every task and forEach instance of a local run.json by name (`train`, `train[0]`),
    each with `task` (that name) and its times as Unix seconds (None when unset)."""
    record = runstatus.RunRecord.from_json(data)
    assert record is not None, "not a RunRecord"
    rows: dict[str, dict[str, Any]] = {}
    for name, task in record.tasks.items():
        rows[name] = _row(name, task)
        for instance in task.instances or ():
            shown = f"{name}[{instance.index}]"
            rows[shown] = _row(shown, instance)
    return rows


def _row(name: str, detail: runstatus.NodeDetail) -> dict[str, Any]:
    row = {
        "phase": detail.phase,
        "attempts": detail.attempts,
        "message": detail.message,
        "outputs": dict(detail.outputs),
        "exitCode": detail.exit_code,
        "log": detail.log or None,
        **detail.to_json(),
    }
    row.update(
        task=name,
        startedAt=times.instant(detail.started_at),
        finishedAt=times.instant(detail.finished_at),
    )
    return row
