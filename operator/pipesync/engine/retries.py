"""When a failed attempt is tried again, and after how long."""

from __future__ import annotations

import enum

from pipesync.api.model import Retry, RetryPolicy


class FailureKind(enum.StrEnum):
    FAILED = "Failed"  # the program exited non-zero, or did not write its outputs
    TIMED_OUT = "TimedOut"  # it ran past its timeout
    ERROR = "Error"  # it could not be started or was lost (node gone, evicted)
    CANCELLED = "Cancelled"  # stopped on request; never retried


def is_retryable(retry: Retry, attempts: int, failure: FailureKind) -> bool:
    """Whether another attempt follows `attempts` finished ones ending in `failure`."""
    if attempts > retry.limit or failure is FailureKind.CANCELLED:
        return False
    if retry.policy is RetryPolicy.ALWAYS:
        return True
    return failure in (FailureKind.FAILED, FailureKind.TIMED_OUT)


def backoff_seconds(retry: Retry, attempts: int) -> float:
    """Delay before attempt `attempts + 1`: backoff * factor^(n-1), capped by maxBackoff."""
    if retry.backoff_seconds <= 0:
        return 0.0
    exponent = max(attempts - 1, 0)
    try:
        delay = retry.backoff_seconds * retry.factor**exponent
    except OverflowError:
        delay = float("inf")
    if retry.max_backoff_seconds is not None:
        delay = min(delay, retry.max_backoff_seconds)
    return float(delay)
