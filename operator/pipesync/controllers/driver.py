"""One loop for every daemon-driven kind (Runs, RecurringRuns, GitSources): run a pass,
then sleep until whichever comes first: a wake-up (a watch handler or the webhook set the
object's event), the time the pass asked for, a retry's delay, or the resync period.

Why one driver: each kind had its own copy of this loop, and the copies had drifted into
three retry policies (kopf's default 60 s, 5 s, 10 s). Why not kopf's own daemon retries
(a TemporaryError raised out of the daemon): kopf sleeps them without looking at the
object's wake-up event and then restarts the daemon, dropping what the loop keeps (a
Run's pod view). So the driver follows kopf's errors itself (errors.to_kopf): a
TemporaryError's delay is the longest wait before the next pass, a PermanentError means
no retry, only a wake-up or the resync period.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import kopf

from pipesync.controllers import errors


class Trigger(enum.Enum):
    """Why a pass runs: a pass may skip work that only a resync needs (a Run's pod list)."""

    START = "start"  # the daemon's first pass
    WAKEUP = "wakeup"  # the object's wake-up event was set
    DUE = "due"  # the time the previous pass asked for has come
    RETRY = "retry"  # the delay after a failed pass ran out
    RESYNC = "resync"  # nothing else came within the resync period


@dataclasses.dataclass(frozen=True)
class Next:
    """What a pass tells the driver."""

    done: bool = False  # nothing left to do for the object: the loop ends
    after: float | None = None  # seconds until the next pass; None: the resync period
    #: The error the pass ended on; it has written the object's status and Events.
    failure: errors.PassError | None = None


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Delays after consecutive Transient failures: first, first * factor, ... up to most.

    One policy for every kind: soon after a blip (5 s), backing off while an outage lasts
    (so N failing objects do not hammer a struggling API server or git host every few
    seconds), and never more than kopf's own default of 60 s apart."""

    first: float = 5.0
    factor: float = 2.0
    most: float = 60.0

    def delay(self, failures: int) -> float:
        return float(min(self.first * self.factor ** max(failures - 1, 0), self.most))


RETRY = RetryPolicy()


class Stopped(Protocol):
    """kopf's `stopped` flag: true once the object is gone or the operator stops."""

    def __bool__(self) -> bool: ...


class Wakeups:
    """One asyncio.Event per object, set by watch handlers running in the event loop (an
    Event set from another thread would not wake its waiter until something else woke
    the loop)."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], asyncio.Event] = {}

    def event(self, key: tuple[str, str]) -> asyncio.Event:
        return self._events.setdefault(key, asyncio.Event())

    def wake(self, key: tuple[str, str]) -> None:
        event = self._events.get(key)
        if event is not None:
            event.set()

    def forget(self, key: tuple[str, str]) -> None:
        self._events.pop(key, None)


PassFunction = Callable[[Trigger], Awaitable[Next]]
Logger = logging.Logger | logging.LoggerAdapter[Any]


async def drive(
    run_pass: PassFunction,
    *,
    wakeup: Callable[[], asyncio.Event],
    resync: float,
    stopped: Stopped,
    logger: Logger,
    retry: RetryPolicy = RETRY,
    settle: float = 0.0,
) -> None:
    """Runs passes until one says it is done or kopf stops the daemon (the flag, or a
    cancellation). `wakeup` is called before each pass: a kind may hand out a new event
    (the webhook's triggers do). `settle`: a pause after each wait, so a burst of watch
    events becomes one pass. A pass that raises is a Transient failure (logged through
    kopf's object logger, which also posts it as an Event)."""
    trigger = Trigger.START
    failures = 0  # consecutive Transient failures
    while not stopped:
        event = wakeup()
        event.clear()
        try:
            outcome = await run_pass(trigger)
        except errors.PassError as error:
            logger.warning("pass failed: %s: %s", error.reason, error.message)
            outcome = Next(failure=error)
        except Exception as error:  # a bug or an untyped API error: retry, say why
            logger.exception("pass failed")
            outcome = Next(failure=errors.Transient(type(error).__name__, str(error)))
        if outcome.done:
            return
        failures = failures + 1 if isinstance(outcome.failure, errors.Transient) else 0
        delay, timed_out = next_wait(outcome, failures, resync, retry)
        trigger = Trigger.WAKEUP if await _woken(event, delay) else timed_out
        if settle:
            await asyncio.sleep(settle)


def next_wait(
    outcome: Next, failures: int, resync: float, retry: RetryPolicy
) -> tuple[float, Trigger]:
    """How long to wait for a wake-up, and what the next pass is if none comes. A retry
    never comes later than the pass's own next time or the resync would."""
    regular = resync if outcome.after is None else max(outcome.after, 0.0)
    regular_trigger = Trigger.RESYNC if outcome.after is None else Trigger.DUE
    if outcome.failure is None:
        return regular, regular_trigger
    decided = errors.to_kopf(outcome.failure, retry.delay(failures))
    if isinstance(decided, kopf.PermanentError) or decided.delay is None:
        return regular, regular_trigger
    if decided.delay < regular:
        return decided.delay, Trigger.RETRY
    return regular, regular_trigger


async def _woken(event: asyncio.Event, timeout: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout=timeout)
    except TimeoutError:
        return False
    return True
