"""When a RecurringRun starts runs: the pure scheduling decision, with the clock injected.

Why a separate pure module: "never double-fire, never storm, never silently skip" is a
property of one function of (spec, status cursor, active runs, now). Kept free of I/O it
is tested over years of simulated time in milliseconds, and the controller only carries
its decision out.

Rules (docs/recurring-runs.md is the user's version):
- Times are whole UTC seconds. A cron expression is evaluated on the wall clock of its
  time zone: a wall time that does not exist (the hour skipped when clocks go forward)
  does not fire; a wall time that exists twice (clocks go back) fires once, at its first
  occurrence. So `30 2 * * *` in Europe/Berlin does not fire on the last Sunday of
  March, and fires once on the last Sunday of October.
- An interval schedule fires at anchor + k * interval: the anchor is startTime (k >= 0:
  startTime itself fires) or, without one, the creation time (k >= 1: nothing fires at
  the moment of creation, as with cron). Interval schedules ignore time zones.
- Nothing fires before the object existed, before startTime or after endTime.
- The status keeps a cursor: every scheduled time up to it has been decided (fired,
  skipped or missed) and counted. Each pass decides the times in (cursor, now].
- Of several times due at once (the operator was down or busy), catch-up decides:
  None fires only the newest and only if it is at most `grace` late, Latest fires the
  newest, All fires the newest `maxRuns`; the others are counted as missed. A time later
  than startingDeadlineSeconds is missed whatever the policy.
- Concurrency then decides each time to fire: Forbid starts it only when no run is
  active, Allow while fewer than maxConcurrency (default 10) are active, Replace
  cancels the oldest active run when maxConcurrency (default 1) are active. A time
  not started for concurrency is counted as skipped.
- Suspended: due times are counted as skipped (reason Suspended) and never launched later.
- A time that already has a Run (named from the time, so a crashed pass left it) counts
  as fired and is never started again.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import functools
import math
import threading
import zoneinfo
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from croniter import croniter

from pipesync.api import durations, times
from pipesync.engine import schedules

UTC = datetime.UTC
DAY = 86400

# Skip reasons: the time was due on time but policy did not start it.
SUSPENDED = "Suspended"
#: Due while the pipeline it names did not exist: nothing is created, the time is skipped.
PIPELINE_NOT_FOUND = "PipelineNotFound"
CONCURRENCY_FORBID = "ConcurrencyForbid"
CONCURRENCY_LIMIT = "ConcurrencyLimit"
REPLACED = "Replaced"
SKIP_REASONS = (SUSPENDED, CONCURRENCY_FORBID, CONCURRENCY_LIMIT, REPLACED)
# Miss reasons: the time came too late to be started (down, busy, deadline).
DEADLINE_EXCEEDED = "DeadlineExceeded"
CATCHUP_NONE = "CatchupNone"
CATCHUP_LATEST = "CatchupLatest"
CATCHUP_MAX_RUNS = "CatchupMaxRuns"
MISS_REASONS = (DEADLINE_EXCEEDED, CATCHUP_NONE, CATCHUP_LATEST, CATCHUP_MAX_RUNS)

#: With catch-up None and no startingDeadlineSeconds: how late the newest time may be.
DEFAULT_GRACE_SECONDS = 60
#: Defaults of maxConcurrency by policy, and of maxRuns for catch-up All.
DEFAULT_ALLOW_CONCURRENCY = 10
DEFAULT_REPLACE_CONCURRENCY = 1
DEFAULT_CATCHUP_MAX_RUNS = 10
#: Backward and forward searches give up after this many candidate times (a cron that
#: matches nothing, e.g. 30 February, must not spin).
_SEARCH_LIMIT = 200_000


class ScheduleError(ValueError):
    """The spec cannot be scheduled; the message names the field and the problem."""


class Schedule(Protocol):
    def next_after(self, t: int) -> int | None:
        """The first scheduled time strictly after t."""

    def last_at_or_before(self, t: int) -> int | None:
        """The newest scheduled time at or before t."""

    def count(self, a: int, b: int) -> int:
        """How many scheduled times lie in (a, b]."""


@dataclasses.dataclass(frozen=True)
class IntervalSchedule:
    anchor: int
    every: int
    first: int  # the smallest k: 0 when the anchor fires, 1 when it does not

    def _k_at_or_before(self, t: int) -> int:
        return (t - self.anchor) // self.every

    def next_after(self, t: int) -> int | None:
        k = max(self.first, self._k_at_or_before(t) + 1)
        return self.anchor + k * self.every

    def last_at_or_before(self, t: int) -> int | None:
        k = self._k_at_or_before(t)
        return None if k < self.first else self.anchor + k * self.every

    def count(self, a: int, b: int) -> int:
        if b <= a:
            return 0
        upto_b = max(0, self._k_at_or_before(b) - self.first + 1)
        upto_a = max(0, self._k_at_or_before(a) - self.first + 1)
        return upto_b - upto_a


class CronSchedule:
    """A cron expression on the wall clock of an IANA zone (see the module's DST rule)."""

    def __init__(self, expression: str, timezone: str) -> None:
        problem = schedules.cron_problem(expression)
        if problem:
            raise ScheduleError(f"spec.schedule.cron: {problem}")
        problem = schedules.timezone_problem(timezone)
        if problem:
            raise ScheduleError(f"spec.schedule.timezone: {problem}")
        self.expression = expression.strip()
        self.seconds_first = len(self.expression.split()) == 6
        self.zone = zoneinfo.ZoneInfo(timezone)
        # Expanding an expression costs about a millisecond; one iterator is reused,
        # under a lock: the object is cached and shared by the controller's threads.
        self._iterator = croniter(self.expression, second_at_beginning=self.seconds_first)
        self._lock = threading.Lock()
        expanded = self._iterator.expanded
        seconds = expanded[5] if self.seconds_first else [0]
        # Seconds of the day a matching day fires at: cron's time fields do not depend
        # on the day, which makes counting long gaps arithmetic instead of iteration.
        self._slots = sorted(
            h * 3600 + m * 60 + s
            for h in _field(expanded[1], 24)
            for m in _field(expanded[0], 60)
            for s in _field(seconds, 60)
        )

    # --- wall clock <-> UTC -----------------------------------------------------------

    def _utc(self, wall: datetime.datetime) -> int | None:
        """The instant a wall time fires at: None in a gap, the first one when repeated."""
        aware = wall.replace(tzinfo=self.zone, fold=0)
        if aware.astimezone(UTC).astimezone(self.zone).replace(tzinfo=None) != wall:
            return None  # skipped by a forward jump of the clocks
        return int(aware.timestamp())

    def _wall(self, t: int) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(t, self.zone).replace(tzinfo=None)

    def _wall_limit(self, t: int) -> datetime.datetime:
        """The newest wall time whose firing instant is at or before t."""
        local = datetime.datetime.fromtimestamp(t, self.zone)
        wall = local.replace(tzinfo=None)
        if local.fold == 0 or not self._ambiguous(wall):
            return wall
        # In the second pass of a repeated hour every wall time of that hour has
        # already fired (at its first pass): the limit is that hour's last second.
        lo, hi = 0, 4 * 3600  # seconds after `wall`: ambiguous at lo, not at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._ambiguous(wall + datetime.timedelta(seconds=mid)):
                lo = mid
            else:
                hi = mid
        return wall + datetime.timedelta(seconds=lo)

    def _ambiguous(self, wall: datetime.datetime) -> bool:
        first = wall.replace(tzinfo=self.zone, fold=0).utcoffset()
        second = wall.replace(tzinfo=self.zone, fold=1).utcoffset()
        return first != second and self._utc(wall) is not None

    # --- Schedule ---------------------------------------------------------------------

    def next_after(self, t: int) -> int | None:
        with self._lock:
            return self._next_after(t)

    def _next_after(self, t: int) -> int | None:
        it = self._iterator
        it.set_current(self._wall(t), force=True)
        for _ in range(_SEARCH_LIMIT):
            try:
                wall = it.get_next(datetime.datetime)
            except (ValueError, KeyError, OverflowError):
                return None
            fires = self._utc(wall)
            if fires is not None and fires > t:
                return fires
        return None

    def last_at_or_before(self, t: int) -> int | None:
        with self._lock:
            return self._last_at_or_before(t)

    def _last_at_or_before(self, t: int) -> int | None:
        it = self._iterator
        it.set_current(self._wall_limit(t) + datetime.timedelta(seconds=1), force=True)
        for _ in range(_SEARCH_LIMIT):
            try:
                wall = it.get_prev(datetime.datetime)
            except (ValueError, KeyError, OverflowError):
                return None
            fires = self._utc(wall)
            if fires is not None and fires <= t:
                return fires
        return None

    def count(self, a: int, b: int) -> int:
        if b <= a:
            return 0
        low, high = self._wall_limit(a), self._wall_limit(b)
        total = 0
        day = low.date()
        while day <= high.date():
            if self._day_matches(day):
                lo = _second_of_day(low) if day == low.date() else -1
                hi = _second_of_day(high) if day == high.date() else DAY - 1
                total += self._slots_in(lo, hi)
                for gap_start, gap_end in self._gaps(day):
                    # Wall times in a gap do not exist: they never fire.
                    total -= self._slots_in(max(lo, gap_start - 1), min(hi, gap_end - 1))
            day += datetime.timedelta(days=1)
        return total

    def _slots_in(self, lo: int, hi: int) -> int:
        """Slots s with lo < s <= hi."""
        if hi <= lo:
            return 0
        return bisect.bisect_right(self._slots, hi) - bisect.bisect_right(self._slots, lo)

    def _day_matches(self, day: datetime.date) -> bool:
        return _day_matches(self.expression, self.seconds_first, day)

    def _gaps(self, day: datetime.date) -> list[tuple[int, int]]:
        """Wall-clock seconds [start, end) of `day` that do not exist (clocks forward)."""
        midnight = datetime.datetime.combine(day, datetime.time())
        before = midnight.replace(tzinfo=self.zone).utcoffset()
        after = (midnight + datetime.timedelta(days=1)).replace(tzinfo=self.zone).utcoffset()
        if before is None or after is None or after <= before:
            return []
        # Binary search for the transition instant within the day.
        lo = int(midnight.replace(tzinfo=self.zone).timestamp())
        hi = lo + DAY + 7200
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.datetime.fromtimestamp(mid, self.zone).utcoffset() == before:
                lo = mid
            else:
                hi = mid
        start = _second_of_day(datetime.datetime.fromtimestamp(hi, UTC).replace(tzinfo=None))
        start += int(before.total_seconds())
        start %= DAY
        return [(start, start + int((after - before).total_seconds()))]


@functools.lru_cache(maxsize=4096)
def _day_matches(expression: str, seconds_first: bool, day: datetime.date) -> bool:
    fields = expression.split()
    if len(fields) >= 5 and fields[-3:] == ["*", "*", "*"]:
        return True  # every day: no search needed
    start = datetime.datetime.combine(day, datetime.time()) - datetime.timedelta(seconds=1)
    try:
        first = croniter(expression, start, second_at_beginning=seconds_first).get_next(
            datetime.datetime
        )
    except (ValueError, KeyError, OverflowError):
        return False
    return bool(first.date() == day)


def _field(values: Sequence[Any], size: int) -> list[int]:
    if list(values) == ["*"]:
        return list(range(size))
    return [int(v) for v in values]


def _second_of_day(wall: datetime.datetime) -> int:
    return wall.hour * 3600 + wall.minute * 60 + wall.second


@functools.lru_cache(maxsize=1024)
def cron_schedule(expression: str, timezone: str) -> CronSchedule:
    """Parsed once per (expression, zone): passes run every few seconds per object."""
    return CronSchedule(expression, timezone)


def fire_times(schedule: Schedule, after: int, count: int, end: int | None = None) -> list[int]:
    """The next `count` times a schedule fires after `after`, none after `end` (fewer when
    the schedule ends first): the one loop over next_after that every preview uses."""
    found: list[int] = []
    cursor = after
    while len(found) < count:
        following = schedule.next_after(cursor)
        if following is None or (end is not None and following > end):
            break
        found.append(following)
        cursor = following
    return found


def upcoming(spec: RecurringSpec, now: int, count: int) -> list[int]:
    """The next `count` times a RecurringRun fires after `now`, by the rules its
    decisions follow (nothing before `earliest`, nothing after `end`): what the UI and
    `pipesync diff` show."""
    return fire_times(spec.schedule, max(now, spec.earliest - 1), count, spec.end)


def next_fire_times(
    expression: str, timezone: str, after: datetime.datetime, count: int = 3
) -> list[datetime.datetime]:
    """The next `count` fire times of a cron schedule after `after`, in its zone."""
    zone = zoneinfo.ZoneInfo(timezone)
    found = fire_times(cron_schedule(expression, timezone), int(after.timestamp()), count)
    return [datetime.datetime.fromtimestamp(moment, zone) for moment in found]


def seconds_first_warning(expression: str, timezone: str, after: datetime.datetime) -> str | None:
    """A note for a six-field cron: its first field is seconds (as in Kubeflow Pipelines
    and robfig/cron), so `0 2 * * * *` fires at minute 2 of every hour, not at 02:00."""
    fields = expression.split()
    if len(fields) != 6:
        return None
    try:
        fires = next_fire_times(expression, timezone, after)
    except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError):
        return None
    shown = ", ".join(t.isoformat() for t in fires)
    return (
        f"cron {expression!r} has 6 fields: the first is seconds (second minute hour "
        f"day-of-month month day-of-week), so it fires at {shown}, ...; if minute comes "
        f"first, write 5 fields: {' '.join(fields[:5])!r}"
    )


