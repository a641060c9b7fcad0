"""What is fixed for a whole run, as both executors tell the planner, and the run's own
placeholders (`{{run.*}}`) read off it: one table from each placeholder's name to its
value, so a placeholder over a value the context holds is one line here.

Pure: the executors pass the names, the parameters and the times in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from pipesync.api import durations, times
from pipesync.api.model import CacheMode, PipelineSpec
from pipesync.engine import limits
from pipesync.engine.limits import Limits


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What is fixed for the whole run."""

    name: str
    namespace: str
    params: Mapping[str, Any]  # typed values (see engine.params.resolve)
    max_running: int | None = None  # run-wide cap on running task instances
    created_at: float = 0.0  # when the run was created (epoch seconds)
    scheduled_at: float | None = None  # the time a RecurringRun made it for, if it did
    bounds: Limits = limits.DEFAULT  # sizes of forEach and of one pass
    #: Seconds the whole run may take from its start; the executor watches it and tells
    #: `plan` (deadline_exceeded). None: no limit.
    timeout_seconds: float | None = None
    #: How the run uses the task cache (its spec.cache; `pipesync run --no-cache`).
    cache_mode: CacheMode = CacheMode.ENABLED


def run_context(
    spec: PipelineSpec,
    params: Mapping[str, Any],
    *,
    name: str,
    namespace: str,
    created_at: float,
    scheduled_at: float | None = None,
    max_running: int | None = None,
    timeout: str | None = None,
    cache: str | None = None,
    bounds: Limits = limits.DEFAULT,
) -> RunContext:
    """The one way both executors (the operator and `pipesync run`) describe a run to the
    planner, so a field such as the pipeline's `parallelism` cannot be honoured by one and
    forgotten by the other. `max_running`: the executor's own cap (`pipesync run
    --parallelism`); the smaller of it and the pipeline's applies. `timeout`: the run's
    own limit as written (a Run's spec.timeout, or `pipesync run --timeout`), else the
    pipeline's spec.timeout applies; ValueError when it is not a duration. `cache`: the
    run's spec.cache as written (Enabled when unset)."""
    caps = [cap for cap in (spec.parallelism, max_running) if cap is not None]
    return RunContext(
        name,
        namespace,
        params,
        max_running=min(caps) if caps else None,
        created_at=created_at,
        scheduled_at=scheduled_at,
        bounds=bounds,
        timeout_seconds=durations.parse(timeout) if timeout else spec.timeout_seconds,
        cache_mode=CacheMode(cache) if cache else CacheMode.ENABLED,
    )


def _scheduled_at(context: RunContext) -> str:
    # A run nobody scheduled was due when it was created.
    scheduled = context.scheduled_at
    return times.timestamp(context.created_at if scheduled is None else scheduled)


#: `{{run.NAME}}`: how each is read off the context. None: known only once the tasks are
#: over (`{{run.status}}`, filled in for onExit by the planner).
RUN_PLACEHOLDERS: Mapping[str, Callable[[RunContext], str] | None] = {
    "name": lambda context: context.name,
    "namespace": lambda context: context.namespace,
    "status": None,
    "createdAt": lambda context: times.timestamp(context.created_at),
    "scheduledAt": _scheduled_at,
}
