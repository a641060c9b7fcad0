"""Run and task metrics, derived from what each Run controller pass reports.

Why derived from pass reports: the controller already reads the Run, its status before
and after the pass, and its pods once per pass. Comparing the status before and after
tells what happened in this pass (a run started, finished, a task ended), so metrics need
no extra API calls and no hand instrumentation inside the controller.

Semantics across restarts (the operator may be SIGKILLed at any moment):
- Run starts and finishes come from the phase change between the status a pass read and
  the one it wrote: that status is stored in the cluster, so a restarted operator never
  counts a transition again that its predecessor already wrote (a crash between writing
  and reporting loses one count, it never doubles one).
- A run a process first meets mid-flight sets a baseline: pods that already exist then
  are not counted as retries, and pods already finished then are counted as finished
  tasks only when the status written before the restart had not yet recorded their end.
- Gauges (active runs, tasks by phase, pending pods) are recomputed at scrape time from
  the latest pass of every unfinished run, so they are right again as soon as the
  restarted operator has passed over each run once; a run not reported for
  `stale_seconds` (deleted while running) drops out of them.
- A pipeline's series start at 0 when the Pipeline controller or a run of it is first
  seen (`pipeline_seen`); a pool's GPU-seconds when a GPU pod is first seen (it is
  counted when it ends).

Every series carries the run's `namespace` (pipelines of the same name in two namespaces
are two pipelines; the chart's monitors set honorLabels so it survives the scrape), never
the run (cardinality; a run's detail lives in its status and the S3 record).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipesync.api import times
from pipesync.engine.state import FINISHED, TASK, NodeKey, NodeState, Phase
from pipesync.observe.passes import PassReportLike, PodLike

_log = logging.getLogger(__name__)

NOT_STARTED = frozenset({"", "Pending"})
INLINE = "(inline)"  # pipeline label of runs with an inline spec (not a valid object name)
NO_POOL = "none"
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
#: Finished runs remembered so a late report of one never counts its end again.
_REMEMBERED_FINISHED = 10_000

RUN_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
TASK_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400)


@dataclasses.dataclass
class _Tracked:
    """An unfinished run as its latest pass left it."""

    namespace: str
    seen: float  # monotonic time of the latest report
    task_counts: dict[str, int] = dataclasses.field(default_factory=dict)
    pods_pending: int = 0
    known_pods: set[str] = dataclasses.field(default_factory=set)  # pod uids seen
    ended_pods: set[str] = dataclasses.field(default_factory=set)  # pod uids counted ended


class RunMetrics:
    """Implements RunObserver: counters of run and task events, gauges of unfinished runs."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        stale_seconds: float,
        clock: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.stale_seconds = stale_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._runs: dict[str, _Tracked] = {}  # by run uid
        self._finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._namespaces: set[str] = set()  # reported as 0 once they have no active run
        self._pipelines: set[tuple[str, str]] = set()  # (namespace, pipeline) initialised
        r = registry
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
        self.cache_hits = Counter(
            "pipesync_cache_hits",
            "Task launches the task cache served (no pod ran).",
            ["namespace", "pipeline"],
            registry=r,
        )
        self.cache_misses = Counter(
            "pipesync_cache_misses",
            "Task launches that looked the task cache up and ran (no entry, or one that "
            "may not serve: stale, incomplete, its artifacts gone or changed).",
            ["namespace", "pipeline"],
            registry=r,
        )
        self.cache_gpu_seconds_saved = Counter(
            "pipesync_cache_gpu_seconds_saved",
            "For cache hits: the source task's duration times the GPUs it held.",
            ["namespace", "pipeline"],
            registry=r,
        )
        #: The scrape-time gauges; the wiring registers it (after the counters of every
        #: domain, so the exposition keeps its order).
        self.gauges: Collector = _RunGauges(self)

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
        self.cache_hits.labels(namespace, pipeline)
        self.cache_misses.labels(namespace, pipeline)
        self.cache_gpu_seconds_saved.labels(namespace, pipeline)
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
        self._observe_cache(report, namespace, pipeline)
        counts = report.status.get("taskCounts") or {}
        tracked.task_counts = {k: int(counts.get(k) or 0) for k in TASK_COUNT_PHASES}
        tracked.pods_pending = sum(
            1 for pod in report.pods.values() if pod.pending and not pod.deleting
        )
        if after in FINISHED:
            del self._runs[uid]
            self._finished[uid] = None
            while len(self._finished) > _REMEMBERED_FINISHED:
                self._finished.popitem(last=False)
            if before not in FINISHED:
                self.runs_finished.labels(namespace, pipeline, after).inc()
                began = times.instant(report.status.get("startedAt"))
                ended = times.instant(report.status.get("finishedAt"))
                if began is not None and ended is not None:
                    seconds = max(ended - began, 0.0)
                    self.run_duration.labels(namespace, pipeline, after).observe(seconds)

    def _observe_cache(self, report: PassReportLike, namespace: str, pipeline: str) -> None:
        cache = report.cache
        if cache.hits:
            self.cache_hits.labels(namespace, pipeline).inc(cache.hits)
        if cache.misses:
            self.cache_misses.labels(namespace, pipeline).inc(cache.misses)
        if cache.gpu_seconds_saved:
            saved = self.cache_gpu_seconds_saved.labels(namespace, pipeline)
            saved.inc(cache.gpu_seconds_saved)

    def _observe_pods(
        self, report: PassReportLike, tracked: _Tracked, pipeline: str, baseline: bool
    ) -> None:
        previous_tasks: Mapping[str, Any] = report.previous.get("tasks") or {}
        namespace = tracked.namespace
        for key, pod in report.pods.items():
            pod_uid = pod.uid or pod.name
            attempt = pod.attempt
            first_sight = pod_uid not in tracked.known_pods
            tracked.known_pods.add(pod_uid)
            if first_sight and pod.gpus:
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
            began = pod.started_at or pod.created_at
            if began is None:
                continue
            seconds = max(finished_at - began, 0.0)
            self.task_duration.labels(namespace, pipeline, phase).observe(seconds)
            if pod.gpus:
                self.gpu_seconds.labels(namespace, _pool(pod)).inc(pod.gpus * seconds)

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


class _RunGauges(Collector):
    """The run gauges, computed when Prometheus scrapes, not when something happens."""

    def __init__(self, metrics: RunMetrics) -> None:
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


# --- reading reports and pods --------------------------------------------------------------


def _pipeline_label(report: PassReportLike) -> str:
    name = ""
    if report.pinned is not None:
        name = report.pinned.pipeline.get("name") or ""
    if not name:
        name = str(((report.run.get("spec") or {}).get("pipelineRef") or {}).get("name") or "")
    return name or INLINE


def _pod_ended(
    pod: PodLike, node: NodeState | None, attempt: int
) -> tuple[str, float | None] | None:
    """(phase, finish time) once the pod's attempt is over; None while it runs."""
    if node is not None and node.attempts == attempt and node.phase in _NODE_ENDED:
        return node.phase.value, node.finished_at or pod.last_finished_at
    if node is not None and node.attempts > attempt:
        # The planner launched the next attempt in this pass: this one failed.
        return Phase.FAILED.value, pod.last_finished_at
    if pod.over:
        return pod.phase, pod.last_finished_at
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


def _pool(pod: PodLike) -> str:
    return pod.pool or NO_POOL
