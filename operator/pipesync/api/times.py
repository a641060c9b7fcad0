"""Kubernetes timestamps (RFC 3339 in UTC, whole seconds) to and from Unix time.

Status fields, conditions, pod states and run records all carry them; one reader and one
writer keep every controller, the metrics and the S3 mirror agreeing on their meaning.
"""

from __future__ import annotations

import datetime
from typing import Any


def timestamp(moment: float | None = None) -> str:
    """RFC 3339 in UTC with seconds, as Kubernetes writes times (now when no moment)."""
    when = (
        datetime.datetime.now(datetime.UTC)
        if moment is None
        else datetime.datetime.fromtimestamp(moment, datetime.UTC)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def instant(text: Any) -> float | None:
    """Unix time of an RFC 3339 timestamp; None when absent or malformed. A time without
    an offset is UTC (Kubernetes writes `Z`)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
