"""Prometheus metrics of the operator: the registry wiring of the per-domain collectors.

Each domain keeps its series and its rules in its own module:
- run_metrics: runs and tasks, derived from what each Run controller pass reports;
- pass_metrics: reconcile passes of every controller and the Kubernetes API requests;
- mirror_metrics: the S3 mirror's failed writes and backlog;
- recurring_metrics: RecurringRun fires, skips, misses and schedule lag;
- gitsource_metrics: GitSource syncs, their results, lag and current revision;
- webhook_metrics: requests to the push webhook receiver.
`Metrics` builds them all on one registry, in one order (the exposition's), and is the
one object the wiring hands around: the controllers, the S3 mirror and the webhook
receiver call it, and it passes each call to its domain.

Semantics across restarts (the operator may be SIGKILLed at any moment): counters count
what this process observed, in base units, and start at zero in a new process
(Prometheus' `rate`/`increase` handle the reset); gauges are recomputed or restored from
what is stored in the cluster (each domain's module says how). Every counter series that
can be known before its first increment exists at 0 from then on (prometheus_client's
advice for labelled metrics): `increase()` and `rate()` only see an increment between two
samples, so a series born at 1 hides the first run, failure or retry after every start.

Labels are the pipeline, phase, pool, namespace or controller: never the run
(cardinality; a run's detail lives in its status and the S3 record).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector

from pipesync import __version__
from pipesync.observe import (
    gitsource_metrics,
    mirror_metrics,
    pass_metrics,
    recurring_metrics,
    run_metrics,
    webhook_metrics,
)
from pipesync.observe.passes import PassReportLike


class Metrics:
    """Implements RunObserver; one instance per operator process, on its own registry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        version: str = __version__,
        stale_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Never the global default registry: tests and embedders get isolated metrics.
        self.registry = r = CollectorRegistry() if registry is None else registry
        self.runs = run_metrics.RunMetrics(
            r, stale_seconds=stale_seconds, clock=clock, monotonic=monotonic
        )
        self.passes = pass_metrics.PassMetrics(r)
        self.mirror = mirror_metrics.MirrorMetrics(r)
        self.recurring = recurring_metrics.RecurringMetrics(r)
        self.git_sources = gitsource_metrics.GitSourceMetrics(r, clock=clock)
        Gauge(
            "pipesync_build_info", "The running pipesync version.", ["version"], registry=r
        ).labels(version).set(1)
        # The values computed at scrape time come after every recorded series.
        r.register(self.runs.gauges)
        r.register(self.passes.requests)
        # process_resident_memory_bytes, process_cpu_seconds_total...: the dashboards' memory.
        ProcessCollector(registry=r)
        self.webhooks = webhook_metrics.WebhookMetrics(r)

    # --- runs and tasks ------------------------------------------------------------------

    def run_pass(self, report: PassReportLike) -> None:
        """RunObserver: must not raise (it runs inside the controller's pass)."""
        self.runs.run_pass(report)

    def pipeline_seen(self, namespace: str, pipeline: str) -> None:
        """A Pipeline exists: its run and task series start at 0 now."""
        self.runs.pipeline_seen(namespace, pipeline)

    # --- controller passes and API calls -------------------------------------------------

    def reconcile(self, controller: str) -> AbstractContextManager[None]:
        """Times one reconcile pass of `controller`; counts it as an error if it raises."""
        return self.passes.reconcile(controller)

    def watch_requests(self, source: pass_metrics.RequestCounts) -> None:
        """Expose `source.requests` as pipesync_kubernetes_requests_total, read at scrape."""
        self.passes.watch_requests(source)

    # --- the S3 mirror -------------------------------------------------------------------

    def mirror_failed(self) -> None:
        self.mirror.mirror_failed()

    def set_mirror_backlog(self, records: int) -> None:
        self.mirror.set_mirror_backlog(records)

    # --- RecurringRuns (observed by controllers/recurringruns.py) ------------------------

    def recurring_fired(self, lag_seconds: float) -> None:
        self.recurring.recurring_fired(lag_seconds)

    def recurring_skipped(self, reason: str, count: int) -> None:
        self.recurring.recurring_skipped(reason, count)

    def recurring_missed(self, reason: str, count: int) -> None:
        self.recurring.recurring_missed(reason, count)

    # --- GitSources (observed by controllers/gitsources_handlers.py) ---------------------

    def git_sync(
        self,
        namespace: str,
        name: str,
        report: gitsource_metrics.GitSyncReport,
        seconds: float | None = None,
    ) -> None:
        """One sync attempt of a GitSource (not called for passes that did nothing)."""
        self.git_sources.git_sync(namespace, name, report, seconds)

    def git_source_seen(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """The source's sync starts: its series say again what its stored status says."""
        self.git_sources.git_source_seen(namespace, name, status)

    def git_source_deleted(self, namespace: str, name: str) -> None:
        """Drops the source's series that describe a current state."""
        self.git_sources.git_source_deleted(namespace, name)

    # --- push webhook receiver (gitops/webhooks.py reports through this callback) --------

    def count_webhooks(self, results: Iterable[str] = ()) -> Callable[[str], None]:
        """The receiver's `on_result` callback; the counter is created on first use."""
        return self.webhooks.count_webhooks(results)
