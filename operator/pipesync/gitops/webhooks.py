"""The push webhook receiver: `POST /hooks/<namespace>/<name>` wakes one GitSource's sync.

Why a receiver at all: polling every minute makes a push wait up to a minute; a signed
push notification lets the source fetch at once. Why so strict: the endpoint faces the
network, so nothing happens unless the body is authenticated with the source's own
secret, and the body is bounded before it is read.

Accepted authentication (the first header present decides; see docs/webhooks.md):
- GitHub:  `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`
- GitLab:  `X-Gitlab-Token: <the secret>` (compared in constant time)
- generic: `X-Pipesync-Signature: sha256=<hex HMAC-SHA256 of the raw body>`

Replays are refused: a signed request captured on the way (a proxy's log, a leaked
capture) would otherwise wake the source again and again. The signature covers only the
body, so the delivery id headers (GitHub's `X-GitHub-Delivery`, GitLab's
`X-Gitlab-Event-UUID`, `X-Pipesync-Delivery`) alone cannot tell a replay (a replayer
changes them at will): the digest of the signed body is remembered too, each for a
bounded window and a bounded number of entries (`Deliveries`).

An unknown source and a bad signature get the same answer (status and body), so the
receiver does not tell a caller without the secret which sources exist; the body is read
(and bounded) before the source is looked up for the same reason.

A WSGI application with no dependency on the controllers or on metrics: it reads the
controller's published targets through `gitops.triggers.SyncTriggers` and reports each
request as an `api.reports.WebhookRequest` to its observer (observe.webhook_metrics
counts them; gitops may not import observe, they are siblings).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, Protocol

from pipesync.api import reports
from pipesync.gitops.triggers import WebhookTarget

#: Push payloads of a few commits are a few KiB; GitHub's largest are far below this.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
PREFIX = "/hooks/"
#: Every value of the `result` label, so a counter can start them all at zero.
RESULTS = (
    "triggered",
    "ignored",
    "ping",
    "unauthorized",
    "replayed",
    "too_large",
    "bad_request",
    "not_found",
    "method_not_allowed",
    "unavailable",
)

StartResponse = Callable[..., Any]
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>(?!/).*)$")
_DEFAULT_READ = 64 * 1024
#: How long, and for how many deliveries, a delivery is remembered to refuse its replay:
#: a day covers any retry a provider makes; 10,000 entries are about a megabyte.
REPLAY_WINDOW_SECONDS = 24 * 3600.0
REPLAY_MAX_ENTRIES = 10_000
_DELIVERY_HEADERS = ("X-GitHub-Delivery", "X-Gitlab-Event-UUID", "X-Pipesync-Delivery")
_UNAUTHORIZED = (
    "missing or wrong signature (X-Hub-Signature-256, X-Gitlab-Token or "
    "X-Pipesync-Signature), or no GitSource accepting webhooks at this path"
)


class Deliveries:
    """The deliveries seen lately: bounded in time (`window`) and in size (`limit`, the
    oldest forgotten first), safe to use from the server's threads."""

    def __init__(
        self,
        *,
        window: float = REPLAY_WINDOW_SECONDS,
        limit: int = REPLAY_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self.limit = limit
        self.clock = clock
        self._seen: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, keys: Iterable[str]) -> bool:
        """Whether none of `keys` was seen within the window; records them all."""
        now = self.clock()
        keys = list(keys)
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now - self.window:
                self._seen.popitem(last=False)
            fresh = not any(key in self._seen for key in keys)
            for key in keys:
                self._seen[key] = now
                self._seen.move_to_end(key)
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
            return fresh

    def __len__(self) -> int:
        return len(self._seen)


class Targets(Protocol):
    """gitops.triggers.SyncTriggers, the receiver's side of it."""

    def target(self, namespace: str, name: str) -> WebhookTarget | None: ...

    def trigger(self, namespace: str, name: str) -> bool: ...


def hooks_path(namespace: str, name: str) -> str:
    """The path that triggers a source (the controller publishes it in status)."""
    return f"{PREFIX}{namespace}/{name}"


