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
        return f"invalid cron expression {expression!r}: {_bad_field(fields)}"
    return None


_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_RANGES = ("0-59", "0-23", "1-31", "1-12 or JAN-DEC", "0-6 or SUN-SAT")


def _bad_field(fields: list[str]) -> str:
    """Which field is wrong: each is tried alone, the others replaced by `*`."""
    names = ("second", *_FIELDS) if len(fields) == 6 else _FIELDS
    ranges = ("0-59", *_RANGES) if len(fields) == 6 else _RANGES
    for index, field in enumerate(fields):
        alone = ["*"] * len(fields)
        alone[index] = field
        try:
            valid = croniter.is_valid(
                " ".join(alone), second_at_beginning=len(fields) == 6, strict=True
            )
        except (ValueError, TypeError, KeyError):
            valid = False
        if not valid:
            return f"the {names[index]} field {field!r} is not valid (expected {ranges[index]})"
    return "the fields contradict each other (e.g. a day that no month has)"


def timezone_problem(name: str) -> str | None:
    """Why a time zone name is not a known IANA zone, or None."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin or UTC"
    return None
