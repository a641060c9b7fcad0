"""P2: push -> Run created through the webhook, median of 20, on the e2e suite's real
control plane (bench/stack.py) and real git server (tests/e2e/fixtures/gitserver.py).

Setup: one namespace, one `pipesync operator` for it, a repository served over smart HTTP
with basic auth, a GitSource on it polling only once an hour (so every sync measured here
comes from the webhook) and a Pipeline with `trigger: {onChange: true}`.

Each sample: commit a changed pipeline and push it (not timed: that is git's and the test
server's work, done before a hosting service would send its webhook); then, the clock
running, POST a GitHub-signed push event to the operator's /hooks/<ns>/<name> and wait for
the watch events showing (a) the Run named after the new commit ADDED and (b) the
GitSource's status.lastAppliedRevision at the new commit. Both are read from one watch
each, opened before the first sample, so no polling interval is in the figures.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import queue
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes
from kubernetes import watch
from tests.e2e.fixtures.gitserver import GitServer

from bench.figures import Figure, Section
from bench.stack import Stack
from pipesync.api import model

SECTION = "webhook"
NAMESPACE = "bench-hook"
SOURCE = "repo"
TOKEN = "bench-webhook-token"  # noqa: S105 -- a throwaway token of the bench
TARGET_SECONDS = 1.0
TIMEOUT = 60.0

Say = Callable[[str], None]

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: hooked}}
spec:
  description: sample {sample}
  trigger: {{onChange: true}}
  tasks:
    - {{name: only, image: busybox:1.36, command: [echo, "{sample}"]}}
"""


class _Events:
    """ADDED Run names and GitSource revisions, with the monotonic time they arrived."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.runs: queue.Queue[tuple[str, float]] = queue.Queue()
        self.revisions: queue.Queue[tuple[str, float]] = queue.Queue()
        self._watches: list[watch.Watch] = []
        for plural, sink in (("runs", self._run), ("gitsources", self._source)):
            stream = watch.Watch()
            self._watches.append(stream)
            threading.Thread(target=self._follow, args=(stream, plural, sink), daemon=True).start()

    def _follow(self, stream: watch.Watch, plural: str, sink: Callable[[Any], None]) -> None:
        try:
            for event in stream.stream(
                self.custom.list_namespaced_custom_object,
                model.GROUP,
                model.VERSION,
                NAMESPACE,
                plural,
                timeout_seconds=3600,
            ):
                sink(event)
        except Exception:
            return

    def _run(self, event: Any) -> None:
        if event["type"] == "ADDED":
            self.runs.put((event["object"]["metadata"]["name"], time.perf_counter()))

    def _source(self, event: Any) -> None:
        status = event["object"].get("status") or {}
        revision = str(status.get("lastAppliedRevision") or "")
        if revision:
            self.revisions.put((revision, time.perf_counter()))

    @staticmethod
    def wait(sink: queue.Queue[tuple[str, float]], match: Callable[[str], bool]) -> float:
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching watch event")
            name, at = sink.get(timeout=left)
            if match(name):
                return at

    def stop(self) -> None:
        for stream in self._watches:
            stream.stop()


def _ends_with(suffix: str) -> Callable[[str], bool]:
    return lambda text: text.endswith(suffix)


def _post(port: int, body: bytes) -> tuple[int, str]:
    digest = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST",
            f"/hooks/{NAMESPACE}/{SOURCE}",
            body,
            {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-Hub-Signature-256": f"sha256={digest}",
            },
        )
        reply = connection.getresponse()
        return reply.status, reply.read().decode()
    finally:
        connection.close()


def measure(quick: bool, say: Say) -> Section:
    section = Section("Push webhook (P2)")
    samples = 5 if quick else 20
    with Stack() as stack:
        say("starting control plane, node agent, S3, git server ...")
        cluster = stack.start()
        git = GitServer(stack.workdir / "git")
        git.start()
        try:
            _measure(stack, cluster, git, samples=samples, say=say, section=section)
        finally:
            git.stop()
    return section


def _measure(
    stack: Stack, cluster: Any, git: GitServer, *, samples: int, say: Say, section: Section
) -> None:
    cluster.kubectl("create", "namespace", NAMESPACE)
    repo = git.create_repo("bench-hook")
    content = stack.workdir / "content"
    (content / "pipelines").mkdir(parents=True)

    def push(sample: int) -> str:
        (content / "pipelines" / "hooked.yaml").write_text(PIPELINE.format(sample=sample))
        sha: str = git.commit_and_push(repo.name, content, f"sample {sample}")
        return sha

    first = push(0)
    cluster.kubectl(
        "create", "secret", "generic", "hook-token", "-n", NAMESPACE,
        f"--from-literal=token={TOKEN}",
    )  # fmt: skip
    cluster.kubectl(
        "create", "secret", "generic", "git-login", "-n", NAMESPACE,
        f"--from-literal=username={repo.username}", f"--from-literal=password={repo.password}",
    )  # fmt: skip
    stack.start_operator(NAMESPACE, label="webhook")
    port = stack.metrics_port
    events = _Events(stack.api())
    cluster.kubectl(
        "apply",
        "-n",
        NAMESPACE,
        "-f",
        "-",
        input=f"""
apiVersion: pipesync.io/v1alpha1
kind: GitSource
metadata: {{name: {SOURCE}}}
spec:
  url: {repo.http_url}
  ref: {{branch: main}}
  interval: 1h
  secretRef: {{name: git-login}}
  webhook: {{secretRef: {{name: hook-token}}}}
""",
    )
    events.wait(events.revisions, _ends_with(first))
    say("GitSource synced; measuring")
    to_run: list[float] = []
    to_sync: list[float] = []
    try:
        for sample in range(1, samples + 1):
            sha = push(sample)
            body = json.dumps(
                {"ref": "refs/heads/main", "after": sha, "repository": {"clone_url": repo.http_url}}
            ).encode()
            started = time.perf_counter()
            status, answer = _post(port, body)
            if status != 202:
                raise RuntimeError(f"webhook answered {status}: {answer}")
            synced = events.wait(events.revisions, _ends_with(sha))
            created = events.wait(events.runs, _ends_with(sha[:10]))
            to_run.append(created - started)
            to_sync.append(synced - started)
    finally:
        events.stop()
    median = statistics.median(to_run)
    section.figures.append(
        Figure(
            SECTION,
            f"push -> Run created through the webhook (median of {samples})",
            median,
            "s",
            target=f"P2: <= {TARGET_SECONDS:g} s",
            met=median <= TARGET_SECONDS,
            margin=f"{median / TARGET_SECONDS:.2f}x the target",
            note=f"from the signed POST (push already done) to the Run's ADDED watch event; "
            f"min {min(to_run):.3f} s, max {max(to_run):.3f} s; GitSource interval 1h",
        )
    )
    section.figures.append(
        Figure(
            SECTION,
            f"push -> GitSource lastAppliedRevision updated (median of {samples})",
            statistics.median(to_sync),
            "s",
            note=f"same samples; min {min(to_sync):.3f} s, max {max(to_sync):.3f} s",
        )
    )


if __name__ == "__main__":
    import sys

    result = measure("--quick" in sys.argv, lambda text: print(text, flush=True))
    for figure in result.figures:
        print(f"{figure.name}: {figure.value:.3g} {figure.unit} {figure.margin} | {figure.note}")
