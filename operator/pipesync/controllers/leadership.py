"""Leader election with a coordination.k8s.io/v1 Lease: two replicas, one drives runs.

Why a Lease of our own: kopf's peering only pauses operators that see each other; it does
not guarantee that one and only one replica acts, and it is off (`standalone=True`). The
Lease follows client-go's protocol, so `kubectl get lease` reads as users expect:

- `holderIdentity` names the leader, `leaseDurationSeconds` how long its claim lasts
  without renewal, `acquireTime`/`renewTime` when it took and last renewed it, and
  `leaseTransitions` counts changes of holder.
- Every write carries the `resourceVersion` that was read (optimistic concurrency): of two
  replicas racing for an expired Lease, the API server accepts exactly one (409 for the
  other).
- A standby never compares `renewTime` with its own clock (clocks of two nodes differ):
  it notes on its monotonic clock when it last saw the Lease change, and takes over when
  the record has not changed for `leaseDurationSeconds`.
- The leader renews every `renew_seconds`; if it has not renewed successfully for
  `renew_deadline` (shorter than the lease duration) it stops leading before any standby
  may take over. The operator then exits non-zero and Kubernetes restarts it as a standby.

The decision logic (`LeaseRecord`, `Candidate`) is pure; `KubeLeases` turns it into the
Kubernetes adapter's Lease calls (counted with every other request).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pipesync.api import conventions
from pipesync.kube.protocol import Kube

_log = logging.getLogger(__name__)

DEFAULT_LEASE = "pipesync-operator"
#: Lease duration 10 s, retries every 2 s: a standby leads at most ~12 s after the
#: leader's last renewal (the 15 s promise), and a leader that cannot renew for 7 s stops
#: 3 s before anybody else may start.
LEASE_SECONDS = 10
RENEW_SECONDS = 2.0
RENEW_DEADLINE = 7.0
RETRY_SECONDS = 2.0
#: Patience per Lease or label request: a leader must learn that a renewal failed well
#: within its renew deadline.
REQUEST_SECONDS = 5.0


class Conflict(Exception):
    """Another replica wrote the Lease first (HTTP 409)."""


def default_identity() -> str:
    """The pod name (its hostname in a cluster) and the pid: unique per process."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{os.getpid()}"


def micro_time(instant: datetime.datetime) -> str:
    """A metav1.MicroTime: RFC 3339 in UTC with microseconds."""
    return instant.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says, with the resourceVersion that guards the next write."""

    holder: str = ""
    duration: int = LEASE_SECONDS
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0
    resource_version: str | None = None

    @classmethod
    def from_object(cls, lease: Mapping[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=int(spec.get("leaseDurationSeconds") or LEASE_SECONDS),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=(lease.get("metadata") or {}).get("resourceVersion"),
        )

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.duration,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }

    def observed(self) -> tuple[str, str | None, str | None]:
        """What changes whenever the holder writes (a renewal or a new holder)."""
        return (self.holder, self.renew_time, self.resource_version)


class Leases(Protocol):
    """Reads and writes one Lease; `create`/`replace` raise Conflict on a lost race."""

    def get(self) -> LeaseRecord | None: ...

    def create(self, record: LeaseRecord) -> LeaseRecord: ...

    def replace(self, record: LeaseRecord) -> LeaseRecord: ...


class Candidate:
    """One replica's view of the Lease and its attempts to take or keep it."""

    def __init__(
        self,
        leases: Leases,
        identity: str,
        *,
        lease_seconds: int = LEASE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.leases = leases
        self.identity = identity
        self.lease_seconds = lease_seconds
        self._monotonic = monotonic
        self.now = now
        self._seen: tuple[str, str | None, str | None] | None = None
        self._seen_at = 0.0
        self.record: LeaseRecord | None = None

    def expired(self, record: LeaseRecord) -> bool:
        """Whether the holder's claim lapsed, on this replica's own monotonic clock."""
        if not record.holder:
            return True  # released
        observed = record.observed()
        if observed != self._seen:
            self._seen, self._seen_at = observed, self._monotonic()
            return False
        return self._monotonic() - self._seen_at >= record.duration

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True when this replica holds the Lease after it."""
        stamp = micro_time(self.now())
        try:
            current = self.leases.get()
            if current is None:
                self.record = self.leases.create(
                    LeaseRecord(self.identity, self.lease_seconds, stamp, stamp, 0)
                )
                return True
            if current.holder == self.identity:
                renewed = dataclasses.replace(
                    current, duration=self.lease_seconds, renew_time=stamp
                )
                self.record = self.leases.replace(renewed)
                return True
            if not self.expired(current):
                self.record = current
                return False
            taken = LeaseRecord(
                self.identity,
                self.lease_seconds,
                stamp,
                stamp,
                current.transitions + 1,
                current.resource_version,
            )
            self.record = self.leases.replace(taken)
            _log.warning("leader election: took the lease from %s", current.holder or "nobody")
            return True
        except Conflict:
            return False  # somebody else wrote first: read again next time


class KubeLeases:
    """The Lease of coordination.k8s.io/v1 through the Kubernetes adapter, as plain dicts
    (MicroTime as text); the adapter's None on a 409 becomes Conflict."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name

    def _body(self, record: LeaseRecord) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record.resource_version is not None:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": record.spec(),
        }

    def get(self) -> LeaseRecord | None:
        found = self.kube.get_lease(self.namespace, self.name, timeout=REQUEST_SECONDS)
        return None if found is None else LeaseRecord.from_object(found)

    @staticmethod
    def _written(lease: Mapping[str, Any] | None) -> LeaseRecord:
        if lease is None:
            raise Conflict
        return LeaseRecord.from_object(lease)

    def create(self, record: LeaseRecord) -> LeaseRecord:
        body = self._body(dataclasses.replace(record, resource_version=None))
        return self._written(self.kube.create_lease(self.namespace, body, REQUEST_SECONDS))

    def replace(self, record: LeaseRecord) -> LeaseRecord:
        body = self._body(record)
        return self._written(
            self.kube.replace_lease(self.namespace, self.name, body, REQUEST_SECONDS)
        )


