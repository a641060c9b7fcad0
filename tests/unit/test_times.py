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


def test_lower_case_t_and_z_read_as_rfc_3339_allows() -> None:
    """The schemas accept them, so the scheduler and `pipesync validate` must read them."""
    assert times.instant("2023-11-14t22:13:20z") == 1_700_000_000.0
    assert times.instant("2023-11-14T22:13:20.5z") == 1_700_000_000.5


def test_a_moment_is_aware_and_keeps_its_offset() -> None:
    moment = times.moment("2023-11-14T23:13:20+01:00")
    assert moment is not None and moment.utcoffset() is not None
    assert moment.timestamp() == 1_700_000_000.0
    naive = times.moment("2023-11-14T22:13:20")
    assert naive is not None and naive.tzinfo is not None
    assert times.moment("yesterday") is None


def test_the_strict_check_is_the_schemas_date_time() -> None:
    assert times.is_rfc3339("2026-01-01T00:00:00Z")
    assert times.is_rfc3339("2026-01-01t00:00:00.123+02:00")
    assert not times.is_rfc3339("2026-01-01T00:00:00")  # no offset
    assert not times.is_rfc3339("2026-01-01")
    assert not times.is_rfc3339("2026-13-01T00:00:00Z")  # month 13
    assert not times.is_rfc3339("2026-01-01T00:00:61Z")
    assert not times.is_rfc3339("20260101T000000Z")
