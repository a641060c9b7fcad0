"""The web UI in a real browser: log in with a ServiceAccount token, open the digits run,
its DAG, the evaluate task's confusion matrix, compare two runs; a token without access to
the namespace sees nothing of it. Screenshots of the main pages land in test-artifacts/ui/.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.fixtures.browser import screenshot
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_digits import digits_for_this_cluster
from tests.e2e.test_operator_runs import wait_finished

VIEWER_RULES = [
    {
        "apiGroups": ["pipesync.io"],
        "resources": ["runs", "experiments", "pipelines", "recurringruns", "gitsources"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
]

#: The navigation's links, in their order: the page each opens and its label.
NAV_PAGES = {
    "experiments": "Experiments",
    "runs": "Runs",
    "pipelines": "Pipelines",
    "recurringruns": "Recurring runs",
    "gitsources": "Git sources",
}


def _run(name: str, learning_rate: float) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "pipesync.io/v1alpha1",
            "kind": "Run",
            "metadata": {"name": name},
            "spec": {
                "pipelineRef": {"name": "digits"},
                "experimentRef": {"name": "digits-tuning"},
                "params": {"learning_rate": learning_rate, "epochs": 20},
            },
        }
    )


@pytest.fixture(scope="module")
def digits_runs(cluster: Cluster, operator: Operator, s3: Any) -> Iterator[dict[str, Any]]:
    """A namespace with the digits pipeline run twice (learning rates 0.1 and 0.3), a
    `viewer` ServiceAccount that may read it and an `outsider` that may not."""
    namespace = f"ui-{uuid.uuid4().hex[:8]}"
    role = f"pipesync-ui-viewer-{namespace}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=digits_for_this_cluster())
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "pipesync.io/v1alpha1",
                "kind": "Experiment",
                "metadata": {"name": "digits-tuning"},
                "spec": {"description": "Learning-rate tuning."},
            }
        ),
    )
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/digits", "-n", namespace, "--timeout=60s"
    )
    for name, rate in (("digits-slow", 0.1), ("digits-fast", 0.3)):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_run(name, rate))
    for account in ("viewer", "outsider"):
        cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": role},
                "rules": VIEWER_RULES,
            }
        ),
    )
    cluster.kubectl(
        "create", "rolebinding", "viewer", "-n", namespace,
        f"--clusterrole={role}", f"--serviceaccount={namespace}:viewer",
    )  # fmt: skip
    runs = {
        name: wait_finished(cluster, namespace, name, timeout=400)
        for name in ("digits-slow", "digits-fast")
    }
    for name, run in runs.items():
        assert run["status"]["phase"] == "Succeeded", (name, json.dumps(run["status"]))
    tokens = {
        account: cluster.kubectl(
            "create", "token", account, "-n", namespace, "--duration=1h"
        ).stdout.strip()
        for account in ("viewer", "outsider")
    }
    yield {"namespace": namespace, "runs": runs, "tokens": tokens}
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    cluster.kubectl("delete", "clusterrole", role, "--ignore-not-found")


def _ui(operator: Operator) -> str:
    return f"http://{operator.metrics_target}/ui/"


def _login(page: Any, operator: Operator, token: str) -> Any:
    page.goto(_ui(operator) + "#/login")
    page.get_by_test_id("login-token").fill(token)
    return page


def _api(operator: Operator, path: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
        _ui(operator) + "api/" + path, headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_viewer_sees_the_digits_run_its_dag_confusion_matrix_and_a_comparison(
    browser_page: Any, operator: Operator, digits_runs: dict[str, Any]
) -> None:
    namespace = digits_runs["namespace"]
    page = _login(browser_page, operator, digits_runs["tokens"]["viewer"])
    screenshot(page, "01-login")
    page.get_by_test_id("login-submit").click()
    try:
        page.wait_for_selector('[data-testid="runs-table"]')
    except Exception:
        raise AssertionError(f"{page.url}: {page.errors}; {page.inner_text('main')}") from None
    options = page.locator('[data-testid="namespace-select"] option').all_text_contents()
    assert namespace in options
    page.select_option('[data-testid="namespace-select"]', namespace)
    page.wait_for_selector('[data-testid="run-row"][data-run="digits-slow"]')
    assert page.get_by_test_id("user-name").text_content() == (
        f"system:serviceaccount:{namespace}:viewer"
    )
    page.wait_for_load_state("networkidle")
    # once: a login used to render the page twice (hash change and a direct render)
    assert page.locator("main h1", has_text="Runs").count() == 1
    assert page.locator('[data-testid="runs-table"]').count() == 1
    assert page.locator('[data-testid="run-row"][data-run="digits-slow"]').count() == 1
    screenshot(page, "02-runs")
    # the navigation (built from pages.js's page table): after the namespace select, one
    # link per top-level page in this order, each to its page here, the current one active
    assert page.locator("#nav > *").first.get_attribute("data-testid") == "namespace-select"
    links = page.locator("#nav a[data-page]")
    assert [link.get_attribute("data-testid") for link in links.all()] == [
        f"nav-{kind}" for kind in NAV_PAGES
    ]
    assert links.all_text_contents() == list(NAV_PAGES.values())
    assert [link.get_attribute("href") for link in links.all()] == [
        f"#/ns/{namespace}/{kind}" for kind in NAV_PAGES
    ]
    assert page.locator("#nav a.active").all_text_contents() == ["Runs"]

    # the run page: every task's box carries the phase the Run's status reports
    page.goto(_ui(operator) + f"#/ns/{namespace}/runs/digits-slow")
    page.wait_for_selector('[data-testid="dag-node"]')
    assert page.get_by_test_id("run-phase").text_content() == "Succeeded"
    expected = {
        task: summary["phase"]
        for task, summary in digits_runs["runs"]["digits-slow"]["status"]["tasks"].items()
    }
    shown = {
        node.get_attribute("data-task"): node.get_attribute("data-phase")
        for node in page.locator('[data-testid="dag-node"]').all()
    }
    assert set(shown) >= {"prepare", "train", "evaluate", "publish"}
    assert {task: shown[task] for task in expected} == expected
    assert all(shown[t] == "Succeeded" for t in ("prepare", "train", "evaluate"))
    # a small graph names its boxes: each box shows its task's label with a visible size
    labels = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid=dag-node]')]
            .map(n => { const t = n.querySelector('text'); const box = t && t.getBBox();
                        return [n.dataset.task, t && box.width > 0 ? t.textContent : null]; }))"""
    )
    assert {task: label for task, label in labels.items() if task in expected} == {
        task: task for task in expected
    }, labels
    screenshot(page, "03-run-dag")

    # the evaluate task: its confusion matrix as a picture and as a table
    page.locator('[data-testid="dag-node"][data-task="evaluate"]').click()
    page.wait_for_selector('[data-testid="task-panel"][data-task="evaluate"]')
    page.locator('[data-testid="artifact-link"][data-artifact="confusion_matrix_png"]').click()
    image = page.wait_for_selector('[data-testid="artifact-image"]')
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image, timeout=15_000)
    assert page.evaluate("img => img.naturalWidth", image) >= 300
    page.wait_for_selector('[data-testid="log-view"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=log-view]').textContent.includes('accuracy')"
    )
    screenshot(page, "04-task-confusion-matrix-image")
    page.locator('[data-testid="artifact-link"][data-artifact="confusion_matrix"]').click()
    cells = page.wait_for_selector('[data-testid="confusion-matrix"]')
    assert cells.query_selector('[data-row="0"][data-col="0"]') is not None
    page.locator('[data-testid="artifact-link"][data-artifact="roc"]').click()
    page.wait_for_selector('[data-testid="roc-curve"] polyline')
    screenshot(page, "05-task-roc")

    # compare: learning_rate differs, epochs does not
    page.goto(_ui(operator) + f"#/ns/{namespace}/runs")
    for name in ("digits-slow", "digits-fast"):
        page.locator(f'[data-testid="run-select"][data-run="{name}"]').check()
    page.get_by_test_id("compare-button").click()
    page.wait_for_selector('[data-testid="compare-table"]')
    rate = page.locator('[data-testid="compare-row"][data-name="learning_rate"]')
    epochs = page.locator('[data-testid="compare-row"][data-name="epochs"]')
    assert rate.get_attribute("data-differs") == "true"
    assert "differs" in (rate.get_attribute("class") or "")
    assert epochs.get_attribute("data-differs") == "false"
    assert (
        page.locator('[data-testid="compare-row"][data-name="evaluate.metrics.accuracy"]').count()
        == 1
    )
    screenshot(page, "06-compare")

    for route, hook, name in (
        ("experiments", "experiments-table", "07-experiments"),
        ("pipelines", "pipelines-table", "08-pipelines"),
        ("pipelines/digits", "pipeline-versions", "08-pipeline-digits"),
        ("recurringruns", "empty-state", "09-recurring-runs"),
        ("gitsources", "empty-state", "10-git-sources"),
    ):
        page.goto(_ui(operator) + f"#/ns/{namespace}/{route}")
        page.wait_for_selector(f'[data-testid="{hook}"]')
        # the link of the page shown (its list or one of its objects) is the active one
        active = NAV_PAGES[route.split("/")[0]]
        assert page.locator("#nav a.active").all_text_contents() == [active]
        screenshot(page, name)


