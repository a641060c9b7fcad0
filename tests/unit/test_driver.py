"""The one daemon loop (controllers/driver.py) on a simulated clock (tests/unit/simclock.py):
when each pass runs, and why, for wake-ups, the resync period, a pass's own next time,
each kind of error, and stopping."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence

import kopf
import pytest

from pipesync.controllers import driver, errors
from pipesync.controllers.conditions import Health
from tests.unit import simclock

Trigger = driver.Trigger
LOG = logging.getLogger("test-driver")
RESYNC = 30.0


class Flag:
    """kopf's `stopped`: false until set."""

    def __init__(self) -> None:
        self.set = False

    def __bool__(self) -> bool:
        return self.set


class Script:
    """A pass function that answers from a list (a Next, or an exception to raise) and
    records when it ran and why; after the last answer it stops the driver."""

    def __init__(self, answers: Sequence[driver.Next | Exception]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[float, Trigger]] = []
        self.stopped = Flag()
        self.event = asyncio.Event()

    async def __call__(self, trigger: Trigger) -> driver.Next:
        self.calls.append((asyncio.get_running_loop().time(), trigger))
        answer = self.answers.pop(0)
        if not self.answers:
            self.stopped.set = True
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def drive(self, *, settle: float = 0.0) -> None:
        await driver.drive(
            self,
            wakeup=lambda: self.event,
            resync=RESYNC,
            stopped=self.stopped,
            logger=LOG,
            settle=settle,
        )


def drive(answers: Sequence[driver.Next | Exception]) -> list[tuple[float, Trigger]]:
    script = Script(answers)
    simclock.run(script.drive())
    return script.calls


def transient() -> errors.Transient:
    return errors.Transient("FetchFailed", "the remote hung up")


# --- when passes run -----------------------------------------------------------------------


def test_the_first_pass_runs_at_once_then_one_per_resync_period() -> None:
    assert drive([driver.Next()] * 3) == [
        (0.0, Trigger.START),
        (30.0, Trigger.RESYNC),
        (60.0, Trigger.RESYNC),
    ]


def test_a_pass_that_asks_for_a_time_runs_again_then() -> None:
    assert drive([driver.Next(after=7.0), driver.Next(after=100.0), driver.Next()]) == [
        (0.0, Trigger.START),
        (7.0, Trigger.DUE),
        (107.0, Trigger.DUE),  # a pass's own time may lie beyond the resync period
    ]


def test_a_time_already_past_runs_the_next_pass_at_once() -> None:
    assert drive([driver.Next(after=-3.0), driver.Next()]) == [
        (0.0, Trigger.START),
        (0.0, Trigger.DUE),
    ]


def test_a_wake_up_runs_a_pass_at_once() -> None:
    script = Script([driver.Next(), driver.Next(), driver.Next()])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_at(12.5, script.event.set)
        await script.drive()

    simclock.run(main())
    assert script.calls == [(0.0, Trigger.START), (12.5, Trigger.WAKEUP), (42.5, Trigger.RESYNC)]


def test_a_wake_up_during_the_pass_runs_the_next_pass_at_once() -> None:
    script = Script([driver.Next(), driver.Next()])
    original = script.__call__

    async def waking(trigger: Trigger) -> driver.Next:
        result = await original(trigger)
        if trigger is Trigger.START:
            script.event.set()  # a watch event while the pass was running
        return result

    async def main() -> None:
        await driver.drive(
            waking, wakeup=lambda: script.event, resync=RESYNC, stopped=script.stopped, logger=LOG
        )

    simclock.run(main())
    assert script.calls == [(0.0, Trigger.START), (0.0, Trigger.WAKEUP)]


def test_settle_lets_a_burst_of_wake_ups_become_one_pass() -> None:
    script = Script([driver.Next(), driver.Next(), driver.Next()])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for moment in (10.0, 10.01, 10.02):
            loop.call_at(moment, script.event.set)
        await script.drive(settle=0.05)

    simclock.run(main())
    assert [when for when, _ in script.calls] == pytest.approx([0.0, 10.05, 40.1])
    assert [trigger for _, trigger in script.calls] == [
        Trigger.START,
        Trigger.WAKEUP,
        Trigger.RESYNC,
    ]


def test_a_pass_that_is_done_ends_the_loop() -> None:
    script = Script([driver.Next(), driver.Next(done=True), driver.Next()])
    simclock.run(script.drive())
    assert len(script.calls) == 2


# --- retries, by kind of error -------------------------------------------------------------


def test_transient_failures_back_off_from_5_s_doubling_up_to_60_s() -> None:
    failing = driver.Next(after=300.0, failure=transient())
    calls = drive([failing] * 7 + [driver.Next()])
    times = [when for when, _ in calls]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert {trigger for _, trigger in calls[1:]} == {Trigger.RETRY}


