"""What each controller pass or event tells its observers (the metrics): frozen facts.

Why here: the producer (a controller, the webhook receiver, the S3 mirror) and the
observer (observe's domain collectors) sit in layers that may not import each other, or
in adapters that must stay independent; both import the model. Each producer fills one
report per pass or event with what it already knows (outcomes, counts, durations) and
hands it to its observer's one method, `observe(report)`. So a new series over facts a
report already carries is a change to its metrics module alone; only a new fact touches
the producer too. No I/O and no clock here: a report is the pass's own account.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeAlias


@dataclasses.dataclass(frozen=True)
class CacheReport:
    """What the task cache did in one Run controller pass (controllers/runcache.py)."""

    hits: int = 0  # launches served from an entry (no pod)
    misses: int = 0  # launches that looked an entry up and found none to serve
    #: For the hits: the source task's duration times the GPUs it held.
    gpu_seconds_saved: float = 0.0


@dataclasses.dataclass(frozen=True)
class RecurringPass:
    """One pass of the RecurringRun controller that decided its scheduled times
    (controllers/recurringruns.py; not sent for a pass over a schedule it cannot read)."""

    namespace: str
    name: str
    #: For each Run this pass created: seconds from its scheduled time to its creation.
    fired_lags: tuple[float, ...] = ()
    #: Scheduled times due on time but not started, by reason (engine.recurring.SKIP_REASONS).
    skipped: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: Scheduled times too late to start, by reason (engine.recurring.MISS_REASONS).
    missed: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: Active Runs this pass cancelled to make room (concurrency Replace).
    cancelled: int = 0
    #: The Ready reason the pass wrote (Scheduled, Suspended, Ended, PipelineNotFound).
    ready_reason: str = ""


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """What one sync attempt of a GitSource did (controllers/gitsources.py): absent when
    a pass had nothing to do."""

    result: str  # the Ready reason: Succeeded, InvalidFiles, FetchFailed, ...
    revision: str  # as attempted ('' when the fetch failed)
    applied: int = 0
    created: int = 0
    pruned: int = 0
    invalid_files: int = 0
    committed_at: float | None = None  # the commit's time (sync lag = applied - this)


@dataclasses.dataclass(frozen=True)
class GitSourceSeen:
    """A GitSource's sync starts (operator start, resync or a new source), with the
    status stored in the cluster then (controllers/gitsources_handlers.py)."""

    namespace: str
    name: str
    status: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class GitSourceSynced:
    """One sync attempt of a GitSource (none for passes that did nothing)."""

    namespace: str
    name: str
    sync: SyncReport
    #: How long the pass took, from its start to its result.
    seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class GitSourceDeleted:
    """The GitSource is gone: its sync stops."""

    namespace: str
    name: str


#: What the GitSource handlers tell their observer, one report per event.
GitSourceEvent: TypeAlias = GitSourceSeen | GitSourceSynced | GitSourceDeleted


@dataclasses.dataclass(frozen=True)
class WebhookRequest:
    """One request to the push webhook receiver (gitops/webhooks.py)."""

    result: str  # gitops.webhooks.RESULTS: triggered, ignored, unauthorized, ...
    status: int  # the HTTP status code it was answered with


@dataclasses.dataclass(frozen=True)
class MirrorWriteFailed:
    """An attempt of the S3 mirror (observe/records.py) to write one key failed; the job
    is back in the queue, to be retried after its backoff."""

    key: str
    failures: int  # this job's failed attempts so far
    is_log: bool  # a task's log, not a run record


@dataclasses.dataclass(frozen=True)
class MirrorBacklog:
    """The S3 mirror's queue after it changed: jobs waiting or in flight."""

    records: int


#: What the S3 mirror tells its observer, one report per event.
MirrorEvent: TypeAlias = MirrorWriteFailed | MirrorBacklog
