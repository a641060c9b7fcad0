"""The operator's HTTP endpoint: /metrics for Prometheus, /healthz for probes, and extra
routes mounted by prefix (the push webhook at /hooks/).

Why not prometheus_client.start_http_server: it answers every path with the metrics, so a
typo in a probe path would pass; here unknown paths are 404 and /healthz is a plain "ok".
The server runs in daemon threads and never touches the event loop kopf runs on.

Why bounded: the endpoint faces the network (webhooks from git hosts, the web UI), and a
thread per connection with no cap lets a crowd of slow clients exhaust memory. At most
MAX_HANDLERS requests are served at once (the next ones get a 503 at once), and a request
must arrive whole within REQUEST_SECONDS, however slowly its bytes trickle in. One client
address holds at most MAX_PER_CLIENT of those slots, so a single misbehaving pod cannot
starve the kubelet's probes, Prometheus or a git host's webhook.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

DEFAULT_ADDRESS = "0.0.0.0:8080"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


#: Requests served at the same time; more wait for none of them: they get a 503.
MAX_HANDLERS = 32
#: Of those, the most one client address may hold.
MAX_PER_CLIENT = 8
#: Seconds a client has to send its whole request (line, headers and body).
REQUEST_SECONDS = 30.0
#: Seconds one send or receive may block (a client that stops reading a download).
IO_SECONDS = 30.0
_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n"
    b"Retry-After: 1\r\nConnection: close\r\n\r\nserver busy.\r\n"
)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung scrape never keeps the process alive
    max_handlers = MAX_HANDLERS
    max_per_client = MAX_PER_CLIENT

    def server_activate(self) -> None:
        super().server_activate()
        self._lock = threading.Lock()
        self._busy = 0
        self._per_client: dict[str, int] = {}

    def _take_slot(self, client: str) -> bool:
        with self._lock:
            held = self._per_client.get(client, 0)
            if self._busy >= self.max_handlers or held >= self.max_per_client:
                return False
            self._busy += 1
            self._per_client[client] = held + 1
            return True

    def _free_slot(self, client: str) -> None:
        with self._lock:
            self._busy -= 1
            held = self._per_client.pop(client) - 1
            if held:
                self._per_client[client] = held

    def process_request(self, request: Any, client_address: Any) -> None:
        client = str(client_address[0]) if client_address else ""
        if not self._take_slot(client):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._free_slot(client)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._free_slot(str(client_address[0]) if client_address else "")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or hung up is routine on a network-facing port: no
        traceback on stderr for it; anything else is a bug and keeps the default report."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def _refuse(self, request: socket.socket) -> None:
        """Answered on the accepting thread, so it must never block: a short timeout."""
        try:
            request.settimeout(1.0)
            request.sendall(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _DeadlineReader:
    """The request's bytes, each read bounded by what is left of REQUEST_SECONDS.

    A socket timeout alone bounds one silence, not the whole request: a client sending a
    byte every 29 s would hold its thread for ever. Every read here does at most one
    receive (peek/read1), with the socket timeout set to the time left."""

    def __init__(self, raw: Any, connection: socket.socket, deadline: float) -> None:
        self.raw, self.connection, self.deadline = raw, connection, deadline

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.connection.settimeout(min(left, IO_SECONDS))

    def readline(self, limit: int = -1) -> bytes:
        parts: list[bytes] = []
        total = 0
        while limit < 0 or total < limit:
            self._arm()
            available = self.raw.peek(1)
            if not available:
                break
            want = len(available) if limit < 0 else min(len(available), limit - total)
            newline = available.find(b"\n", 0, want)
            part = self.raw.read(want if newline < 0 else newline + 1)
            parts.append(part)
            total += len(part)
            if newline >= 0:
                break
        return b"".join(parts)

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        total = 0
        while size < 0 or total < size:
            self._arm()
            part = self.raw.read1(65536 if size < 0 else min(65536, size - total))
            if not part:
                break
            parts.append(part)
            total += len(part)
        return b"".join(parts)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        while line := self.readline():
            lines.append(line)
        return lines

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    def close(self) -> None:
        self.raw.close()


class _Writer:
    """The response: each send may block IO_SECONDS, whatever the request's reads left
    on the socket."""

    def __init__(self, raw: Any, connection: socket.socket) -> None:
        self.raw, self.connection = raw, connection

    def write(self, data: bytes) -> int:
        self.connection.settimeout(IO_SECONDS)
        written: int = self.raw.write(data)
        return written

    def flush(self) -> None:
        self.raw.flush()

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)

    def close(self) -> None:
        self.raw.close()


class _QuietHandler(WSGIRequestHandler):
    #: Seconds a client may stay silent: the webhook faces the network, and a client that
    #: opens a request and never finishes it must not hold a thread for ever.
    timeout = IO_SECONDS

    def setup(self) -> None:
        super().setup()
        deadline = time.monotonic() + REQUEST_SECONDS
        self.rfile = _DeadlineReader(self.rfile, self.connection, deadline)  # type: ignore[assignment]
        self.wfile = _Writer(self.wfile, self.connection)  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per scrape would drown the operator's log


def parse_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (every interface) as (host, port)."""
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)  # "" binds every interface


def application(
    registry: CollectorRegistry, routes: Mapping[str, WsgiApp] | None = None
) -> Callable[[dict[str, Any], StartResponse], Any]:
    """/metrics, /healthz, and `routes`: path prefix (e.g. "/hooks/") -> WSGI app."""
    metrics = make_wsgi_app(registry)
    extra = dict(routes or {})

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        for prefix, routed in extra.items():
            if path.startswith(prefix):
                return routed(environ, start_response)
        if path == "/metrics":
            result: Iterable[bytes] = metrics(environ, start_response)
            return result
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


def serve(
    registry: CollectorRegistry,
    address: str = DEFAULT_ADDRESS,
    routes: Mapping[str, WsgiApp] | None = None,
) -> WSGIServer:
    """Serves in a daemon thread; returns the server (its `server_port` is the bound port,
    useful with port 0). Raises OSError at once when the address cannot be bound."""
    return serve_app(application(registry, routes), address, name="pipesync-metrics")


def serve_app(app: WsgiApp, address: str, *, name: str = "pipesync-http") -> WSGIServer:
    """Any WSGI app, served the same way (daemon threads, quiet, timeouts)."""
    host, port = parse_address(address)
    server_class = _IPv6Server if ":" in host else _Server
    server = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return server
