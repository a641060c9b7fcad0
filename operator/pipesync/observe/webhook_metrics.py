"""Push webhook metrics: requests to the receiver by result, derived from the
`api.reports.WebhookRequest` gitops/webhooks.py reports for each (gitops may not import
observe; a new series over a request's facts is this module alone)."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter

from pipesync.api import reports


class WebhookMetrics:
    """pipesync_webhook_requests_total, registered on first use: an operator without the
    receiver exposes no webhook series. Implements pipesync.gitops.webhooks.WebhookObserver."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._requests: Counter | None = None

    def receiving(self, results: Iterable[str] = ()) -> WebhookMetrics:
        """The receiver is served: its series are registered (once), each of `results`
        starting at zero. Returns the observer to hand the receiver."""
        self._counter(results)
        return self

    def observe(self, report: reports.WebhookRequest) -> None:
        """One request the receiver answered: counted by its result."""
        self._counter(()).labels(report.result).inc()

    def _counter(self, results: Iterable[str]) -> Counter:
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
        return counter
