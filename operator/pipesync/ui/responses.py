"""What the UI answers: a response value, the errors that become one, and how it is sent.

Pure of any server: a handler returns a Response (or raises HttpError), and `send` hands
it to WSGI with the headers every answer carries. Artifacts and logs leave as chunks read
from the object store as they are sent, never whole in memory (the operator's memory
limit is shared with every controller): `first_bytes` holds only what a decision needs.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

_log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
#: Artifact bytes: no scripts, no plugins, an opaque origin even when opened directly.
ARTIFACT_POLICY = "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"

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


class HttpError(Exception):
    """A request refused with this status; the message goes to the client as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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


class Route(NamedTuple):
    """An API endpoint: a method and a path pattern (under PREFIX + "api/") whose groups,
    after the request and the person asking, are the handler's arguments."""

    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Response]
    #: Called with the request alone, before anyone is authenticated (the login).
    anonymous: bool = False


def json_response(status: int, value: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return Response(status, body, "application/json", headers)


def error_response(error: HttpError) -> Response:
    return json_response(error.status, {"error": error.message})


def send(response: Response, start_response: StartResponse) -> Iterable[bytes]:
    """Starts the WSGI response with the headers every answer carries; a page policy
    unless the handler chose its own (artifacts are sandboxed)."""
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


def first_bytes(chunks: Iterator[bytes], limit: int) -> tuple[bytes, bool]:
    """At least `limit` bytes from the start of a stream (or all of it: complete=True)."""
    head = bytearray()
    for chunk in chunks:
        head += chunk
        if len(head) >= limit:
            return bytes(head), False
    return bytes(head), True


def streamed(head: bytes, rest: Iterator[bytes], what: str) -> Iterator[bytes]:
    """The bytes already read, then the rest as it comes; a store that fails halfway ends
    the response short (its headers are sent already) with one line in the log."""
    try:
        if head:
            yield head
        yield from rest
    except Exception as error:
        _log.warning("ui: %s: the object store stopped halfway: %s", what, error)
    finally:
        close(rest)


def close(chunks: Iterator[bytes]) -> None:
    """Let go of a stream read only in part (its S3 connection goes back to the pool)."""
    close_stream = getattr(chunks, "close", None)
    if close_stream is not None:
        close_stream()
