"""Prometheus metrics of the operator, derived from what each Run controller pass reports.

Why derived from pass reports: the controller already reads the Run, its status before
and after the pass, and its pods once per pass. Comparing the status before and after
tells what happened in this pass (a run started, finished, a task ended), so metrics need
no extra API calls and no hand instrumentation inside the controller.

Semantics across restarts (the operator may be SIGKILLed at any moment):
- Counters count what this process observed, in base units, and start at zero in a new
  process (Prometheus' `rate`/`increase` handle the reset). Run starts and finishes come
  from the phase change between the status a pass read and the one it wrote: that status
  is stored in the cluster, so a restarted operator never counts a transition again that
  its predecessor already wrote (a crash between writing and reporting loses one count,
  it never doubles one).
- A run a process first meets mid-flight sets a baseline: pods that already exist then
  are not counted as retries, and pods already finished then are counted as finished
  tasks only when the status written before the restart had not yet recorded their end.
- Gauges (active runs, tasks by phase, pending pods) are recomputed at scrape time from
  the latest pass of every unfinished run, so they are right again as soon as the
  restarted operator has passed over each run once; a run not reported for
  `stale_seconds` (deleted while running) drops out of them. A GitSource's gauges are
  restored from its status when its sync starts (`git_source_seen`), not at its next
  commit.
- Every counter series that can be known before its first increment exists at 0 from
  then on (prometheus_client's advice for labelled metrics): `increase()` and `rate()`
  only see an increment between two samples, so a series born at 1 hides the first run,
  failure or retry after every start. Label-less and fixed-label series (controllers,
  schedule reasons) start with the process; a pipeline's series when the Pipeline
  controller or a run of it is first seen (`pipeline_seen`); a pool's GPU-seconds when a
  GPU pod is first seen (it is counted when it ends); a GitSource's when its sync starts.

Labels are the pipeline, phase, pool, namespace or controller: never the run
(cardinality; a run's detail lives in its status and the S3 record). Every run and task
metric carries the run's `namespace` (pipelines of the same name in two namespaces are
two pipelines; the chart's monitors set honorLabels so it survives the scrape).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipesync import __version__
from pipesync.api import times
from pipesync.api.conventions import LABEL_ATTEMPT, LABEL_POOL
from pipesync.engine import recurring
from pipesync.engine.state import FINISHED, TASK, NodeKey, NodeState, Phase
from pipesync.observe.passes import PassReportLike

_log = logging.getLogger(__name__)

NOT_STARTED = frozenset({"", "Pending"})
#: The controllers timed through `reconcile` (controllers/operator.py and the handlers).
CONTROLLERS = ("runs", "pipelines", "gitsources", "recurringruns")
#: GitSource Ready reasons of an attempt that applied its revision (the rest applied nothing).
GIT_APPLIED = frozenset({"Succeeded", "InvalidFiles"})
#: GitSource sync results started at zero for every source (rarer ones appear when they
#: first happen, and so does whatever reason the source's status shows at start).
GIT_COMMON_RESULTS = ("Succeeded", "InvalidFiles", "FetchFailed", "FetchTimeout",
                      "AuthenticationFailed")  # fmt: skip
INLINE = "(inline)"  # pipeline label of runs with an inline spec (not a valid object name)
NO_POOL = "none"
GPU_RESOURCE = "nvidia.com/gpu"
#: A run's status.taskCounts keys, as the phase label of pipesync_tasks.
TASK_COUNT_PHASES = {
    "pending": "Pending",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "skipped": "Skipped",
}
_NODE_ENDED = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})
_TASK_ENDED = frozenset(p.value for p in (*_NODE_ENDED, Phase.SKIPPED, Phase.OMITTED))

RUN_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
TASK_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400)
SCHEDULE_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GitSyncReport(Protocol):
    """pipesync.controllers.gitsources.SyncReport: what one sync attempt did."""

    @property
    def result(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def applied(self) -> int: ...
    @property
    def created(self) -> int: ...
    @property
    def pruned(self) -> int: ...
    @property
    def invalid_files(self) -> int: ...
    @property
    def committed_at(self) -> float | None: ...


class RequestCounts(Protocol):
    """pipesync.kube.client.KubeClient: API requests counted by (verb, status code)."""

    @property
    def requests(self) -> Mapping[tuple[str, int], int]: ...


@dataclasses.dataclass
class _Tracked:
    """An unfinished run as its latest pass left it."""

    namespace: str
    seen: float  # monotonic time of the latest report
    task_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    pods_pending: int = 0
    known_pods: set[str] = dataclasses.field(default_factory=set)  # pod uids seen
    ended_pods: set[str] = dataclasses.field(default_factory=set)  # pod uids counted ended


class Metrics:
    """Implements RunObserver; one instance per operator process, on its own registry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        version: str = __version__,
        stale_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Never the global default registry: tests and embedders get isolated metrics.
        self.registry = CollectorRegistry() if registry is None else registry
        self.stale_seconds = stale_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._runs: dict[str, _Tracked] = {}  # by run uid
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._namespaces: set[str] = set()  # reported as 0 once they have no active run
        self._pipelines: set[tuple[str, str]] = set()  # (namespace, pipeline) initialised
        self._request_sources: list[RequestCounts] = []
        r = self.registry
        self.runs_started = Counter(
            "pipesync_runs_started",
            "Runs that left Pending.",
            ["namespace", "pipeline"],
            registry=r,
        )
        self.runs_finished = Counter(
            "pipesync_runs_finished",
            "Runs that reached a final phase.",
            ["namespace", "pipeline", "phase"],
            registry=r,
        )
        self.run_duration = Histogram(
            "pipesync_run_duration_seconds",
            "Run duration from start to finish.",
            ["namespace", "pipeline", "phase"],
            buckets=RUN_BUCKETS,
            registry=r,
        )
        self.task_duration = Histogram(
            "pipesync_task_duration_seconds",
            "Duration of each finished task pod (one per attempt and forEach item).",
            ["namespace", "pipeline", "phase"],
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.task_retries = Counter(
            "pipesync_task_retries",
            "Task attempts after the first.",
            ["namespace", "pipeline"],
            registry=r,
        )
        self.gpu_seconds = Counter(
            "pipesync_gpu_seconds",
            "GPU limit times runtime of finished task pods.",
            ["namespace", "pool"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "pipesync_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            ["controller"],
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconcile_errors = Counter(
            "pipesync_reconcile_errors",
            "Reconcile passes that raised.",
            ["controller"],
            registry=r,
        )
        self.mirror_failures = Counter(
            "pipesync_s3_mirror_failures",
            "Failed attempts to write a run record to S3.",
            registry=r,
        )
        self.mirror_backlog = Gauge(
            "pipesync_s3_mirror_backlog", "Run records waiting to be written to S3.", registry=r
        )
        for controller in CONTROLLERS:  # at 0 before the first pass or error
            self.reconcile_duration.labels(controller)
            self.reconcile_errors.labels(controller)
        self._init_recurring(r)
        self._init_git_sources(r)
        Gauge(
            "pipesync_build_info", "The running pipesync version.", ["version"], registry=r
        ).labels(version).set(1)
        r.register(_Collector(self))
        # process_resident_memory_bytes, process_cpu_seconds_total...: the dashboards' memory.
        ProcessCollector(registry=r)

    # --- hooks for the wiring and the S3 mirror ------------------------------------------

    @contextlib.contextmanager
    def reconcile(self, controller: str) -> Iterator[None]:
        """Times one reconcile pass of `controller`; counts it as an error if it raises."""
        began = time.perf_counter()
        try:
            yield
        except Exception:
            self.reconcile_errors.labels(controller).inc()
            raise
        finally:
            self.reconcile_duration.labels(controller).observe(time.perf_counter() - began)

    def watch_requests(self, source: RequestCounts) -> None:
        """Expose `source.requests` as pipesync_kubernetes_requests_total, read at scrape."""
        with self._lock:
            self._request_sources.append(source)

    def mirror_failed(self) -> None:
        self.mirror_failures.inc()

    def set_mirror_backlog(self, records: int) -> None:
        self.mirror_backlog.set(records)

    # --- series that exist before their first increment -----------------------------------

    def pipeline_seen(self, namespace: str, pipeline: str) -> None:
        """A Pipeline exists (the Pipeline controller saw it): its run and task series start
        at 0 now, so the increment of its first run is an increase Prometheus can see."""
        with self._lock:
            self._namespaces.add(namespace)
            self._init_pipeline(namespace, pipeline)

    def _init_pipeline(self, namespace: str, pipeline: str) -> None:
        if (namespace, pipeline) in self._pipelines:
            return
        self._pipelines.add((namespace, pipeline))
        self.runs_started.labels(namespace, pipeline)
        self.task_retries.labels(namespace, pipeline)
        for phase in sorted(FINISHED):
            self.runs_finished.labels(namespace, pipeline, phase)
            self.run_duration.labels(namespace, pipeline, phase)
            self.task_duration.labels(namespace, pipeline, phase)

    # --- RunObserver ---------------------------------------------------------------------

    def run_pass(self, report: PassReportLike) -> None:
        """Must not raise (it runs inside the controller's pass): bad input is skipped."""
        try:
            with self._lock:
                self._run_pass(report)
        except Exception:  # a metrics bug must never stop a run
            _log.exception("metrics: could not read a pass report")

    def _run_pass(self, report: PassReportLike) -> None:
        metadata = report.run.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        uid = str(metadata.get("uid") or f"{namespace}/{metadata.get('name')}")
        if uid in self._finished:
            return  # its end is counted; a late report must not count it again
        before = str(report.previous.get("phase") or "")
        after = str(report.status.get("phase") or "")
        pipeline = _pipeline_label(report)
        tracked = self._runs.get(uid)
        baseline = tracked is None and before not in NOT_STARTED
        if tracked is None:
            tracked = self._runs[uid] = _Tracked(namespace, self._monotonic())
            self._namespaces.add(namespace)
            # Too late for this run's start when it is an inline spec, in time for its end.
            self._init_pipeline(namespace, pipeline)
        tracked.seen = self._monotonic()
        if before in NOT_STARTED and after not in NOT_STARTED:
            self.runs_started.labels(namespace, pipeline).inc()
        self._observe_pods(report, tracked, pipeline, baseline)
        counts = report.status.get("taskCounts") or {}
        tracked.task_counts = {k: int(counts.get(k) or 0) for k in TASK_COUNT_PHASES}
        tracked.pods_pending = sum(
            1
            for pod in report.pods.values()
            if (pod.get("status") or {}).get("phase", "Pending") == "Pending"
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
        )
        if after in FINISHED:
            del self._runs[uid]
            self._finished[uid] = None
            while len(self._finished) > 10_000:
                self._finished.popitem(last=False)
            if before not in FINISHED:
                self.runs_finished.labels(namespace, pipeline, after).inc()
                began = times.instant(report.status.get("startedAt"))
                ended = times.instant(report.status.get("finishedAt"))
                if began is not None and ended is not None:
                    seconds = max(ended - began, 0.0)
                    self.run_duration.labels(namespace, pipeline, after).observe(seconds)

    def _observe_pods(
        self, report: PassReportLike, tracked: _Tracked, pipeline: str, baseline: bool
    ) -> None:
        previous_tasks: Mapping[str, Any] = report.previous.get("tasks") or {}
        namespace = tracked.namespace
        for key, pod in report.pods.items():
            pod_metadata = pod.get("metadata") or {}
            pod_uid = str(pod_metadata.get("uid") or pod_metadata.get("name"))
            attempt = _attempt(pod)
            first_sight = pod_uid not in tracked.known_pods
            tracked.known_pods.add(pod_uid)
            if first_sight and _gpus(pod):
                self.gpu_seconds.labels(namespace, _pool(pod))  # at 0 while the pod runs
            if first_sight and attempt > 1 and not baseline:
                self.task_retries.labels(namespace, pipeline).inc()
            if pod_uid in tracked.ended_pods:
                continue
            ended = _pod_ended(pod, report.nodes.get(key), attempt)
            if ended is None:
                continue
            tracked.ended_pods.add(pod_uid)
            if baseline and _recorded_before(report, key, attempt, previous_tasks):
                continue
            phase, finished_at = ended
            if finished_at is None:
                finished_at = self._clock()  # stopped pods: until they were told to stop
            began = times.instant((pod.get("status") or {}).get("startTime")) or times.instant(
                pod_metadata.get("creationTimestamp")
            )
            if began is None:
                continue
            seconds = max(finished_at - began, 0.0)
            self.task_duration.labels(namespace, pipeline, phase).observe(seconds)
            gpus = _gpus(pod)
            if gpus:
                self.gpu_seconds.labels(namespace, _pool(pod)).inc(gpus * seconds)

    # --- scrape-time values --------------------------------------------------------------

    def _gauges(self) -> tuple[dict[str, int], dict[tuple[str, str], int], dict[str, int]]:
        """Active runs and pending pods by namespace, tasks by (namespace, phase)."""
        with self._lock:
            oldest = self._monotonic() - self.stale_seconds
            for uid in [u for u, t in self._runs.items() if t.seen < oldest]:
                del self._runs[uid]  # deleted while running: no pass reports its end
            active = dict.fromkeys(self._namespaces, 0)
            tasks = {
                (namespace, phase): 0
                for namespace in self._namespaces
                for phase in TASK_COUNT_PHASES.values()
            }
            pending = dict.fromkeys(self._namespaces, 0)
            for tracked in self._runs.values():
                active[tracked.namespace] += 1
                for key, phase in TASK_COUNT_PHASES.items():
                    tasks[(tracked.namespace, phase)] += tracked.task_counts.get(key, 0)
                pending[tracked.namespace] += tracked.pods_pending
            return active, tasks, pending

    def _requests(self) -> dict[tuple[str, int], int]:
        with self._lock:
            sources = list(self._request_sources)
        totals: collections.Counter[tuple[str, int]] = collections.Counter()
        for source in sources:
            for _ in range(5):  # the controller threads may add a key while we copy
                try:
                    totals.update(dict(source.requests))
                    break
                except RuntimeError:
                    continue
        return dict(totals)

    # --- RecurringRuns (observed by controllers/recurringruns.py) ------------------------

    def _init_recurring(self, r: CollectorRegistry) -> None:
        self.recurring_fires = Counter(
            "pipesync_recurring_fires",
            "Scheduled times of RecurringRuns that started a Run.",
            registry=r,
        )
        self.recurring_skips = Counter(
            "pipesync_recurring_skips",
            "Scheduled times due on time but not started, by reason (Suspended, "
            "ConcurrencyForbid, ConcurrencyLimit, Replaced).",
            ["reason"],
            registry=r,
        )
        self.recurring_misses = Counter(
            "pipesync_recurring_missed",
            "Scheduled times too late to start (operator down or busy), by reason "
            "(DeadlineExceeded, CatchupNone, CatchupLatest, CatchupMaxRuns).",
            ["reason"],
            registry=r,
        )
        for reason in recurring.SKIP_REASONS:
            self.recurring_skips.labels(reason)
        for reason in recurring.MISS_REASONS:
            self.recurring_misses.labels(reason)
        self.recurring_lag = Histogram(
            "pipesync_recurring_schedule_lag_seconds",
            "Time from a RecurringRun's scheduled time to the creation of its Run.",
            buckets=SCHEDULE_LAG_BUCKETS,
            registry=r,
        )

    def recurring_fired(self, lag_seconds: float) -> None:
        self.recurring_fires.inc()
        self.recurring_lag.observe(lag_seconds)

    def recurring_skipped(self, reason: str, count: int) -> None:
        self.recurring_skips.labels(reason).inc(count)

    def recurring_missed(self, reason: str, count: int) -> None:
        self.recurring_misses.labels(reason).inc(count)

    # --- GitSources (observed by controllers/gitsources_handlers.py) ---------------------

    def _init_git_sources(self, r: CollectorRegistry) -> None:
        labels = ["namespace", "name"]
        self.git_sync_duration = Histogram(
            "pipesync_gitsource_sync_duration_seconds",
            "Time of one sync attempt of a GitSource (fetch, read, validate, apply, prune).",
            labels,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.git_syncs = Counter(
            "pipesync_gitsource_syncs",
            "Sync attempts of a GitSource by result (the Ready reason: Succeeded, "
            "InvalidFiles, FetchFailed, AuthenticationFailed, MassDeletionRefused, ...).",
            [*labels, "result"],
            registry=r,
        )
        self.git_sync_errors = Counter(
            "pipesync_gitsource_sync_errors",
            "Sync attempts of a GitSource that applied nothing, by reason.",
            [*labels, "reason"],
            registry=r,
        )
        self.git_sync_lag = Histogram(
            "pipesync_gitsource_sync_lag_seconds",
            "Time from a commit's timestamp to its objects being applied.",
            labels,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.git_last_success = Gauge(
            "pipesync_gitsource_last_success_timestamp_seconds",
            "Unix time of the GitSource's last sync that applied a revision.",
            labels,
            registry=r,
        )
        self.git_applied = Counter(
            "pipesync_gitsource_objects_applied",
            "Objects a GitSource applied (server-side apply or create).",
            labels,
            registry=r,
        )
        self.git_pruned = Counter(
            "pipesync_gitsource_objects_pruned",
            "Objects a GitSource deleted because their file left the repository.",
            labels,
            registry=r,
        )
        self.git_invalid_files = Gauge(
            "pipesync_gitsource_invalid_files",
            "Files with errors in the GitSource's last synced revision.",
            labels,
            registry=r,
        )
        self.git_info = Gauge(
            "pipesync_gitsource_info",
            "1 for each GitSource: its current revision and whether its last sync applied "
            "it (ready).",
            [*labels, "revision", "ready"],
            registry=r,
        )
        self._git_info_labels: dict[tuple[str, str], tuple[str, str]] = {}

    def git_sync(
        self, namespace: str, name: str, report: GitSyncReport, seconds: float | None = None
    ) -> None:
        """One sync attempt of a GitSource (not called for passes that did nothing)."""
        applied = report.committed_at is not None
        if seconds is not None:
            self.git_sync_duration.labels(namespace, name).observe(seconds)
        self.git_syncs.labels(namespace, name, report.result).inc()
        now = self._clock()
        if applied:
            self.git_last_success.labels(namespace, name).set(now)
            self.git_sync_lag.labels(namespace, name).observe(
                max(now - float(report.committed_at or now), 0.0)
            )
            self.git_invalid_files.labels(namespace, name).set(report.invalid_files)
        else:
            self.git_sync_errors.labels(namespace, name, report.result).inc()
        self.git_applied.labels(namespace, name).inc(report.applied + report.created)
        self.git_pruned.labels(namespace, name).inc(report.pruned)
        with self._lock:
            before = self._git_info_labels.get((namespace, name))
        revision = report.revision or (before[0] if before else "")
        self._set_git_info(namespace, name, revision, "true" if applied else "false")

    def git_source_seen(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """The source's sync starts (operator start, resync or a new source): its counters
        start at 0 and its gauges say again what its stored status says, instead of
        nothing until its next commit. Must not raise: it runs in the source's sync."""
        try:
            self._git_source_seen(namespace, name, status)
        except Exception:  # a metrics bug must never stop a sync
            _log.exception("metrics: could not read the status of %s/%s", namespace, name)

    def _git_source_seen(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        ready = _git_condition(status, "Ready")
        reason = str(ready.get("reason") or "")
        for result in (*GIT_COMMON_RESULTS, *([reason] if reason else [])):
            self.git_syncs.labels(namespace, name, result)
            if result not in GIT_APPLIED:
                self.git_sync_errors.labels(namespace, name, result)
        self.git_applied.labels(namespace, name)
        self.git_pruned.labels(namespace, name)
        self.git_sync_duration.labels(namespace, name)
        self.git_sync_lag.labels(namespace, name)
        applied = str(status.get("lastAppliedRevision") or "")
        attempted = str(status.get("lastAttemptedRevision") or applied)
        if not attempted:
            return  # never synced: no revision to report yet
        # The last attempt applied its revision: the info series' "ready" as git_sync sets it.
        current = reason in GIT_APPLIED and attempted == applied
        if applied:
            # Reconciling turns False at the end of each sync that got as far as applying,
            # and keeps that transition time through later failed fetches.
            ended = times.instant(_git_condition(status, "Reconciling").get("lastTransitionTime"))
            if ended is not None:
                self.git_last_success.labels(namespace, name).set(ended)
        if current:
            errors = status.get("errors") or []
            broken = {e.get("file") for e in errors if e.get("severity", "error") == "error"}
            self.git_invalid_files.labels(namespace, name).set(len(broken))
        self._set_git_info(namespace, name, attempted, "true" if current else "false")

    def _set_git_info(self, namespace: str, name: str, revision: str, ready: str) -> None:
        with self._lock:
            before = self._git_info_labels.get((namespace, name))
            if before is not None and before != (revision, ready):
                self.git_info.remove(namespace, name, *before)
            self._git_info_labels[(namespace, name)] = (revision, ready)
        self.git_info.labels(namespace, name, revision, ready).set(1)

    def git_source_deleted(self, namespace: str, name: str) -> None:
        """Drops the source's series that describe a current state."""
        with self._lock:
            before = self._git_info_labels.pop((namespace, name), None)
        if before is not None:
            self.git_info.remove(namespace, name, *before)
        for gauge in (self.git_last_success, self.git_invalid_files):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)

    # --- push webhook receiver (gitops/webhooks.py reports through this callback) --------

    def count_webhooks(self, results: Iterable[str] = ()) -> Callable[[str], None]:
        """The receiver's `on_result` callback, counting pipesync_webhook_requests_total by
        result; created on first use (once), each of `results` starting at zero."""
        with self._lock:
            counter: Counter | None = getattr(self, "_webhook_requests", None)
            if counter is None:
                counter = Counter(
                    "pipesync_webhook_requests",
                    "Requests to the push webhook receiver, by result.",
                    ["result"],
                    registry=self.registry,
                )
                self._webhook_requests = counter
            for result in results:
                counter.labels(result)
        return lambda result: counter.labels(result).inc()


class _Collector(Collector):
    """The values computed when Prometheus scrapes, not when something happens."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        active, tasks, pending = self.metrics._gauges()
        runs = GaugeMetricFamily(
            "pipesync_runs_active", "Unfinished runs the operator drives.", labels=["namespace"]
        )
        for namespace, value in sorted(active.items()):
            runs.add_metric([namespace], value)
        yield runs
        by_phase = GaugeMetricFamily(
            "pipesync_tasks", "Tasks of unfinished runs by phase.", labels=["namespace", "phase"]
        )
        for (namespace, phase), value in sorted(tasks.items()):
            by_phase.add_metric([namespace, phase], value)
        yield by_phase
        waiting = GaugeMetricFamily(
            "pipesync_pods_pending",
            "Task pods not yet running (unscheduled or starting).",
            labels=["namespace"],
        )
        for namespace, value in sorted(pending.items()):
            waiting.add_metric([namespace], value)
        yield waiting
        requests = CounterMetricFamily(
            "pipesync_kubernetes_requests",
            "Kubernetes API requests of the controllers by verb and status code.",
            labels=["verb", "code"],
        )
        for (verb, code), value in sorted(self.metrics._requests().items()):
            requests.add_metric([verb, str(code)], value)
        yield requests


# --- reading reports and pods --------------------------------------------------------------


def _pipeline_label(report: PassReportLike) -> str:
    name = ""
    if report.pinned is not None:
        name = report.pinned.pipeline.get("name") or ""
    if not name:
        name = str(((report.run.get("spec") or {}).get("pipelineRef") or {}).get("name") or "")
    return name or INLINE


def _git_condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def _attempt(pod: Mapping[str, Any]) -> int:
    try:
        return int(((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_ATTEMPT, "1"))
    except ValueError:
        return 1


def _pod_ended(
    pod: Mapping[str, Any], node: NodeState | None, attempt: int
) -> tuple[str, float | None] | None:
    """(phase, finish time) once the pod's attempt is over; None while it runs."""
    if node is not None and node.attempts == attempt and node.phase in _NODE_ENDED:
        return node.phase.value, node.finished_at or _containers_finished_at(pod)
    if node is not None and node.attempts > attempt:
        # The planner launched the next attempt in this pass: this one failed.
        return Phase.FAILED.value, _containers_finished_at(pod)
    pod_phase = (pod.get("status") or {}).get("phase")
    if pod_phase in ("Succeeded", "Failed"):
        return str(pod_phase), _containers_finished_at(pod)
    return None


def _recorded_before(
    report: PassReportLike, key: NodeKey, attempt: int, previous_tasks: Mapping[str, Any]
) -> bool:
    """Whether the status written before this pass already showed this attempt ended."""
    if key[1] != TASK or report.pinned is None:
        return True  # forEach items have no status line each: assume counted before
    compiled = report.pinned.compiled
    task = compiled.tasks[key[0]] if key[0] < len(compiled.tasks) else compiled.on_exit
    if task is None:
        return True
    summary = previous_tasks.get(task.name)
    if not isinstance(summary, Mapping):
        return bool(report.previous.get("tasksTruncated"))  # dropped: it had ended
    return summary.get("phase") in _TASK_ENDED and int(summary.get("attempts") or 0) >= attempt


def _containers_finished_at(pod: Mapping[str, Any]) -> float | None:
    status = pod.get("status") or {}
    ends = [
        times.instant(((entry.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        for entry in (
            *(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ()),
        )
    ]
    known = [end for end in ends if end is not None]
    return max(known) if known else None


def _gpus(pod: Mapping[str, Any]) -> float:
    total = 0.0
    for container in (pod.get("spec") or {}).get("containers") or ():
        limit = ((container.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE)
        with contextlib.suppress(TypeError, ValueError):
            total += float(limit or 0)
    return total


def _pool(pod: Mapping[str, Any]) -> str:
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    return str(selector.get(LABEL_POOL) or NO_POOL)
