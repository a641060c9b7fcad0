"""RecurringRun metrics: scheduled times that fired, were skipped or were missed, and how
late each fire was, derived from the `api.reports.RecurringPass` each pass of
controllers/recurringruns.py reports (a new series over its facts is this module alone).

Every skip and miss reason the engine knows starts at 0 with the process, so the first
one after a start is an increase Prometheus can see.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from pipesync.api import reports
from pipesync.engine import recurring

SCHEDULE_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class RecurringMetrics:
    """Implements pipesync.controllers.recurringruns.RecurringObserver."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.recurring_fires = Counter(
            "pipesync_recurring_fires",
            "Scheduled times of RecurringRuns that started a Run.",
            registry=registry,
        )
        self.recurring_skips = Counter(
            "pipesync_recurring_skips",
            "Scheduled times due on time but not started, by reason (Suspended, "
            "ConcurrencyForbid, ConcurrencyLimit, Replaced).",
            ["reason"],
            registry=registry,
        )
        self.recurring_misses = Counter(
            "pipesync_recurring_missed",
            "Scheduled times too late to start (operator down or busy), by reason "
            "(DeadlineExceeded, CatchupNone, CatchupLatest, CatchupMaxRuns).",
            ["reason"],
            registry=registry,
        )
        for reason in recurring.SKIP_REASONS:
            self.recurring_skips.labels(reason)
        for reason in recurring.MISS_REASONS:
            self.recurring_misses.labels(reason)
        self.recurring_lag = Histogram(
            "pipesync_recurring_schedule_lag_seconds",
            "Time from a RecurringRun's scheduled time to the creation of its Run.",
            buckets=SCHEDULE_LAG_BUCKETS,
            registry=registry,
        )

    def observe(self, report: reports.RecurringPass) -> None:
        """One pass of the RecurringRun controller: what it fired, skipped and missed."""
        for lag_seconds in report.fired_lags:
            self.recurring_fires.inc()
            self.recurring_lag.observe(lag_seconds)
        for reason, count in report.skipped.items():
            self.recurring_skips.labels(reason).inc(count)
        for reason, count in report.missed.items():
            self.recurring_misses.labels(reason).inc(count)
