"""S3 mirror metrics: failed record writes and the queue's length (observe/records.py
reports them through its MirrorMetrics protocol)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class MirrorMetrics:
    """Implements pipesync.observe.records.MirrorMetrics."""

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

    def mirror_failed(self) -> None:
        self.mirror_failures.inc()

    def set_mirror_backlog(self, records: int) -> None:
        self.mirror_backlog.set(records)
