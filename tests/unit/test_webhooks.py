"""gitops.webhooks: signed pushes wake their source; anything else changes nothing.

The receiver is driven through WSGI in-process and once over a real socket (the
operator's endpoint with the route mounted), against a real SyncTriggers whose waiter
lives in an asyncio loop, as the controller's daemon does.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import io
import json
import os
import pathlib
import socket
import subprocess
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pipesync.api import reports
from pipesync.gitops import webhooks
from pipesync.gitops.triggers import SyncTriggers, WebhookTarget
from pipesync.observe import endpoint
from pipesync.observe.metrics import Metrics

SECRET = b"s3cret-token"
URL = "https://git.example.com/ml/pipelines.git"


class Results(list[str]):
    """The receiver's observer: the result of each request, in order."""

    def observe(self, report: reports.WebhookRequest) -> None:
        self.append(report.result)


class Source:
    """A SyncTriggers with one published source and a daemon-like waiter in a loop."""

    def __init__(self, *, secret: bytes | None = SECRET, branch: str | None = "main") -> None:
        self.triggers = SyncTriggers()
        self.triggers.publish(WebhookTarget("ml", "repo", URL, branch, secret))
        self.loop = asyncio.new_event_loop()
        self.event = self.loop.run_until_complete(self._event())
        self.results = Results()
        self.app = webhooks.WebhookApp(self.triggers, observer=self.results)

    async def _event(self) -> asyncio.Event:
        return self.triggers.event("ml", "repo")

    def woken(self) -> bool:
        self.loop.run_until_complete(asyncio.sleep(0))  # runs call_soon_threadsafe callbacks
        return self.event.is_set()

    def post(
        self,
        body: bytes,
        headers: dict[str, str],
        *,
        path: str = "/hooks/ml/repo",
        method: str = "POST",
        length: int | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "CONTENT_LENGTH": str(len(body) if length is None else length),
            "CONTENT_TYPE": content_type,
            "wsgi.input": io.BytesIO(body),
        }
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        captured: list[str] = []
        chunks = self.app(environ, lambda status, _headers: captured.append(status))
        return int(captured[0].split()[0]), json.loads(b"".join(chunks))


def push(ref: str = "refs/heads/main", url: str = URL) -> bytes:
    return json.dumps(
        {"ref": ref, "after": "a" * 40, "repository": {"clone_url": url, "html_url": url}}
    ).encode()


def github(body: bytes, secret: bytes = SECRET, event: str = "push") -> dict[str, str]:
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}"}


MakeSource = Callable[..., Source]


@pytest.fixture
def make_source() -> Iterator[MakeSource]:
    made: list[Source] = []

    def make(**options: Any) -> Source:
        made.append(Source(**options))
        return made[-1]

    yield make
    for each in made:
        each.loop.close()


@pytest.fixture
def source(make_source: MakeSource) -> Source:
    return make_source()


def test_github_signed_push_triggers(source: Source) -> None:
    body = push()
    status, answer = source.post(body, github(body))
    assert (status, answer["result"]) == (202, "triggered")
    assert source.woken()
    assert source.results == ["triggered"]


def test_json_sent_as_a_form_says_to_give_the_content_type(source: Source) -> None:
    body = push()  # what curl --data sends without -H "Content-Type: application/json"
    status, answer = source.post(
        body, github(body), content_type="application/x-www-form-urlencoded"
    )
    assert (status, answer["result"]) == (400, "bad_request")
    assert "Content-Type: application/json" in answer["message"]
    assert not source.woken()


def test_github_form_encoded_push_triggers(source: Source) -> None:
    body = urllib.parse.urlencode({"payload": push().decode()}).encode()
    status, _ = source.post(body, github(body), content_type="application/x-www-form-urlencoded")
    assert status == 202 and source.woken()


