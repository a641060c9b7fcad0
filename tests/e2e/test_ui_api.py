"""The web UI's JSON API on the real control plane, as different people: RBAC decides what
each token may read and do; logs come from S3 once the pod is gone; artifacts are served
under a sandbox policy; path parts cannot climb out of the run's keys."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.fixtures.browser import screenshot
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import PIPESYNC, Operator
from tests.e2e.fixtures.processes import free_port
from tests.e2e.test_operator_runs import wait_finished

PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: report}
spec:
  tasks:
    - name: write
      command: [sh, -c, 'echo "<html><script>alert(1)</script>hi</html>" > "$0"; echo wrote-it;
                echo "<img src=x onerror=window.__xss=1>"', "{{outputs.artifacts.page}}"]
      outputs: {artifacts: [page]}
    - name: wait
      dependsOn: [write]
      command: [sh, -c, "sleep 600"]
---
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: quick}
spec:
  tasks:
    - name: only
      command: [sh, -c, "echo quick-done"]
"""

READ = [
    {
        "apiGroups": ["pipesync.io"],
        "resources": ["runs", "experiments", "pipelines", "recurringruns", "gitsources"],
        "verbs": ["get", "list", "watch"],
    }
]
OPERATE = [{"apiGroups": ["pipesync.io"], "resources": ["runs"], "verbs": ["patch", "create"]}]