def test_a_token_without_access_sees_nothing_of_the_namespace(
    browser_page: Any, operator: Operator, digits_runs: dict[str, Any]
) -> None:
    namespace = digits_runs["namespace"]
    token = digits_runs["tokens"]["outsider"]
    page = _login(browser_page, operator, token)
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector('[data-testid="error-message"]')
    options = page.locator('[data-testid="namespace-select"] option').all_text_contents()
    assert namespace not in options
    page.goto(_ui(operator) + f"#/ns/{namespace}/runs/digits-slow")
    page.wait_for_load_state("networkidle")
    message = page.wait_for_selector('[data-testid="error-message"]')
    assert "may not" in (message.text_content() or "")
    assert page.locator('[data-testid="dag"]').count() == 0
    assert page.locator('[data-testid="run-phase"]').count() == 0
    screenshot(page, "11-outsider")
    # from the page's own session, and with the bare token
    status = page.evaluate(
        f"() => fetch('api/namespaces/{namespace}/runs/digits-slow').then(r => r.status)"
    )
    assert status == 403
    for path in (
        f"namespaces/{namespace}/runs",
        f"namespaces/{namespace}/runs/digits-slow",
        f"namespaces/{namespace}/runs/digits-slow/logs?task=train&attempt=1",
        f"namespaces/{namespace}/runs/digits-slow/artifacts/evaluate/confusion_matrix_png",
        f"namespaces/{namespace}/compare?runs=digits-slow,digits-fast",
        f"namespaces/{namespace}/pipelines",
    ):
        code, body = _api(operator, path, token)
        assert code == 403, (path, code, body)
    code, body = _api(operator, "namespaces", token)
    assert code == 200 and namespace not in [item["name"] for item in body["items"]]
    assert _api(operator, "namespaces", "not-a-token")[0] == 401
