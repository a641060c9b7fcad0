"""engine/recurring.py over simulated time: every policy, DST, windows, downtime, suspend.

A small simulator plays the controller: it asks `decide` at each wake-up (or after a
downtime), starts the runs it says, cancels what it says, and finishes runs after a
given duration. Invariants checked everywhere: every scheduled time is counted exactly
once (fired + skipped + missed == scheduled times), no time starts twice, concurrency
limits hold.
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import pathlib
import subprocess
import sys
import zoneinfo
from collections import Counter

import pytest

from pipesync.engine import recurring
from pipesync.engine.recurring import ActiveRun, decide, parse_spec


def ts(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text).timestamp())


def iso(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class SimRun:
    scheduled: int
    started: float
    ends: float
    cancelled_at: float | None = None


@dataclasses.dataclass
class Sim:
    spec: dict[str, object]
    created: int
    duration: float = 1.0  # how long each run takes
    lag: float = 0.5  # how late after its wake time the simulated operator passes
    cursor: int | None = None
    generation: int = 1
    observed: int | None = None
    was_suspended: bool = False

    def __post_init__(self) -> None:
        self.runs: dict[int, SimRun] = {}
        self.open: dict[int, SimRun] = {}  # runs not known to have finished
        self.skipped: Counter[str] = Counter()
        self.missed: Counter[str] = Counter()
        self.fired = 0
        self.max_active = 0
        self.now: float = float(self.created)
        self.next_time: int | None = None

    @property
    def parsed(self) -> recurring.RecurringSpec:
        return parse_spec(self.spec, self.created)

    def active(self, now: float) -> list[SimRun]:
        self.open = {t: run for t, run in self.open.items() if run.ends > now}
        return list(self.open.values())

    def change(self, **fields: object) -> None:
        self.spec = {**self.spec, **fields}
        self.generation += 1

    def step(self, now: float) -> recurring.Decision:
        self.now = now
        active = [
            ActiveRun(f"r{run.scheduled}", run.scheduled, run.cancelled_at is not None)
            for run in self.active(now)
        ]
        parsed = self.parsed
        decision = decide(
            parsed,
            self.cursor,
            active,
            set(self.runs),
            now,
            rebase=self.observed is not None and self.observed != self.generation,
            was_suspended=self.was_suspended,
        )
        for name in decision.cancel:
            run = self.runs[int(name[1:])]
            assert run.cancelled_at is None, "cancelled twice"
            run.cancelled_at = now
            run.ends = min(run.ends, now + 1)  # onExit takes a second
        for t in decision.start:
            assert t not in self.runs, f"{iso(t)} started twice"
            assert t <= now
            self.runs[t] = self.open[t] = SimRun(t, now, now + self.duration)
        self.fired += decision.fired
        self.skipped.update(decision.skipped)
        self.missed.update(decision.missed)
        live = [r for r in self.active(now) if r.cancelled_at is None]
        self.max_active = max(self.max_active, len(live))
        self.cursor = decision.cursor
        self.observed = self.generation
        self.was_suspended = parsed.suspend
        self.next_time = decision.next_time
        return decision

    def run_until(self, until: float, *, down: tuple[float, float] | None = None) -> None:
        """Passes at every wake-up until `until`; no pass inside the `down` interval."""
        if self.cursor is None and self.observed is None:
            self.step(self.now)
        while True:
            wake = self.next_time + self.lag if self.next_time is not None else until
            if self.parsed.suspend:
                wake = min(self.now + 30, until)  # the resync counts suspended times
            # Runs finishing wake the controller too (what concurrency waits for).
            ends = [r.ends for r in self.open.values() if self.now < r.ends < wake]
            if ends:
                wake = min(ends)
            if down is not None and down[0] <= wake < down[1]:
                wake = down[1]
            if wake >= until:
                break
            self.step(wake)
        if until > self.now:
            self.step(until)

    def total(self) -> int:
        return self.fired + sum(self.skipped.values()) + sum(self.missed.values())


def scheduled(spec: dict[str, object], created: int, until: int) -> int:
    parsed = parse_spec(spec, created)
    end = until if parsed.end is None else min(until, parsed.end)
    return parsed.schedule.count(parsed.earliest - 1, end)


# --- DST --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        ("Europe/Berlin", "2026-03-29", "2026-10-25"),
        ("America/New_York", "2026-03-08", "2026-11-01"),
    ],
)
def test_a_skipped_local_hour_does_not_fire_and_a_repeated_one_fires_once(
    zone: str, spring: str, autumn: str
) -> None:
    hour = "30 2 * * *" if zone == "Europe/Berlin" else "30 1 * * *"
    gap_hour = "30 2 * * *"  # 02:30 does not exist on the spring day in both zones
    created = ts("2026-01-01T00:00:00+00:00")
    until = ts("2027-01-01T00:00:00+00:00")
    sim = Sim({"schedule": {"cron": gap_hour, "timezone": zone}}, created)
    sim.run_until(until)
    days = {datetime.datetime.fromtimestamp(t, datetime.UTC).date() for t in sim.runs}
    local_days = {
        datetime.datetime.fromtimestamp(t, datetime.UTC).astimezone(zoneinfo.ZoneInfo(zone)).date()
        for t in sim.runs
    }
    assert datetime.date.fromisoformat(spring) not in local_days
    assert len(local_days) == 364 and len(sim.runs) == 364 and len(days) == 364
    sim = Sim({"schedule": {"cron": hour, "timezone": zone}}, created)
    sim.run_until(until)
    on_autumn_day = [
        t
        for t in sim.runs
        if datetime.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(zone)).date()
        == datetime.date.fromisoformat(autumn)
    ]
    assert len(on_autumn_day) == 1  # the repeated hour fires once, at its first pass
    assert len(sim.runs) == (364 if hour == gap_hour else 365)
    assert sim.total() == scheduled(sim.spec, created, until)


@pytest.mark.parametrize(
    ("zone", "spring", "autumn"),
    [
        ("Europe/Berlin", "2026-03-29", "2026-10-25"),
        ("America/New_York", "2026-03-08", "2026-11-01"),
    ],
)
def test_hourly_cron_fires_23_times_on_spring_day_and_24_on_the_25_hour_day(
    zone: str, spring: str, autumn: str
) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    for day, expected in ((spring, 23), (autumn, 24)):
        created = ts(f"{day}T00:00:00+00:00") - 86400
        sim = Sim({"schedule": {"cron": "0 * * * *", "timezone": zone}}, created)
        sim.run_until(created + 3 * 86400)
        per_day = Counter(datetime.datetime.fromtimestamp(t, tz).date() for t in sim.runs)
        assert per_day[datetime.date.fromisoformat(day)] == expected
        assert sim.total() == len(sim.runs)
        # The arithmetic count agrees with the walk, DST days included.
        assert scheduled(sim.spec, created, int(sim.now)) == len(sim.runs)


def test_six_field_cron_counts_seconds_and_long_gaps_are_counted_exactly() -> None:
    created = ts("2026-03-27T00:00:00+00:00")
    spec = {"schedule": {"cron": "*/20 * * * * *", "timezone": "Europe/Berlin"}}
    sim = Sim(spec, created)
    sim.run_until(created + 3600)
    assert len(sim.runs) == 180
    # Three days down across the spring DST change: counted, not iterated.
    down_end = created + 3600 + 3 * 86400
    sim.run_until(down_end + 120, down=(created + 3600 + 1, down_end))
    during = [t for t in sim.runs if created + 3601 < t <= down_end]
    assert len(during) == 1  # Latest: only the newest of the ~13,000 due times
    assert sim.missed[recurring.CATCHUP_LATEST] > 12_000
    assert sim.total() == scheduled(spec, created, down_end + 120)


# --- windows and anchors ----------------------------------------------------------------


def test_nothing_fires_outside_the_start_end_window() -> None:
    created = ts("2026-01-01T00:00:00+00:00")
    spec = {
        "schedule": {"cron": "0 * * * *"},
        "startTime": "2026-01-02T00:00:00Z",
        "endTime": "2026-01-03T00:00:00Z",
    }
    sim = Sim(spec, created)
    sim.run_until(ts("2026-01-10T00:00:00+00:00"))
    assert min(sim.runs) == ts("2026-01-02T00:00:00+00:00")
    assert max(sim.runs) == ts("2026-01-03T00:00:00+00:00")
    assert len(sim.runs) == 25
    assert sim.next_time is None
    decision = sim.step(ts("2026-01-11T00:00:00+00:00"))
    assert decision.ended and not decision.start


def test_interval_anchors_on_start_time_else_creation() -> None:
    created = ts("2026-01-01T00:00:07+00:00")
    sim = Sim({"schedule": {"interval": "6h"}}, created)
    sim.run_until(created + 86400)
    assert sorted(sim.runs) == [created + k * 6 * 3600 for k in range(1, 5)]
    sim = Sim({"schedule": {"interval": "6h"}, "startTime": "2026-01-01T03:00:00Z"}, created)
    sim.run_until(created + 86400)
    first = ts("2026-01-01T03:00:00+00:00")
    assert sorted(sim.runs) == [first + k * 6 * 3600 for k in range(4)]


def test_bad_specs_name_the_field() -> None:
    with pytest.raises(recurring.ScheduleError, match=r"spec.schedule.cron"):
        parse_spec({"schedule": {"cron": "61 * * * *"}}, 0)
    with pytest.raises(recurring.ScheduleError, match=r"spec.schedule.timezone"):
        parse_spec({"schedule": {"cron": "0 * * * *", "timezone": "Mars/Olympus"}}, 0)
    with pytest.raises(recurring.ScheduleError, match=r"spec.schedule.interval"):
        parse_spec({"schedule": {"interval": "500ms"}}, 0)
    with pytest.raises(recurring.ScheduleError, match=r"spec.endTime"):
        parse_spec(
            {
                "schedule": {"interval": "1h"},
                "startTime": "2026-01-02T00:00:00Z",
                "endTime": "2026-01-01T00:00:00Z",
            },
            0,
        )


# --- downtime and catch-up --------------------------------------------------------------

HOURLY = {"cron": "0 * * * *"}


@pytest.mark.parametrize("downtime", [3600, 3 * 86400])
@pytest.mark.parametrize("policy", ["None", "Latest", "All"])
def test_downtime_with_each_catchup_policy(policy: str, downtime: int) -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {
        "schedule": {"cron": "*/10 * * * *"},
        "concurrencyPolicy": "Allow",
        "maxConcurrency": 10,
        "catchup": {"policy": policy, "maxRuns": 3},
    }
    sim = Sim(spec, created, duration=1)
    down = (created + 3600 + 5 * 60, created + 3600 + 5 * 60 + downtime)
    # The operator comes back 2 minutes after a scheduled time.
    down = (down[0], down[1] - down[1] % 600 + 120)
    sim.run_until(down[1] + 1800, down=down)
    due_during = parse_spec(spec, created).schedule.count(down[0], down[1])
    fired_during = [t for t in sim.runs if down[0] < t <= down[1]]
    if policy == "None":
        # The newest due time is 2 minutes late, within the 60 s grace? No: dropped.
        assert fired_during == []
        assert sim.missed[recurring.CATCHUP_NONE] == due_during
    elif policy == "Latest":
        assert fired_during == [down[1] - 120]
        assert sim.missed[recurring.CATCHUP_LATEST] == due_during - 1
    else:
        assert fired_during == [down[1] - 120 - 600 * k for k in (2, 1, 0)]
        assert sim.missed[recurring.CATCHUP_MAX_RUNS] == due_during - 3
        assert all(run.started == down[1] for t, run in sim.runs.items() if t in fired_during)
    assert sim.total() == scheduled(spec, created, down[1] + 1800)
    # Back to normal after the downtime: every later time fires.
    assert all(t in sim.runs for t in range(down[1] - 120 + 600, down[1] + 1800, 600))


def test_starting_deadline_misses_late_times_whatever_the_policy() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {
        "schedule": HOURLY,
        "catchup": {"policy": "All", "maxRuns": 5},
        "startingDeadlineSeconds": 600,
        "concurrencyPolicy": "Allow",
    }
    sim = Sim(spec, created)
    down = (created + 1800, created + 5 * 3600 + 300)  # back 5 minutes after 05:00
    sim.run_until(created + 8 * 3600, down=down)
    assert created + 5 * 3600 in sim.runs  # 5 minutes late: within the deadline
    assert not any(created + k * 3600 in sim.runs for k in (1, 2, 3, 4))
    assert sim.missed[recurring.DEADLINE_EXCEEDED] == 4
    assert sim.total() == scheduled(spec, created, created + 8 * 3600)


def test_catchup_none_fires_a_time_within_the_grace() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    sim = Sim({"schedule": HOURLY, "catchup": {"policy": "None"}}, created, lag=30)
    sim.run_until(created + 5 * 3600 - 1)
    assert len(sim.runs) == 4  # 30 s late each: within the default 60 s grace
    sim = Sim({"schedule": HOURLY, "catchup": {"policy": "None"}}, created, lag=90)
    sim.run_until(created + 5 * 3600 - 1)
    assert len(sim.runs) == 0 and sim.missed[recurring.CATCHUP_NONE] == 4


# --- suspend ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["None", "Latest", "All"])
def test_resume_never_launches_what_was_due_while_suspended(policy: str) -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {"schedule": HOURLY, "catchup": {"policy": policy}, "concurrencyPolicy": "Allow"}
    sim = Sim(spec, created)
    sim.run_until(created + 3 * 3600 + 60)
    sim.change(suspend=True)
    sim.step(created + 3 * 3600 + 120)
    sim.run_until(created + 27 * 3600 + 60)
    sim.change(suspend=False)
    sim.step(created + 27 * 3600 + 600)  # resumed ten minutes after a due time
    sim.run_until(created + 30 * 3600 + 60)
    fired = sorted(sim.runs)
    assert [t for t in fired if created + 3 * 3600 < t <= created + 27 * 3600] == []
    assert sim.skipped[recurring.SUSPENDED] == 24
    assert fired[-3:] == [created + k * 3600 for k in (28, 29, 30)]
    assert sim.total() == scheduled(spec, created, created + 30 * 3600 + 60)


def test_resume_after_operator_downtime_while_suspended_counts_suspended_times() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {"schedule": HOURLY}
    sim = Sim(spec, created)
    sim.run_until(created + 3600 + 60)
    sim.change(suspend=True)
    sim.step(created + 3600 + 120)
    # The operator is down for 10 hours, during which the object is resumed.
    sim.change(suspend=False)
    sim.step(created + 11 * 3600 + 30)
    assert sim.skipped[recurring.SUSPENDED] == 10
    assert not any(created + k * 3600 in sim.runs for k in range(2, 12))


# --- concurrency ------------------------------------------------------------------------


def test_forbid_never_overlaps() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {"schedule": {"cron": "*/5 * * * * *"}, "concurrencyPolicy": "Forbid"}
    sim = Sim(spec, created, duration=12, lag=0.1)
    sim.run_until(created + 600)
    assert sim.max_active == 1
    assert sim.skipped[recurring.CONCURRENCY_FORBID] > 0
    starts = sorted((r.started, r.ends) for r in sim.runs.values())
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(starts))
    assert sim.total() == scheduled(spec, created, created + 600)


def test_allow_respects_max_concurrency() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {"schedule": {"interval": "2s"}, "concurrencyPolicy": "Allow", "maxConcurrency": 3}
    sim = Sim(spec, created, duration=7, lag=0.1)
    sim.run_until(created + 300)
    assert sim.max_active == 3
    assert sim.skipped[recurring.CONCURRENCY_LIMIT] > 0
    assert sim.total() == scheduled(spec, created, created + 300)


def test_replace_cancels_the_oldest_run() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {"schedule": {"interval": "5s"}, "concurrencyPolicy": "Replace"}
    sim = Sim(spec, created, duration=60, lag=0.1)
    sim.run_until(created + 60)
    runs = [sim.runs[t] for t in sorted(sim.runs)]
    assert all(run.cancelled_at is not None for run in runs[:-1])
    assert runs[-1].cancelled_at is None
    assert sim.max_active == 1
    assert sim.fired == len(runs) == 12  # every 5 s from 5 to 60


def test_replace_within_one_pass_never_starts_a_run_to_cancel_it() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = {"schedule": HOURLY, "concurrencyPolicy": "Replace", "catchup": {"policy": "All"}}
    parsed = parse_spec(spec, created)
    decision = decide(
        parsed, created, [ActiveRun("old", created - 60)], set(), created + 3 * 3600 + 5
    )
    assert decision.start == (created + 3 * 3600,)
    assert decision.cancel == ("old",)
    assert decision.skipped == {recurring.REPLACED: 2}


@pytest.mark.parametrize(
    ("concurrency", "catchup", "deadline", "suspend_at"),
    list(
        itertools.product(
            ["Allow", "Forbid", "Replace"], ["None", "Latest", "All"], [None, 90], [None, 7200]
        )
    ),
)
def test_every_policy_combination_counts_every_time_once(
    concurrency: str, catchup: str, deadline: int | None, suspend_at: int | None
) -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec: dict[str, object] = {
        "schedule": {"cron": "*/5 * * * *"},
        "concurrencyPolicy": concurrency,
        "maxConcurrency": 2,
        "catchup": {"policy": catchup, "maxRuns": 2},
    }
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    sim = Sim(spec, created, duration=700, lag=1)
    sim.run_until(created + 3600, down=(created + 1900, created + 3000))
    if suspend_at is not None:
        sim.change(suspend=True)
        sim.step(sim.now + 1)
        sim.run_until(created + suspend_at)
        sim.change(suspend=False)
        sim.step(sim.now + 1)
    sim.run_until(created + 4 * 3600)
    assert sim.total() == scheduled(spec, created, created + 4 * 3600)
    limit = {"Forbid": 1, "Allow": 2, "Replace": 2}[concurrency]
    assert sim.max_active <= limit
    if catchup == "None" or deadline is not None:
        # Nothing ran later than the grace.
        assert all(run.started - t <= 90 for t, run in sim.runs.items())


# --- exactly once -----------------------------------------------------------------------


def test_a_time_with_a_run_already_is_fired_not_started_again() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    parsed = parse_spec({"schedule": HOURLY}, created)
    due = created + 3600
    decision = decide(parsed, created, [ActiveRun("x", due)], {due}, due + 5)
    assert decision.start == () and decision.already == (due,) and decision.fired == 1
    # The crash left a run for an older time the catch-up policy would drop: still fired.
    decision = decide(parsed, created, [], {due}, due + 3 * 3600 + 5)
    assert decision.already == (due,)
    assert decision.start == (due + 3 * 3600,)
    assert decision.missed == {recurring.CATCHUP_LATEST: 2}


def test_years_of_simulated_time() -> None:
    created = ts("2026-01-01T00:00:00+00:00")
    spec = {
        "schedule": {"cron": "0 2 * * *", "timezone": "Europe/Berlin"},
        "catchup": {"policy": "All", "maxRuns": 2},
    }
    sim = Sim(spec, created, duration=3 * 86400)
    until = ts("2031-01-01T00:00:00+00:00")
    sim.run_until(until)
    # Five years with a leap day, less the five spring days when 02:00 does not exist.
    assert sim.total() == scheduled(spec, created, until) == 5 * 365 + 1 - 5
    assert sim.max_active == 1  # Forbid by default: long runs make the others skip


def test_spec_change_is_not_applied_retroactively() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    sim = Sim({"schedule": {"cron": "0 2 * * *"}}, created)
    sim.run_until(created + 14 * 3600 + 1800)
    sim.change(schedule={"cron": "0 * * * *"})
    decision = sim.step(created + 14 * 3600 + 1801)
    assert decision.start == () and not decision.missed
    assert decision.next_time == created + 15 * 3600


# --- names ------------------------------------------------------------------------------


def test_validate_rejects_an_interval_that_is_not_whole_seconds(tmp_path: pathlib.Path) -> None:
    document = tmp_path / "rr.yaml"
    document.write_text(
        "apiVersion: pipesync.io/v1alpha1\nkind: RecurringRun\nmetadata: {name: x}\n"
        "spec:\n  pipelineRef: {name: p}\n  schedule: {interval: 1500ms}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pipesync.cli.main", "validate", str(document)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result
    assert "rr.yaml:6:" in result.stdout + result.stderr
    assert "whole number of seconds" in result.stdout + result.stderr


def test_a_missing_pipeline_starts_nothing_and_counts_the_due_times_as_skipped() -> None:
    created = ts("2026-05-01T00:00:00+00:00")
    spec = parse_spec({"schedule": HOURLY, "concurrencyPolicy": "Allow"}, created)
    held = decide(spec, None, [], set(), created + 3 * 3600 + 60, pipeline_missing=True)
    assert not held.start
    assert held.skipped[recurring.PIPELINE_NOT_FOUND] == 3
    # Once it exists: the next due time fires, nothing of the missing hours is backfilled.
    resumed = decide(spec, held.cursor, [], set(), created + 4 * 3600 + 5)
    assert list(resumed.start) == [created + 4 * 3600]


# --- previews and the one reading of times ------------------------------------------------


def test_upcoming_times_start_after_now_and_stop_at_the_end() -> None:
    now = ts("2026-03-27T12:10:00+00:00")
    spec = parse_spec({"schedule": HOURLY, "endTime": "2026-03-27T14:30:00Z"}, now - 3600)
    assert recurring.upcoming(spec, now, 5) == [
        ts("2026-03-27T13:00:00+00:00"),
        ts("2026-03-27T14:00:00+00:00"),
    ]
    assert recurring.upcoming(spec, now, 1) == [ts("2026-03-27T13:00:00+00:00")]


def test_upcoming_times_wait_for_the_start_time() -> None:
    created = ts("2026-01-01T00:00:00+00:00")
    spec = parse_spec(
        {"schedule": {"interval": "6h"}, "startTime": "2026-01-02T03:00:00Z"}, created
    )
    first = ts("2026-01-02T03:00:00+00:00")
    assert recurring.upcoming(spec, created, 3) == [first, first + 6 * 3600, first + 12 * 3600]


def test_a_lower_case_start_time_is_read_as_the_schema_accepts_it() -> None:
    """The schema's date-time accepts 't' and 'z'; the scheduler used to refuse them."""
    spec = parse_spec({"schedule": {"interval": "1h"}, "startTime": "2026-01-02t00:00:00z"}, 0)
    assert spec.earliest == ts("2026-01-02T00:00:00+00:00")
    with pytest.raises(recurring.ScheduleError, match=r"spec.startTime"):
        parse_spec({"schedule": {"interval": "1h"}, "startTime": "tomorrow"}, 0)