def test_gitlab_token_push_triggers(source: Source) -> None:
    body = json.dumps(
        {
            "object_kind": "push",
            "ref": "refs/heads/main",
            "project": {"git_ssh_url": "git@GIT.example.com:ml/pipelines.git"},
            "repository": {"git_http_url": "https://git.example.com/ml/pipelines.git"},
        }
    ).encode()
    status, answer = source.post(
        body, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET.decode()}
    )
    assert (status, answer["result"]) == (202, "triggered")
    assert source.woken()


def test_generic_signature_push_triggers(source: Source) -> None:
    body = json.dumps(
        {"ref": "refs/heads/main", "url": "ssh://git@git.example.com:22/ml/pipelines"}
    ).encode()
    status, answer = source.post(body, {"X-Pipesync-Signature": webhooks.signature(SECRET, body)})
    assert (status, answer["result"]) == (202, "triggered")
    assert source.woken()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-GitHub-Event": "push"},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "sha1=whatever"},
        {"X-Pipesync-Signature": "garbage"},
        {"X-Gitlab-Token": "wrong"},
        {"X-Gitlab-Token": ""},
    ],
)
def test_unsigned_or_wrongly_signed_is_401_and_nothing_happens(
    source: Source, headers: dict[str, str]
) -> None:
    status, answer = source.post(push(), headers)
    assert (status, answer["result"]) == (401, "unauthorized")
    assert not source.woken()


def test_signature_over_another_body_or_with_another_secret_is_401(source: Source) -> None:
    signed_for = push(ref="refs/heads/other")
    assert source.post(push(), github(signed_for))[0] == 401
    assert source.post(push(), github(push(), secret=b"other"))[0] == 401
    assert not source.woken()


def test_secret_whitespace_ignored_and_empty_secret_refuses_all(make_source: MakeSource) -> None:
    padded = make_source(secret=SECRET + b"\n")
    body = push()
    assert padded.post(body, github(body))[0] == 202
    empty = make_source(secret=b" \n")
    assert empty.post(body, github(body, secret=b""))[0] == 401
    assert not empty.woken()


def test_oversized_is_413_before_reading(source: Source) -> None:
    body = push()

    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body must not be read")

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hooks/ml/repo",
        "CONTENT_LENGTH": str(webhooks.DEFAULT_MAX_BODY_BYTES + 1),
        "wsgi.input": Unreadable(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in github(body).items()},
    }
    captured: list[str] = []
    source.app(environ, lambda status, _headers: captured.append(status))
    assert captured[0].startswith("413")
    assert source.results == ["too_large"]
    assert not source.woken()


def test_small_limit_and_missing_length(source: Source) -> None:
    body = push()
    small = webhooks.WebhookApp(source.triggers, max_body_bytes=10)
    source.app = small
    assert source.post(body, github(body))[0] == 413
    source.app = webhooks.WebhookApp(source.triggers)
    assert source.post(body, github(body), length=len(body) + 5)[0] == 400  # short body
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hooks/ml/repo",
        "wsgi.input": io.BytesIO(body),
    }
    status, _, _, _ = source.app.handle(environ)
    assert status == 411
    assert not source.woken()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (push(ref="refs/heads/dev"), "refs/heads/dev"),
        (push(ref="refs/tags/v1"), "refs/tags/v1"),
        (push(url="https://git.example.com/ml/other.git"), "another repository"),
        (json.dumps({"ref": "refs/heads/main"}).encode(), "no repository URL"),
    ],
)
def test_other_branch_or_repository_is_ignored_with_a_reason(
    source: Source, body: bytes, reason: str
) -> None:
    status, answer = source.post(body, github(body))
    assert (status, answer["result"]) == (202, "ignored")
    assert reason in answer["message"]
    assert not source.woken()


def test_ping_and_other_events(source: Source) -> None:
    body = b'{"zen": "hi"}'
    assert source.post(body, github(body, event="ping")) == (
        200,
        {"result": "ping", "message": "pong"},
    )
    other = b'{"action": "opened"}'  # another delivery: the same body again is a replay
    status, answer = source.post(other, github(other, event="issues"))
    assert (status, answer["result"]) == (202, "ignored")
    assert not source.woken()