@pytest.fixture(scope="module")
def setup(cluster: Cluster, operator: Operator, s3: Any) -> Iterator[dict[str, Any]]:
    namespace = f"uiapi-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINE)
    roles = {"reader": READ, "operator": READ + OPERATE}
    for account, rules in roles.items():
        role = f"ui-{account}"
        cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
        cluster.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=yaml.safe_dump(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": role},
                    "rules": rules,
                }
            ),
        )
        cluster.kubectl(
            "create", "rolebinding", role, "-n", namespace, f"--role={role}",
            f"--serviceaccount={namespace}:{account}",
        )  # fmt: skip
    for pipeline in ("report", "quick"):
        cluster.kubectl(
            "wait", "--for=condition=Ready", f"pipeline/{pipeline}", "-n", namespace,
            "--timeout=60s",
        )  # fmt: skip
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump(
            {
                "apiVersion": "pipesync.io/v1alpha1",
                "kind": "Run",
                "metadata": {"name": "r1"},
                "spec": {"pipelineRef": {"name": "report"}},
            }
        ),
    )
    tokens = {
        account: cluster.kubectl("create", "token", account, "-n", namespace).stdout.strip()
        for account in roles
    }
    yield {
        "namespace": namespace,
        "tokens": tokens,
        "base": f"http://{operator.metrics_target}/ui/api/",
    }
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def call(
    setup: dict[str, Any], path: str, token: str | None, method: str = "GET", headers: Any = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
        setup["base"] + path, method=method, headers=dict(headers or {})
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _wait_for(predicate: Any, timeout: float = 60) -> Any:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


def test_reading_a_run_its_logs_and_a_sandboxed_artifact(
    cluster: Cluster, setup: dict[str, Any]
) -> None:
    ns, reader = setup["namespace"], setup["tokens"]["reader"]
    assert call(setup, f"namespaces/{ns}/runs", None)[0] == 401

    def write_done() -> Any:
        code, _, body = call(setup, f"namespaces/{ns}/runs/r1", reader)
        detail = json.loads(body)
        return detail if code == 200 and detail["tasks"]["write"]["phase"] == "Succeeded" else None

    detail = _wait_for(write_done, 120)
    assert [n["id"] for n in detail["graph"]["nodes"]] == ["write", "wait"]
    assert not detail["canCancel"] and not detail["canRerun"]  # a reader only
    code, headers, body = call(setup, f"namespaces/{ns}/runs?phase=Running", reader)
    assert code == 200 and [r["name"] for r in json.loads(body)["items"]] == ["r1"]

    # the artifact: HTML, so only under the sandbox policy, never sniffed
    code, headers, body = call(setup, f"namespaces/{ns}/runs/r1/artifacts/write/page", reader)
    assert code == 200 and b"<script>" in body
    assert headers["Content-Security-Policy"].startswith("sandbox")
    assert headers["X-Content-Type-Options"] == "nosniff"
    code, _, body = call(setup, f"namespaces/{ns}/runs/r1/artifacts/write/page/view", reader)
    assert json.loads(body)["viewer"] == "html"

    # no climbing out: names are checked before they reach a key
    for bad in (
        f"namespaces/{ns}/runs/r1/artifacts/write/..",
        f"namespaces/{ns}/runs/r1/artifacts/..%2F..%2Fx/page",
        f"namespaces/{ns}/runs/r1/logs?task=../../x&attempt=1",
        f"namespaces/{ns}/runs/r1/logs?task=write&attempt=1&instance=-1",
        "namespaces/Bad_NS/runs",
    ):
        code, _, body = call(setup, bad, reader)
        assert code in (400, 404), (bad, code, body)

    # the log: S3 once the pod is gone (the reader may not read pods/log at all)
    code, headers, body = call(setup, f"namespaces/{ns}/runs/r1/logs?task=write&attempt=1", reader)
    if code == 200:
        assert headers["X-Pipesync-Log-Source"] == "s3" and b"wrote-it" in body
    cluster.kubectl(
        "delete", "pods", "-n", ns, "-l", "pipesync.io/run=r1,pipesync.io/task=write", "--wait"
    )

    def from_s3() -> Any:
        result = call(setup, f"namespaces/{ns}/runs/r1/logs?task=write&attempt=1", reader)
        return result if result[0] == 200 else None

    _, headers, body = _wait_for(from_s3)
    assert headers["X-Pipesync-Log-Source"] == "s3" and b"wrote-it" in body


def test_cancel_and_rerun_follow_rbac_and_need_the_request_header(
    cluster: Cluster, setup: dict[str, Any]
) -> None:
    ns = setup["namespace"]
    reader, operator_token = setup["tokens"]["reader"], setup["tokens"]["operator"]
    marked = {"X-Pipesync-Request": "1"}
    assert call(setup, f"namespaces/{ns}/runs/r1/cancel", reader, "POST", marked)[0] == 403
    assert call(setup, f"namespaces/{ns}/runs/r1/rerun", reader, "POST", marked)[0] == 403
    # a cross-site form cannot add the header: refused before anything else
    assert call(setup, f"namespaces/{ns}/runs/r1/cancel", operator_token, "POST")[0] == 403
    code, _, body = call(setup, f"namespaces/{ns}/runs/r1/rerun", operator_token, "POST", marked)
    assert code == 201, body
    rerun = json.loads(body)["name"]
    assert rerun.startswith("r1-rerun-")
    created = json.loads(cluster.kubectl("get", "run", rerun, "-n", ns, "-o", "json").stdout)
    original = json.loads(cluster.kubectl("get", "run", "r1", "-n", ns, "-o", "json").stdout)
    version = original["status"]["pipeline"]["version"]
    assert created["spec"]["pipelineRef"] == {"name": "report", "version": version}
    for name in ("r1", rerun):
        code, _, body = call(
            setup, f"namespaces/{ns}/runs/{name}/cancel", operator_token, "POST", marked
        )
        assert code == 202, body
    for name in ("r1", rerun):
        assert wait_finished(cluster, ns, name, timeout=120)["status"]["phase"] == "Cancelled"
    code, _, body = call(setup, f"namespaces/{ns}/compare?runs=r1,{rerun}", reader)
    assert code == 200 and json.loads(body)["runs"][1]["name"] == rerun


def test_the_page_and_static_files_carry_a_strict_policy(setup: dict[str, Any]) -> None:
    base = setup["base"].removesuffix("api/")
    with urllib.request.urlopen(base, timeout=30) as response:  # noqa: S310
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert b'data-testid="namespace-select"' in response.read()
    with urllib.request.urlopen(base + "static/app.js", timeout=30) as response:  # noqa: S310
        assert response.headers["Content-Type"].startswith("text/javascript")
    for missing in ("static/../app.py", "static/app.py", "nothing"):
        try:
            urllib.request.urlopen(base + missing, timeout=30)  # noqa: S310
        except urllib.error.HTTPError as error:
            assert error.code == 404
        else:
            raise AssertionError(f"{missing} was served")


def test_a_run_deleted_from_the_cluster_is_still_browsable_from_s3(
    cluster: Cluster, setup: dict[str, Any]
) -> None:
    ns, reader = setup["namespace"], setup["tokens"]["reader"]
    cluster.kubectl(
        "apply", "-n", ns, "-f", "-",
        input=yaml.safe_dump(
            {"apiVersion": "pipesync.io/v1alpha1", "kind": "Run", "metadata": {"name": "gone"},
             "spec": {"pipelineRef": {"name": "quick"}}}
        ),
    )  # fmt: skip
    assert wait_finished(cluster, ns, "gone", timeout=120)["status"]["phase"] == "Succeeded"

    def recorded() -> Any:
        run = json.loads(cluster.kubectl("get", "run", "gone", "-n", ns, "-o", "json").stdout)
        return (run["status"].get("record") or {}).get("uri")

    _wait_for(recorded)
    cluster.kubectl("delete", "run", "gone", "-n", ns, "--wait")

    def archived() -> Any:
        code, _, body = call(setup, f"namespaces/{ns}/runs/gone", reader)
        return json.loads(body) if code == 200 else None

    detail = _wait_for(archived)
    assert detail["archived"] and detail["run"]["phase"] == "Succeeded"
    assert detail["tasks"]["only"]["phase"] == "Succeeded"
    assert not detail["canCancel"]
    _, _, body = call(setup, f"namespaces/{ns}/runs", reader)
    assert "gone" not in [row["name"] for row in json.loads(body)["items"]]
    _, _, body = call(setup, f"namespaces/{ns}/runs?archived=true", reader)
    rows = {row["name"]: row for row in json.loads(body)["items"]}
    assert rows["gone"]["archived"] is True
    code, headers, body = call(setup, f"namespaces/{ns}/runs/gone/logs?task=only&attempt=1", reader)
    assert code == 200 and b"quick-done" in body and headers["X-Pipesync-Log-Source"] == "s3"


def test_logs_and_artifacts_show_as_text_in_the_browser(
    browser: Any, setup: dict[str, Any]
) -> None:
    ns, reader = setup["namespace"], setup["tokens"]["reader"]
    base = setup["base"].removesuffix("api/")
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto(base + "#/login")
    page.get_by_test_id("login-token").fill(reader)
    page.get_by_test_id("login-submit").click()
    page.wait_for_selector('[data-testid="runs-table"]')
    page.goto(base + f"#/ns/{ns}/runs/r1?task=write")
    log = page.wait_for_selector('[data-testid="log-view"]')
    page.wait_for_function("el => el.textContent.includes('onerror')", arg=log, timeout=30_000)
    assert "<img src=x onerror=window.__xss=1>" in (log.text_content() or "")
    assert log.query_selector("img") is None
    page.locator('[data-testid="artifact-link"][data-artifact="page"]').click()
    frame = page.wait_for_selector('[data-testid="artifact-frame"]')
    assert frame.get_attribute("sandbox") == ""
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__xss") is None
    screenshot(page, "12-escaped-log-and-sandboxed-html")
    page.close()


@contextlib.contextmanager
def ui_server(cluster: Cluster, *flags: str) -> Iterator[dict[str, str]]:
    """`pipesync ui FLAGS` on a free port against the test cluster, once it answers; the
    `base` to pass to `call`."""
    port = free_port()
    server = subprocess.Popen(
        [str(PIPESYNC), "ui", "--no-s3", "--address", f"127.0.0.1:{port}", *flags],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    local = {"base": f"http://127.0.0.1:{port}/ui/api/"}

    def answering() -> bool:
        try:
            call(local, "whoami", None)
        except OSError:
            return False
        return True

    try:
        _wait_for(answering, 30)
        yield local
    finally:
        server.terminate()
        server.wait(10)


def test_pipesync_ui_serves_the_kubeconfig_identity(cluster: Cluster) -> None:
    with ui_server(cluster) as local:
        code, _, body = call(local, "whoami", None)
        me = json.loads(body)
        assert code == 200 and me["auth"] == "kubeconfig" and me["user"]["username"]
        _, _, body = call(local, "namespaces", None)
        assert "default" in [item["name"] for item in json.loads(body)["items"]]
        code, _, _ = call(local, "login", None, "POST", {"X-Pipesync-Request": "1"})
        assert code == 400  # nothing to log in to (no login needed)
        # a DNS-rebinding page reaches 127.0.0.1 under its own name: refused by its Host
        code, _, body = call(local, "namespaces", None, headers={"Host": "evil.example:80"})
        assert code == 403 and b"DNS rebinding" in body


def _raw(address: str, request: bytes) -> bytes:
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=30) as client:
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    return answer


def test_a_login_with_a_negative_length_is_refused_without_reading_it(
    operator: Operator, setup: dict[str, Any]
) -> None:
    head = (
        b"POST /ui/api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-Pipesync-Request: 1\r\nContent-Length: -1\r\n\r\n"
    )
    # the body would go on for ever: the answer must come without waiting for its end
    answer = _raw(operator.metrics_target, head + b'{"token": "' + b"a" * 100_000)
    assert answer.startswith(b"HTTP/1.0 400"), answer[:200]
    assert b"Content-Length" in answer


PINNED = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: pinme}
spec:
  tasks:
    - name: only
      command: [sh, -c, "echo version-%s"]
