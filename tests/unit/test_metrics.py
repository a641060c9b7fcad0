"""Metrics derived from Run controller pass reports, fed by hand into a fresh registry.

Documented semantics under test (see pipesync.observe.metrics): counters count what this
process observed, run starts and finishes come from the status phase change a pass
wrote (so a restarted operator never counts a finish twice), and gauges are recomputed
from the latest pass of each unfinished run.
"""

from __future__ import annotations

import collections
import http.client
from collections.abc import Mapping
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from pipesync.api import reports, times
from pipesync.controllers import recurringruns, runs
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, NodeKey, NodeState, Phase
from pipesync.kube.protocol import PIPELINES, RECURRING_RUNS
from pipesync.observe import endpoint
from pipesync.observe.metrics import Metrics
from pipesync.runtime import podstate
from tests.unit.kubefakes import RecurringKube
from tests.unit.pipelines import compile_yaml

PIPELINE = "tasks: [{name: prep, command: [x]}, {name: train, command: [x], dependsOn: [prep]}]"
PINNED = runs.Pinned(compile_yaml(PIPELINE), {}, {"name": "digits", "version": "v", "digest": "d"})
PREP: NodeKey = (0, TASK)
TRAIN: NodeKey = (1, TASK)


def run(uid: str = "uid-1", namespace: str = "ml", name: str = "digits-1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": {"pipelineRef": {"name": "digits"}},
    }


def status(phase: str, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, **extra}


def pod(
    uid: str,
    *,
    attempt: int = 1,
    phase: str = "Running",
    started: str = "2026-01-01T00:00:00Z",
    finished: str | None = None,
    gpu: int = 0,
    pool: str | None = None,
) -> dict[str, Any]:
    main: dict[str, Any] = {"name": "main", "state": {"running": {}}}
    if finished is not None:
        main["state"] = {"terminated": {"exitCode": 0, "finishedAt": finished}}
    container: dict[str, Any] = {"name": "main"}
    if gpu:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpu)}}
    spec: dict[str, Any] = {"containers": [container]}
    if pool:
        spec["nodeSelector"] = {"pipesync.io/pool": pool}
    return {
        "metadata": {
            "name": f"pod-{uid}",
            "uid": uid,
            "labels": {"pipesync.io/attempt": str(attempt)},
            "creationTimestamp": started,
        },
        "spec": spec,
        "status": {"phase": phase, "startTime": started, "containerStatuses": [main]},
    }


def report(
    previous: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    the_run: Mapping[str, Any] | None = None,
    nodes: Mapping[NodeKey, NodeState] | None = None,
    pods: Mapping[NodeKey, Mapping[str, Any]] | None = None,
    pinned: runs.Pinned | None = PINNED,
    cache: reports.CacheReport | None = None,
) -> runs.PassReport:
    return runs.PassReport(
        the_run or run(),
        previous,
        new,
        pinned,
        nodes or {},
        {key: podstate.read_pod(pod) for key, pod in (pods or {}).items()},
        0,
        0.01,
        cache or reports.CacheReport(),
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), version="9.9.9")