def test_source_following_a_tag_ignores_pushes(make_source: MakeSource) -> None:
    tagged = make_source(branch=None)
    body = push()
    status, answer = tagged.post(body, github(body))
    assert (status, answer["result"]) == (202, "ignored")
    assert "tag or a commit" in answer["message"]


def test_unknown_source_bad_path_and_method(source: Source, make_source: MakeSource) -> None:
    body = push()
    assert source.post(body, github(body), path="/hooks/ml/nope")[0] == 401
    assert source.post(body, github(body), path="/hooks/ml/repo/extra")[0] == 404
    assert source.post(body, github(body), path="/hooks/ml/../x")[0] == 404
    assert source.post(body, github(body), method="GET")[0] == 405
    without_secret = make_source(secret=None)
    assert without_secret.post(body, github(body))[0] == 401
    assert not source.woken()


def test_an_unknown_source_and_a_bad_signature_get_the_same_answer(
    source: Source, make_source: MakeSource
) -> None:
    """Nothing a caller without the secret sees tells which sources exist."""
    body = push()
    forged = github(body, secret=b"guess")
    wrong = source.post(body, forged)
    unknown = source.post(body, forged, path="/hooks/ml/nope")
    elsewhere = source.post(body, forged, path="/hooks/other-team/repo")
    without_secret = make_source(secret=None).post(body, forged)
    assert wrong == unknown == elsewhere == without_secret
    assert wrong[0] == 401
    # Nor do answers about the body: they come before the source is looked up.
    no_length = {"length": -1}
    assert source.post(body, forged, **no_length) == source.post(
        body, forged, path="/hooks/ml/nope", **no_length
    )
    assert source.results[:3] == ["unauthorized", "not_found", "not_found"]
    assert not source.woken()


def test_a_replayed_delivery_is_refused(source: Source) -> None:
    body = push()
    first = {**github(body), "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    assert source.post(body, first)[0] == 202
    assert source.woken()
    source.event.clear()
    # The same request again, and again with a made-up delivery id (it is not signed).
    assert source.post(body, first) == (
        409,
        {
            "result": "replayed",
            "message": "this delivery was received before (same delivery id or same "
            "signed body); ignoring the replay",
        },
    )
    renamed = {**first, "X-GitHub-Delivery": "00000000-0000-0000-0000-000000000000"}
    assert source.post(body, renamed)[0] == 409
    assert not source.woken()
    # A new push (another body) with its own id goes through.
    second = push(url=URL + "/")
    fresh = {**github(second), "X-GitHub-Delivery": "8f1e6a2c-0000-4000-8000-000000000001"}
    assert source.post(second, fresh)[0] == 202
    # An unauthenticated request never fills the memory (it could push real ids out).
    before = len(source.app.deliveries)
    assert source.post(push(ref="refs/heads/x"), github(body, secret=b"guess"))[0] == 401
    assert len(source.app.deliveries) == before


def test_remembered_deliveries_are_bounded_in_time_and_number() -> None:
    now = [1000.0]
    seen = webhooks.Deliveries(window=60.0, limit=3, clock=lambda: now[0])
    assert seen.first_time(["a"]) and not seen.first_time(["a"])
    now[0] += 61  # past the window: forgotten
    assert seen.first_time(["a"])
    for key in ("b", "c", "d"):
        assert seen.first_time([key])
    assert len(seen) == 3  # "a", the oldest, made room
    assert seen.first_time(["a"])


def test_bad_json_is_400(source: Source) -> None:
    body = b"{not json"
    status, answer = source.post(body, github(body))
    assert (status, answer["result"]) == (400, "bad_request")


def test_no_waiting_daemon_is_503() -> None:
    triggers = SyncTriggers()
    triggers.publish(WebhookTarget("ml", "repo", URL, "main", SECRET))
    app = webhooks.WebhookApp(triggers)
    body = push()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hooks/ml/repo",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in github(body).items()},
    }
    assert app.handle(environ)[0] == 503


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/ml/pipelines.git",
        "https://GIT.Example.com:443/ml/pipelines/",
        "http://user:pw@git.example.com/ml/pipelines",
        "ssh://git@git.example.com:2222/ml/pipelines.git",
        "git@git.example.com:ml/pipelines.git",
        "git://git.example.com/ml/pipelines",
    ],
)
def test_url_forms_of_one_repository_match(url: str) -> None:
    assert webhooks.normalise_url(url) == "git.example.com/ml/pipelines"