def test_a_raised_error_is_a_transient_failure_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        calls = drive([KeyError("spec"), errors.Transient("ApplyFailed", "409"), driver.Next()])
    assert calls == [(0.0, Trigger.START), (5.0, Trigger.RETRY), (15.0, Trigger.RETRY)]
    assert "pass failed" in caplog.text and "ApplyFailed: 409" in caplog.text


def test_a_success_resets_the_backoff() -> None:
    failing = driver.Next(failure=transient())
    calls = drive([failing, failing, driver.Next(after=1.0), failing, driver.Next()])
    assert [when for when, _ in calls] == [0.0, 5.0, 15.0, 16.0, 21.0]


def test_a_retry_never_comes_later_than_the_resync_or_the_passs_own_time() -> None:
    failing = driver.Next(after=8.0, failure=transient())  # a GitSource with interval 8 s
    calls = drive([failing] * 4 + [driver.Next()])
    assert [when for when, _ in calls] == [0.0, 5.0, 13.0, 21.0, 29.0]
    assert [trigger for _, trigger in calls] == [
        Trigger.START,
        Trigger.RETRY,
        Trigger.DUE,
        Trigger.DUE,
        Trigger.DUE,
    ]


def test_waiting_retries_after_its_own_delay() -> None:
    waiting = driver.Next(failure=errors.Waiting("PinPending", "an earlier Run's", delay=2.0))
    calls = drive([waiting, waiting, driver.Next()])
    assert calls == [(0.0, Trigger.START), (2.0, Trigger.RETRY), (4.0, Trigger.RETRY)]


def test_stalled_is_not_retried_only_a_wake_up_or_the_resync_runs_a_pass() -> None:
    stalled = driver.Next(failure=errors.Stalled("InvalidSchedule", "bad cron"))
    script = Script([stalled, stalled, driver.Next()])

    async def main() -> None:
        asyncio.get_running_loop().call_at(45.0, script.event.set)
        await script.drive()

    simclock.run(main())
    assert script.calls == [(0.0, Trigger.START), (30.0, Trigger.RESYNC), (45.0, Trigger.WAKEUP)]


def test_a_wake_up_cuts_a_retry_delay_short() -> None:
    script = Script([driver.Next(failure=transient()), driver.Next()])

    async def main() -> None:
        asyncio.get_running_loop().call_at(1.0, script.event.set)
        await script.drive()

    simclock.run(main())
    assert script.calls == [(0.0, Trigger.START), (1.0, Trigger.WAKEUP)]


# --- stopping ------------------------------------------------------------------------------


def test_the_stopped_flag_ends_the_loop_after_its_wait() -> None:
    script = Script([driver.Next(), driver.Next(), driver.Next()])

    async def main() -> float:
        asyncio.get_running_loop().call_at(10.0, setattr, script.stopped, "set", True)
        await script.drive()
        return asyncio.get_running_loop().time()

    assert simclock.run(main()) == 30.0
    assert script.calls == [(0.0, Trigger.START)]


def test_cancellation_stops_the_loop_at_once() -> None:
    script = Script([driver.Next()] * 10)

    async def main() -> None:
        task = asyncio.ensure_future(script.drive())
        await asyncio.sleep(75.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(100.0)  # no pass after the cancellation

    simclock.run(main())
    assert [when for when, _ in script.calls] == [0.0, 30.0, 60.0]


# --- the error family ----------------------------------------------------------------------


def test_each_error_maps_once_onto_kopf() -> None:
    stalled = errors.to_kopf(errors.Stalled("PinConflict", "not ours"), 5.0)
    assert isinstance(stalled, kopf.PermanentError) and "PinConflict: not ours" in str(stalled)
    waiting = errors.to_kopf(errors.Waiting("PinPending", "an earlier Run's", delay=2.0), 5.0)
    assert isinstance(waiting, kopf.TemporaryError) and waiting.delay == 2.0
    failed = errors.to_kopf(transient(), 20.0)
    assert isinstance(failed, kopf.TemporaryError) and failed.delay == 20.0


def test_each_error_knows_its_health_and_its_event() -> None:
    assert errors.Stalled("InvalidPath", "no 'x'").event() == ("Warning", "InvalidPath", "no 'x'")
    assert errors.Stalled.health is Health.STALLED
    assert errors.Waiting("PinPending", "later", delay=1.0).event() is None  # no news
    assert errors.Waiting.health is Health.PROGRESSING
    long = errors.Transient("FetchFailed", "x" * 5000).event()
    assert long is not None and long[:2] == ("Warning", "FetchFailed") and len(long[2]) == 1000
    assert errors.Transient.health is Health.FAILING


def test_the_retry_policy_doubles_up_to_its_cap() -> None:
    policy = driver.RetryPolicy(first=1.0, factor=3.0, most=20.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 3.0, 9.0, 20.0, 20.0]