def signature(secret: bytes, body: bytes) -> str:
    """`sha256=<hex>`: the value of X-Hub-Signature-256 and X-Pipesync-Signature."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def normalise_url(url: str) -> str:
    """A repository URL as `host/path`, so the https, ssh, scp-like and git forms of one
    repository compare equal: no scheme, user, port, trailing `/` or `.git`, lowercase.

    Ports and case are dropped on purpose: a false match only costs one extra sync
    (authentication happened before), a false mismatch loses a push."""
    text = url.strip()
    if "://" in text:
        parsed = urllib.parse.urlsplit(text)
        host, path = (parsed.hostname or ""), parsed.path
    else:
        scp = _SCP.match(text)
        if scp is None:  # a local path: compare it whole
            host, path = "", text
        else:
            host, path = scp.group("host"), scp.group("path")
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return f"{host}/{path.strip('/')}".lower()


class WebhookObserver(Protocol):
    """observe.webhook_metrics.WebhookMetrics: told each request the receiver answered."""

    def observe(self, report: reports.WebhookRequest) -> None: ...


class WebhookApp:
    """WSGI app for `POST /hooks/<namespace>/<name>`; mount it at PREFIX."""

    def __init__(
        self,
        triggers: Targets,
        *,
        observer: WebhookObserver | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        deliveries: Deliveries | None = None,
    ) -> None:
        self.triggers = triggers
        self.observer = observer
        self.max_body_bytes = max_body_bytes
        self.deliveries = deliveries or Deliveries()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, result, body, headers = self.handle(environ)
        if self.observer is not None:
            self.observer.observe(reports.WebhookRequest(result, status.value))
        payload = json.dumps(body, sort_keys=True).encode() + b"\n"
        start_response(
            f"{status.value} {status.phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                *headers,
            ],
        )
        return [payload]

    def handle(
        self, environ: Mapping[str, Any]
    ) -> tuple[HTTPStatus, str, dict[str, str], list[tuple[str, str]]]:
        """(status, result label, JSON body, extra headers) of one request."""

        def answer(
            status: HTTPStatus, result: str, message: str, **more: str
        ) -> tuple[HTTPStatus, str, dict[str, str], list[tuple[str, str]]]:
            extra = [("Allow", "POST")] if status is HTTPStatus.METHOD_NOT_ALLOWED else []
            return status, result, {"result": result, "message": message, **more}, extra

        def unauthorized(label: str) -> tuple[HTTPStatus, str, dict[str, str], list[Any]]:
            """The same status and body whether the source is unknown or the signature
            wrong (only the metric's label tells them apart, for the operator)."""
            status, _, body, extra = answer(HTTPStatus.UNAUTHORIZED, "unauthorized", _UNAUTHORIZED)
            return status, label, body, extra

        path = str(environ.get("PATH_INFO") or "")
        parts = path[len(PREFIX) :].split("/") if path.startswith(PREFIX) else []
        if len(parts) != 2 or not all(_NAME.match(part) for part in parts):
            return answer(
                HTTPStatus.NOT_FOUND, "not_found", "expected POST /hooks/<namespace>/<name>"
            )
        namespace, name = parts
        if environ.get("REQUEST_METHOD") != "POST":
            return answer(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed", "use POST")
        # The body first: an answer about it must not depend on whether the source exists.
        raw, problem = self._body(environ)
        if raw is None:
            status, message = problem
            result = "too_large" if status is HTTPStatus.REQUEST_ENTITY_TOO_LARGE else "bad_request"
            return answer(status, result, message)
        target = self.triggers.target(namespace, name)
        if target is None or target.secret is None:
            # The same work as a check of a real secret: a 1 MiB body's HMAC takes long
            # enough to tell "no such source" from "wrong signature" by the clock.
            _authentic(environ, raw, b"no source: nothing matches")
            return unauthorized("not_found")
        # Surrounding whitespace is not part of a token (`kubectl create secret
        # --from-file` keeps a trailing newline); an empty secret would sign anything.
        secret = target.secret.strip()
        if not secret or not _authentic(environ, raw, secret):
            # One answer for unsigned, wrongly signed and unknown: no oracle for guessing.
            return unauthorized("unauthorized")
        if not self.deliveries.first_time(_delivery_keys(namespace, name, environ, raw)):
            return answer(
                HTTPStatus.CONFLICT,
                "replayed",
                "this delivery was received before (same delivery id or same signed body); "
                "ignoring the replay",
            )
        event = _event(environ)
        if event == "ping":
            return answer(HTTPStatus.OK, "ping", "pong")
        if event != "push":
            return answer(HTTPStatus.ACCEPTED, "ignored", f"event {event!r} is not a push")
        try:
            push = _payload(environ, raw)
        except ValueError as error:
            return answer(HTTPStatus.BAD_REQUEST, "bad_request", str(error))
        reason = _mismatch(push, target)
        if reason is not None:
            return answer(HTTPStatus.ACCEPTED, "ignored", reason)
        if not self.triggers.trigger(namespace, name):
            return answer(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "unavailable",
                f"GitSource {namespace}/{name} is not syncing in this operator right now; "
                "its next poll will fetch the push",
            )
        return answer(
            HTTPStatus.ACCEPTED,
            "triggered",
            f"sync of GitSource {namespace}/{name} started",
            ref=str(push.get("ref")),
        )

    def _body(self, environ: Mapping[str, Any]) -> tuple[bytes | None, tuple[HTTPStatus, str]]:
        """The raw body, refused before reading when Content-Length is over the limit and
        while reading when more arrives than announced."""
        limit = self.max_body_bytes
        too_large = (
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"body larger than {limit} bytes; refusing it",
        )
        text = str(environ.get("CONTENT_LENGTH") or "").strip()
        if not text.isdigit():
            return None, (HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        length = int(text)
        if length > limit:
            return None, too_large
        stream = environ["wsgi.input"]
        chunks: list[bytes] = []
        received = 0
        while received < length:
            try:
                chunk = stream.read(min(_DEFAULT_READ, length - received))
            except OSError:  # the server's socket timeout: a client that stopped sending
                return None, (HTTPStatus.REQUEST_TIMEOUT, "the body did not arrive in time")
            if not chunk:
                return None, (HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length")
            received += len(chunk)
            if received > limit:  # a stream that ignores the size it was asked for
                return None, too_large
            chunks.append(chunk)
        return b"".join(chunks), (HTTPStatus.OK, "")


def _header(environ: Mapping[str, Any], name: str) -> str | None:
    value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else str(value)


def _delivery_keys(namespace: str, name: str, environ: Mapping[str, Any], body: bytes) -> list[str]:
    """What identifies one delivery to one source: the digest of the signed body (what a
    replayer cannot change) and the provider's delivery id when it sends one."""
    source = f"{namespace}/{name}"
    keys = [f"{source} body {hashlib.sha256(body).hexdigest()}"]
    for header in _DELIVERY_HEADERS:
        value = _header(environ, header)
        if value is not None and value.strip():
            keys.append(f"{source} {header.lower()} {value.strip()[:128]}")
    return keys


def _authentic(environ: Mapping[str, Any], body: bytes, secret: bytes) -> bool:
    for header in ("X-Hub-Signature-256", "X-Pipesync-Signature"):
        given = _header(environ, header)
        if given is not None:
            return hmac.compare_digest(given.strip().encode(), signature(secret, body).encode())
    token = _header(environ, "X-Gitlab-Token")
    if token is not None:
        return hmac.compare_digest(token.encode(), secret)
    return False


def _event(environ: Mapping[str, Any]) -> str:
    """`push`, `ping` or the provider's own name of another event."""
    github = _header(environ, "X-GitHub-Event")
    if github is not None:
        return github.strip().lower()
    gitlab = _header(environ, "X-Gitlab-Event")
    if gitlab is not None:
        return "push" if gitlab.strip() == "Push Hook" else gitlab.strip()
    generic = _header(environ, "X-Pipesync-Event")
    return (generic or "push").strip().lower()


def _payload(environ: Mapping[str, Any], raw: bytes) -> dict[str, Any]:
    content_type = str(environ.get("CONTENT_TYPE") or "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            form = urllib.parse.parse_qs(raw.decode("utf-8"), max_num_fields=10)
            if "payload" not in form:  # e.g. curl --data without a content type
                raise ValueError(
                    "a form-encoded body needs a payload field (GitHub's form delivery); "
                    "send JSON with Content-Type: application/json"
                )
            raw = form["payload"][0].encode()
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"the body is not a JSON push payload: {error}") from None
    if not isinstance(data, dict):
        raise ValueError("the body is not a JSON object")
    return data


def _urls(push: Mapping[str, Any]) -> set[str]:
    """Every repository URL a GitHub, GitLab or generic push names."""
    found: set[str] = set()
    for section in ("repository", "project"):
        block = push.get(section)
        if isinstance(block, Mapping):
            for key in (
                "clone_url",
                "ssh_url",
                "git_url",
                "html_url",
                "url",
                "git_http_url",
                "git_ssh_url",
                "web_url",
                "homepage",
            ):
                value = block.get(key)
                if isinstance(value, str) and value:
                    found.add(value)
    if isinstance(push.get("url"), str):
        found.add(push["url"])
    return found


def _mismatch(push: Mapping[str, Any], target: WebhookTarget) -> str | None:
    """Why this push is not for the source, or None when it is."""
    ref = push.get("ref")
    if not isinstance(ref, str):
        return "the push names no ref"
    if target.branch is None:
        return "the source follows a tag or a commit, not a branch"
    if ref != f"refs/heads/{target.branch}":
        return f"push to {ref}, the source follows refs/heads/{target.branch}"
    urls = _urls(push)
    if not urls:
        return "the push names no repository URL"
    wanted = normalise_url(target.url)
    if not any(normalise_url(url) == wanted for url in urls):
        return f"push for another repository ({sorted(urls)[0]})"
    return None