# --- the spec ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecurringSpec:
    schedule: Schedule
    earliest: int  # no time before this fires (creation, startTime)
    end: int | None  # no time after this fires
    concurrency: str = "Forbid"
    max_concurrency: int | None = None
    catchup: str = "Latest"
    max_runs: int | None = None
    deadline: int | None = None  # startingDeadlineSeconds
    suspend: bool = False

    @property
    def limit(self) -> int:
        """How many runs may be active before concurrencyPolicy applies."""
        if self.concurrency == "Forbid":
            return 1
        if self.concurrency == "Replace":
            return self.max_concurrency or DEFAULT_REPLACE_CONCURRENCY
        return self.max_concurrency or DEFAULT_ALLOW_CONCURRENCY

    @property
    def grace(self) -> int:
        return self.deadline if self.deadline is not None else DEFAULT_GRACE_SECONDS


@dataclasses.dataclass(frozen=True)
class SpecProblem:
    """Why a RecurringRun's schedule or window cannot be scheduled, and where."""

    path: tuple[str, ...]  # e.g. ("spec", "schedule", "interval")
    message: str

    def __str__(self) -> str:
        return f"{'.'.join(self.path)}: {self.message}"


_CRON = ("spec", "schedule", "cron")
_TIMEZONE = ("spec", "schedule", "timezone")
_INTERVAL = ("spec", "schedule", "interval")