# --- one validation: what `pipesync validate` reports is what the scheduler refuses ------


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"schedule": {"cron": "61 * * * *"}}, ("spec", "schedule", "cron")),
        (
            {"schedule": {"cron": "0 * * * *", "timezone": "Mars/Olympus"}},
            ("spec", "schedule", "timezone"),
        ),
        (
            {"schedule": {"interval": "1h", "timezone": "Mars/Olympus"}},
            ("spec", "schedule", "timezone"),
        ),
        ({"schedule": {"interval": "1500ms"}}, ("spec", "schedule", "interval")),
        ({"schedule": {"interval": "soon"}}, ("spec", "schedule", "interval")),
        ({"schedule": {}}, ("spec", "schedule")),
        ({"schedule": HOURLY, "startTime": "later"}, ("spec", "startTime")),
        (
            {
                "schedule": HOURLY,
                "startTime": "2026-01-02T00:00:00Z",
                "endTime": "2026-01-02T00:00:00Z",
            },
            ("spec", "endTime"),
        ),
    ],
)
def test_each_problem_is_named_once_and_refused_by_the_scheduler(
    spec: dict[str, object], path: tuple[str, ...]
) -> None:
    problems = recurring.spec_problems(spec)
    assert [p.path for p in problems] == [path]
    with pytest.raises(recurring.ScheduleError) as raised:
        parse_spec(spec, 0)
    assert str(raised.value) == str(problems[0])
    assert str(raised.value).startswith(".".join(path) + ": ")


def test_a_valid_spec_has_no_problems() -> None:
    assert recurring.spec_problems({"schedule": HOURLY}) == []
    assert recurring.spec_problems({"schedule": {"interval": "6h", "timezone": "UTC"}}) == []
    window = {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:01Z"}
    assert recurring.spec_problems({"schedule": HOURLY, **window}) == []
