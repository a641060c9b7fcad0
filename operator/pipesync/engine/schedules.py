"""Schedules: cron expressions (5 fields, or 6 with seconds first) and IANA time zones.

Six-field expressions put seconds first, as Kubeflow Pipelines and robfig/cron do.
"""

from __future__ import annotations

import zoneinfo

from croniter import croniter

MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def cron_problem(expression: str) -> str | None:
    """Why a cron expression is invalid, or None when it is fine."""
    text = expression.strip()
    if text in MACROS:
        return None
    fields = text.split()
    if len(fields) not in (5, 6):
        return (
            f"invalid cron expression {expression!r}: expected 5 fields "
            "(minute hour day-of-month month day-of-week) or 6 with seconds first, "
            f"got {len(fields)}"
        )
    try:
        valid = croniter.is_valid(text, second_at_beginning=len(fields) == 6, strict=True)
    except (ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        return f"invalid cron expression {expression!r}"
    return None


def timezone_problem(name: str) -> str | None:
    """Why a time zone name is not a known IANA zone, or None."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
    return None