def spec_problems(spec: Mapping[str, Any]) -> list[SpecProblem]:
    """Every problem of a RecurringRun's schedule and start/end window, in the order the
    scheduler meets them: the one validation `pipesync validate` reports (located) and
    parse_spec refuses (the first one). Semantics the schema cannot say: cron fields and
    time zones that exist, intervals of whole seconds (run names carry the time to the
    second), an endTime after the startTime (both as whole seconds, as scheduled)."""
    found: list[SpecProblem] = []
    window: dict[str, int] = {}
    for field in ("startTime", "endTime"):
        value = spec.get(field)
        moment = _whole_seconds(value)
        if value is not None and moment is None:
            found.append(SpecProblem(("spec", field), f"not an RFC 3339 time: {value!r}"))
        elif moment is not None:
            window[field] = moment
    if len(window) == 2 and window["endTime"] <= window["startTime"]:
        found.append(SpecProblem(("spec", "endTime"), "endTime must be after startTime"))
    schedule = spec.get("schedule") or {}
    if "interval" in schedule:
        problem = _interval_problem(schedule["interval"])
        if problem:
            found.append(SpecProblem(_INTERVAL, problem))
    elif "cron" not in schedule:
        found.append(SpecProblem(("spec", "schedule"), "needs cron or interval"))
    if "cron" in schedule:
        problem = schedules.cron_problem(str(schedule["cron"]))
        if problem:
            found.append(SpecProblem(_CRON, problem))
    # Given with an interval too: it has no effect there, but an unknown zone is a typo.
    if schedule.get("timezone"):
        problem = schedules.timezone_problem(str(schedule["timezone"]))
        if problem:
            found.append(SpecProblem(_TIMEZONE, problem))
    return found


