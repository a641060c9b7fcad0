"""Push webhooks on the operator's HTTP port, end to end: a real git server, the session
operator and a GitSource polling only once an hour, so a sync right after a push can only
come from the webhook.

GitHub-, GitLab- and generic-signed pushes each make the source apply the new commit;
unsigned, wrongly signed and oversized requests get 401/413 and the source stays where it
was.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator

TOKEN = "e2e-webhook-token"

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: hooked}}
spec:
  description: version {version}
  tasks:
    - {{name: only, image: busybox:1.36, command: [echo, "{version}"]}}
"""


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"webhook-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


class Hooked:
    """One repository, one GitSource on it, and a way to push and to post webhooks."""

    def __init__(
        self, cluster: Cluster, operator: Operator, git_server: Any, namespace: str, tmp: Path
    ) -> None:
        self.cluster, self.git, self.namespace = cluster, git_server, namespace
        self.repo = git_server.create_repo(namespace)
        self.work = tmp / "content"
        self.host, port = operator.metrics_target.split(":")
        self.port = int(port)
        self.path = f"/hooks/{namespace}/repo"

    def push(self, version: str) -> str:
        (self.work / "pipelines").mkdir(parents=True, exist_ok=True)
        (self.work / "pipelines" / "hooked.yaml").write_text(PIPELINE.format(version=version))
        sha: str = self.git.commit_and_push(self.repo.name, self.work, f"version {version}")
        return sha

    def status(self) -> dict[str, Any]:
        out = self.cluster.kubectl(
            "get", "gitsource", "repo", "-n", self.namespace, "-o", "json"
        ).stdout
        status: dict[str, Any] = json.loads(out).get("status") or {}
        return status

    def applied(self) -> str:
        return str(self.status().get("lastAppliedRevision") or "")

    def wait_applied(self, sha: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.applied().endswith(sha):
                return
            time.sleep(0.2)
        raise AssertionError(f"GitSource did not apply {sha}: status {self.status()}")

    def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request(
                "POST", self.path, body, {"Content-Type": "application/json", **headers}
            )
            reply = connection.getresponse()
            return reply.status, json.loads(reply.read() or b"{}")
        finally:
            connection.close()

    def payload(self, url: str, after: str = "") -> bytes:
        """A push payload; `after` (the pushed commit) makes each push's body its own, as a
        provider's are (the same signed body twice is refused as a replay)."""
        return json.dumps(
            {"ref": "refs/heads/main", "after": after, "repository": {"clone_url": url, "url": url}}
        ).encode()


def github_headers(body: bytes, secret: str = TOKEN) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"}


@pytest.fixture
def hooked(
    cluster: Cluster, operator: Operator, git_server: Any, namespace: str, tmp_path: Path
) -> Hooked:
    made = Hooked(cluster, operator, git_server, namespace, tmp_path)
    first = made.push("1")
    cluster.kubectl(
        "create", "secret", "generic", "hook-token", "-n", namespace,
        f"--from-literal=token={TOKEN}",
    )  # fmt: skip
    cluster.kubectl(
        "create", "secret", "generic", "git-login", "-n", namespace,
        f"--from-literal=username={made.repo.username}",
        f"--from-literal=password={made.repo.password}",
    )  # fmt: skip
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=f"""
apiVersion: pipesync.io/v1alpha1
kind: GitSource
metadata: {{name: repo}}
spec:
  url: {made.repo.http_url}
  ref: {{branch: main}}
  secretRef: {{name: git-login}}
  interval: 1h
  webhook: {{secretRef: {{name: hook-token}}}}
""",
    )
    made.wait_applied(first)
    assert made.status().get("webhookPath") == made.path
    return made


def test_signed_pushes_sync_at_once(hooked: Hooked) -> None:
    # Other forms of the URL name the same repository as the source's http:// URL.
    http_url = f"HTTPS://someone@127.0.0.1:8443/{hooked.repo.name.upper()}.git/"

    second = hooked.push("2")
    body = hooked.payload(http_url, second)
    status, answer = hooked.post(body, github_headers(body))
    assert (status, answer.get("result")) == (202, "triggered"), answer
    hooked.wait_applied(second)  # the interval is 1h: only the webhook can explain it

    third = hooked.push("3")
    body = hooked.payload(hooked.repo.daemon_url, third)  # git://: the same host and path
    status, answer = hooked.post(body, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": TOKEN})
    assert (status, answer.get("result")) == (202, "triggered"), answer
    hooked.wait_applied(third)

    fourth = hooked.push("4")
    body = hooked.payload(http_url, fourth)
    digest = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    status, answer = hooked.post(body, {"X-Pipesync-Signature": f"sha256={digest}"})
    assert (status, answer.get("result")) == (202, "triggered"), answer
    hooked.wait_applied(fourth)
    description = hooked.cluster.kubectl(
        "get", "pipeline", "hooked", "-n", hooked.namespace, "-o", "jsonpath={.spec.description}"
    ).stdout
    assert description == "version 4"
    # The same signed delivery again wakes nothing.
    status, answer = hooked.post(body, {"X-Pipesync-Signature": f"sha256={digest}"})
    assert (status, answer.get("result")) == (409, "replayed"), answer


def test_unsigned_wrong_or_oversized_change_nothing(hooked: Hooked) -> None:
    before = hooked.applied()
    hooked.push("2")
    body = hooked.payload(hooked.repo.http_url)
    assert hooked.post(body, {"X-GitHub-Event": "push"})[0] == 401
    assert hooked.post(body, github_headers(body, secret="not-the-token"))[0] == 401
    assert hooked.post(body, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"})[0] == 401
    with socket.create_connection((hooked.host, hooked.port), timeout=10) as raw:
        raw.sendall(
            f"POST {hooked.path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n".encode()
        )
        assert raw.recv(64).split()[1] == b"413"
    # A push to another branch is accepted and ignored, also with a valid signature.
    other = json.dumps(
        {"ref": "refs/heads/dev", "repository": {"clone_url": hooked.repo.http_url}}
    ).encode()
    status, answer = hooked.post(other, github_headers(other))
    assert (status, answer.get("result")) == (202, "ignored")
    # Nothing woke the source (its interval is 1h): give a wrongly woken sync time to show.
    time.sleep(3)
    assert hooked.applied() == before
