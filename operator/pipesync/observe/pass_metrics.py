"""Controller pass metrics: how long each reconcile pass took, which raised, and every
Kubernetes API request the controllers made (counted by the adapter, read at scrape).

Series labelled by controller exist at 0 from the start (prometheus_client's advice for
labelled metrics): `increase()` and `rate()` only see an increment between two samples.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

#: The controllers timed through `reconcile` (controllers/operator.py and the handlers).
CONTROLLERS = ("runs", "pipelines", "gitsources", "recurringruns")
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class RequestCounts(Protocol):
    """pipesync.kube.client.KubeClient: API requests counted by (verb, status code)."""

    @property
    def requests(self) -> Mapping[tuple[str, int], int]: ...


class PassMetrics:
    """Reconcile timing and errors by controller; API requests by verb and status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._request_sources: list[RequestCounts] = []
        self.reconcile_duration = Histogram(
            "pipesync_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "pipesync_reconcile_errors",
            "Reconcile passes that raised.",
            ["controller"],
            registry=registry,
        )
        for controller in CONTROLLERS:  # at 0 before the first pass or error
            self.reconcile_duration.labels(controller)
            self.reconcile_errors.labels(controller)
        #: pipesync_kubernetes_requests_total at scrape time; the wiring registers it
        #: (after the counters of every domain, so the exposition keeps its order).
        self.requests: Collector = _RequestCounter(self)

    @contextlib.contextmanager
    def reconcile(self, controller: str) -> Iterator[None]:
        """Times one reconcile pass of `controller`; counts it as an error if it raises."""
        began = time.perf_counter()
        try:
            yield
        except Exception:
            self.reconcile_errors.labels(controller).inc()
            raise
        finally:
            self.reconcile_duration.labels(controller).observe(time.perf_counter() - began)

    def watch_requests(self, source: RequestCounts) -> None:
        """Expose `source.requests` as pipesync_kubernetes_requests_total, read at scrape."""
        with self._lock:
            self._request_sources.append(source)

    def _requests(self) -> dict[tuple[str, int], int]:
        with self._lock:
            sources = list(self._request_sources)
        totals: collections.Counter[tuple[str, int]] = collections.Counter()
        for source in sources:
            for _ in range(5):  # the controller threads may add a key while we copy
                try:
                    totals.update(dict(source.requests))
                    break
                except RuntimeError:
                    continue
        return dict(totals)


class _RequestCounter(Collector):
    """The adapter's request counts, read when Prometheus scrapes."""

    def __init__(self, metrics: PassMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "pipesync_kubernetes_requests",
            "Kubernetes API requests of the controllers by verb and status code.",
            labels=["verb", "code"],
        )
        for (verb, code), value in sorted(self.metrics._requests().items()):
            requests.add_metric([verb, str(code)], value)
        yield requests
