"""What the UI reads from a request, each part checked before it is used.

Nothing a client sends is read unbounded: a body needs a Content-Length no larger than
MAX_BODY, checked before a byte is read. Path and query parts are validated as Kubernetes
names (or artifact names, numbers) before they reach an API call or an object-store key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from pipesync.ui.responses import HttpError

#: The largest request body (JSON only: a login is a token of a few KB).
MAX_BODY = 32 * 1024
NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
PART = re.compile(r"^[A-Za-z0-9_]([-A-Za-z0-9_.]{0,251})?$")


def name(value: str, what: str) -> str:
    """`value` when it is a Kubernetes name; `what` says which in the 400 answer."""
    if not NAME.match(value):
        raise HttpError(400, f"invalid {what} {value!r}: expected a Kubernetes name")
    return value


def part(value: str, what: str) -> str:
    """`value` when it may be one part of an object-store key (an artifact name)."""
    if not PART.match(value) or ".." in value:
        raise HttpError(400, f"invalid {what} {value!r}")
    return value


def instance(query: Mapping[str, str]) -> int | None:
    """The forEach instance asked for (`?instance=`), None for the task itself."""
    text = query.get("instance", "")
    if text in ("", "null"):
        return None
    if not text.isdigit() or len(text) > 9:
        raise HttpError(400, f"invalid instance {text!r}: expected a number")
    return int(text)


def attempt(query: Mapping[str, str]) -> int:
    """The attempt asked for (`?attempt=`, the first by default)."""
    text = query.get("attempt", "1")
    if not text.isdigit() or len(text) > 6:
        raise HttpError(400, f"invalid attempt {text!r}")
    return int(text)


def query(environ: Mapping[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))


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