class Leadership:
    """Blocks until this replica leads, then renews in a daemon thread.

    `lost` is called (from the renewal thread) when the leader could not renew for
    `renew_deadline`; the operator's wiring makes it end the process.
    """

    def __init__(
        self,
        candidate: Candidate,
        *,
        mark: Callable[[bool], None] = lambda _leading: None,
        renew_seconds: float = RENEW_SECONDS,
        renew_deadline: float = RENEW_DEADLINE,
        retry_seconds: float = RETRY_SECONDS,
    ) -> None:
        if renew_deadline >= candidate.lease_seconds:
            raise ValueError("the renew deadline must be shorter than the lease duration")
        self.candidate = candidate
        self.mark = mark
        self.renew_seconds = renew_seconds
        self.renew_deadline = renew_deadline
        self.retry_seconds = retry_seconds
        self._stop = threading.Event()

    def _attempt(self) -> bool:
        try:
            return self.candidate.try_acquire_or_renew()
        except Exception as error:  # the API server away, a timeout: try again later
            _log.warning("leader election: %s", error)
            return False

    def acquire(self) -> None:
        """Waits as a standby until this replica holds the Lease."""
        announced = False
        self.mark(False)  # a restarted ex-leader's pod still says "true"
        while not self._stop.is_set():
            if self._attempt():
                _log.warning("leader election: %s leads", self.candidate.identity)
                self.mark(True)
                return
            holder = self.candidate.record.holder if self.candidate.record else ""
            if not announced:
                _log.warning("leader election: standby; %s leads", holder or "nobody")
                announced = True
            self._stop.wait(self.retry_seconds)
        raise InterruptedError("stopped before leading")

    def keep(self, lost: Callable[[], None]) -> threading.Thread:
        """Renews until stopped; calls `lost` once if no renewal succeeds in time."""

        def renew() -> None:
            renewed = time.monotonic()
            while not self._stop.wait(self.renew_seconds):
                if self._attempt():
                    renewed = time.monotonic()
                elif time.monotonic() - renewed >= self.renew_deadline or (
                    self.candidate.record is not None
                    and self.candidate.record.holder not in ("", self.candidate.identity)
                ):
                    _log.error("leader election: lost the lease; stopping")
                    lost()
                    return

        thread = threading.Thread(target=renew, name="pipesync-leader", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def release(self) -> bool:
        """Stops renewing and hands the Lease back (empty holder), so a standby leads at
        once instead of after the lease duration: a rolling update or a clean shutdown
        does not pause the runs for ten seconds. True when it was released."""
        self.stop()
        self.mark(False)
        candidate = self.candidate
        try:
            current = candidate.leases.get()
            if current is None or current.holder != candidate.identity:
                return False
            stamp = micro_time(candidate.now())
            candidate.leases.replace(
                dataclasses.replace(current, holder="", duration=1, renew_time=stamp)
            )
        except Exception as error:  # the standby takes over after the lease expires anyway
            _log.warning("leader election: could not release the lease: %s", error)
            return False
        _log.warning("leader election: released the lease")
        return True


class PodMarker:
    """Sets the leader label on this replica's own pod; a failure is logged, never fatal
    (the label only steers webhooks, the Lease alone decides who leads)."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name

    def __call__(self, leading: bool) -> None:
        patch = {"metadata": {"labels": {conventions.LABEL_LEADER: "true" if leading else "false"}}}
        try:
            self.kube.patch_pod(self.namespace, self.name, patch, REQUEST_SECONDS)
        except Exception as error:
            _log.warning("leader election: could not label pod %s: %s", self.name, error)


@dataclasses.dataclass(frozen=True)
class Election:
    """The operator's leader-election settings (from `pipesync operator` flags; the pod
    from the downward API's POD_NAME/POD_NAMESPACE, unset outside a cluster)."""

    namespace: str
    lease: str = DEFAULT_LEASE
    identity: str = dataclasses.field(default_factory=default_identity)
    pod_name: str | None = dataclasses.field(default_factory=lambda: os.environ.get("POD_NAME"))
    pod_namespace: str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE")
    )


def lead(kube: Kube, election: Election) -> Leadership:
    """Blocks as a standby until this process leads; then renews in the background and
    ends the process (exit code 1) the moment it can no longer prove it leads."""
    candidate = Candidate(KubeLeases(kube, election.namespace, election.lease), election.identity)
    if election.pod_name and election.pod_namespace:
        marker = PodMarker(kube, election.pod_namespace, election.pod_name)
        leadership = Leadership(candidate, mark=marker)
    else:
        leadership = Leadership(candidate)
    leadership.acquire()
    leadership.keep(lost=_exit_lost)
    return leadership


def _exit_lost() -> None:
    # Not a graceful kopf stop: a replica that may no longer lead must not write another
    # pod or status, and kopf's shutdown waits for daemons. Kubernetes restarts the pod,
    # which then waits as a standby.
    logging.shutdown()
    os._exit(1)
