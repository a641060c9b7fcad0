"""The Lease protocol's decisions (controllers/leadership.py) against an in-memory Lease
that enforces resourceVersion like the API server does, and its Lease and pod-label calls
through the Kubernetes adapter's Protocol (an in-memory fake of it); the real API is in
tests/e2e/test_leader_election.py."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from pipesync.api.conventions import LABEL_LEADER as LEADER_LABEL
from pipesync.controllers.leadership import (
    REQUEST_SECONDS,
    Candidate,
    Conflict,
    KubeLeases,
    Leadership,
    LeaseRecord,
    PodMarker,
)
from tests.unit.kubefakes import LeaseKube


class MemoryLease:
    """One Lease with optimistic concurrency: a write must carry the current version."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.version = 0

    def get(self) -> LeaseRecord | None:
        return self.record

    def create(self, record: LeaseRecord) -> LeaseRecord:
        if self.record is not None:
            raise Conflict
        return self._store(record)

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        if self.record is None or record.resource_version != self.record.resource_version:
            raise Conflict
        return self._store(record)

    def _store(self, record: LeaseRecord) -> LeaseRecord:
        self.version += 1
        self.record = dataclasses.replace(record, resource_version=str(self.version))
        return self.record


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime.datetime:
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            seconds=self.seconds
        )


def candidate(lease: MemoryLease, name: str, clock: Clock) -> Candidate:
    return Candidate(lease, name, lease_seconds=10, monotonic=clock.monotonic, now=clock.now)


