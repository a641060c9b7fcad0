"""What the operator is configured with, shared by every controller's kopf wiring."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager

from pipesync.controllers.runs import RunObserver
from pipesync.engine import limits
from pipesync.gitops.triggers import SyncTriggers
from pipesync.observe.metrics import Metrics
from pipesync.observe.records import RunRecorder
from pipesync.runtime import pods
from pipesync.runtime.storage import ObjectStore


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    pods: pods.PodSettings
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    observers: tuple[RunObserver, ...] = ()  # metrics, the S3 mirror
    #: S3: outputs too big for a pod's report, and the task cache
    store: ObjectStore | None = None
    liveness_endpoint: str | None = None
    metrics: Metrics | None = None  # each controller reaches its domain (passes, runs...)
    records: RunRecorder | None = None  # the S3 mirror (also list it in observers)
    #: A run with nothing to wake it is looked at again after this long anyway.
    resync_seconds: float = 30.0
    #: Threads running reconcile passes (each mostly waits on the API server), and kopf's
    #: for its sync handlers; also sizes the Kubernetes client's connection pool, so no
    #: pass waits for a socket.
    pass_workers: int = 16
    #: Shared with the webhook receiver: pushes wake a GitSource's sync at once.
    triggers: SyncTriggers | None = None
    #: Sizes of forEach and of one pass (engine.limits; flags --max-foreach-items etc.).
    limits: limits.Limits = limits.DEFAULT


Timer = Callable[[str], AbstractContextManager[None]]


def timer(settings: OperatorSettings) -> Timer:
    """Wraps each reconcile pass: duration and errors by controller, when metrics are on."""
    if settings.metrics is not None:
        return settings.metrics.passes.reconcile
    return lambda _controller: contextlib.nullcontext()
