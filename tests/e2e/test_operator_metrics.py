"""The operator's /metrics on the real control plane: a run moves the counters, and the
real Prometheus server scrapes the endpoint and answers PromQL about it."""

from __future__ import annotations

import http.client
import json
import pathlib
import shutil
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.gitserver import GitServer
from tests.e2e.fixtures.killable_operator import KillableOperator
from tests.e2e.fixtures.operator import Operator, operator_command
from tests.e2e.fixtures.processes import free_port
from tests.e2e.fixtures.prometheus import PrometheusServer
from tests.e2e.test_dashboards import wait_status
from tests.e2e.test_gitsource import Repo, applied, basic_auth_secret, create_source
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


def exposition(url: str) -> str:
    """GET /metrics: the text Prometheus scrapes."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", parts.path)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body[:500]
    finally:
        connection.close()
    return body


def scrape(url: str) -> Samples:
    """GET /metrics and parse it with prometheus_client's own text parser."""
    body = exposition(url)
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, /, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_run_moves_the_metrics_and_prometheus_can_query_them(
    cluster: Cluster, operator: Operator, namespace: str, prometheus: PrometheusServer
) -> None:
    succeeded = {"namespace": namespace, "pipeline": "tiny", "phase": "Succeeded"}
    first = scrape(operator.metrics_url)
    assert value(first, "pipesync_build_info", version="0.1.0") == 1
    target = operator.metrics_url.removeprefix("http://").removesuffix("/metrics")
    prometheus.scrape(target, job="pipesync-operator")

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/tiny", "-n", namespace, "--timeout=60s"
    )
    # The pipeline's series exist at 0 before its first run, and Prometheus has a sample of
    # that 0: increase() then sees the first run (a series born at 1 shows no increase).
    this = f'job="pipesync-operator",namespace="{namespace}",pipeline="tiny"'
    for zero in (
        f"pipesync_runs_started_total{{{this}}}",
        f'pipesync_runs_finished_total{{{this},phase="Succeeded"}}',
        f'pipesync_task_duration_seconds_count{{{this},phase="Succeeded"}}',
    ):
        prometheus.wait_for(zero, timeout=30)
    before = scrape(operator.metrics_url)
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
    assert grew("pipesync_runs_started_total", namespace=namespace, pipeline="tiny") == 1
    assert grew("pipesync_run_duration_seconds_count", **succeeded) == 1
    assert grew("pipesync_task_duration_seconds_count", **succeeded) == 2  # hello and bye
    assert grew("pipesync_reconcile_duration_seconds_count", controller="runs") >= 2
    passes = "pipesync_reconcile_duration_seconds_count"
    assert value(after, passes, controller="pipelines") > value(
        first, passes, controller="pipelines"
    )
    assert grew("pipesync_kubernetes_requests_total", verb="create", code="200") >= 2  # pods
    assert value(after, "pipesync_runs_active", namespace=namespace) == 0
    # no series names the run
    assert not [key for key in after if any("tiny-1" in v for _, v in key[1])]

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
    for counter in (
        f"pipesync_runs_started_total{{{this}}}",
        f'pipesync_runs_finished_total{{{this},phase="Succeeded"}}',
    ):
        prometheus.wait_for(
            f"increase({counter}[5m])",
            timeout=30,
            predicate=lambda found: bool(found) and float(found[0]["value"][1]) > 0,
        )
    up = prometheus.query('up{job="pipesync-operator"}')
    assert up and up[0]["value"][1] == "1"


SYNCED = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: restored}
spec:
  tasks:
    - {name: a, command: [echo, restored]}
"""


def test_a_restarted_operator_reports_a_git_sources_gauges_before_the_next_commit(
    cluster: Cluster,
    *,
    crds: None,
    nodes: object,
    s3: object,
    git_server: GitServer,
    solo_namespace: str,
    tmp_path: pathlib.Path,
) -> None:
    """The GitSource gauges (info, last success, invalid files) come back from the source's
    status when the restarted operator resumes it, not at the next commit."""
    namespace = solo_namespace
    port = free_port()
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    argv = operator_command(
        cluster.kubeconfig, s3, "--namespace", namespace, "--liveness", liveness,
        "--metrics-address", f"127.0.0.1:{port}",
    )  # fmt: skip
    operator = KillableOperator(argv, tmp_path / "operator.log", liveness)
    url = f"http://127.0.0.1:{port}/metrics"
    repo = Repo(git_server, f"{namespace}-restored")
    files = {"pipelines/ok.yaml": SYNCED.lstrip(), "pipelines/broken.yaml": "kind: [\n"}
    sha = repo.push_tree(files, "one good and one broken file")
    basic_auth_secret(cluster, namespace, git_server.username, git_server.password)
    try:
        operator.start()
        create_source(
            cluster, namespace, repo.remote.http_url, secretRef={"name": "git-credentials"}
        )
        wait_status(cluster, namespace, applied(sha))
        source = {"namespace": namespace, "name": "repo"}
        revision = f"main@sha1:{sha}"
        info = {**source, "revision": revision, "ready": "true"}
        deadline = time.monotonic() + 10
        while value(scrape(url), "pipesync_gitsource_info", **info) != 1:
            assert time.monotonic() < deadline, "the first sync never reported its revision"
            time.sleep(0.2)
        last_success = value(
            scrape(url), "pipesync_gitsource_last_success_timestamp_seconds", **source
        )
        assert last_success > 0

        operator.kill()
        operator.start()
        status = json.loads(
            cluster.kubectl("get", "gitsource", "repo", "-n", namespace, "-o", "json").stdout
        )["status"]
        deadline = time.monotonic() + 15
        samples = scrape(url)
        while value(samples, "pipesync_gitsource_info", **info) != 1:
            assert time.monotonic() < deadline, "no info series after the restart"
            time.sleep(0.2)
            samples = scrape(url)
        assert value(samples, "pipesync_gitsource_invalid_files", **source) == 1
        restored = value(samples, "pipesync_gitsource_last_success_timestamp_seconds", **source)
        # the status keeps whole seconds: the restored time is the first sync's, not now
        assert abs(restored - last_success) <= 1.5, (restored, last_success)
        assert value(samples, "pipesync_gitsource_syncs_total", **source, result="Succeeded") == 0
        # nothing new was synced: the restored gauges come from the status alone
        assert status["lastAttemptedRevision"] == revision
    finally:
        operator.stop()


def test_promtool_finds_nothing_to_fix_in_the_exposition(operator: Operator) -> None:
    """Prometheus' own linter (`promtool check metrics`: names, units, _total, HELP) over
    what the session operator serves, after whatever the suite ran so far."""
    promtool = shutil.which("promtool")
    assert promtool, (
        "promtool comes with Debian's prometheus (tests/e2e/tools/apt-packages-svc.txt)"
    )
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition(operator.metrics_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr
