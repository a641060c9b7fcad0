"""S3 mirror metrics: failed record writes and the queue's length, derived from the
`api.reports.MirrorEvent` observe/records.py reports for each (a new series over their
facts is this module alone)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from pipesync.api import reports


class MirrorMetrics:
    """Implements pipesync.observe.records.MirrorObserver."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.mirror_failures = Counter(
            "pipesync_s3_mirror_failures",
            "Failed attempts to write a run record to S3.",
            registry=registry,
        )
        self.mirror_backlog = Gauge(
            "pipesync_s3_mirror_backlog",
            "Run records waiting to be written to S3.",
            registry=registry,
        )

    def observe(self, event: reports.MirrorEvent) -> None:
        """A failed write, or the queue's length after it changed."""
        if isinstance(event, reports.MirrorWriteFailed):
            self.mirror_failures.inc()
        else:
            self.mirror_backlog.set(event.records)
