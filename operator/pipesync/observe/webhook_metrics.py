"""Push webhook metrics: requests to the receiver by result (gitops/webhooks.py reports
each through a callback; gitops may not import observe)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter


class WebhookMetrics:
    """pipesync_webhook_requests_total, registered on first use: an operator without the
    receiver exposes no webhook series."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._requests: Counter | None = None

    def count_webhooks(self, results: Iterable[str] = ()) -> Callable[[str], None]:
        """The receiver's `on_result` callback, counting pipesync_webhook_requests_total by
        result; created on first use (once), each of `results` starting at zero."""
        with self._lock:
            counter = self._requests
            if counter is None:
                counter = Counter(
                    "pipesync_webhook_requests",
                    "Requests to the push webhook receiver, by result.",
                    ["result"],
                    registry=self.registry,
                )
                self._requests = counter
            for result in results:
                counter.labels(result)
        return lambda result: counter.labels(result).inc()