def value(metrics: Metrics, name: str, /, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_run_from_pending_to_succeeded_counts_one_start_one_finish_and_its_duration(
    metrics: Metrics,
) -> None:
    metrics.runs.run_pass(report({}, status("Pending")))
    assert value(metrics, "pipesync_runs_started_total", namespace="ml", pipeline="digits") == 0
    metrics.runs.run_pass(
        report(status("Pending"), status("Running", startedAt="2026-01-01T00:00:00Z"))
    )
    metrics.runs.run_pass(report(status("Running"), status("Running")))
    done = status("Succeeded", startedAt="2026-01-01T00:00:00Z", finishedAt="2026-01-01T00:00:42Z")
    metrics.runs.run_pass(report(status("Running"), done))
    assert value(metrics, "pipesync_runs_started_total", namespace="ml", pipeline="digits") == 1
    assert (
        value(
            metrics,
            "pipesync_runs_finished_total",
            namespace="ml",
            pipeline="digits",
            phase="Succeeded",
        )
        == 1
    )
    duration = {"namespace": "ml", "pipeline": "digits", "phase": "Succeeded"}
    assert value(metrics, "pipesync_run_duration_seconds_sum", **duration) == 42
    assert value(metrics, "pipesync_run_duration_seconds_bucket", le="30.0", **duration) == 0
    assert value(metrics, "pipesync_run_duration_seconds_bucket", le="60.0", **duration) == 1


def test_a_finish_is_counted_once_even_if_reported_again_or_seen_by_a_restarted_process(
    metrics: Metrics,
) -> None:
    done = status("Failed", startedAt="2026-01-01T00:00:00Z", finishedAt="2026-01-01T00:00:05Z")
    finishing = report(status("Running"), done)
    metrics.runs.run_pass(finishing)
    metrics.runs.run_pass(finishing)  # a repeated report of the same pass
    metrics.runs.run_pass(report(done, done))  # a pass that read the finished status
    assert (
        value(
            metrics,
            "pipesync_runs_finished_total",
            namespace="ml",
            pipeline="digits",
            phase="Failed",
        )
        == 1
    )
    # A new process (restart) first meets the run mid-flight: the start was written (and
    # counted) by its predecessor; the finish happens in this process and counts once.
    restarted = Metrics(CollectorRegistry())
    restarted.runs.run_pass(report(status("Running"), status("Running")))
    restarted.runs.run_pass(report(status("Running"), done))
    assert value(restarted, "pipesync_runs_started_total", namespace="ml", pipeline="digits") == 0
    assert (
        value(
            restarted,
            "pipesync_runs_finished_total",
            namespace="ml",
            pipeline="digits",
            phase="Failed",
        )
        == 1
    )
    # ... and one that only sees an already finished status counts nothing.
    late = Metrics(CollectorRegistry())
    late.runs.run_pass(report(done, done))
    assert (
        value(
            late, "pipesync_runs_finished_total", namespace="ml", pipeline="digits", phase="Failed"
        )
        == 0
    )


def test_task_pods_give_durations_by_phase_and_gpu_seconds_by_pool(metrics: Metrics) -> None:
    running = {
        PREP: pod("p1", phase="Running"),
        TRAIN: pod("t1", phase="Running", gpu=2, pool="gpu"),
    }
    metrics.runs.run_pass(
        report(
            status("Pending"),
            status("Running"),
            nodes={PREP: NodeState(Phase.RUNNING, 1), TRAIN: NodeState(Phase.RUNNING, 1)},
            pods=running,
        )
    )
    assert value(metrics, "pipesync_task_duration_seconds_count", namespace="ml", pipeline="digits",
                 phase="Succeeded") == 0  # fmt: skip
    ended = {
        PREP: pod("p1", phase="Succeeded", finished="2026-01-01T00:00:03Z"),
        TRAIN: pod("t1", phase="Succeeded", finished="2026-01-01T00:00:10Z", gpu=2, pool="gpu"),
    }
    nodes = {
        PREP: NodeState(Phase.SUCCEEDED, 1, finished_at=None),
        TRAIN: NodeState(Phase.SUCCEEDED, 1, finished_at=None),
    }
    for _ in range(2):  # the same ended pods in a second pass count once
        metrics.runs.run_pass(report(status("Running"), status("Running"), nodes=nodes, pods=ended))
    labels = {"namespace": "ml", "pipeline": "digits", "phase": "Succeeded"}
    assert value(metrics, "pipesync_task_duration_seconds_count", **labels) == 2
    assert value(metrics, "pipesync_task_duration_seconds_sum", **labels) == 13
    assert (
        value(metrics, "pipesync_gpu_seconds_total", namespace="ml", pool="gpu") == 20
    )  # 2 GPUs x 10 s
    assert value(metrics, "pipesync_gpu_seconds_total", namespace="ml", pool="none") is None


def test_a_gpu_pod_without_a_pool_selector_is_booked_to_pool_none(metrics: Metrics) -> None:
    ended = pod("g", phase="Failed", finished="2026-01-01T00:00:04Z", gpu=1)
    metrics.runs.run_pass(report(status("Running"), status("Running"), pods={PREP: ended}))
    assert value(metrics, "pipesync_gpu_seconds_total", namespace="ml", pool="none") == 4
    assert (
        value(
            metrics,
            "pipesync_task_duration_seconds_count",
            namespace="ml",
            pipeline="digits",
            phase="Failed",
        )
        == 1
    )


def test_retries_count_each_new_attempt_pod_once(metrics: Metrics) -> None:
    failed = NodeState(Phase.FAILED, 1, finished_at=None, failure=FailureKind.FAILED)
    first = pod("a1", phase="Failed", finished="2026-01-01T00:00:01Z")
    metrics.runs.run_pass(report(status("Pending"), status("Running"), pods={PREP: first}))
    # the planner launched attempt 2 in this pass: node shows it, the pod is still attempt 1
    metrics.runs.run_pass(
        report(
            status("Running"),
            status("Running"),
            nodes={PREP: NodeState(Phase.RUNNING, 2)},
            pods={PREP: first},
        )
    )
    assert value(metrics, "pipesync_task_retries_total", namespace="ml", pipeline="digits") == 0
    second = pod("a2", attempt=2)
    for _ in range(3):
        metrics.runs.run_pass(
            report(
                status("Running"),
                status("Running"),
                nodes={PREP: NodeState(Phase.RUNNING, 2)},
                pods={PREP: second},
            )
        )
    assert value(metrics, "pipesync_task_retries_total", namespace="ml", pipeline="digits") == 1
    assert failed.phase is Phase.FAILED
    assert (
        value(
            metrics,
            "pipesync_task_duration_seconds_count",
            namespace="ml",
            pipeline="digits",
            phase="Failed",
        )
        == 1
    )


def test_a_restarted_process_sets_a_baseline_from_what_status_already_recorded(
    metrics: Metrics,
) -> None:
    previous = status(
        "Running",
        tasks={"prep": {"phase": "Succeeded", "attempts": 1}, "train": {"phase": "Running",
                                                                        "attempts": 2}},
    )  # fmt: skip
    pods = {
        # ended before the restart, and the status said so: counted by the predecessor
        PREP: pod("p1", phase="Succeeded", finished="2026-01-01T00:00:03Z"),
        # ended while no operator watched: the status still said Running, so it counts
        TRAIN: pod("t2", attempt=2, phase="Failed", finished="2026-01-01T00:00:08Z"),
    }
    nodes = {
        PREP: NodeState(Phase.SUCCEEDED, 1),
        TRAIN: NodeState(Phase.FAILED, 2, failure=FailureKind.FAILED),
    }
    metrics.runs.run_pass(report(previous, status("Running"), nodes=nodes, pods=pods))
    assert (
        value(
            metrics,
            "pipesync_task_duration_seconds_count",
            namespace="ml",
            pipeline="digits",
            phase="Failed",
        )
        == 1
    )
    assert (
        value(
            metrics,
            "pipesync_task_duration_seconds_count",
            namespace="ml",
            pipeline="digits",
            phase="Succeeded",
        )
        == 0
    )
    # attempt 2 existed before this process saw the run: its retry was counted already
    assert value(metrics, "pipesync_task_retries_total", namespace="ml", pipeline="digits") == 0


def test_gauges_follow_the_latest_pass_of_unfinished_runs() -> None:
    ticks = Clock()
    metrics = Metrics(CollectorRegistry(), stale_seconds=100, monotonic=ticks)
    counts = {"total": 5, "pending": 2, "running": 2, "succeeded": 1, "failed": 0, "skipped": 0}
    waiting = pod("w", phase="Pending")
    metrics.runs.run_pass(
        report(status("Pending"), status("Running", taskCounts=counts), pods={PREP: waiting})
    )
    metrics.runs.run_pass(
        report(status("Pending"), status("Running"), the_run=run(uid="u2", namespace="other"))
    )
    assert value(metrics, "pipesync_runs_active", namespace="ml") == 1
    assert value(metrics, "pipesync_runs_active", namespace="other") == 1
    assert value(metrics, "pipesync_tasks", namespace="ml", phase="Running") == 2
    assert value(metrics, "pipesync_tasks", namespace="ml", phase="Succeeded") == 1
    assert value(metrics, "pipesync_tasks", namespace="other", phase="Running") == 0
    assert value(metrics, "pipesync_pods_pending", namespace="ml") == 1
    assert value(metrics, "pipesync_pods_pending", namespace="other") == 0
    done = status("Succeeded", startedAt="2026-01-01T00:00:00Z", finishedAt="2026-01-01T00:00:01Z")
    metrics.runs.run_pass(report(status("Running"), done))
    assert value(metrics, "pipesync_runs_active", namespace="ml") == 0
    assert value(metrics, "pipesync_tasks", namespace="ml", phase="Running") == 0
    assert value(metrics, "pipesync_pods_pending", namespace="ml") == 0
    # a run deleted while running is never reported again: it drops out after a while
    ticks.now += 101
    assert value(metrics, "pipesync_runs_active", namespace="other") == 0


def test_reconcile_timing_counts_passes_and_errors_by_controller(metrics: Metrics) -> None:
    with metrics.passes.reconcile("runs"):
        pass
    with pytest.raises(RuntimeError), metrics.passes.reconcile("runs"):
        raise RuntimeError("api down")
    assert value(metrics, "pipesync_reconcile_duration_seconds_count", controller="runs") == 2
    assert value(metrics, "pipesync_reconcile_errors_total", controller="runs") == 1


def test_api_requests_are_read_from_the_kube_adapter_at_scrape_time(metrics: Metrics) -> None:
    class FakeKube:  # only the counter the real adapter keeps; no API involved
        def __init__(self) -> None:
            self.requests: collections.Counter[tuple[str, int]] = collections.Counter()

    kube = FakeKube()
    metrics.passes.watch_requests(kube)
    kube.requests[("get", 200)] += 3
    kube.requests[("patch", 409)] += 1
    assert value(metrics, "pipesync_kubernetes_requests_total", verb="get", code="200") == 3
    kube.requests[("get", 200)] += 1
    assert value(metrics, "pipesync_kubernetes_requests_total", verb="get", code="200") == 4
    assert value(metrics, "pipesync_kubernetes_requests_total", verb="patch", code="409") == 1


def test_mirror_hooks_and_build_info(metrics: Metrics) -> None:
    metrics.mirror.observe(reports.MirrorWriteFailed("runs/a.json", 1, is_log=False))
    metrics.mirror.observe(reports.MirrorWriteFailed("runs/a.json", 2, is_log=False))
    metrics.mirror.observe(reports.MirrorBacklog(7))
    assert value(metrics, "pipesync_s3_mirror_failures_total") == 2
    assert value(metrics, "pipesync_s3_mirror_backlog") == 7
    assert value(metrics, "pipesync_build_info", version="9.9.9") == 1


def test_recurring_passes_count_fires_with_their_lag_misses_and_skips(metrics: Metrics) -> None:
    """The RecurringRun controller tells metrics.recurring each pass through its report."""
    created = 1_000_000
    kube = RecurringKube()
    kube.objects[(PIPELINES, "ml", "digits")] = {"metadata": {"name": "digits"}}
    kube.objects[(RECURRING_RUNS, "ml", "nightly")] = {
        "metadata": {"name": "nightly", "namespace": "ml", "uid": "u1", "generation": 1,
                     "creationTimestamp": times.timestamp(created)},
        "spec": {"pipelineRef": {"name": "digits"}, "schedule": {"interval": "1m"}},
    }  # fmt: skip
    clock = Clock()
    clock.now = created + 185.0
    controller = recurringruns.RecurringRunController(kube, observer=metrics.recurring, clock=clock)
    # Three times due (60, 120, 180 s): catch-up Latest fires the newest 5 s late.
    assert len(controller.reconcile("ml", "nightly").started) == 1
    assert value(metrics, "pipesync_recurring_fires_total") == 1
    assert value(metrics, "pipesync_recurring_schedule_lag_seconds_sum") == 5.0
    assert value(metrics, "pipesync_recurring_missed_total", reason="CatchupLatest") == 2
    # The next time comes while that Run is active: Forbid skips it.
    clock.now = created + 250.0
    assert controller.reconcile("ml", "nightly").started == ()
    assert value(metrics, "pipesync_recurring_fires_total") == 1
    assert value(metrics, "pipesync_recurring_skips_total", reason="ConcurrencyForbid") == 1


def test_no_series_is_labelled_by_run_and_the_global_registry_stays_untouched(
    metrics: Metrics,
) -> None:
    ended = pod("x", phase="Succeeded", finished="2026-01-01T00:00:02Z", gpu=1, pool="gpu")
    metrics.runs.run_pass(report(status("Pending"), status("Running"), pods={PREP: ended}))
    for family in metrics.registry.collect():
        for sample in family.samples:
            assert not {"run", "name", "uid"} & set(sample.labels), sample
            assert "digits-1" not in sample.labels.values(), sample
    assert not [f for f in REGISTRY.collect() if f.name.startswith("pipesync_")]


def test_a_malformed_report_never_raises_into_the_controller(metrics: Metrics) -> None:
    bad = report(status("Pending"), status("Running"), pods={PREP: {"metadata": None}})
    metrics.runs.run_pass(bad)  # logged, not raised
    # a run that failed before its spec was pinned still has its pipeline label
    metrics.runs.run_pass(report({}, status("Failed"), the_run=run(uid="u2"), pinned=None))
    assert value(metrics, "pipesync_runs_started_total", namespace="ml", pipeline="digits") == 2
    assert (
        value(
            metrics,
            "pipesync_runs_finished_total",
            namespace="ml",
            pipeline="digits",
            phase="Failed",
        )
        == 1
    )


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_endpoint_serves_metrics_and_healthz_and_404_elsewhere(metrics: Metrics) -> None:
    server = endpoint.serve(metrics.registry, "127.0.0.1:0")
    try:
        code, body = get(server.server_port, "/metrics")
        assert code == 200 and b'pipesync_build_info{version="9.9.9"} 1.0' in body
        assert get(server.server_port, "/healthz") == (200, b"ok\n")
        assert get(server.server_port, "/metricz")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_addresses_parse_like_the_flag_documents() -> None:
    assert endpoint.parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert endpoint.parse_address(":9100") == ("", 9100)
    assert endpoint.parse_address("[::1]:9100") == ("::1", 9100)
    with pytest.raises(ValueError):
        endpoint.parse_address("localhost")


def test_git_syncs_count_results_lag_objects_and_keep_one_info_series() -> None:
    clock = Clock()
    metrics = Metrics(CollectorRegistry(), clock=clock)
    source = {"namespace": "ml", "name": "repo"}
    now = clock.now
    applied = reports.SyncReport("Succeeded", "main@sha1:aaa", 3, 1, 2, 0, now - 4.0)
    metrics.git_sources.observe(reports.GitSourceSynced("ml", "repo", applied, 0.7))
    assert (
        metrics.registry.get_sample_value(
            "pipesync_gitsource_syncs_total", {**source, "result": "Succeeded"}
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value("pipesync_gitsource_objects_applied_total", source) == 4
    )
    assert metrics.registry.get_sample_value("pipesync_gitsource_objects_pruned_total", source) == 2
    assert (
        metrics.registry.get_sample_value("pipesync_gitsource_sync_duration_seconds_sum", source)
        == 0.7
    )
    assert (
        metrics.registry.get_sample_value("pipesync_gitsource_sync_lag_seconds_sum", source) == 4.0
    )
    assert (
        metrics.registry.get_sample_value(
            "pipesync_gitsource_last_success_timestamp_seconds", source
        )
        == now
    )
    info = {**source, "revision": "main@sha1:aaa", "ready": "true"}
    assert metrics.registry.get_sample_value("pipesync_gitsource_info", info) == 1

    failed = reports.SyncReport("FetchFailed", "")
    metrics.git_sources.observe(reports.GitSourceSynced("ml", "repo", failed, 0.1))
    errors = {**source, "reason": "FetchFailed"}
    assert metrics.registry.get_sample_value("pipesync_gitsource_sync_errors_total", errors) == 1
    # One info series per source: the revision stays, readiness flips.
    assert metrics.registry.get_sample_value("pipesync_gitsource_info", info) is None
    assert (
        metrics.registry.get_sample_value("pipesync_gitsource_info", {**info, "ready": "false"})
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "pipesync_gitsource_last_success_timestamp_seconds", source
        )
        == now
    )

    metrics.git_sources.observe(reports.GitSourceDeleted("ml", "repo"))
    assert (
        metrics.registry.get_sample_value("pipesync_gitsource_info", {**info, "ready": "false"})
        is None
    )
    assert (
        metrics.registry.get_sample_value(
            "pipesync_gitsource_last_success_timestamp_seconds", source
        )
        is None
    )


def test_series_with_known_labels_exist_at_zero_from_the_start(metrics: Metrics) -> None:
    """increase() sees only a change between two samples: a series born at 1 hides the
    first error or skipped schedule after every start."""
    for controller in ("runs", "pipelines", "gitsources", "recurringruns"):
        assert value(metrics, "pipesync_reconcile_errors_total", controller=controller) == 0
        assert (
            value(metrics, "pipesync_reconcile_duration_seconds_count", controller=controller) == 0
        )
    for reason in ("Suspended", "ConcurrencyForbid", "ConcurrencyLimit", "Replaced"):
        assert value(metrics, "pipesync_recurring_skips_total", reason=reason) == 0
    for reason in ("DeadlineExceeded", "CatchupNone", "CatchupLatest", "CatchupMaxRuns"):
        assert value(metrics, "pipesync_recurring_missed_total", reason=reason) == 0
    assert value(metrics, "pipesync_recurring_fires_total") == 0
    assert value(metrics, "pipesync_s3_mirror_failures_total") == 0


def test_a_pipeline_seen_has_its_run_series_at_zero_before_its_first_run(
    metrics: Metrics,
) -> None:
    metrics.runs.pipeline_seen("ml", "digits")
    pipeline = {"namespace": "ml", "pipeline": "digits"}
    assert value(metrics, "pipesync_runs_started_total", **pipeline) == 0
    assert value(metrics, "pipesync_task_retries_total", **pipeline) == 0
    for phase in ("Succeeded", "Failed", "Cancelled"):
        assert value(metrics, "pipesync_runs_finished_total", **pipeline, phase=phase) == 0
        assert value(metrics, "pipesync_run_duration_seconds_count", **pipeline, phase=phase) == 0
        assert value(metrics, "pipesync_task_duration_seconds_count", **pipeline, phase=phase) == 0
    assert value(metrics, "pipesync_runs_active", namespace="ml") == 0
    assert value(metrics, "pipesync_tasks", namespace="ml", phase="Running") == 0
    assert value(metrics, "pipesync_pods_pending", namespace="ml") == 0
    # the first run's start is then a step from 0 to 1
    metrics.runs.run_pass(report(status("Pending"), status("Running")))
    assert value(metrics, "pipesync_runs_started_total", **pipeline) == 1


def test_a_gpu_pods_pool_is_at_zero_gpu_seconds_while_it_runs(metrics: Metrics) -> None:
    gpu = pod("t1", phase="Running", gpu=1, pool="gpu")
    metrics.runs.run_pass(report(status("Pending"), status("Running"), pods={TRAIN: gpu}))
    assert value(metrics, "pipesync_gpu_seconds_total", namespace="ml", pool="gpu") == 0
    assert value(metrics, "pipesync_gpu_seconds_total", namespace="ml", pool="none") is None


def test_run_metrics_of_same_named_pipelines_in_two_namespaces_are_apart(
    metrics: Metrics,
) -> None:
    done = status("Failed", startedAt="2026-01-01T00:00:00Z", finishedAt="2026-01-01T00:00:01Z")
    metrics.runs.run_pass(report(status("Running"), done))
    metrics.runs.run_pass(
        report(status("Running"), done, the_run=run(uid="u2", namespace="team-b"))
    )
    for namespace in ("ml", "team-b"):
        labels = {"namespace": namespace, "pipeline": "digits", "phase": "Failed"}
        assert value(metrics, "pipesync_runs_finished_total", **labels) == 1


def synced_status(**extra: Any) -> dict[str, Any]:
    """A GitSource status as the controller writes it after applying main@sha1:bbb with
    one broken file (plus a warning, which does not count)."""
    return {
        "lastAppliedRevision": "main@sha1:bbb",
        "lastAttemptedRevision": "main@sha1:bbb",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "InvalidFiles",
             "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Reconciling", "status": "False", "reason": "InvalidFiles",
             "lastTransitionTime": "2026-01-01T00:10:00Z"},
        ],
        "errors": [
            {"file": "broken.yaml", "message": "x", "severity": "error"},
            {"file": "broken.yaml", "message": "y"},
            {"file": "run.yaml", "message": "edited", "severity": "warning"},
        ],
        **extra,
    }  # fmt: skip


