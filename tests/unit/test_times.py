"""Kubernetes timestamps to and from Unix time (pipesync.api.times)."""

from __future__ import annotations

from pipesync.api import times


def test_a_timestamp_round_trips_in_whole_seconds() -> None:
    assert times.timestamp(1_700_000_000.7) == "2023-11-14T22:13:20Z"
    assert times.instant("2023-11-14T22:13:20Z") == 1_700_000_000.0


def test_offsets_count_and_a_time_without_one_is_utc() -> None:
    assert times.instant("2023-11-14T23:13:20+01:00") == 1_700_000_000.0
    assert times.instant("2023-11-14T22:13:20") == 1_700_000_000.0


def test_absent_or_malformed_times_are_none() -> None:
    assert times.instant(None) is None
    assert times.instant("") is None
    assert times.instant("yesterday") is None
    assert times.instant(1_700_000_000) is None
