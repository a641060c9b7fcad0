"""The kopf wiring of the GitSource controller: one daemon per GitSource.

Why a daemon that sleeps for `interval` instead of a kopf timer: a webhook push must
start a sync at once, so the daemon waits on the source's trigger event (set by the
webhook receiver through gitops.triggers, or by a spec or reconcile-request change)
with the interval as its timeout. Git work runs in a small thread pool of its own, so
a slow remote never blocks kopf's event loop or the other controllers' passes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import kopf

from pipesync.api import conventions, model, reports
from pipesync.controllers import driver, gitsources
from pipesync.controllers.settings import OperatorSettings, timer
from pipesync.kube.protocol import Kube
from pipesync.runtime import pods

_log = logging.getLogger(__name__)

GIT_WORKERS = 4


class GitSourceObserver(Protocol):
    """observe.gitsource_metrics.GitSourceMetrics: told each event of a source."""

    def observe(self, event: reports.GitSourceEvent) -> None: ...


def register(registry: kopf.OperatorRegistry, kube: Kube, settings: OperatorSettings) -> None:
    group, version = model.GROUP, model.VERSION
    s3 = settings.pods.s3
    controller = gitsources.GitSourceController(
        kube,
        settings.store,
        settings.triggers,
        # The key task pods read: the archive lands where pods.workspace_key looks.
        archive_key=lambda namespace, source, commit: pods.workspace_key(
            s3, namespace, source, commit
        ),
    )
    timed = timer(settings)
    passes = concurrent.futures.ThreadPoolExecutor(
        max_workers=GIT_WORKERS, thread_name_prefix="gitsource-pass"
    )
    metrics: GitSourceObserver | None = (
        settings.metrics.git_sources if settings.metrics is not None else None
    )
    own_events: dict[tuple[str, str], asyncio.Event] = {}
    # What each source's last seen event carried: only a change of these wakes it (our
    # own status writes must not).
    seen: dict[tuple[str, str], tuple[Any, Any]] = {}

    def wakeup(namespace: str, name: str) -> asyncio.Event:
        if settings.triggers is not None:  # shared with the webhook receiver
            return settings.triggers.event(namespace, name)
        return own_events.setdefault((namespace, name), asyncio.Event())

    def reconcile(namespace: str, name: str) -> gitsources.PassResult:
        with timed("gitsources"):
            return controller.reconcile(namespace, name)

    @kopf.daemon(group, version, "gitsources", registry=registry, cancellation_timeout=10)
    async def sync_git_source(**kwargs: Any) -> None:
        """Syncs the source on its interval and at once when woken, while it exists."""
        name, namespace, body = kwargs["name"], kwargs["namespace"], kwargs["body"]
        loop = asyncio.get_running_loop()
        if metrics is not None:  # its gauges from the stored status, not at the next commit
            metrics.observe(reports.GitSourceSeen(namespace, name, body.get("status") or {}))

        async def run_pass(_trigger: driver.Trigger) -> driver.Next:
            started = time.monotonic()
            result = await loop.run_in_executor(passes, reconcile, namespace, name)
            if result.wait_seconds is None:
                if metrics is not None:
                    metrics.observe(reports.GitSourceDeleted(namespace, name))
                return driver.Next(done=True)
            for kind, reason, message in result.events:
                kopf.event(body, type=kind, reason=reason, message=message)
            if result.report is not None:  # one line per sync attempt, none when idle
                _report(metrics, namespace, name, result.report, time.monotonic() - started)
            # The interval is the source's resync: a failure's retry comes no later.
            return driver.Next(after=result.wait_seconds, failure=result.failure)

        await driver.drive(
            run_pass,
            wakeup=lambda: wakeup(namespace, name),
            resync=gitsources.DEFAULT_INTERVAL_SECONDS,  # each pass names its own interval
            stopped=kwargs["stopped"],
            logger=kwargs["logger"],
        )

    @kopf.on.event(group, version, "gitsources", registry=registry)
    async def git_source_changed(**kwargs: Any) -> None:
        key = (kwargs["namespace"], kwargs["name"])
        if kwargs["event"].get("type") == "DELETED":
            seen.pop(key, None)
            own_events.pop(key, None)
            await asyncio.get_running_loop().run_in_executor(passes, controller.forget, *key)
            return
        body: Mapping[str, Any] = kwargs["body"]
        metadata = body.get("metadata") or {}
        wanted = (
            metadata.get("generation"),
            (metadata.get("annotations") or {}).get(conventions.ANNOTATION_RECONCILE_AT),
        )
        if seen.get(key, wanted) != wanted:
            wakeup(*key).set()
        seen[key] = wanted


def _report(
    metrics: GitSourceObserver | None,
    namespace: str,
    name: str,
    report: reports.SyncReport,
    seconds: float,
) -> None:
    if metrics is not None:
        metrics.observe(reports.GitSourceSynced(namespace, name, report, seconds))
    _log.info(
        "git source %s/%s: %s %s (%d applied, %d runs created, %d pruned, %d invalid files)",
        namespace, name, report.result, report.revision or "-",
        report.applied, report.created, report.pruned, report.invalid_files,
    )  # fmt: skip