def test_a_restarted_operator_restores_a_sources_gauges_from_its_status() -> None:
    metrics = Metrics(CollectorRegistry())
    source = {"namespace": "ml", "name": "repo"}
    metrics.git_sources.observe(reports.GitSourceSeen("ml", "repo", synced_status()))
    info = {**source, "revision": "main@sha1:bbb", "ready": "true"}
    assert value(metrics, "pipesync_gitsource_info", **info) == 1
    assert value(metrics, "pipesync_gitsource_invalid_files", **source) == 1
    assert value(metrics, "pipesync_gitsource_last_success_timestamp_seconds", **source) == (
        1767225600 + 600
    )
    # and its counters start at 0, so the next sync's result shows in increase()
    for result in ("Succeeded", "InvalidFiles", "FetchFailed", "AuthenticationFailed"):
        assert value(metrics, "pipesync_gitsource_syncs_total", **source, result=result) == 0
    assert (
        value(metrics, "pipesync_gitsource_sync_errors_total", **source, reason="FetchFailed") == 0
    )
    assert value(metrics, "pipesync_gitsource_objects_applied_total", **source) == 0
    # a later sync replaces the restored info series, it does not add a second one
    metrics.git_sources.observe(
        reports.GitSourceSynced("ml", "repo", reports.SyncReport("FetchFailed", ""))
    )
    assert value(metrics, "pipesync_gitsource_info", **info) is None
    assert value(metrics, "pipesync_gitsource_info", **{**info, "ready": "false"}) == 1


