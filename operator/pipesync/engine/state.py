"""What the planner is told about a run: the state of each task and forEach instance."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

from pipesync.engine.retries import FailureKind


class Phase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    CACHED = "Cached"  # succeeded earlier: its outputs come from the cache, nothing ran
    FAILED = "Failed"
    SKIPPED = "Skipped"  # `when` was false, or outputs it reads were never produced
    OMITTED = "Omitted"  # an upstream task failed, so this one never ran
    CANCELLED = "Cancelled"


class RunPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"


#: The run phases nothing follows: the controller stops driving, observers record the end.
FINISHED: frozenset[str] = frozenset(
    {RunPhase.SUCCEEDED.value, RunPhase.FAILED.value, RunPhase.CANCELLED.value}
)


#: The phases whose outputs downstream tasks read: the task ran, or its cache served it.
SUCCESSFUL: frozenset[Phase] = frozenset({Phase.SUCCEEDED, Phase.CACHED})


#: (task index, instance index); instance -1 is the task itself (and a forEach's aggregate).
NodeKey = tuple[int, int]
TASK = -1


@dataclasses.dataclass(frozen=True)
class NodeState:
    phase: Phase = Phase.PENDING
    attempts: int = 0  # attempts started so far
    finished_at: float | None = None  # when the last attempt ended
    outputs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    failure: FailureKind | None = None
    message: str = ""
    #: Cached only: the run and the task (or instance) whose results were reused.
    cached_from: CacheSource | None = None
    #: Succeeded or Cached: each output artifact's content digest (runtime.digests), by
    #: name, as the pod agent or the cache entry reports it; the cache keys consumers on
    #: them. An artifact missing here has no known digest.
    digests: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class CacheSource:
    run: str
    task: str  # as the source run's status names it: "train", "sweep[3]"

    def to_json(self) -> dict[str, str]:
        """As status and the record write it (`cachedFrom`)."""
        return {"run": self.run, "task": self.task}


PENDING = NodeState()
