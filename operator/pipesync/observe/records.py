"""The S3 mirror: every run's record and its tasks' logs, written to the object store so
history outlives the Run and its pods (which Kubernetes garbage-collects with it).

Why a queue and a worker thread: the controller's pass must never wait for S3 and an S3
outage must never fail a run. A pass only *enqueues* work (cheap dict building); one
background thread writes it, retrying each failed write with exponential backoff for as
long as it takes. Why keyed jobs: a record is one object per run (`run.json`, rewritten
on every phase change), so the queue keeps one job per object key and a newer record
replaces an older one still waiting; after a 30 s outage one write catches up, not one
per change that happened meanwhile. Writes are idempotent (same key, same content), and
content already written by this process is not written again.

Crash safety: the controller writes the finished status first and tells observers after,
so a crash can fall between the two. The final record write therefore ends by reporting
its URI back: the mirror calls `on_recorded`, the controller makes a pass for the finished
run, and this observer's result for that pass carries the URI, which the controller
writes as `status.record.uri` (the controller is the one writer of a Run's status). At
start-up the operator hands every finished run that lacks it to `recover`, which
rebuilds the record from the Run and its pods.

This module sits beside runtime and under controllers (import-linter), so the store, the
Kubernetes adapter, the metrics and the pod reader (pipesync.runtime.podstate, the one
place a pod's JSON is read) come in as Protocols and a callable.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from pipesync.api import reports, runstatus, times
from pipesync.api.conventions import (
    INPUTS_CONTAINER,
    LABEL_RUN,
    MAIN_CONTAINER,
    OUTPUTS_CONTAINER,
    PINNED_SPEC_KEY,
    pinned_config_name,
)
from pipesync.api.runstatus import NodeDetail, RunRecord
from pipesync.engine import layout
from pipesync.engine.compiler import CompiledTask
from pipesync.engine.state import FINISHED, TASK, NodeKey, NodeState
from pipesync.observe.passes import ObserverResult, PassReportLike, PinnedLike, PodLike

_log = logging.getLogger(__name__)

#: A log longer than this (per container) is cut: the record is history, not a log store.
LOG_LIMIT_BYTES = 16 * 1024 * 1024
#: Logs kept in memory across retries while S3 is away, in all; beyond, logs are read
#: again from their pods at the next try (a pod deleted meanwhile loses its log).
LOG_BUDGET_BYTES = 64 * 1024 * 1024
#: Digests of this many written objects are kept, to skip rewriting identical content.
REMEMBERED_WRITES = 10_000
#: pipesync.runtime.podstate.read_pod: a listed pod's JSON to the state observers read.
PodReader = Callable[[Mapping[str, Any]], PodLike]


class RecordStore(Protocol):
    """The part of pipesync.runtime.storage.ObjectStore the mirror uses."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...


class KubeLike(Protocol):
    """The part of pipesync.kube.protocol.Kube the mirror uses."""

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None: ...

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None: ...


