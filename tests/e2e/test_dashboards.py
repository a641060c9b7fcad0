"""Every query of every Grafana dashboard in charts/pipesync/dashboards/ returns data from a
real Prometheus that scraped the session operator after it ran pipelines and synced git: a
run that succeeded (with a GPU task on the gpu pool), a run that failed after a retry, a
GitSource synced over HTTPS, then woken by a signed push to a commit with a broken file,
and a push webhook request it refused.

Grafana's variables are replaced as Grafana would with "All" selected ($pipeline -> .*) and
$__rate_interval/$__range by fixed windows. A panel whose metric the operator does not
export yet (GitOps metrics still being added) is an xfail(strict=True) naming the metric:
once the metric exists the xfail mark goes away on its own (the metric list is read from
observe/metrics.py and observe/*_metrics.py), and the panel must then return data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import pathlib
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.gitserver import GitServer
from tests.e2e.fixtures.operator import REPO, Operator
from tests.e2e.fixtures.prometheus import PrometheusServer
from tests.e2e.test_gitsource import Repo, applied, basic_auth_secret, create_source
from tests.e2e.test_operator_runs import run_document, wait_finished

DASHBOARDS = sorted((REPO / "charts/pipesync/dashboards").glob("*.json"))
#: observe/metrics.py wires the per-domain collectors of observe/*_metrics.py.
METRICS_SOURCES = sorted((REPO / "operator/pipesync/observe").glob("*metrics.py"))
JOB = "pipesync-operator"  # the job test_operator_metrics.py scrapes the same target as
VARIABLES = {
    "$__rate_interval": "2m",
    "$__range": "1h",
    "$__interval": "15s",
    "$pipeline": ".*",
    "$namespace": ".*",
    "$job": ".*",
    "$instance": ".*",
}
#: Series the running operator does not produce although their metric exists, keyed by a
#: piece of the query, with the reason (a product bug): each is a strict xfail.
BROKEN: dict[str, str] = {}
_METRIC = re.compile(r"\b((?:pipesync|process)_[a-z0-9_]+)\b")

GOOD = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: dash-good}
spec:
  tasks:
    - name: prepare
      command: [sh, -c, "echo prepare"]
    - name: train
      dependsOn: [prepare]
      pool: gpu
      resources: {gpu: 1}
      command: [sh, -c, "sleep 1; echo trained"]
"""

BAD = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: dash-bad}
spec:
  tasks:
    - name: flaky
      retry: {limit: 1, backoff: 1s}
      command: [sh, -c, "echo failing; exit 3"]
"""


SYNCED = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: dash-synced}
spec:
  tasks:
    - {name: a, command: [echo, synced]}
"""
TOKEN = "dashboards-webhook-token"


def post(target: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    host, port = target.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def sync_from_git(cluster: Cluster, git_server: GitServer, operator: Operator, ns: str) -> None:
    """A GitSource synced over HTTPS, then a broken commit announced by a signed push."""
    repo = Repo(git_server, f"{ns}-dash")
    first = repo.push_tree({"pipelines/synced.yaml": SYNCED.lstrip()}, "a pipeline")
    basic_auth_secret(cluster, ns, git_server.username, git_server.password)
    token = {"token": base64.b64encode(TOKEN.encode()).decode()}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook"}, "data": token}
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(secret))
    create_source(
        cluster,
        ns,
        repo.remote.http_url,
        secretRef={"name": "git-credentials"},
        webhook={"secretRef": {"name": "hook"}},
    )
    wait_status(cluster, ns, applied(first))
    broken = repo.push_tree(
        {"pipelines/synced.yaml": SYNCED.lstrip(), "pipelines/broken.yaml": "kind: [\n"},
        "a broken file",
    )
    body = json.dumps({"ref": "refs/heads/main", "url": repo.remote.http_url}).encode()
    signature = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Pipesync-Signature": f"sha256={signature}"}
    assert post(operator.metrics_target, f"/hooks/{ns}/repo", body, headers) == 202
    wait_status(
        cluster, ns, lambda s: s.get("status", {}).get("lastAttemptedRevision", "").endswith(broken)
    )
    # A source whose remote does not answer: its failed syncs feed the errors panel.
    create_source(cluster, ns, "http://127.0.0.1:9/nothing.git", name="unreachable")
    wait_status(cluster, ns, _fetch_failed, name="unreachable")


def _fetch_failed(source: dict[str, Any]) -> bool:
    conditions = source.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "False" for c in conditions)


def wait_status(cluster: Cluster, ns: str, check: Any, name: str = "repo") -> None:
    deadline = time.monotonic() + 60
    source: dict[str, Any] = {}
    while not (source and check(source)):
        assert time.monotonic() < deadline, source.get("status")
        time.sleep(0.3)
        source = json.loads(
            cluster.kubectl("get", "gitsource", name, "-n", ns, "-o", "json").stdout
        )


def exported() -> set[str]:
    source = "".join(path.read_text() for path in METRICS_SOURCES)
    names = set(re.findall(r'"(pipesync_[a-z0-9_]+)"', source))
    if "ProcessCollector(" in source:
        names |= {"process_resident_memory", "process_cpu_seconds"}
    return names


