"""The web UI as a WSGI app under /ui/: the page, its static files and the JSON API.

Every API request is authenticated (auth.Authenticator) and every namespace and resource
checked for the person (SubjectAccessReview) before anything is read; the reads then use
this process's credentials (the operator's), so the checks here are the only gate.
Path parts are validated as Kubernetes names before they reach an API call or an S3 key.

Nothing a client sends is read unbounded: a body needs a Content-Length no larger than
MAX_BODY, and artifacts and logs go out in chunks from S3, never whole in memory (the
operator's memory limit is shared with every controller). Under `pipesync ui` (the
kubeconfig's identity, no login), the Host header must name this server, so a page that
re-binds its DNS name to 127.0.0.1 cannot act as the kubeconfig's user.
"""

from __future__ import annotations

import datetime
import hashlib
import http.cookies
import json
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import urllib3.exceptions

from pipesync.controllers import runs
from pipesync.engine import layout
from pipesync.kube.client import ApiException
from pipesync.kube.protocol import (
    EXPERIMENTS,
    GIT_SOURCES,
    PIPELINES,
    RECURRING_RUNS,
    RUNS,
    Kube,
)
from pipesync.runtime import archive, storage
from pipesync.ui import artifacts, views
from pipesync.ui.auth import COOKIE, SESSION_TTL, Access, Authenticator, Principal
from pipesync.ui.cache import RunCaches

_log = logging.getLogger(__name__)