def test_a_source_whose_last_attempt_failed_is_restored_as_not_ready() -> None:
    metrics = Metrics(CollectorRegistry())
    status = synced_status(lastAttemptedRevision="main@sha1:ccc")
    status["conditions"][0].update(reason="ApplyFailed")
    metrics.git_sources.observe(reports.GitSourceSeen("ml", "repo", status))
    source = {"namespace": "ml", "name": "repo"}
    assert value(metrics, "pipesync_gitsource_info", **source, revision="main@sha1:ccc",
                 ready="false") == 1  # fmt: skip
    # a reason outside the common ones starts at 0 too: the source is failing with it now
    assert (
        value(metrics, "pipesync_gitsource_sync_errors_total", **source, reason="ApplyFailed") == 0
    )
    assert value(metrics, "pipesync_gitsource_invalid_files", **source) is None  # not applied


def test_a_source_never_synced_has_counters_but_no_gauges() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.git_sources.observe(reports.GitSourceSeen("ml", "new", {}))
    source = {"namespace": "ml", "name": "new"}
    assert value(metrics, "pipesync_gitsource_syncs_total", **source, result="Succeeded") == 0
    assert value(metrics, "pipesync_gitsource_last_success_timestamp_seconds", **source) is None
    assert not [
        s for f in metrics.registry.collect() if f.name == "pipesync_gitsource_info"
        for s in f.samples
    ]  # fmt: skip


def test_cache_hits_misses_and_gpu_seconds_saved_by_pipeline(metrics: Metrics) -> None:
    """What the task cache did in a pass, counted by pipeline; a pass without lookups
    leaves the series at the 0 they start at."""
    metrics.runs.run_pass(report({}, status("Pending")))
    assert value(metrics, "pipesync_cache_hits_total", namespace="ml", pipeline="digits") == 0
    served = reports.CacheReport(hits=3, misses=1, gpu_seconds_saved=2 * 600.0)
    metrics.runs.run_pass(report(status("Pending"), status("Running"), cache=served))
    labels = {"namespace": "ml", "pipeline": "digits"}
    assert value(metrics, "pipesync_cache_hits_total", **labels) == 3
    assert value(metrics, "pipesync_cache_misses_total", **labels) == 1
    assert value(metrics, "pipesync_cache_gpu_seconds_saved_total", **labels) == 1200