def base_metric(name: str) -> str:
    for suffix in ("_total", "_bucket", "_count", "_sum", "_bytes"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def queries() -> list[Any]:
    known = exported()
    params = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            for target in panel["targets"]:
                expr = target["expr"]
                missing = sorted(
                    name
                    for name in _METRIC.findall(expr)
                    if base_metric(name) not in known and name not in known
                )
                marks = [
                    pytest.mark.xfail(strict=True, reason=reason)
                    for name, reason in BROKEN.items()
                    if name in expr
                ]
                if missing:
                    marks.append(
                        pytest.mark.xfail(
                            strict=True,
                            reason=f"not exported by the operator yet: {', '.join(missing)}",
                        )
                    )
                params.append(
                    pytest.param(
                        expr, id=f"{path.stem}:{panel['title']}:{target['refId']}", marks=marks
                    )
                )
    return params


def substitute(expr: str, **chosen: str) -> str:
    """Grafana's variables replaced: "All", or the value `chosen` gives (job="x")."""
    values = {**VARIABLES, **{f"${name}": value for name, value in chosen.items()}}
    # longest first: $__rate_interval before $__range
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    assert "$" not in expr, expr
    return expr


@pytest.fixture(scope="module")
def scraped(
    cluster: Cluster, operator: Operator, prometheus: PrometheusServer, git_server: GitServer
) -> Iterator[PrometheusServer]:
    """The operator ran a good and a bad run, synced git and was scraped afterwards."""
    namespace = f"dash-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        prometheus.scrape(operator.metrics_target, job=JOB)
        # A first sample before anything happens: increase() then sees every event.
        prometheus.wait_for(f'pipesync_build_info{{job="{JOB}"}}', timeout=30)
        for pipeline in (GOOD, BAD):
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pipeline)
        for name in ("dash-good", "dash-bad"):
            cluster.kubectl(
                "wait",
                "--for=condition=Ready",
                f"pipeline/{name}",
                "-n",
                namespace,
                "--timeout=60s",
            )
            cluster.kubectl(
                "apply", "-n", namespace, "-f", "-", input=run_document(f"{name}-1", name)
            )
        good = wait_finished(cluster, namespace, "dash-good-1")
        bad = wait_finished(cluster, namespace, "dash-bad-1")
        assert good["status"]["phase"] == "Succeeded", good["status"]
        assert bad["status"]["phase"] == "Failed", bad["status"]
        sync_from_git(cluster, git_server, operator, namespace)
        # A push the receiver refuses: signed with the wrong token.
        headers = {"X-Pipesync-Signature": "sha256=" + "0" * 64}
        assert post(operator.metrics_target, f"/hooks/{namespace}/repo", b"{}", headers) == 401
        # Scraped after both runs ended, and once more so rate() has two samples with them.
        prometheus.wait_for(
            f'pipesync_runs_finished_total{{job="{JOB}",pipeline="dash-bad",phase="Failed"}}',
            timeout=30,
        )
        prometheus.wait_for(
            f'pipesync_task_duration_seconds_count{{job="{JOB}",pipeline="dash-good"}}',
            timeout=30,
        )
        time.sleep(3)
        yield prometheus
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.mark.parametrize("expr", queries())
def test_the_panel_query_returns_data(scraped: PrometheusServer, expr: str) -> None:
    result = scraped.query(substitute(expr))
    assert result, f"no series for {substitute(expr)}"


@pytest.mark.parametrize("variable", ["job", "instance"])
def test_a_job_or_instance_with_no_target_empties_every_panel(
    scraped: PrometheusServer, variable: str
) -> None:
    """The linter's job and instance rules, evaluated by the real PromQL engine: with the
    variable set to a value no target has, a query still returning series has a selector
    (or a constant fallback such as vector(0)) the variable does not filter."""
    leaking = {}
    for param in queries():
        expr = substitute(param.values[0], **{variable: "no-such-" + variable})
        if scraped.query(expr):
            leaking[param.id] = expr
    assert not leaking, f"not filtered by ${variable}: {leaking}"


def test_every_dashboard_is_covered() -> None:
    # guards the parametrization above against a dashboard whose panels it cannot read
    assert len(queries()) >= 30
    assert {pathlib.Path(p).stem for p in DASHBOARDS} == {"overview", "gitops", "controller"}


def panel_query(board: str, title: str) -> str:
    data = json.loads((REPO / "charts/pipesync/dashboards" / f"{board}.json").read_text())
    for panel in data["panels"]:
        if panel.get("title") == title:
            return substitute(panel["targets"][0]["expr"])
    raise AssertionError(f"{board}: no panel {title!r}")


def labels(scraped: PrometheusServer, board: str, title: str, label: str) -> set[str]:
    return {s["metric"].get(label, "") for s in scraped.query(panel_query(board, title))}


def test_the_panels_show_what_happened(scraped: PrometheusServer) -> None:
    """Not just any series: the ones this module's runs, syncs and pushes made."""
    assert {"Succeeded", "Failed"} <= labels(scraped, "overview", "Runs finished by phase", "phase")
    assert "dash-bad" in labels(scraped, "overview", "Failures by pipeline", "pipeline")
    assert "dash-bad" in labels(scraped, "overview", "Task retries", "pipeline")
    assert {"Succeeded", "Failed"} <= labels(scraped, "overview", "Tasks by outcome", "phase")
    assert {"triggered", "unauthorized"} <= labels(
        scraped, "gitops", "Webhook requests by result", "result"
    )
    assert {"runs", "pipelines", "gitsources"} <= labels(
        scraped, "controller", "Reconcile rate by controller", "controller"
    )
    by_code = scraped.query(panel_query("controller", "API requests by verb and code"))
    assert {("create", "200")} <= {(s["metric"]["verb"], s["metric"]["code"]) for s in by_code}
    memory = scraped.query(panel_query("controller", "Resident memory"))
    assert all(float(s["value"][1]) > 10 * 2**20 for s in memory), memory  # a real process
    triggered = scraped.query(
        'sum(increase(pipesync_webhook_requests_total{result="triggered"}[1h]))'
    )
    assert float(triggered[0]["value"][1]) > 0
