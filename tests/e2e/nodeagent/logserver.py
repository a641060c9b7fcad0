"""The kubelet's HTTPS port, reduced to what `kubectl logs` needs.

kube-apiserver answers `GET pods/{name}/log` by calling
``https://<node InternalIP>:<kubeletEndpoint.Port>/containerLogs/{ns}/{pod}/{container}``
and streaming the answer back. This server answers that path (with the query
parameters the API server forwards) and /healthz.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .logstore import LogQuery, LogRegistry, read

log = logging.getLogger(__name__)


def _int_param(params: dict[str, list[str]], name: str) -> int | None:
    values = params.get(name)
    return int(values[0]) if values and values[0] != "" else None


def _bool_param(params: dict[str, list[str]], name: str) -> bool:
    values = params.get(name) or []
    return bool(values) and values[0].lower() in ("true", "1")


def parse_query(query: str) -> LogQuery:
    params = parse_qs(query)
    return LogQuery(
        follow=_bool_param(params, "follow"),
        tail_lines=_int_param(params, "tailLines"),
        timestamps=_bool_param(params, "timestamps"),
        previous=_bool_param(params, "previous"),
        limit_bytes=_int_param(params, "limitBytes"),
        since_seconds=_int_param(params, "sinceSeconds"),
    )


class _Handler(BaseHTTPRequestHandler):
    server: KubeletServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _plain(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts == ["healthz"]:
            self._plain(200, "ok")
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._plain(404, f"not found: {url.path}")
            return
        _, namespace, pod, container = parts
        try:
            query = parse_query(url.query)
        except ValueError as err:
            self._plain(400, f"bad query: {err}")
            return
        found = self.server.registry.find(namespace, pod, container)
        path = found.run_path(query.previous) if found else None
        if found is None or path is None:
            what = "previous terminated container" if found and query.previous else "container"
            self._plain(404, f"{what} {container!r} of pod {namespace}/{pod} not found")
            return
        # The newest run follows until it ends; a previous run has already ended.
        finished = found.finished if not query.previous else None
        self._stream(read(path, query, finished))

    def _stream(self, chunks: Iterator[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for chunk in chunks:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            log.debug("log reader went away")  # the client stopped following
            self.close_connection = True


class KubeletServer(ThreadingHTTPServer):
    """One node's kubelet port, served from a background thread."""

    daemon_threads = True

    def __init__(self, registry: LogRegistry, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.registry = registry
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        # The handshake then happens in the handler thread, so one slow client
        # cannot stall the accept loop.
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(
            target=self.serve_forever, name="kubelet-https", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