PREFIX = "/ui/"
StartResponse = Callable[..., Any]

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
#: Artifact bytes: no scripts, no plugins, an opaque origin even when opened directly.
ARTIFACT_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
#: The largest request body (JSON only: a login is a token of a few KB).
MAX_BODY = 32 * 1024
MAX_LOG_BYTES = 2 * 1024 * 1024
#: Bearer tokens (JWTs and the like); anything else could not travel in a cookie.
TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{1,16384}")
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
PART = re.compile(r"^[A-Za-z0-9_]([-A-Za-z0-9_.]{0,251})?$")
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
PHASES = {"Pending", "Running", "Succeeded", "Failed", "Cancelling", "Cancelled"}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Response:
    """`body` is bytes, or chunks sent as they come (artifacts and logs from S3)."""

    def __init__(
        self,
        status: int,
        body: bytes | Iterable[bytes],
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.status, self.body, self.content_type = status, body, content_type
        self.headers = list(headers)


def json_response(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Response(status, body, "application/json", headers)


def _name(value: str, what: str) -> str:
    if not NAME.match(value):
        raise HttpError(400, f"invalid {what} {value!r}: expected a Kubernetes name")
    return value


def _part(value: str, what: str) -> str:
    if not PART.match(value) or ".." in value:
        raise HttpError(400, f"invalid {what} {value!r}")
    return value


def _instance(query: Mapping[str, str]) -> int | None:
    text = query.get("instance", "")
    if text in ("", "null"):
        return None
    if not text.isdigit() or len(text) > 9:
        raise HttpError(400, f"invalid instance {text!r}: expected a number")
    return int(text)


def declared_length(environ: Mapping[str, Any]) -> int | None:
    """The request's Content-Length, checked before a byte of the body is read: None when
    absent; a negative, non-numeric or oversized one is refused (a read of length -1 would
    read until the client stops sending)."""
    if environ.get("HTTP_TRANSFER_ENCODING"):
        raise HttpError(411, "send the body with a Content-Length, not chunked")
    text = str(environ.get("CONTENT_LENGTH") or "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise HttpError(400, f"invalid Content-Length {text[:20]!r}: expected a number of bytes")
    length = int(text[:12])
    if len(text) > 12 or length > MAX_BODY:
        raise HttpError(413, f"request body too large: at most {MAX_BODY} bytes")
    return length


def read_json(environ: Mapping[str, Any]) -> Any:
    """The JSON body, exactly Content-Length bytes of it (at most MAX_BODY)."""
    length = declared_length(environ)
    if length is None:
        raise HttpError(411, "a JSON body needs a Content-Length")
    try:
        data = environ["wsgi.input"].read(length)
    except OSError:
        raise HttpError(408, "the request body did not arrive in time") from None
    if len(data) < length:
        raise HttpError(400, "the request body is shorter than its Content-Length")
    try:
        return json.loads(data or b"{}")
    except ValueError:
        raise HttpError(400, "the request body is not JSON") from None


def local_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values a browser sends to a server bound to (host, port): the
    loopback names and the bound address, with the port (and without it on port 80)."""
    names = {"localhost", "127.0.0.1", "[::1]", *extra}
    if host and host not in ("0.0.0.0", "::"):  # noqa: S104 - a name, not a bind
        names.add(f"[{host}]" if ":" in host else host)
    found = {f"{name.lower()}:{port}" for name in names}
    if port == 80:
        found |= {name.lower() for name in names}
    return frozenset(found)


def _first_bytes(chunks: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    """At least `limit` bytes from the start of a stream (or all of it: complete=True)."""
    head = bytearray()
    for chunk in chunks:
        head += chunk
        if len(head) >= limit:
            return bytes(head), False
    return bytes(head), True


def _streamed(head: bytes, rest: Iterator[bytes], what: str) -> Iterator[bytes]:
    """The bytes already read, then the rest as it comes; a store that fails halfway ends
    the response short (its headers are sent already) with one line in the log."""
    try:
        if head:
            yield head
        yield from rest
    except Exception as error:
        _log.warning("ui: %s: the object store stopped halfway: %s", what, error)
    finally:
        _close(rest)


def _close(chunks: Iterator[bytes]) -> None:
    """Let go of a stream read only in part (its S3 connection goes back to the pool)."""
    close = getattr(chunks, "close", None)
    if close is not None:
        close()


def _query(environ: Mapping[str, Any]) -> dict[str, str]:
    from urllib.parse import parse_qsl  # noqa: PLC0415

    return dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


class UiApp:
    """WSGI: mount at PREFIX on the operator's endpoint, or serve alone (`pipesync ui`)."""

    def __init__(
        self,
        kube: Kube,
        authenticator: Authenticator,
        store: storage.ObjectStore | None = None,
        namespaces: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        *,
        hosts: Collection[str] | None = None,
    ) -> None:
        """`hosts`: the Host header values accepted (None: any, as behind an ingress)."""
        self.kube = kube
        self.hosts = None if hosts is None else frozenset(h.lower() for h in hosts)
        self.auth = authenticator
        self.store = store
        self.watched = sorted(set(namespaces))
        self.clock = clock
        self.caches = RunCaches(kube)
        self._records: dict[str, dict[str, Any]] = {}
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Response]]] = [
            ("GET", re.compile(r"^whoami$"), self.whoami),
            ("POST", re.compile(r"^login$"), self.login),
            ("POST", re.compile(r"^logout$"), self.logout),
            ("GET", re.compile(r"^namespaces$"), self.namespaces),
            ("GET", re.compile(r"^namespaces/([^/]+)/experiments$"), self.experiments),
            ("GET", re.compile(r"^namespaces/([^/]+)/runs$"), self.runs),
            ("GET", re.compile(r"^namespaces/([^/]+)/runs/([^/]+)$"), self.run),
            ("GET", re.compile(r"^namespaces/([^/]+)/runs/([^/]+)/logs$"), self.logs),
            (
                "GET",
                re.compile(r"^namespaces/([^/]+)/runs/([^/]+)/artifacts/([^/]+)/([^/]+)$"),
                self.artifact,
            ),
            (
                "GET",
                re.compile(r"^namespaces/([^/]+)/runs/([^/]+)/artifacts/([^/]+)/([^/]+)/view$"),
                self.artifact_view,
            ),
            ("POST", re.compile(r"^namespaces/([^/]+)/runs/([^/]+)/cancel$"), self.cancel),
            ("POST", re.compile(r"^namespaces/([^/]+)/runs/([^/]+)/rerun$"), self.rerun),
            ("GET", re.compile(r"^namespaces/([^/]+)/compare$"), self.compare),
            ("GET", re.compile(r"^namespaces/([^/]+)/pipelines$"), self.pipelines),
            ("GET", re.compile(r"^namespaces/([^/]+)/pipelines/([^/]+)$"), self.pipeline),
            ("GET", re.compile(r"^namespaces/([^/]+)/recurringruns$"), self.recurring_runs),
            (
                "GET",
                re.compile(r"^namespaces/([^/]+)/recurringruns/([^/]+)$"),
                self.recurring_run,
            ),
            ("GET", re.compile(r"^namespaces/([^/]+)/gitsources$"), self.git_sources),
            ("GET", re.compile(r"^namespaces/([^/]+)/gitsources/([^/]+)$"), self.git_source),
        ]

    # --- WSGI ----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self._dispatch(environ)
        except HttpError as error:
            response = json_response(error.status, {"error": error.message})
        except ApiException as error:
            status = error.status if error.status in (403, 404, 409) else 502
            response = json_response(
                status, {"error": f"Kubernetes API: {error.status} {error.reason}"}
            )
        except storage.StoreError as error:
            response = json_response(502, {"error": f"object store: {error}"})
        except urllib3.exceptions.HTTPError as error:  # the API server is away
            _log.warning("ui: Kubernetes API unreachable: %s", error)
            response = json_response(502, {"error": "the Kubernetes API server is unreachable"})
        except Exception:
            _log.exception(
                "ui: %s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            response = json_response(500, {"error": "internal error (see the operator's log)"})
        headers = [
            ("Content-Type", response.content_type),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store"),
            *response.headers,
        ]
        if isinstance(response.body, bytes):
            headers.append(("Content-Length", str(len(response.body))))
        if not any(key == "Content-Security-Policy" for key, _ in headers):
            headers.append(("Content-Security-Policy", PAGE_POLICY))
        start_response(f"{response.status} {_REASONS.get(response.status, 'Status')}", headers)
        return [response.body] if isinstance(response.body, bytes) else response.body

    def _check_origin(self, environ: Mapping[str, Any], method: str) -> None:
        """With `hosts` set (pipesync ui): the Host must be this server, and a write's
        Origin, when the browser sends one, must be this server too. A DNS-rebinding page
        is same-origin by its own name, so only the Host it sends gives it away."""
        if self.hosts is None:
            return
        host = str(environ.get("HTTP_HOST") or "").lower()
        if host not in self.hosts:
            raise HttpError(
                403,
                f"Host {host[:100]!r} is not this server's address (DNS rebinding?): "
                "open the UI at the address pipesync ui printed",
            )
        origin = environ.get("HTTP_ORIGIN")
        if method != "GET" and origin is not None:
            parts = urlsplit(str(origin))
            if parts.scheme not in ("http", "https") or parts.netloc.lower() not in self.hosts:
                raise HttpError(403, f"Origin {str(origin)[:100]!r} is not this server")

    def _dispatch(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        self._check_origin(environ, method)
        # Checked on every request, whether or not its handler reads a body.
        declared_length(environ)
        if path in ("/", "/ui"):
            return Response(302, b"", "text/plain", [("Location", PREFIX)])
        if not path.startswith(PREFIX):
            raise HttpError(404, "not found")
        rest = path[len(PREFIX) :]
        if rest in ("", "index.html"):
            return self._static("index.html")
        if rest.startswith("static/"):
            return self._static(rest[len("static/") :])
        if not rest.startswith("api/"):
            raise HttpError(404, "not found")
        api = rest[len("api/") :]
        for route_method, pattern, handler in self.routes:
            match = pattern.match(api)
            if match is None:
                continue
            if method != route_method:
                raise HttpError(405, f"{method} not allowed here")
            # Login too: a cross-site form must not log a browser in as someone else.
            if method == "POST" and environ.get("HTTP_X_PIPESYNC_REQUEST") != "1":
                raise HttpError(403, "missing X-Pipesync-Request header (cross-site request?)")
            if handler == self.login:
                return self.login(environ)
            principal = self._principal(environ)
            return handler(environ, principal, *match.groups())
        raise HttpError(404, f"no API endpoint {api!r}")

    def _static(self, name: str) -> Response:
        if not re.fullmatch(r"[a-z0-9_-]+\.(js|css|html|svg|png)", name):
            raise HttpError(404, "not found")
        try:
            data = resources.files("pipesync.ui").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise HttpError(404, "not found") from None
        suffix = name[name.rfind(".") :]
        return Response(200, data, STATIC_TYPES[suffix])

    # --- who ---------------------------------------------------------------------------

    def _session(self, environ: Mapping[str, Any]) -> str:
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except http.cookies.CookieError:
            return ""
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None else ""

    def _principal(self, environ: Mapping[str, Any]) -> Principal:
        principal = self.auth.authenticate(
            str(environ.get("HTTP_AUTHORIZATION", "")), self._session(environ)
        )
        if principal is None:
            raise HttpError(401, "log in: no valid token or session")
        return principal

    def _require(self, principal: Principal, access: Access) -> None:
        if not self.auth.allowed(principal, access):
            what = access.resource + (f"/{access.subresource}" if access.subresource else "")
            where = f" in namespace {access.namespace}" if access.namespace else ""
            raise HttpError(403, f"{principal.username} may not {access.verb} {what}{where}")

    def whoami(self, environ: Mapping[str, Any], principal: Principal) -> Response:
        return json_response(200, {"user": principal.public(), "auth": self.auth.mode})

    def login(self, environ: Mapping[str, Any]) -> Response:
        if self.auth.mode != "token":
            raise HttpError(400, "this UI uses the kubeconfig's identity; no login needed")
        body = read_json(environ)
        try:
            token = str(body["token"]).strip()
        except (KeyError, TypeError):
            raise HttpError(400, 'expected JSON {"token": "..."}') from None
        if not TOKEN.fullmatch(token):
            raise HttpError(400, "that is not a bearer token (unexpected characters)")
        principal = self.auth.login(token)
        if principal is None:
            raise HttpError(401, "the API server did not accept this token")
        https = "https" in (environ.get("HTTP_X_FORWARDED_PROTO"), environ.get("wsgi.url_scheme"))
        secure = "; Secure" if https else ""
        cookie = (
            f"{COOKIE}={token}; Path={PREFIX}; Max-Age={SESSION_TTL}; HttpOnly; "
            f"SameSite=Strict{secure}"
        )
        return json_response(200, {"user": principal.public()}, [("Set-Cookie", cookie)])

    def logout(self, environ: Mapping[str, Any], principal: Principal) -> Response:
        cookie = f"{COOKIE}=; Path={PREFIX}; HttpOnly; SameSite=Strict; Max-Age=0"
        return Response(204, b"", "text/plain", [("Set-Cookie", cookie)])

    def namespaces(self, environ: Mapping[str, Any], principal: Principal) -> Response:
        plain = self.watched and not any(set(p) & set("*?[,!") for p in self.watched)
        candidates = (
            self.watched
            if plain
            else views.watched_namespaces(self.kube.list_namespaces(), self.watched)
        )
        visible = [
            {"name": ns}
            for ns in candidates
            if self.auth.allowed(principal, Access("list", RUNS, ns))
        ]
        return json_response(200, {"items": visible})

    # --- runs --------------------------------------------------------------------------

    def _records_of(self, namespace: str) -> list[dict[str, Any]]:
        """Every run record of the namespace in S3 (finished ones are cached: a finished
        run's record no longer changes)."""
        if self.store is None:
            return []
        found = []
        for key in archive.record_keys(self.store, namespace):
            record = self._records.get(key)
            if record is None:
                try:
                    record = json.loads(self.store.get_bytes(key))
                except (storage.NotFound, ValueError):
                    continue
                if not isinstance(record, dict):
                    continue
                if (record.get("status") or {}).get("phase") in runs.FINISHED:
                    self._records[key] = record
            found.append(record)
        return found

    def _record(self, namespace: str, run: str) -> dict[str, Any] | None:
        if self.store is None:
            return None
        key = layout.record_key(namespace, run)
        try:
            record: dict[str, Any] = json.loads(self.store.get_bytes(key))
        except (storage.NotFound, ValueError):
            return None
        return record

    def runs(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        _name(ns, "namespace")
        self._require(principal, Access("list", RUNS, ns))
        query = _query(environ)
        phase = query.get("phase", "")
        if phase and phase not in PHASES:
            raise HttpError(400, f"unknown phase {phase!r}: one of {', '.join(sorted(PHASES))}")
        try:
            limit = min(max(int(query.get("limit") or 100), 1), 1000)
            offset = max(int(query.get("offset") or 0), 0)
        except ValueError:
            raise HttpError(400, "limit and offset must be numbers") from None
        rows = self.caches.rows(ns)
        if query.get("archived") == "true":
            live = {row["name"] for row in rows}
            rows = rows + [
                views.run_row(views.record_as_run(record), archived=True)
                for record in self._records_of(ns)
                if (record.get("metadata") or {}).get("name") not in live
            ]
        chosen = views.filter_rows(
            rows,
            pipeline=query.get("pipeline", ""),
            experiment=query.get("experiment", ""),
            phase=phase,
            commit=query.get("commit", ""),
            query=query.get("q", ""),
        )
        return json_response(200, {"items": chosen[offset : offset + limit], "total": len(chosen)})

    def _run_object(self, ns: str, name: str) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
        """(run, record, archived): from the cluster, else from its S3 record."""
        run = self.kube.get_object(RUNS, ns, name)
        if run is not None:
            status = run.get("status") or {}
            record = None
            if status.get("tasksTruncated") or status.get("phase") in runs.FINISHED:
                record = self._record(ns, name)
            return run, record, False
        record = self._record(ns, name)
        if record is None:
            raise HttpError(404, f"run {name} not found in namespace {ns} (nor in S3)")
        return views.record_as_run(record), record, True

    def _pinned(self, ns: str, name: str) -> dict[str, Any] | None:
        """What the run was pinned to: {"spec": ..., "pipeline": {version, commit, ...}}."""
        stored = self.kube.get_config_map(ns, runs.pinned_config_name(name))
        if stored is None or runs.SPEC_KEY not in stored:
            return None
        try:
            saved = json.loads(stored[runs.SPEC_KEY])
        except ValueError:
            return None
        if not isinstance(saved, dict) or not isinstance(saved.get("spec"), dict):
            return None
        return saved

    def _pinned_spec(self, ns: str, name: str) -> dict[str, Any] | None:
        saved = self._pinned(ns, name)
        return None if saved is None else saved["spec"]

    def _detail(self, principal: Principal, ns: str, name: str) -> dict[str, Any]:
        run, record, archived = self._run_object(ns, name)
        spec = None if archived else self._pinned_spec(ns, name)
        if spec is None:
            spec = (run.get("spec") or {}).get("pipelineSpec") or (record or {}).get("pipelineSpec")
        return views.run_detail(
            run,
            spec,
            record,
            archived=archived,
            can_cancel=self.auth.allowed(principal, Access("patch", RUNS, ns)),
            can_rerun=self.auth.allowed(principal, Access("create", RUNS, ns)),
        )

    def run(self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str) -> Response:
        _name(ns, "namespace")
        _name(name, "run")
        self._require(principal, Access("get", RUNS, ns))
        detail = self._detail(principal, ns, name)
        body = json.dumps(detail, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            return Response(304, b"", "application/json", [("ETag", etag)])
        return Response(200, body, "application/json", [("ETag", etag)])

    def logs(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        _name(ns, "namespace")
        _name(name, "run")
        query = _query(environ)
        task = _name(query.get("task", ""), "task")
        instance = _instance(query)
        attempt_text = query.get("attempt", "1")
        if not attempt_text.isdigit() or len(attempt_text) > 6:
            raise HttpError(400, f"invalid attempt {attempt_text!r}")
        attempt = int(attempt_text)
        self._require(principal, Access("get", RUNS, ns))
        selector = f"pipesync.io/run={name},pipesync.io/task={task},pipesync.io/attempt={attempt}"
        if instance is not None:
            selector += f",pipesync.io/instance={instance}"
        if self.auth.allowed(principal, Access("get", "pods", ns, "log", group="")):
            for pod in self.kube.list_pods(ns, selector):
                labels = (pod.get("metadata") or {}).get("labels") or {}
                if instance is None and "pipesync.io/instance" in labels:
                    continue
                data = self.kube.read_pod_log(
                    ns, pod["metadata"]["name"], "main", limit_bytes=MAX_LOG_BYTES
                )
                if data is not None:
                    return Response(
                        200, data, "text/plain; charset=utf-8", [("X-Pipesync-Log-Source", "pod")]
                    )
        if self.store is not None:
            key = layout.log_key(layout.node_prefix(ns, name, task, instance), attempt)
            try:
                chunks = self.store.get_chunks(key, last=MAX_LOG_BYTES)
            except storage.NotFound:
                pass
            else:
                return Response(
                    200,
                    _streamed(b"", chunks, key),
                    "text/plain; charset=utf-8",
                    [("X-Pipesync-Log-Source", "s3")],
                )
        raise HttpError(404, f"no log yet for {task} attempt {attempt} of run {name}")

    def _artifact_chunks(
        self, principal: Principal, where: tuple[str, ...], instance: int | None
    ) -> tuple[str, Iterator[bytes]]:
        """`where`: (namespace, run, task, artifact) from the path; (key, its bytes)."""
        ns, name, task, artifact = where
        _name(ns, "namespace")
        _name(name, "run")
        _name(task, "task")
        _part(artifact, "artifact")
        self._require(principal, Access("get", RUNS, ns))
        if self.store is None:
            raise HttpError(404, "no object store configured: artifacts cannot be read")
        key = storage.check_key(
            layout.output_artifact_key(layout.node_prefix(ns, name, task, instance), artifact)
        )
        try:
            return key, self.store.get_chunks(key)
        except storage.NotFound:
            raise HttpError(404, f"artifact {artifact} of task {task} not stored (yet)") from None

    def artifact(self, environ: Mapping[str, Any], principal: Principal, *where: str) -> Response:
        """The raw bytes, streamed: only the first MAX_PARSED_BYTES are held, to choose
        the content type (a rendered Markdown page is made from those alone)."""
        query = _query(environ)
        key, chunks = self._artifact_chunks(principal, where, _instance(query))
        head, _ = _first_bytes(chunks, artifacts.MAX_PARSED_BYTES)
        artifact = where[3]
        viewer = artifacts.classify(artifact, head[: artifacts.MAX_PARSED_BYTES])
        content_type = artifacts.content_type(viewer, head[:64])
        if viewer == "markdown" and query.get("render") == "1":
            _close(chunks)
            text = head[: artifacts.MAX_PARSED_BYTES].decode("utf-8", "replace")
            body: bytes | Iterable[bytes] = artifacts.markdown_html(text).encode()
        else:
            body = _streamed(head, chunks, key)
        if viewer == "markdown" and query.get("render") != "1":
            content_type = "text/plain; charset=utf-8"
        headers = [("Content-Security-Policy", ARTIFACT_POLICY)]
        if viewer == "binary":
            headers.append(("Content-Disposition", f'attachment; filename="{artifact}"'))
        return Response(200, body, content_type, headers)

    def artifact_view(
        self, environ: Mapping[str, Any], principal: Principal, *where: str
    ) -> Response:
        """What the viewer needs, from the first MAX_PARSED_BYTES (+1, to know whether
        there is more): `size` is None for a larger artifact, which is not read further."""
        instance = _instance(_query(environ))
        _, chunks = self._artifact_chunks(principal, where, instance)
        data, complete = _first_bytes(chunks, artifacts.MAX_PARSED_BYTES + 1)
        _close(chunks)
        ns, name, task, artifact = where
        viewer = artifacts.classify(artifact, data[: artifacts.MAX_PARSED_BYTES])
        url = f"{PREFIX}api/namespaces/{ns}/runs/{name}/artifacts/{task}/{artifact}"
        url += "" if instance is None else f"?instance={instance}"
        text = None
        if viewer in ("text", "markdown", "json", "html"):
            text = data[: artifacts.MAX_TEXT_BYTES].decode("utf-8", "replace")
        return json_response(
            200,
            {
                "name": artifact,
                "task": task,
                "instance": instance,
                "viewer": viewer,
                "size": len(data) if complete else None,
                "contentType": artifacts.content_type(viewer, data[:64]),
                "url": url,
                "data": artifacts.view_data(viewer, data),
                "text": text,
            },
        )

    def cancel(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        _name(ns, "namespace")
        _name(name, "run")
        self._require(principal, Access("patch", RUNS, ns, name=name))
        if self.kube.get_object(RUNS, ns, name) is None:
            raise HttpError(404, f"run {name} not found in namespace {ns}")
        self.kube.patch_object(RUNS, ns, name, {"spec": {"cancel": True}})
        return json_response(202, {"name": name})

    def rerun(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        _name(ns, "namespace")
        _name(name, "run")
        self._require(principal, Access("create", RUNS, ns))
        self._require(principal, Access("get", RUNS, ns))
        run, record, archived = self._run_object(ns, name)
        pinned = None if archived else self._pinned(ns, name)
        if pinned is None and isinstance((record or {}).get("pipelineSpec"), dict):
            # an archived run: its record keeps the spec and the pin's pipeline in status
            pinned = {
                "spec": record["pipelineSpec"],  # type: ignore[index]
                "pipeline": (run.get("status") or {}).get("pipeline") or {},
            }
        stamp = datetime.datetime.fromtimestamp(self.clock(), datetime.UTC).strftime("%Y%m%d%H%M%S")
        base = name[: 63 - len(stamp) - len("-rerun-")].rstrip("-.")
        new_name = f"{base}-rerun-{stamp}"
        if not self.kube.create_object(RUNS, ns, views.rerun_body(run, new_name, pinned)):
            raise HttpError(409, f"run {new_name} exists already; try again in a second")
        pinned_too = self._pin_rerun(ns, new_name, pinned)
        return json_response(201, {"name": new_name, "pinned": pinned_too})

    def _pin_rerun(self, ns: str, new_name: str, pinned: Mapping[str, Any] | None) -> bool:
        """Hands the original's pin to the re-run (views.rerun_pin). False when there was
        none to hand on, or the operator pinned the new run first (then its reference's
        version still keeps it to the original's spec, or fails it)."""
        created = self.kube.get_object(RUNS, ns, new_name)
        if pinned is None or created is None:
            return False
        if self.kube.create_config_map(ns, views.rerun_pin(created, pinned)):
            return True
        _log.warning("ui: re-run %s/%s was pinned by the operator first", ns, new_name)
        return False

    def compare(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        _name(ns, "namespace")
        self._require(principal, Access("get", RUNS, ns))
        names = [n for n in _query(environ).get("runs", "").split(",") if n]
        if not 2 <= len(names) <= 10:
            raise HttpError(400, "compare needs 2 to 10 runs: ?runs=a,b")
        details = [self._detail(principal, ns, _name(n, "run")) for n in names]
        metrics = [self._metrics(ns, detail) for detail in details]
        return json_response(
            200,
            views.compare(
                [d["run"] for d in details],
                [views.output_parameters(d) for d in details],
                metrics,
            ),
        )

    def _metrics(self, ns: str, detail: Mapping[str, Any]) -> dict[str, Any]:
        """`<task>.<artifact>.<key>` -> number, from the run's metrics artifacts."""
        found: dict[str, Any] = {}
        if self.store is None:
            return found
        name = detail["run"]["name"]
        for task, view in detail["tasks"].items():
            for artifact in view["outputs"]["artifacts"]:
                if artifact["instance"] is not None or "metric" not in artifact["name"]:
                    continue
                key = layout.output_artifact_key(
                    layout.node_prefix(ns, name, task, None), artifact["name"]
                )
                try:
                    chunks = self.store.get_chunks(key)
                except storage.NotFound:
                    continue
                data, _ = _first_bytes(chunks, artifacts.MAX_PARSED_BYTES + 1)
                _close(chunks)
                parsed = artifacts.view_data("metrics", data)
                for metric, value in ((parsed or {}).get("metrics") or {}).items():
                    found[f"{task}.{artifact['name']}.{metric}"] = value
        return found

    # --- the other resources -----------------------------------------------------------

    def _listed(self, principal: Principal, ns: str, plural: str) -> list[dict[str, Any]]:
        _name(ns, "namespace")
        self._require(principal, Access("list", plural, ns))
        return self.kube.list_objects(plural, ns)

    def _got(self, principal: Principal, ns: str, plural: str, name: str) -> dict[str, Any]:
        _name(ns, "namespace")
        _name(name, "name")
        self._require(principal, Access("get", plural, ns))
        found = self.kube.get_object(plural, ns, name)
        if found is None:
            raise HttpError(404, f"{plural} {name} not found in namespace {ns}")
        return found

    def experiments(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, EXPERIMENTS)
        counts: dict[str, int] = {}
        if self.auth.allowed(principal, Access("list", RUNS, ns)):
            for row in self.caches.rows(ns):
                counts[row["experiment"]] = counts.get(row["experiment"], 0) + 1
        rows = [views.experiment_row(e, counts.get(e["metadata"]["name"], 0)) for e in items]
        return json_response(200, {"items": rows})

    def pipelines(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, PIPELINES)
        return json_response(200, {"items": [views.pipeline_row(p) for p in items]})

    def pipeline(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        found = self._got(principal, ns, PIPELINES, name)
        repositories: dict[str, str] = {}
        if self.auth.allowed(principal, Access("list", GIT_SOURCES, ns)):
            for source in self.kube.list_objects(GIT_SOURCES, ns):
                repositories[source["metadata"]["name"]] = str(
                    (source.get("spec") or {}).get("url") or ""
                )
        return json_response(200, views.pipeline_detail(found, repositories))

    def recurring_runs(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, RECURRING_RUNS)
        return json_response(200, {"items": [views.recurring_row(r) for r in items]})

    def recurring_run(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        found = self._got(principal, ns, RECURRING_RUNS, name)
        history: list[Mapping[str, Any]] = []
        if self.auth.allowed(principal, Access("list", RUNS, ns)):
            history = views.filter_rows(
                [r for r in self.caches.rows(ns) if r["recurringRun"] == name]
            )
        return json_response(200, views.recurring_detail(found, history, self.clock()))

    def git_sources(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, GIT_SOURCES)
        return json_response(200, {"items": [views.gitsource_row(s) for s in items]})

    def git_source(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        found = self._got(principal, ns, GIT_SOURCES, name)
        return json_response(200, views.gitsource_detail(found))
