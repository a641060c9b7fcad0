"""Prometheus metrics of the operator: the registry wiring of the per-domain collectors.

Each domain keeps its series and its rules in its own module:
- run_metrics: runs and tasks, derived from what each Run controller pass reports;
- pass_metrics: reconcile passes of every controller and the Kubernetes API requests;
- mirror_metrics: the S3 mirror's failed writes and backlog;
- recurring_metrics: RecurringRun fires, skips, misses and schedule lag;
- gitsource_metrics: GitSource syncs, their results, lag and current revision;
- webhook_metrics: requests to the push webhook receiver.
`Metrics` builds them all on one registry, in one order (the exposition's), and forwards
nothing: the wiring hands each caller its domain (`runs` to the Run controller's
observers, `passes` to the reconcile timer and the request counters, `mirror` to the S3
mirror, `recurring` to the RecurringRun controller, `git_sources` to the GitSource
handlers, `webhooks` to the push receiver). Each caller hands its domain one report per
pass or event (api.reports, or a Run pass's PassReport) through `observe(report)`, so a
new series over facts a report carries is its domain module alone.

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
from collections.abc import Callable

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


class Metrics:
    """The domain collectors on one registry; one instance per operator process."""

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
