"""The kopf wiring of the RecurringRun controller: one daemon per RecurringRun.

Why a daemon that sleeps until the next scheduled time instead of a timer: a fixed poll
either fires late (long period) or costs API calls for nothing (short period); the daemon
sleeps exactly until its next time and is woken early by what can change the decision:
a spec change (generation moves) and one of its Runs finishing (concurrency, history).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from pipesync.api import conventions, model
from pipesync.controllers import recurringruns
from pipesync.controllers.settings import OperatorSettings, timer
from pipesync.engine import state
from pipesync.kube.protocol import Kube

_log = logging.getLogger(__name__)

#: After a pass raised (API error), the next try comes this much later.
RETRY_SECONDS = 5.0
#: The longest sleep: a guard against clock jumps and lost wake-ups.
MAX_SLEEP_SECONDS = 3600.0


class _Wakeups:
    """One asyncio.Event per RecurringRun, set from handlers running in the event loop."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def event(self, key: tuple[str, str]) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def wake(self, key: tuple[str, str]) -> None:
        event = self._events.get(key)
        if event is not None:
            event.set()

    def forget(self, key: tuple[str, str]) -> None:
        self._events.pop(key, None)


class _Finishes:
    """Which Run events are news to its RecurringRun: the first sight of it finished, or
    its deletion before it finished. Everything after (its S3 record, its deletion by the
    history limit) would only cost passes, which crowd out due firings."""

    def __init__(self) -> None:
        self._finished: set[str] = set()  # uids of Runs whose finish was reported

    def first_news(self, kind: str, body: Mapping[str, Any]) -> bool:
        uid = str((body.get("metadata") or {}).get("uid"))
        if kind == "DELETED":
            if uid in self._finished:
                self._finished.discard(uid)
                return False
            return True
        if (body.get("status") or {}).get("phase") not in state.FINISHED:
            return False
        if uid in self._finished:
            return False
        self._finished.add(uid)
        return True


def register(registry: kopf.OperatorRegistry, kube: Kube, settings: OperatorSettings) -> None:
    group, version = model.GROUP, model.VERSION
    controller = recurringruns.RecurringRunController(
        kube, observer=settings.metrics, wait_for_records=settings.records is not None
    )
    timed = timer(settings)
    wakeups = _Wakeups()
    finishes = _Finishes()
    passes = concurrent.futures.ThreadPoolExecutor(
        max_workers=settings.pass_workers, thread_name_prefix="recurring-pass"
    )

    def reconcile(namespace: str, name: str) -> recurringruns.PassResult:
        with timed("recurringruns"):
            return controller.reconcile(namespace, name)

    @kopf.daemon(group, version, "recurringruns", registry=registry, cancellation_timeout=10)
    async def drive_recurring_run(**kwargs: Any) -> None:
        """Fires the RecurringRun's scheduled times for as long as it exists."""
        name, namespace, body = kwargs["name"], kwargs["namespace"], kwargs["body"]
        stopped = kwargs["stopped"]
        key = (namespace, name)
        wakeup = wakeups.event(key)
        loop = asyncio.get_running_loop()
        try:
            while not stopped:
                wakeup.clear()
                try:
                    result = await loop.run_in_executor(passes, reconcile, namespace, name)
                except Exception:  # an API error: retry soon, the status cursor did not move
                    _log.exception("recurring run %s/%s: pass failed", namespace, name)
                    delay = RETRY_SECONDS
                else:
                    for kind, reason, message in result.events:
                        kopf.event(body, type=kind, reason=reason, message=message)
                    delay = settings.resync_seconds
                    if result.wake_at is not None:
                        delay = min(max(result.wake_at - time.time(), 0.0), MAX_SLEEP_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), timeout=delay)
        finally:
            wakeups.forget(key)

    @kopf.on.event(group, version, "recurringruns", registry=registry)
    async def recurring_run_changed(**kwargs: Any) -> None:
        # Events of our own status writes carry observedGeneration == generation: no wake.
        body: Mapping[str, Any] = kwargs["body"]
        generation = (body.get("metadata") or {}).get("generation")
        if (body.get("status") or {}).get("observedGeneration") != generation:
            wakeups.wake((kwargs["namespace"], kwargs["name"]))

    @kopf.on.event(
        group,
        version,
        "runs",
        labels={conventions.LABEL_RECURRING_RUN: kopf.PRESENT},
        registry=registry,
    )
    async def recurring_runs_run_changed(**kwargs: Any) -> None:
        # Only a Run finishing, or deleted unfinished, changes what its owner decides.
        body: Mapping[str, Any] = kwargs["body"]
        if not finishes.first_news(str(kwargs["event"].get("type")), body):
            return
        metadata = body.get("metadata") or {}
        owner = (metadata.get("annotations") or {}).get(conventions.ANNOTATION_RECURRING_RUN)
        if owner:
            wakeups.wake((kwargs["namespace"], owner))
