"""Kubernetes timestamps (RFC 3339 in UTC, whole seconds) to and from Unix time.

Status fields, conditions, pod states and run records all carry them; one reader and one
writer keep every controller, the metrics and the S3 mirror agreeing on their meaning.
The same reader parses the times users write (a RecurringRun's startTime and endTime),
so what the schema accepts, `pipesync validate` checks and the scheduler reads agree.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

#: RFC 3339 date-time: what the schemas' "date-time" format accepts (with an offset;
#: 'T' and 'Z' in either case, as RFC 3339 allows).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def timestamp(moment: float | None = None) -> str:
    """RFC 3339 in UTC with seconds, as Kubernetes writes times (now when no moment)."""
    when = (
        datetime.datetime.now(datetime.UTC)
        if moment is None
        else datetime.datetime.fromtimestamp(moment, datetime.UTC)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def moment(text: Any) -> datetime.datetime | None:
    """The (time-zone aware) moment of an RFC 3339 timestamp; None when absent or
    malformed. A time without an offset is UTC (Kubernetes writes `Z`); lower-case 't' and
    'z' are read as RFC 3339 allows (the schemas accept them)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=datetime.UTC)


def instant(text: Any) -> float | None:
    """Unix time of an RFC 3339 timestamp; None when absent or malformed (see `moment`)."""
    parsed = moment(text)
    return None if parsed is None else parsed.timestamp()


def is_rfc3339(text: str) -> bool:
    """Whether the text is a strict RFC 3339 date-time (the schemas' "date-time" format:
    an offset is required, and every field is in range: no month 13, no second 61)."""
    return bool(_RFC3339.match(text)) and moment(text) is not None