"""


def test_a_rerun_runs_the_original_version_after_the_pipeline_changed(
    cluster: Cluster, setup: dict[str, Any]
) -> None:
    ns, operator_token = setup["namespace"], setup["tokens"]["operator"]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=PINNED % "one")
    cluster.kubectl("wait", "--for=condition=Ready", "pipeline/pinme", "-n", ns, "--timeout=60s")
    cluster.kubectl(
        "apply", "-n", ns, "-f", "-",
        input=yaml.safe_dump(
            {"apiVersion": "pipesync.io/v1alpha1", "kind": "Run", "metadata": {"name": "p1"},
             "spec": {"pipelineRef": {"name": "pinme"}}}
        ),
    )  # fmt: skip
    original = wait_finished(cluster, ns, "p1", timeout=120)
    assert original["status"]["phase"] == "Succeeded"
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=PINNED % "two")  # the latest is now two
    marked = {"X-Pipesync-Request": "1"}
    code, _, body = call(setup, f"namespaces/{ns}/runs/p1/rerun", operator_token, "POST", marked)
    assert code == 201, body
    rerun = json.loads(body)["name"]
    finished = wait_finished(cluster, ns, rerun, timeout=120)
    assert finished["status"]["phase"] == "Succeeded", finished["status"]
    assert finished["spec"]["pipelineRef"]["version"] == original["status"]["pipeline"]["version"]
    for key in ("version", "digest", "commit"):
        assert finished["status"]["pipeline"].get(key) == original["status"]["pipeline"].get(key)

    def logged() -> Any:
        code, _, body = call(
            setup, f"namespaces/{ns}/runs/{rerun}/logs?task=only&attempt=1", operator_token
        )
        return body if code == 200 else None

    assert b"version-one" in _wait_for(logged)


def test_git_sources_and_recurring_runs_as_the_ui_shows_them(
    cluster: Cluster, operator: Operator, setup: dict[str, Any], git_server: Any
) -> None:
    from tests.e2e.test_gitsource import Repo, create_source, wait_source  # noqa: PLC0415

    ns, reader = setup["namespace"], setup["tokens"]["reader"]
    repo = Repo(git_server, f"ui-{uuid.uuid4().hex[:6]}")
    sha = repo.push_tree(
        {
            "pipelines/good.yaml": "apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\n"
            "metadata: {name: good}\nspec:\n  tasks:\n    - {name: a, command: [echo, hi]}\n",
            "pipelines/broken.yaml": "apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\n"
            "metadata: {name: broken}\nspec:\n  tasks:\n    - {name: a, comand: [echo]}\n",
        },
        "one good, one broken",
    )
    create_source(cluster, ns, repo.remote.file_url, name="ui-repo")
    wait_source(
        cluster, ns, lambda s: bool((s.get("status") or {}).get("errors")), operator, "ui-repo"
    )
    code, _, body = call(setup, f"namespaces/{ns}/gitsources/ui-repo", reader)
    assert code == 200, body
    detail = json.loads(body)
    assert detail["gitSource"]["revision"].endswith(sha)
    # The schema error (the typo) and the semantic one it causes, both in the one file.
    assert detail["gitSource"]["errors"] == 2
    assert {error["file"] for error in detail["errors"]} == {"pipelines/broken.yaml"}
    assert any(error["line"] == 6 and "comand" in error["message"] for error in detail["errors"]), (
        detail["errors"]
    )
    assert "Pipeline/good" in detail["inventory"]
    code, _, body = call(setup, f"namespaces/{ns}/pipelines/good", reader)
    versions = json.loads(body)["versions"]
    assert versions[0]["commit"] == sha and versions[0]["source"] == "ui-repo"
    assert versions[0]["fileUrl"] is None  # a file:// remote has no web page to link to

    cluster.kubectl(
        "apply", "-n", ns, "-f", "-",
        input=yaml.safe_dump(
            {"apiVersion": "pipesync.io/v1alpha1", "kind": "RecurringRun",
             "metadata": {"name": "nightly"},
             "spec": {"pipelineRef": {"name": "quick"},
                      "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}}}
        ),
    )  # fmt: skip
    code, _, body = call(setup, f"namespaces/{ns}/recurringruns/nightly", reader)
    assert code == 200, body
    detail = json.loads(body)
    assert detail["recurringRun"]["schedule"] == "0 3 * * *"
    assert detail["recurringRun"]["timeZone"] == "Europe/Berlin"
    times = detail["nextFireTimes"]
    assert len(times) == 5 and times == sorted(times)
    # 03:00 in Berlin is 01:00 or 02:00 UTC depending on the season
    assert all(t[11:19] in ("01:00:00", "02:00:00") for t in times)
    code, _, body = call(setup, f"namespaces/{ns}/recurringruns", reader)
    assert [r["name"] for r in json.loads(body)["items"]] == ["nightly"]


def test_a_login_is_accepted_by_every_replica(cluster: Cluster, setup: dict[str, Any]) -> None:
    """The chart runs two replicas behind one Service: the login cookie must work on a
    replica other than the one that set it (here: a second, separate UI server)."""
    reader = setup["tokens"]["reader"]
    request = urllib.request.Request(  # noqa: S310 - loopback
        setup["base"] + "login",
        data=json.dumps({"token": reader}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    # a cross-site form cannot log a browser in either: the header is needed here too
    assert call(setup, "login", None, "POST")[0] == 403
    request.add_header("X-Pipesync-Request", "1")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    value = cookie.split(";", 1)[0]
    assert call(setup, "login", None, "POST", {"X-Pipesync-Request": "1"})[0] == 400
    with ui_server(cluster, "--auth", "token") as replica:
        code, _, body = call(replica, "whoami", None, headers={"Cookie": value})
        me = json.loads(body)
        assert code == 200, me
        assert me["user"]["username"].endswith(":reader") and me["auth"] == "token"
        assert call(replica, "whoami", None)[0] == 401  # no cookie, no token
