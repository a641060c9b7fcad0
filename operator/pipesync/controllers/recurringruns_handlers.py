"""The kopf wiring of the RecurringRun controller: one daemon per RecurringRun.

Why a daemon that sleeps until the next scheduled time instead of a timer: a fixed poll
either fires late (long period) or costs API calls for nothing (short period); the daemon
sleeps exactly until its next time and is woken early by what can change the decision:
a spec change (generation moves) and one of its Runs finishing (concurrency, history).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Mapping
from typing import Any

import kopf

from pipesync.api import conventions, model
from pipesync.controllers import driver, recurringruns
from pipesync.controllers.settings import OperatorSettings, timer
from pipesync.engine import state
from pipesync.kube.protocol import Kube

#: The longest sleep: a guard against clock jumps and lost wake-ups.
MAX_SLEEP_SECONDS = 3600.0


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
        kube,
        observer=settings.metrics.recurring if settings.metrics is not None else None,
        wait_for_records=settings.records is not None,
    )
    timed = timer(settings)
    wakeups = driver.Wakeups()
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
        key = (namespace, name)
        loop = asyncio.get_running_loop()

        async def run_pass(_trigger: driver.Trigger) -> driver.Next:
            # An API error raised here is retried by the driver: the status cursor did
            # not move, so the retry re-decides the same times.
            result = await loop.run_in_executor(passes, reconcile, namespace, name)
            for kind, reason, message in result.events:
                kopf.event(body, type=kind, reason=reason, message=message)
            if result.wake_at is None:
                return driver.Next()
            return driver.Next(after=min(result.wake_at - time.time(), MAX_SLEEP_SECONDS))

        try:
            await driver.drive(
                run_pass,
                wakeup=lambda: wakeups.event(key),
                resync=settings.resync_seconds,
                stopped=kwargs["stopped"],
                logger=kwargs["logger"],
            )
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