def cron_is_valid(problems: Iterable[SpecProblem]) -> bool:
    """Whether none of the problems is the cron expression's or its time zone's."""
    return not any(p.path in (_CRON, _TIMEZONE) for p in problems)


def _interval_problem(value: Any) -> str | None:
    try:
        seconds = durations.parse(str(value))
    except ValueError as error:
        return str(error)
    if seconds < 1 or seconds != int(seconds):
        return (
            f"interval {value!r} must be a whole number of seconds, at least 1s: "
            "run names carry the time to the second"
        )
    return None


def parse_spec(spec: Mapping[str, Any], created: int) -> RecurringSpec:
    """A RecurringRun's spec as the scheduler needs it; ScheduleError names the problem."""
    problems = spec_problems(spec)
    if problems:
        raise ScheduleError(str(problems[0]))
    start = _whole_seconds(spec.get("startTime"))
    end = _whole_seconds(spec.get("endTime"))
    schedule_spec = spec.get("schedule") or {}
    schedule: Schedule
    if "interval" in schedule_spec:
        seconds = durations.parse(str(schedule_spec["interval"]))
        if start is not None:
            schedule = IntervalSchedule(start, int(seconds), 0)
        else:
            schedule = IntervalSchedule(created, int(seconds), 1)
    else:
        schedule = cron_schedule(
            str(schedule_spec["cron"]), str(schedule_spec.get("timezone") or "UTC")
        )
    catchup = spec.get("catchup") or {}
    deadline = spec.get("startingDeadlineSeconds")
    # Nothing fires before the object existed: those times were never anybody's to miss.
    earliest = created + 1 if start is None else max(start, created + 1)
    if "interval" in schedule_spec and start is not None and start > created:
        earliest = start
    return RecurringSpec(
        schedule=schedule,
        earliest=earliest,
        end=end,
        concurrency=str(spec.get("concurrencyPolicy") or "Forbid"),
        max_concurrency=_int_or_none(spec.get("maxConcurrency")),
        catchup=str(catchup.get("policy") or "Latest"),
        max_runs=_int_or_none(catchup.get("maxRuns")),
        deadline=_int_or_none(deadline),
        suspend=bool(spec.get("suspend")),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _whole_seconds(value: Any) -> int | None:
    """Scheduled times are whole seconds: a fraction rounds up (nothing before it fires).
    None when absent or not an RFC 3339 time."""
    moment = times.instant(value)
    return None if moment is None else math.ceil(moment)


# --- the decision -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ActiveRun:
    """An unfinished Run of this RecurringRun."""

    name: str
    scheduled: int  # its scheduled time
    cancelling: bool = False  # spec.cancel already set: it is on its way out


@dataclasses.dataclass(frozen=True)
class Decision:
    start: tuple[int, ...]  # scheduled times to start a Run for, oldest first
    already: tuple[int, ...]  # due times that already have a Run: fired, not started again
    cancel: tuple[str, ...]  # active Runs to cancel (Replace)
    skipped: Mapping[str, int]  # by reason
    missed: Mapping[str, int]  # by reason
    cursor: int | None  # every scheduled time up to here is decided
    next_time: int | None  # the next scheduled time after this pass (None: none ever)
    ended: bool  # past endTime: nothing will fire again

    @property
    def fired(self) -> int:
        return len(self.start) + len(self.already)


def decide(
    spec: RecurringSpec,
    cursor: int | None,
    active: Sequence[ActiveRun],
    existing: Collection[int],
    now: float,
    *,
    rebase: bool = False,
    was_suspended: bool = False,
    pipeline_missing: bool = False,
) -> Decision:
    """What to do at `now`.

    cursor: status' cursor (None before the first pass). existing: scheduled times that
    have a Run. rebase: the spec changed since the cursor was written; scheduled times
    before now are then not evaluated under the new spec (a new schedule is not
    applied retroactively), except that with was_suspended (the last pass saw the
    object suspended) they are counted as skipped for suspension. pipeline_missing: the
    pipeline it names does not exist; due times are skipped as while suspended (a Run
    made now would only fail), and firing resumes with the first due time once it does.
    """
    sched = spec.schedule
    moment = math.floor(now)
    skipped: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    # Times after floor_ are undecided.
    floor_ = spec.earliest - 1 if cursor is None else max(cursor, spec.earliest - 1)
    if rebase and cursor is not None:
        if was_suspended:
            skipped[SUSPENDED] += _count(spec, floor_, moment)
        floor_ = max(floor_, moment)
    upper = moment if spec.end is None else min(moment, spec.end)
    newest = sched.last_at_or_before(upper) if upper > floor_ else None
    if newest is not None and newest <= floor_:
        newest = None
    starts: list[int] = []
    already: list[int] = []
    cancel: list[str] = []
    held = SUSPENDED if spec.suspend else PIPELINE_NOT_FOUND if pipeline_missing else None
    if newest is not None and held is not None:
        skipped[held] += _count(spec, floor_, newest)
    elif newest is not None:
        kept = _newest_times(sched, floor_, newest, _catchup_keep(spec))
        _count_dropped(
            spec,
            floor_,
            limit=kept[0] - 1,
            now=moment,
            existing=existing,
            missed=missed,
            already=already,
        )
        to_fire: list[int] = []
        for t in kept:
            late = now - t
            if t in existing:
                already.append(t)
            elif spec.deadline is not None and late > spec.deadline:
                missed[DEADLINE_EXCEEDED] += 1
            elif spec.catchup == "None" and late > spec.grace:
                missed[CATCHUP_NONE] += 1
            else:
                to_fire.append(t)
        starts, cancel, concurrency_skips = _concurrency(spec, active, to_fire)
        skipped.update(concurrency_skips)
    new_cursor = floor_ if newest is None else newest
    following = fire_times(sched, max(moment, new_cursor), 1, spec.end)
    next_time = following[0] if following else None
    return Decision(
        start=tuple(starts),
        already=tuple(sorted(already)),
        cancel=tuple(cancel),
        skipped=dict(+skipped),
        missed=dict(+missed),
        cursor=new_cursor,
        next_time=next_time,
        ended=next_time is None,
    )


def _count(spec: RecurringSpec, a: int, b: int) -> int:
    """Scheduled times in (a, b] within the window."""
    a = max(a, spec.earliest - 1)
    if spec.end is not None:
        b = min(b, spec.end)
    return spec.schedule.count(a, b)


def _catchup_keep(spec: RecurringSpec) -> int:
    if spec.catchup == "All":
        return spec.max_runs or DEFAULT_CATCHUP_MAX_RUNS
    return 1


def _newest_times(sched: Schedule, floor_: int, newest: int, keep: int) -> list[int]:
    """Up to `keep` scheduled times in (floor_, newest], oldest first (newest included)."""
    found = [newest]
    while len(found) < keep:
        previous = sched.last_at_or_before(found[-1] - 1)
        if previous is None or previous <= floor_:
            break
        found.append(previous)
    return found[::-1]


def _count_dropped(
    spec: RecurringSpec,
    floor_: int,
    *,
    limit: int,
    now: int,
    existing: Collection[int],
    missed: Counter[str],
    already: list[int],
) -> None:
    """Counts the due times in (floor_, limit], older than catch-up keeps, as missed;
    those with a Run already are fired (a crashed pass started them)."""
    if limit <= floor_:
        return
    started = sorted(t for t in existing if floor_ < t <= limit)
    already.extend(started)
    catchup_reason = {"None": CATCHUP_NONE, "All": CATCHUP_MAX_RUNS}.get(
        spec.catchup, CATCHUP_LATEST
    )
    if spec.deadline is not None:
        cut = min(limit, now - spec.deadline - 1)  # t <= cut: later than the deadline
        if cut > floor_:
            missed[DEADLINE_EXCEEDED] += _count(spec, floor_, cut) - sum(
                1 for t in started if t <= cut
            )
            floor_ = cut
    if limit > floor_:
        missed[catchup_reason] += _count(spec, floor_, limit) - sum(
            1 for t in started if t > floor_
        )


def _concurrency(
    spec: RecurringSpec, active: Sequence[ActiveRun], to_fire: Iterable[int]
) -> tuple[list[int], list[str], Counter[str]]:
    """Which due times start, which active Runs are cancelled (Replace), what is skipped."""
    skipped: Counter[str] = Counter()
    starts: list[int] = []
    cancel: list[str] = []
    # Forbid and Allow count a cancelling run as active (it still runs its onExit);
    # Replace does not: it was already replaced once.
    live: list[tuple[int, str | None]] = sorted(
        (run.scheduled, run.name)
        for run in active
        if not (run.cancelling and spec.concurrency == "Replace")
    )
    for t in to_fire:
        if len(live) < spec.limit:
            starts.append(t)
            live.append((t, None))
            continue
        if spec.concurrency == "Forbid":
            skipped[CONCURRENCY_FORBID] += 1
        elif spec.concurrency == "Replace":
            victim = live.pop(0)
            if victim[1] is None:
                # Started in this same pass: never create a run only to cancel it.
                starts.remove(victim[0])
                skipped[REPLACED] += 1
            else:
                cancel.append(victim[1])
            starts.append(t)
            live.append((t, None))
        else:
            skipped[CONCURRENCY_LIMIT] += 1
    return starts, cancel, skipped