class MirrorObserver(Protocol):
    """pipesync.observe.mirror_metrics.MirrorMetrics: told each failed write and the
    queue's length."""

    def observe(self, event: reports.MirrorEvent) -> None: ...


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delay before the n-th retry of one job: first * factor**(n-1), capped."""

    first: float = 0.5
    factor: float = 2.0
    maximum: float = 10.0

    def delay(self, failures: int) -> float:
        return float(min(self.first * self.factor ** max(failures - 1, 0), self.maximum))


class _Gone(Exception):
    """What a job would write no longer exists (pod deleted before its log was read)."""


@dataclasses.dataclass
class _Job:
    key: str
    #: Builds the bytes to write; runs in the worker (may call the Kubernetes API).
    produce: Callable[[], bytes]
    #: Runs once the object is written (reports a final record's URI back).
    after: Callable[[], None] | None = None
    content: bytes | None = None  # produced once, kept across retries
    #: A log: its bytes count against the recorder's log budget while it waits.
    is_log: bool = False
    held: int = 0  # bytes of this log counted in the budget
    written: bool = False
    failures: int = 0
    due: float = 0.0


class RunRecorder:
    """Implements RunObserver: enqueues records and logs; a worker thread writes them."""

    def __init__(
        self,
        store: RecordStore,
        *,
        read_pod: PodReader,
        bucket: str = "",
        prefix: str = "",
        metrics: MirrorObserver | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.read_pod = read_pod  # reads the pods recover() and the log catch-up list
        self.bucket = bucket
        self.prefix = prefix.strip("/")  # the store's own key prefix (for URIs and pods)
        self.metrics = metrics
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.kube: KubeLike | None = None
        #: Called with (namespace, name) once a run's final record is written: the
        #: operator makes the controller's pass that writes status.record.uri.
        self.on_recorded: Callable[[str, str], None] | None = None
        #: run uid -> URI of its final record, written and not yet handed back
        self._recorded: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._pending: collections.OrderedDict[str, _Job] = collections.OrderedDict()
        #: key -> the job the worker is trying now: taken out of _pending, still backlog
        #: until its write and its hook are done (else "caught up" comes before the write)
        self._in_flight: dict[str, _Job] = {}
        #: key -> sha256 of what this process wrote last (bounded: oldest forgotten first)
        self._written: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._logged: dict[str, set[str]] = {}  # run uid -> pod uids whose log is queued
        self._specs: dict[str, Any] = {}  # run uid -> pinned pipeline spec (raw JSON)
        #: Bytes of logs kept for their retry during an S3 outage, at most log_budget.
        self.log_budget = LOG_BUDGET_BYTES
        self._held_log_bytes = 0
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- life cycle ----------------------------------------------------------------------

    def start(self, kube: KubeLike, on_recorded: Callable[[str, str], None] | None = None) -> None:
        """Starts the worker; `kube` reads pod logs and pinned specs; `on_recorded` hears
        of every final record written (see `on_recorded`)."""
        self.kube = kube
        self.on_recorded = on_recorded
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="s3-mirror", daemon=True)
            self._thread.start()

    def stop(self, flush_seconds: float = 5.0) -> None:
        """Gives the queue `flush_seconds` to drain, then stops the worker."""
        deadline = self.clock() + flush_seconds
        while self.backlog() and self.clock() < deadline and self._thread is not None:
            time.sleep(0.05)
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def backlog(self) -> int:
        """Objects not yet written: waiting ones and the ones being written now (one
        count per key: a newer job may wait while an older one for its key is tried)."""
        with self._lock:
            return len(self._pending.keys() | self._in_flight.keys())

    def uri(self, key: str) -> str:
        full = f"{self.prefix}/{key}" if self.prefix else key
        return f"s3://{self.bucket}/{full}"

    # --- RunObserver ---------------------------------------------------------------------

    def run_pass(self, report: PassReportLike) -> ObserverResult | None:
        """Must not raise or block (it runs inside the controller's pass). The result
        names the run's final record once it is written, for status.record.uri."""
        try:
            self._run_pass(report)
        except Exception:  # a mirror bug must never stop a run
            _log.exception("s3 mirror: could not read a pass report")
        uid = str((report.run.get("metadata") or {}).get("uid", ""))
        with self._lock:
            # Handed back once: if the controller's write fails, the record job's hook
            # fails with it, and its retry reports the URI again.
            uri = self._recorded.pop(uid, None)
        return None if uri is None else ObserverResult(record_uri=uri)

    def _run_pass(self, report: PassReportLike) -> None:
        run = report.run
        metadata = run["metadata"]
        uid = str(metadata.get("uid", ""))
        before = (report.previous or {}).get("phase")
        phase = report.status.get("phase")
        finished = phase in FINISHED
        with self._lock:
            first_sight = uid not in self._logged
            self._logged.setdefault(uid, set())
        if first_sight and before and before not in FINISHED:
            # The run started under an earlier operator process, whose queue died with it:
            # logs of attempts that are no longer the newest pod of their task would be lost.
            self._catch_up_logs(run)
        for pod in report.pods.values():
            self._queue_log(metadata, pod)
        if before != phase:
            record = build_record(run, report.status, report.pinned, report.nodes, report.pods)
            self._queue_record(run, record, final=finished)
        if finished:
            with self._lock:
                self._logged.pop(uid, None)

    def recover(self, run: Mapping[str, Any]) -> None:
        """A finished run whose final record may be missing (the operator crashed between
        the status write and the S3 write): rebuild it from the Run and its pods."""
        run = copy.deepcopy(dict(run))  # a snapshot: kopf's body may change under us

        def gather() -> None:
            owned = self._owned_pods(run["metadata"])
            for pod in owned:
                self._queue_log(run["metadata"], pod)
            record = dataclasses.replace(
                build_record(run, run.get("status") or {}, None, {}, {}),
                recovered=True,
                pods=tuple(
                    NodeDetail.from_json(_pod_detail(pod)) for pod in sorted(owned, key=_pod_name)
                ),
            )
            self._queue_record(run, record, final=True)

        # Listing pods is an API call: the worker does it, never the caller's thread.
        self._enqueue(_Job(f"\0recover/{run['metadata'].get('uid')}", _nothing, after=gather))

    def _catch_up_logs(self, run: Mapping[str, Any]) -> None:
        metadata = dict(run["metadata"])
        uid = str(metadata.get("uid", ""))

        def gather() -> None:
            for pod in self._owned_pods(metadata):
                key = _log_key(metadata, pod)
                if pod.logs_final and key is not None and not self.store.exists(key):
                    self._queue_log(metadata, pod)

        # Listing pods and asking S3 are calls: the worker does them, never the pass.
        self._enqueue(_Job(f"\0catch-up/{uid}", _nothing, after=gather))

    def _owned_pods(self, metadata: Mapping[str, Any]) -> list[PodLike]:
        """The run's pods (worker thread only: an API call); a pod of an earlier Run of
        the same name carries the label too, so ownership is checked by uid."""
        uid = str(metadata.get("uid", ""))
        found = self._need_kube().list_pods(
            metadata["namespace"], f"{LABEL_RUN}={metadata['name']}"
        )
        return [pod for pod in map(self.read_pod, found) if pod.created_for(uid)]

    # --- enqueueing ----------------------------------------------------------------------

    def _queue_record(self, run: Mapping[str, Any], record: RunRecord, *, final: bool) -> None:
        metadata = run["metadata"]
        namespace, name, uid = metadata["namespace"], metadata["name"], metadata.get("uid", "")
        key = layout.record_key(namespace, name)

        def produce() -> bytes:
            written = record
            if record.pipeline is not None and "spec" not in record.pipeline:
                spec = self._pinned_spec(namespace, name, str(uid))
                written = dataclasses.replace(record, pipeline={**record.pipeline, "spec": spec})
            return _encode(written.to_json())

        after = None
        if final:

            def after() -> None:
                self._report_recorded(namespace, name, str(uid), self.uri(key))
                self._specs.pop(str(uid), None)  # the run is over: no later record needs it

        self._enqueue(_Job(key, produce, after))

    def _queue_log(self, run: Mapping[str, Any], pod: PodLike) -> None:
        """`run` is the Run's metadata: the log's key comes from it, never from the pod."""
        run_uid = str(run.get("uid", ""))
        key = _log_key(run, pod)
        if key is None or not pod.created_for(run_uid) or not pod.logs_final:
            return
        pod_uid = pod.uid
        with self._lock:
            seen = self._logged.setdefault(run_uid, set())
            if pod_uid in seen:
                return
            seen.add(pod_uid)
        namespace, name = pod.namespace, pod.name
        self._enqueue(_Job(key, lambda: self._read_log(namespace, name), is_log=True))

    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            earlier = self._pending.get(job.key)
            if earlier is not None:
                # Keep the newest content; a job backing off keeps its schedule.
                job.due, job.failures = earlier.due, earlier.failures
                self._held_log_bytes -= earlier.held
                if earlier.after is not None and job.after is None:
                    job.after = earlier.after
            else:
                job.due = self.clock()
            self._pending[job.key] = job
            self._lock.notify_all()
        self._report_backlog()

    # --- the worker ----------------------------------------------------------------------

    def step(self, now: float | None = None) -> float | None:
        """Tries every job due at `now`; returns when the next job is due (None: empty).
        The worker thread calls it in a loop; tests call it with a fake clock."""
        now = self.clock() if now is None else now
        with self._lock:
            due = [job for job in self._pending.values() if job.due <= now]
            for job in due:
                del self._pending[job.key]
                self._in_flight[job.key] = job
        for job in due:
            try:
                self._attempt(job, now)
            finally:
                with self._lock:
                    # Only now: a failed job is back in _pending, a written one's hook ran.
                    del self._in_flight[job.key]
        self._report_backlog()
        with self._lock:
            return min((job.due for job in self._pending.values()), default=None)

    def _attempt(self, job: _Job, now: float) -> None:
        try:
            if job.content is None:
                job.content = job.produce()
            if not job.written and job.content:
                digest = hashlib.sha256(job.content).hexdigest()
                if self._written.get(job.key) != digest:
                    self.store.put_bytes(job.key, job.content)
                self._remember(job.key, digest)
                job.written = True
            self._release(job)
            if job.after is not None:
                job.after()
        except _Gone as gone:
            _log.warning("s3 mirror: %s: %s, nothing to write", job.key, gone)
        except Exception as error:
            job.failures += 1
            job.due = now + self.backoff.delay(job.failures)
            if job.is_log and not job.written:
                self._hold_or_drop(job)
            _log.warning(
                "s3 mirror: %s failed (%d), retry in %.1fs: %s",
                job.key,
                job.failures,
                job.due - now,
                error,
            )
            with self._lock:
                # A newer job for the same key replaced this one meanwhile: it wins.
                self._pending.setdefault(job.key, job)
            # After the job is back: whoever hears of the failure sees it still waiting.
            if self.metrics is not None:
                self.metrics.observe(
                    reports.MirrorWriteFailed(job.key, job.failures, is_log=job.is_log)
                )

    def _hold_or_drop(self, job: _Job) -> None:
        """Keeps a failed log's bytes for the retry (its pod may be deleted meanwhile)
        while the budget allows; beyond it the log is read from the pod again."""
        if job.content is None or job.held:
            return
        with self._lock:
            if self._held_log_bytes + len(job.content) <= self.log_budget:
                job.held = len(job.content)
                self._held_log_bytes += job.held
                return
        job.content = None

    def _release(self, job: _Job) -> None:
        if job.held:
            with self._lock:
                self._held_log_bytes -= job.held
            job.held = 0

    def _remember(self, key: str, digest: str) -> None:
        self._written[key] = digest
        self._written.move_to_end(key)
        while len(self._written) > REMEMBERED_WRITES:
            self._written.popitem(last=False)

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
            try:
                next_due = self.step()
            except Exception:  # never let the worker die: log and go on
                _log.exception("s3 mirror: worker step failed")
                next_due = self.clock() + 1.0
            with self._lock:
                if self._stopping:
                    return
                pending_now = any(job.due <= self.clock() for job in self._pending.values())
                if not pending_now:
                    wait = None if next_due is None else max(next_due - self.clock(), 0.0)
                    self._lock.wait(timeout=wait)

    def _report_backlog(self) -> None:
        if self.metrics is not None:
            try:
                self.metrics.observe(reports.MirrorBacklog(self.backlog()))
            except Exception:
                _log.exception("s3 mirror: metrics callback failed")

    # --- reads and patches (worker thread) -----------------------------------------------

    def _need_kube(self) -> KubeLike:
        if self.kube is None:
            raise RuntimeError("the recorder was not started with a Kubernetes adapter")
        return self.kube

    def _read_log(self, namespace: str, pod: str) -> bytes:
        kube = self._need_kube()
        parts: list[bytes] = []
        main = kube.read_pod_log(namespace, pod, MAIN_CONTAINER, LOG_LIMIT_BYTES)
        if main is None:
            raise _Gone(f"pod {namespace}/{pod} is gone")
        parts.append(_cut(main))
        for container in (INPUTS_CONTAINER, OUTPUTS_CONTAINER):
            text = kube.read_pod_log(namespace, pod, container, LOG_LIMIT_BYTES)
            if text is None:
                continue
            if parts[-1] and not parts[-1].endswith(b"\n"):
                parts.append(b"\n")
            parts.append(f"===== {container} =====\n".encode())
            parts.append(_cut(text))
        return b"".join(parts)

    def _pinned_spec(self, namespace: str, name: str, uid: str) -> Any:
        if uid not in self._specs:
            stored = self._need_kube().get_config_map(namespace, pinned_config_name(name))
            if stored is None or PINNED_SPEC_KEY not in stored:
                return None  # not cached: a later write may find it
            self._specs[uid] = json.loads(stored[PINNED_SPEC_KEY]).get("spec")
        return self._specs[uid]

    def _report_recorded(self, namespace: str, name: str, uid: str, uri: str) -> None:
        """The final record is in S3: keep its URI for this run's next pass report, and
        ask for that pass. It raising (the status write failed) retries this later."""
        with self._lock:
            self._recorded[uid] = uri
            while len(self._recorded) > REMEMBERED_WRITES:
                self._recorded.popitem(last=False)
        if self.on_recorded is not None:
            self.on_recorded(namespace, name)


# --- the record ---------------------------------------------------------------------------


def build_record(
    run: Mapping[str, Any],
    status: Mapping[str, Any],
    pinned: PinnedLike | None,
    nodes: Mapping[NodeKey, NodeState],
    pods: Mapping[NodeKey, PodLike],
) -> RunRecord:
    """The run.json document: the Run, its pinned pipeline and every node's full detail."""
    metadata = run["metadata"]
    record = RunRecord(
        metadata={
            field: metadata[field]
            for field in ("name", "namespace", "uid", "labels", "creationTimestamp")
            if field in metadata
        },
        spec=dict(run.get("spec") or {}),
        status=runstatus.RunStatus.from_json(status),
        pipeline=dict(pinned.pipeline) if pinned is not None else None,
    )
    if pinned is None:
        return record
    compiled = pinned.compiled
    everything = list(compiled.tasks)
    if compiled.on_exit is not None:
        everything.append(compiled.on_exit)
    tasks = {task.name: _task_detail(task, nodes, pods) for task in everything}
    return dataclasses.replace(record, tasks=tasks)


def _task_detail(
    task: CompiledTask,
    nodes: Mapping[NodeKey, NodeState],
    pods: Mapping[NodeKey, PodLike],
) -> NodeDetail:
    key = (task.index, TASK)
    detail = dataclasses.replace(_node_detail(nodes.get(key), pods.get(key)), on_exit=task.is_exit)
    if task.fan_out:
        instances = sorted(k[1] for k in nodes if k[0] == task.index and k[1] != TASK)
        detail = dataclasses.replace(
            detail,
            instances=tuple(
                dataclasses.replace(
                    _node_detail(nodes[(task.index, i)], pods.get((task.index, i))), index=i
                )
                for i in instances
            ),
        )
    return detail


def _node_detail(state: NodeState | None, pod: PodLike | None) -> NodeDetail:
    if state is None:
        return NodeDetail()
    detail = NodeDetail(
        phase=state.phase.value,
        attempts=state.attempts,
        message=state.message,
        outputs=dict(state.outputs),  # all of them, however long
        failure="" if state.failure is None else str(state.failure.value),
        finished_at="" if state.finished_at is None else times.timestamp(state.finished_at),
        cached_from={} if state.cached_from is None else state.cached_from.to_json(),
        digests=dict(state.digests),
    )
    if pod is None:
        return detail
    seen = NodeDetail.from_json(_pod_detail(pod))
    return dataclasses.replace(
        detail,
        pod=seen.pod,
        task=seen.task,
        instance=seen.instance,
        attempt=seen.attempt,
        node_name=seen.node_name,
        exit_code=seen.exit_code,
        main_started_at=seen.main_started_at,
        main_finished_at=seen.main_finished_at,
        pod_phase=seen.pod_phase,
    )


def _pod_detail(pod: PodLike) -> dict[str, Any]:
    detail: dict[str, Any] = {"pod": pod.name, "task": pod.task}
    if pod.instance is not None:
        detail["instance"] = pod.instance
    detail["attempt"] = pod.attempt
    if pod.node_name:
        detail["nodeName"] = pod.node_name
    main = pod.ended(MAIN_CONTAINER)
    if main is not None:
        detail["exitCode"] = main.exit_code
        if main.started_at:
            detail["mainStartedAt"] = main.started_at
        if main.finished_at:
            detail["mainFinishedAt"] = main.finished_at
    if pod.phase:
        detail["podPhase"] = pod.phase
    return detail


def _log_key(run: Mapping[str, Any], pod: PodLike) -> str | None:
    """Where a pod's log goes, from the Run (namespace, name) and the pod's task, instance
    and attempt labels; never from a pod annotation (whoever made the pod wrote those, and
    the mirror writes with the operator's credentials). None: labels that name no node."""
    if not pod.names_a_node or pod.task is None:
        return None
    node = layout.node_prefix(str(run["namespace"]), str(run["name"]), pod.task, pod.instance)
    return layout.log_key(node, pod.attempt)


def _pod_name(pod: PodLike) -> str:
    return pod.name


def _encode(record: Mapping[str, Any]) -> bytes:
    # Sorted and without a write time: the same run state always gives the same bytes.
    return (json.dumps(record, indent=1, sort_keys=True, default=str) + "\n").encode()


def _cut(data: bytes) -> bytes:
    if len(data) >= LOG_LIMIT_BYTES:
        return data + f"\n[pipesync: log cut at {LOG_LIMIT_BYTES} bytes]\n".encode()
    return data


def _nothing() -> bytes:
    return b""