def test_different_repositories_do_not_match() -> None:
    ours = webhooks.normalise_url(URL)
    for other in (
        "https://git.example.com/ml/pipelines-old.git",
        "https://other.example.com/ml/pipelines.git",
        "git@git.example.com:ml/pipe.git",
    ):
        assert webhooks.normalise_url(other) != ours


def test_served_on_the_metrics_port_and_counted(source: Source) -> None:
    """Over a real socket: the route is mounted beside /metrics, Content-Length over the
    limit is refused before the body is sent, and results are counted."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    app = webhooks.WebhookApp(
        source.triggers, observer=metrics.webhooks.receiving(webhooks.RESULTS)
    )
    server = endpoint.serve(registry, "127.0.0.1:0", routes={webhooks.PREFIX: app})
    port = server.server_address[1]
    try:
        body = push()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request(
            "POST", "/hooks/ml/repo", body, {**github(body), "Content-Type": "application/json"}
        )
        reply = connection.getresponse()
        assert reply.status == 202 and json.loads(reply.read())["result"] == "triggered"
        connection.close()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(
                b"POST /hooks/ml/repo HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n{"
            )
            assert raw.recv(100).startswith(b"HTTP/1.0 413")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
        assert 'pipesync_webhook_requests_total{result="triggered"} 1.0' in text
        assert 'pipesync_webhook_requests_total{result="too_large"} 1.0' in text
        assert 'pipesync_webhook_requests_total{result="unauthorized"} 0.0' in text
    finally:
        server.shutdown()
        server.server_close()
    assert source.woken()


def test_a_body_that_stops_arriving_is_408(source: Source) -> None:
    body = push()

    class Stalled(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise TimeoutError("timed out")  # what the server's socket timeout raises

    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/hooks/ml/repo",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": Stalled(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in github(body).items()},
    }
    status, result, _, _ = source.app.handle(environ)
    assert (status, result) == (408, "bad_request")
    assert not source.woken()


DOC = pathlib.Path(__file__).resolve().parents[2] / "docs/webhooks.md"
DOC_SERVER = "https://pipesync.example.com"


def documented_curl() -> str:
    """The shell example of docs/webhooks.md (its indented block that runs curl), as is."""
    blocks: list[list[str]] = [[]]
    for line in DOC.read_text().splitlines():
        if line.startswith("    ") and not line.lstrip().startswith("```"):
            blocks[-1].append(line[4:])
        elif blocks[-1]:
            blocks.append([])
    found = ["\n".join(b) for b in blocks if any(line.startswith("curl ") for line in b)]
    assert len(found) == 1, f"{DOC}: expected one curl example, found {len(found)}"
    return found[0]


def test_the_documented_curl_example_triggers_the_sync() -> None:
    """Runs the docs' command unchanged but for the server's address, against the
    receiver served on a real socket: the answer must be `triggered` and the source woken."""
    script = documented_curl()
    assert DOC_SERVER in script, script
    triggers = SyncTriggers()
    # The namespace, name, repository and branch the example names.
    triggers.publish(WebhookTarget("ml", "ml-repo", URL, "main", SECRET))
    loop = asyncio.new_event_loop()

    async def waiter() -> asyncio.Event:
        return triggers.event("ml", "ml-repo")

    event = loop.run_until_complete(waiter())
    server = endpoint.serve_app(webhooks.WebhookApp(triggers), "127.0.0.1:0")
    try:
        local = f"http://127.0.0.1:{server.server_port}"
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace(DOC_SERVER, local)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TOKEN": SECRET.decode()},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["result"] == "triggered", answer
    loop.run_until_complete(asyncio.sleep(0))
    assert event.is_set()
    loop.close()