def test_first_candidate_creates_the_lease_and_the_second_waits() -> None:
    lease, clock = MemoryLease(), Clock()
    a, b = candidate(lease, "a", clock), candidate(lease, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert lease.record is not None
    assert lease.record.holder == "a"
    assert lease.record.transitions == 0
    assert lease.record.acquire_time == "2026-01-01T00:00:00.000000Z"


def test_a_renewing_leader_keeps_the_lease_however_long_the_standby_waits() -> None:
    lease, clock = MemoryLease(), Clock()
    a, b = candidate(lease, "a", clock), candidate(lease, "b", clock)
    assert a.try_acquire_or_renew()
    for _ in range(30):
        clock.seconds += 2
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()
    assert lease.record is not None
    assert lease.record.holder == "a"
    assert lease.record.renew_time == "2026-01-01T00:01:00.000000Z"


def test_the_standby_takes_over_once_the_record_stood_still_for_the_lease_duration() -> None:
    lease, clock = MemoryLease(), Clock()
    a, b = candidate(lease, "a", clock), candidate(lease, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()  # first sight: the standby starts its own clock
    clock.seconds += 9.9
    assert not b.try_acquire_or_renew()
    clock.seconds += 0.1
    assert b.try_acquire_or_renew()
    assert lease.record is not None
    assert (lease.record.holder, lease.record.transitions) == ("b", 1)
    assert lease.record.acquire_time == lease.record.renew_time == "2026-01-01T00:00:10.000000Z"
    # the old leader, back, sees somebody else and does not lead
    assert not a.try_acquire_or_renew()


def test_of_two_standbys_racing_for_an_expired_lease_exactly_one_wins() -> None:
    lease, clock = MemoryLease(), Clock()
    assert candidate(lease, "dead", clock).try_acquire_or_renew()
    stale = lease.get()

    class ReadBeforeTheOtherWrote(MemoryLease):
        """c read the expired record just before b's write landed."""

        def get(self) -> LeaseRecord | None:
            return stale

        def replace(self, record: LeaseRecord) -> LeaseRecord:
            return lease.replace(record)

    b = candidate(lease, "b", clock)
    c = candidate(ReadBeforeTheOtherWrote(), "c", clock)
    assert not b.try_acquire_or_renew()
    assert not c.try_acquire_or_renew()
    clock.seconds += 10
    assert b.try_acquire_or_renew()
    # c decides on the same expired record, but its write carries the old resourceVersion
    assert not c.try_acquire_or_renew()
    assert lease.record is not None
    assert (lease.record.holder, lease.record.transitions) == ("b", 1)


def test_a_released_lease_is_taken_at_once() -> None:
    lease, clock = MemoryLease(), Clock()
    lease.record = LeaseRecord(holder="", resource_version="7")
    assert candidate(lease, "a", clock).try_acquire_or_renew()


def test_the_renew_deadline_must_end_before_the_lease() -> None:
    with pytest.raises(ValueError, match="shorter"):
        Leadership(candidate(MemoryLease(), "a", Clock()), renew_deadline=10)


def test_a_leader_that_cannot_renew_gives_up() -> None:
    class Broken(MemoryLease):
        def replace(self, record: LeaseRecord) -> LeaseRecord:
            raise OSError("API server away")

    lease, clock = Broken(), Clock()
    leader = Leadership(candidate(lease, "a", clock), renew_seconds=0.01, renew_deadline=0.05)
    leader.acquire()  # creates the Lease
    lost: list[bool] = []
    leader.keep(lambda: lost.append(True)).join(timeout=5)
    assert lost == [True]


def test_release_hands_the_lease_to_a_standby_at_once() -> None:
    lease, clock = MemoryLease(), Clock()
    leader = Leadership(candidate(lease, "a", clock))
    leader.acquire()
    standby = candidate(lease, "b", clock)
    assert not standby.try_acquire_or_renew()
    assert leader.release()
    assert lease.record is not None
    assert lease.record.holder == ""
    assert standby.try_acquire_or_renew()  # no waiting for the lease duration
    assert (lease.record.holder, lease.record.transitions) == ("b", 1)
    assert not leader.release()  # not the holder any more: leaves it alone
    assert lease.record.holder == "b"


def test_the_pod_label_follows_leadership() -> None:
    lease, clock = MemoryLease(), Clock()
    marks: list[bool] = []
    leader = Leadership(candidate(lease, "a", clock), mark=marks.append)
    leader.acquire()
    assert marks == [False, True]  # cleared first: a restarted ex-leader's pod said "true"
    leader.release()
    assert marks == [False, True, False]


def test_the_lease_goes_through_the_adapter_and_a_lost_race_is_a_conflict() -> None:
    kube = LeaseKube()
    leases, other = KubeLeases(kube, "ops", "pipesync"), KubeLeases(kube, "ops", "pipesync")
    assert leases.get() is None
    created = leases.create(LeaseRecord("a", 10, "t0", "t0", 0, resource_version="ignored"))
    assert (created.holder, created.resource_version) == ("a", "1")
    assert kube.leases["pipesync"]["metadata"] == {
        "name": "pipesync",
        "namespace": "ops",
        "resourceVersion": "1",  # the server's: a create sends none
    }
    with pytest.raises(Conflict):
        other.create(LeaseRecord("b"))
    renewed = leases.replace(dataclasses.replace(created, renew_time="t1"))
    assert (renewed.renew_time, renewed.resource_version) == ("t1", "2")
    with pytest.raises(Conflict):  # b still carries the version it read before the renewal
        other.replace(dataclasses.replace(created, holder="b"))
    assert leases.get() == renewed
    assert set(kube.timeouts) == {REQUEST_SECONDS}


def test_two_candidates_over_the_adapter_elect_one_leader() -> None:
    kube, clock = LeaseKube(), Clock()
    a = Candidate(KubeLeases(kube, "ops", "l"), "a", monotonic=clock.monotonic, now=clock.now)
    b = Candidate(KubeLeases(kube, "ops", "l"), "b", monotonic=clock.monotonic, now=clock.now)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert kube.leases["l"]["spec"]["holderIdentity"] == "a"


def test_the_pod_marker_labels_its_pod_and_survives_a_failed_patch() -> None:
    kube = LeaseKube()
    PodMarker(kube, "ops", "pod-1")(True)
    PodMarker(kube, "ops", "pod-1")(False)
    assert kube.pod_patches == [
        ("ops", "pod-1", {"metadata": {"labels": {LEADER_LABEL: "true"}}}),
        ("ops", "pod-1", {"metadata": {"labels": {LEADER_LABEL: "false"}}}),
    ]
    assert kube.timeouts == [REQUEST_SECONDS, REQUEST_SECONDS]

    class Refused(LeaseKube):
        def patch_pod(
            self,
            namespace: str,
            name: str,
            patch: Mapping[str, Any],
            timeout: float | None = None,
        ) -> None:
            raise OSError("API server away")

    PodMarker(Refused(), "ops", "pod-1")(True)  # logged, not raised: the label only steers
