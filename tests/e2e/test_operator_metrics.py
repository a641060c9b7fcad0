"""The operator's /metrics on the real control plane: a run moves the counters, and the
real Prometheus server scrapes the endpoint and answers PromQL about it."""

from __future__ import annotations

import http.client
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.fixtures.prometheus import PrometheusServer
from tests.e2e.test_operator_runs import run_document, wait_finished

PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: tiny}
spec:
  tasks:
    - name: hello
      command: [sh, -c, "echo hello"]
    - name: bye
      dependsOn: [hello]
      command: [sh, -c, "echo bye"]
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"metrics-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def scrape(url: str) -> Samples:
    """GET /metrics and parse it with prometheus_client's own text parser."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body[:500]
    finally:
        connection.close()
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_run_moves_the_metrics_and_prometheus_can_query_them(
    cluster: Cluster, operator: Operator, namespace: str, prometheus: PrometheusServer
) -> None:
    succeeded = {"pipeline": "tiny", "phase": "Succeeded"}
    before = scrape(operator.metrics_url)
    assert value(before, "pipesync_build_info", version="0.1.0") == 1

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/tiny", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("tiny-1", "tiny"))
    run = wait_finished(cluster, namespace, "tiny-1")
    assert run["status"]["phase"] == "Succeeded", run["status"]

    # The observer runs right after the pass that wrote Succeeded; allow the few ms.
    deadline = time.monotonic() + 10
    after = scrape(operator.metrics_url)
    while (
        value(after, "pipesync_runs_finished_total", **succeeded)
        <= value(before, "pipesync_runs_finished_total", **succeeded)
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
        after = scrape(operator.metrics_url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("pipesync_runs_finished_total", **succeeded) == 1
    assert grew("pipesync_runs_started_total", pipeline="tiny") == 1
    assert grew("pipesync_run_duration_seconds_count", **succeeded) == 1
    assert grew("pipesync_task_duration_seconds_count", **succeeded) == 2  # hello and bye
    assert grew("pipesync_reconcile_duration_seconds_count", controller="runs") >= 2
    assert grew("pipesync_reconcile_duration_seconds_count", controller="pipelines") >= 1
    assert grew("pipesync_kubernetes_requests_total", verb="create", code="200") >= 2  # pods
    assert value(after, "pipesync_runs_active", namespace=namespace) == 0
    # no series names the run
    assert not [key for key in after if any("tiny-1" in v for _, v in key[1])]

    target = operator.metrics_url.removeprefix("http://").removesuffix("/metrics")
    prometheus.scrape(target, job="pipesync-operator")
    # This run's own series: other tests' runs (same operator) satisfy any broader query
    # with a scrape taken before this run ended.
    result = prometheus.wait_for(
        'sum(pipesync_runs_finished_total{job="pipesync-operator",pipeline="tiny"})',
        timeout=30,
        predicate=lambda found: bool(found) and float(found[0]["value"][1]) >= 1,
    )
    assert float(result[0]["value"][1]) >= 1
    by_phase = prometheus.wait_for(
        'sum by (phase) (pipesync_task_duration_seconds_count{job="pipesync-operator",'
        'pipeline="tiny"})',
        timeout=30,
        predicate=lambda found: any(
            s["metric"].get("phase") == "Succeeded" and float(s["value"][1]) >= 2 for s in found
        ),
    )
    assert {s["metric"]["phase"]: float(s["value"][1]) for s in by_phase}.get("Succeeded", 0) >= 2
    up = prometheus.query('up{job="pipesync-operator"}')
    assert up and up[0]["value"][1] == "1"
