"""The operator's HTTP endpoint: /metrics for Prometheus, /healthz for probes, and extra
routes mounted by prefix (the push webhook at /hooks/).

Why not prometheus_client.start_http_server: it answers every path with the metrics, so a
typo in a probe path would pass; here unknown paths are 404 and /healthz is a plain "ok".
The server runs in daemon threads and never touches the event loop kopf runs on.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

DEFAULT_ADDRESS = "0.0.0.0:8080"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung scrape never keeps the process alive


class _IPv6Server(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    #: Seconds a client may stay silent: the webhook faces the network, and a client that
    #: opens a request and never finishes it must not hold a thread for ever.
    timeout = 30

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
