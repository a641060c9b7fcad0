"""The S3 mirror (pipesync.observe.records) on a local store and a fake clock: what a
record holds, when it is written, dedupe, retries with backoff, logs, recovery; and the
selection logic of `pipesync history`."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import reports
from pipesync.cli import history
from pipesync.controllers import runs
from pipesync.engine.state import TASK, NodeKey, NodeState, Phase
from pipesync.observe.passes import ObserverResult
from pipesync.observe.records import Backoff, RunRecorder
from pipesync.runtime import archive, podstate
from pipesync.runtime.storage import LocalStore, TransientStoreError
from tests.unit.pipelines import compile_yaml

PIPELINE = """
tasks:
  - name: prepare
    command: [sh, -c, "echo"]
    outputs: {parameters: [count]}
  - name: square
    forEach: {items: [1, 2]}
    command: [sh, -c, "echo {{item}}"]
onExit:
  name: done
  command: [sh, -c, "echo"]
"""
COMPILED = compile_yaml(PIPELINE)
PINNED = runs.Pinned(
    COMPILED, {}, {"name": "flow", "version": "abc", "digest": "sha256:abc", "commit": ""}
)
SPEC = {"tasks": [{"name": "prepare"}]}  # what the pinned ConfigMap holds (shortened)
LONG = "x" * 5000  # longer than the status keeps (256)


class FlakyStore:
    """A LocalStore that fails (as an unreachable S3 does) while `down` is set."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStore(root)
        self.down = False
        self.puts: list[str] = []

    def put_bytes(self, key: str, data: bytes) -> None:
        if self.down:
            raise TransientStoreError("connection refused")
        self.puts.append(key)
        self.inner.put_bytes(key, data)

    def exists(self, key: str) -> bool:
        if self.down:
            raise TransientStoreError("connection refused")
        return self.inner.exists(key)

    def read(self, key: str) -> Any:
        return json.loads(self.inner.get_bytes(key))


class FakeKube:
    def __init__(self) -> None:
        self.logs: dict[tuple[str, str], bytes] = {}
        self.patches: list[tuple[str, str, str, dict[str, Any]]] = []
        self.recorded: list[tuple[str, str]] = []  # the runs the mirror asked a pass for
        self.pods: list[dict[str, Any]] = []
        self.config_maps = {("ml", "flow-1-pipeline"): {"spec.json": json.dumps({"spec": SPEC})}}

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None:
        return self.logs.get((pod, container))

    def patch_status(self, plural: str, namespace: str, name: str, status: Any) -> None:
        self.patches.append((plural, namespace, name, dict(status)))

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.pods

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.config_maps.get((namespace, name))


class Hooks:
    def __init__(self) -> None:
        self.failures = 0
        self.backlog: list[int] = []

    def observe(self, event: reports.MirrorEvent) -> None:
        if isinstance(event, reports.MirrorWriteFailed):
            self.mirror_failed()
        else:
            self.backlog.append(event.records)

    def mirror_failed(self) -> None:
        self.failures += 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run_object() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "flow-1",
            "namespace": "ml",
            "uid": "uid-1",
            "labels": {"team": "a"},
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "resourceVersion": "7",
        },
        "spec": {"pipelineRef": {"name": "flow"}},
    }


OWNER = {"apiVersion": "pipesync.io/v1alpha1", "kind": "Run", "name": "flow-1", "uid": "uid-1"}
OWNER["controller"] = True


def pod(name: str, task: str, attempt: int = 1, instance: int | None = None, **kw: Any) -> Any:
    node = f"prefix/ml/runs/flow-1/{task}" + (f"/{instance}" if instance is not None else "")
    labels = {"pipesync.io/run": "flow-1", "pipesync.io/task": task}
    labels["app.kubernetes.io/managed-by"] = "pipesync"
    labels["pipesync.io/attempt"] = str(attempt)
    if instance is not None:
        labels["pipesync.io/instance"] = str(instance)
    done = kw.get("done", True)
    main: dict[str, Any] = {"running": {}}
    if done:
        main = {"terminated": {"exitCode": kw.get("exit_code", 0), "startedAt": "T1"}}
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "uid": f"pod-{name}",
            "labels": labels,
            "annotations": {"pipesync.io/node-prefix": node},
            "ownerReferences": [OWNER],
        },
        "spec": {"nodeName": "cpu-1"},
        "status": {
            "phase": "Succeeded" if done else "Running",
            "containerStatuses": [{"name": "main", "state": main}],
        },
    }


NODES: dict[NodeKey, NodeState] = {
    (0, TASK): NodeState(Phase.SUCCEEDED, 1, 1.0e9, {"count": LONG}),
    (1, TASK): NodeState(Phase.SUCCEEDED, 1, 1.0e9, {}),
    (1, 0): NodeState(Phase.SUCCEEDED, 1, 1.0e9, {}),
    (1, 1): NodeState(Phase.FAILED, 2, 1.0e9, {}, message="exit 3"),
}
PODS = {
    (0, TASK): pod("flow-1-prepare-1", "prepare"),
    (1, 0): pod("flow-1-square-0-1", "square", instance=0),
    (1, 1): pod("flow-1-square-1-2", "square", attempt=2, instance=1, exit_code=3),
}


def report(before: str, after: str, **kw: Any) -> runs.PassReport:
    status = {"phase": after, "progress": "1/3"}
    return runs.PassReport(
        run_object(),
        {"phase": before} if before else {},
        status,
        kw.get("pinned", PINNED),
        kw.get("nodes", NODES),
        {key: podstate.read_pod(pod) for key, pod in kw.get("pods", {}).items()},
        0,
        0.01,
    )


@pytest.fixture
def parts(tmp_path: Path) -> tuple[RunRecorder, FlakyStore, FakeKube, Hooks, Clock]:
    store, kube, hooks, clock = FlakyStore(tmp_path), FakeKube(), Hooks(), Clock()
    recorder = RunRecorder(
        store, read_pod=podstate.read_pod, bucket="b", prefix="prefix", metrics=hooks, clock=clock
    )
    recorder.kube = kube  # no worker thread: the tests call step() with the fake clock
    recorder.on_recorded = lambda namespace, name: kube.recorded.append((namespace, name))
    return recorder, store, kube, hooks, clock


RECORD = "ml/runs/flow-1/run.json"


def test_a_record_holds_the_run_its_pipeline_and_every_node_in_full(parts: Any) -> None:
    recorder, store, kube, _, _ = parts
    recorder.run_pass(report("Running", "Failed", pods=PODS))
    recorder.step()
    record = store.read(RECORD)
    assert record["apiVersion"] == "pipesync.io/v1alpha1"
    assert record["kind"] == "RunRecord"
    assert record["metadata"] == {
        "name": "flow-1",
        "namespace": "ml",
        "uid": "uid-1",
        "labels": {"team": "a"},
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    assert record["spec"] == {"pipelineRef": {"name": "flow"}}
    assert record["status"]["phase"] == "Failed"
    assert record["pipeline"] == {
        "name": "flow",
        "version": "abc",
        "digest": "sha256:abc",
        "commit": "",
        "spec": SPEC,
    }
    tasks = record["tasks"]
    assert sorted(tasks) == ["done", "prepare", "square"]
    assert tasks["prepare"]["outputs"]["count"] == LONG  # not cut like in status
    assert tasks["prepare"]["pod"] == "flow-1-prepare-1"
    assert tasks["prepare"]["exitCode"] == 0
    assert tasks["prepare"]["nodeName"] == "cpu-1"
    assert tasks["done"] == {"phase": "Pending", "attempts": 0, "onExit": True}
    instances = tasks["square"]["instances"]
    assert [i["index"] for i in instances] == [0, 1]
    assert instances[1]["phase"] == "Failed"
    assert instances[1]["attempts"] == 2
    assert instances[1]["exitCode"] == 3
    assert instances[1]["message"] == "exit 3"
    # A finished run's record ends with its URI reported back for status: the mirror asks
    # for the controller's pass, and hands the URI over in that pass's result, once.
    assert kube.recorded == [("ml", "flow-1")]
    assert kube.patches == []  # the controller is the one writer of a Run's status
    assert recorder.run_pass(report("Failed", "Failed")) == ObserverResult(
        record_uri="s3://b/prefix/ml/runs/flow-1/run.json"
    )
    assert recorder.run_pass(report("Failed", "Failed")) is None


def test_records_are_written_on_phase_changes_only(parts: Any) -> None:
    recorder, store, kube, _, _ = parts
    recorder.run_pass(report("", "Pending"))
    recorder.step()
    recorder.run_pass(report("Pending", "Running"))
    recorder.step()
    for _ in range(3):  # passes inside one phase: nothing to write
        recorder.run_pass(report("Running", "Running"))
        recorder.step()
    assert store.puts == [RECORD, RECORD]
    assert store.read(RECORD)["status"]["phase"] == "Running"
    assert kube.patches == []  # not finished: no URI yet
    assert kube.recorded == []
    assert recorder.run_pass(report("Running", "Running")) is None


def test_an_outage_keeps_one_job_per_key_with_the_newest_content(parts: Any) -> None:
    recorder, store, kube, hooks, clock = parts
    store.down = True
    recorder.run_pass(report("", "Running"))
    recorder.step()
    recorder.run_pass(report("Running", "Succeeded"))
    assert recorder.backlog() == 1  # the Succeeded record replaced the Running one
    assert hooks.failures == 1
    store.down = False
    clock.now += 60
    assert recorder.step() is None  # nothing left
    assert store.puts == [RECORD]
    assert store.read(RECORD)["status"]["phase"] == "Succeeded"
    assert len(kube.recorded) == 1  # the final record, once written, is reported once
    assert hooks.backlog[-1] == 0


def test_failed_writes_back_off_exponentially_and_never_raise(tmp_path: Path) -> None:
    store, hooks, clock = FlakyStore(tmp_path), Hooks(), Clock()
    recorder = RunRecorder(store, read_pod=podstate.read_pod, metrics=hooks, clock=clock)
    recorder.kube = FakeKube()
    store.down = True
    recorder.run_pass(report("", "Running"))  # must not raise though S3 is down
    due = [recorder.step(clock.now)]
    for _ in range(6):
        clock.now = due[-1]
        assert recorder.step(clock.now - 0.01) == due[-1]  # not yet due: not tried
        due.append(recorder.step(clock.now))
    delays = [round(b - a, 3) for a, b in itertools.pairwise(due)]
    assert round(due[0] - 100.0, 3) == 0.5
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # doubling, capped at 10 s
    assert hooks.failures == 7
    store.down = False
    clock.now = due[-1]
    recorder.step()
    assert store.puts == [RECORD]


def test_identical_content_is_not_written_twice_and_is_byte_identical(
    parts: Any, tmp_path: Path
) -> None:
    recorder, store, _, _, _ = parts
    recorder.run_pass(report("Running", "Succeeded", pods=PODS))
    recorder.step()
    first = store.inner.get_bytes(RECORD)
    recorder.run_pass(report("Running", "Succeeded", pods=PODS))  # e.g. reported again
    recorder.step()
    assert store.puts.count(RECORD) == 1
    # Another process (a restarted operator) writes exactly the same bytes: idempotent.
    other_store = FlakyStore(tmp_path / "other")
    other = RunRecorder(other_store, read_pod=podstate.read_pod, bucket="b", prefix="prefix")
    other.kube = FakeKube()
    other.run_pass(report("Running", "Succeeded", pods=PODS))
    other.step()
    assert other_store.inner.get_bytes(RECORD) == first


def test_logs_of_finished_pods_are_uploaded_once_per_attempt(parts: Any) -> None:
    recorder, store, kube, _, _ = parts
    kube.logs[("flow-1-prepare-1", "main")] = b"hello\n"
    kube.logs[("flow-1-prepare-1", "pipesync-inputs")] = b"fetched 0 inputs"
    kube.logs[("flow-1-prepare-1", "pipesync-outputs")] = b"uploaded count\n"
    kube.logs[("flow-1-square-1-2", "main")] = b"boom"
    running = pod("flow-1-square-0-1", "square", instance=0, done=False)
    pods = {**PODS, (1, 0): running}
    recorder.run_pass(report("Running", "Running", pods=pods))
    recorder.run_pass(report("Running", "Running", pods=pods))  # seen again: queued once
    recorder.step()
    log = store.inner.get_bytes("ml/runs/flow-1/prepare/logs/attempt-1.log")
    assert log == (
        b"hello\n===== pipesync-inputs =====\nfetched 0 inputs\n"
        b"===== pipesync-outputs =====\nuploaded count\n"
    )
    assert store.inner.get_bytes("ml/runs/flow-1/square/1/logs/attempt-2.log") == b"boom"
    assert sorted(store.puts) == [
        "ml/runs/flow-1/prepare/logs/attempt-1.log",
        "ml/runs/flow-1/square/1/logs/attempt-2.log",
    ]  # the running pod's log waits until it ends


def test_a_log_key_comes_from_the_run_never_from_a_pod_annotation(parts: Any) -> None:
    # A pod in namespace ml that points its node-prefix at another tenant's task: the
    # mirror writes with the operator's credentials, so it must not write there.
    recorder, store, kube, _, _ = parts
    hostile = pod("flow-1-prepare-1", "prepare")
    hostile["metadata"]["annotations"]["pipesync.io/node-prefix"] = "prefix/b/runs/x/train"
    kube.logs[("flow-1-prepare-1", "main")] = b"hello\n"
    recorder.run_pass(report("Running", "Running", pods={(0, TASK): hostile}))
    recorder.step()
    assert store.puts == ["ml/runs/flow-1/prepare/logs/attempt-1.log"]


def test_pods_the_operator_did_not_create_get_no_log(parts: Any) -> None:
    recorder, store, kube, _, _ = parts
    hand_made = pod("flow-1-prepare-1", "prepare")
    del hand_made["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    not_controller = pod("flow-1-square-0-1", "square", instance=0)
    not_controller["metadata"]["ownerReferences"] = [{**OWNER, "controller": False}]
    kube.logs[("flow-1-prepare-1", "main")] = b"hello\n"
    kube.logs[("flow-1-square-0-1", "main")] = b"hello\n"
    pods = {(0, TASK): hand_made, (1, 0): not_controller}
    recorder.run_pass(report("Running", "Running", pods=pods))
    recorder.step()
    assert store.puts == []


def test_a_log_read_once_survives_the_pod_and_an_outage(parts: Any) -> None:
    recorder, store, kube, _, clock = parts
    kube.logs[("flow-1-prepare-1", "main")] = b"hello\n"
    store.down = True
    recorder.run_pass(report("Running", "Running", pods={(0, TASK): PODS[(0, TASK)]}))
    recorder.step()
    kube.logs.clear()  # the pod is deleted while S3 is still away
    store.down = False
    clock.now += 30
    recorder.step()
    assert store.inner.get_bytes("ml/runs/flow-1/prepare/logs/attempt-1.log") == b"hello\n"


def test_recovery_rebuilds_the_final_record_from_the_run_and_its_pods(parts: Any) -> None:
    recorder, store, kube, _, _ = parts
    kube.pods = [PODS[(0, TASK)], {**PODS[(1, 0)], "metadata": {**PODS[(1, 0)]["metadata"]}}]
    kube.pods[1]["metadata"]["ownerReferences"] = [{"uid": "an-earlier-run"}]
    kube.logs[("flow-1-prepare-1", "main")] = b"hello\n"
    run = {**run_object(), "status": {"phase": "Succeeded", "tasks": {"prepare": {}}}}
    recorder.recover(run)
    assert store.puts == []  # only queued: the caller (a kopf handler) never waits
    recorder.step()  # lists pods, queues the log and the record
    recorder.step()
    record = store.read(RECORD)
    assert record["recovered"] is True
    assert record["status"]["phase"] == "Succeeded"
    assert [p["pod"] for p in record["pods"]] == ["flow-1-prepare-1"]  # owned pods only
    assert store.inner.exists("ml/runs/flow-1/prepare/logs/attempt-1.log")
    assert kube.recorded[-1] == ("ml", "flow-1")
    assert recorder.run_pass(report("Succeeded", "Succeeded")) == ObserverResult(
        record_uri="s3://b/prefix/ml/runs/flow-1/run.json"
    )


def test_a_restarted_operator_uploads_logs_of_earlier_attempts_it_never_saw(
    parts: Any,
) -> None:
    recorder, store, kube, _, _ = parts
    first = pod("flow-1-prepare-1", "prepare", exit_code=1)
    second = pod("flow-1-prepare-2", "prepare", attempt=2, done=False)
    uploaded = pod("flow-1-square-0-1", "square", instance=0)
    kube.pods = [first, second, uploaded]
    kube.logs[("flow-1-prepare-1", "main")] = b"attempt one failed\n"
    kube.logs[("flow-1-square-0-1", "main")] = b"new content\n"
    store.inner.put_bytes("ml/runs/flow-1/square/0/logs/attempt-1.log", b"already there\n")
    # The first pass this process makes sees only the newest pod of each task.
    recorder.run_pass(report("Running", "Running", pods={(0, TASK): second}))
    recorder.step()  # lists the run's pods, queues what S3 lacks
    recorder.step()
    assert store.inner.get_bytes("ml/runs/flow-1/prepare/logs/attempt-1.log") == (
        b"attempt one failed\n"
    )
    assert store.inner.get_bytes("ml/runs/flow-1/square/0/logs/attempt-1.log") == (
        b"already there\n"
    )
    # Later passes of the same run do not list again.
    kube.pods = []
    recorder.run_pass(report("Running", "Running", pods={(0, TASK): second}))
    assert recorder.backlog() == 0


def test_a_run_this_process_starts_is_not_listed_for_old_logs(parts: Any) -> None:
    recorder, store, kube, _, _ = parts
    kube.pods = [pod("flow-1-prepare-1", "prepare")]
    kube.logs[("flow-1-prepare-1", "main")] = b"x\n"
    recorder.run_pass(report("", "Running"))
    recorder.step()
    recorder.step()
    assert not store.inner.exists("ml/runs/flow-1/prepare/logs/attempt-1.log")


def test_an_outage_holds_log_bytes_only_within_the_budget(parts: Any) -> None:
    recorder, store, kube, _, clock = parts
    kube.logs[("flow-1-prepare-1", "main")] = b"first read\n"
    recorder.log_budget = 4  # bytes: smaller than the log
    store.down = True
    recorder.run_pass(report("Running", "Running", pods={(0, TASK): PODS[(0, TASK)]}))
    recorder.step()
    pending = list(recorder._pending.values())
    assert [job.content for job in pending if job.key.endswith(".log")] == [None]
    kube.logs[("flow-1-prepare-1", "main")] = b"read again\n"
    store.down = False
    clock.now += 30
    recorder.step()
    assert store.inner.get_bytes("ml/runs/flow-1/prepare/logs/attempt-1.log") == b"read again\n"


def test_a_malformed_report_never_raises(parts: Any) -> None:
    recorder, _, _, _, _ = parts
    broken = runs.PassReport({}, {}, {}, None, {}, {}, 0, 0.0)
    recorder.run_pass(broken)


def test_the_worker_thread_catches_up_after_an_outage(tmp_path: Path) -> None:
    store, hooks = FlakyStore(tmp_path), Hooks()
    recorder = RunRecorder(
        store, read_pod=podstate.read_pod, metrics=hooks, backoff=Backoff(first=0.05, maximum=0.2)
    )
    store.down = True
    recorder.start(FakeKube())
    try:
        recorder.run_pass(report("Running", "Succeeded"))
        deadline = time.monotonic() + 10
        while hooks.failures < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert hooks.failures >= 3  # tried again and again while S3 is down
        assert recorder.backlog() == 1  # still waiting: nothing lost, nobody blocked
        store.down = False
        deadline = time.monotonic() + 10
        while recorder.backlog() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.read(RECORD)["status"]["phase"] == "Succeeded"
    finally:
        recorder.stop(flush_seconds=0)


class WatchedStore(FlakyStore):
    """A FlakyStore that notes the recorder's backlog while each write is in flight."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.recorder: RunRecorder | None = None
        self.backlog_during_write: list[int] = []

    def put_bytes(self, key: str, data: bytes) -> None:
        assert self.recorder is not None
        self.backlog_during_write.append(self.recorder.backlog())
        super().put_bytes(key, data)


class WatchingHooks(Hooks):
    """Hooks that note the recorder's backlog when a failed write is reported."""

    def __init__(self) -> None:
        super().__init__()
        self.recorder: RunRecorder | None = None
        self.backlog_at_failure: list[int] = []

    def mirror_failed(self) -> None:
        assert self.recorder is not None
        self.backlog_at_failure.append(self.recorder.backlog())
        super().mirror_failed()


def test_a_write_in_flight_still_counts_in_the_backlog(tmp_path: Path) -> None:
    # The worker takes a job out of the queue before writing it: were it no longer
    # counted, backlog() would say "caught up" while the write is still going on.
    store, hooks, clock = WatchedStore(tmp_path), WatchingHooks(), Clock()
    recorder = RunRecorder(store, read_pod=podstate.read_pod, metrics=hooks, clock=clock)
    store.recorder = hooks.recorder = recorder
    recorder.kube = FakeKube()
    recorder.run_pass(report("Running", "Succeeded"))
    store.down = True
    recorder.step()
    assert hooks.backlog_at_failure == [1]  # a failure is reported with its job back
    assert recorder.backlog() == 1
    store.down = False
    clock.now += 60
    recorder.step()
    assert store.backlog_during_write == [1, 1]  # both tries: in flight, still to do
    assert recorder.backlog() == 0
    assert hooks.backlog[-1] == 0
    assert store.read(RECORD)["status"]["phase"] == "Succeeded"


# --- pipesync history ---------------------------------------------------------------------


def record(namespace: str, name: str, started: str, phase: str, pipeline: str) -> bytes:
    return json.dumps(
        {
            "metadata": {"name": name, "namespace": namespace},
            "status": {"phase": phase, "startedAt": started, "progress": "1/1"},
            "pipeline": {"name": pipeline},
        }
    ).encode()


def test_history_lists_records_newest_first_with_filters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = LocalStore(tmp_path)
    store.put_bytes("a/runs/r1/run.json", record("a", "r1", "2026-01-01T00:00:00Z", "Failed", "p"))
    store.put_bytes(
        "a/runs/r2/run.json", record("a", "r2", "2026-01-02T00:00:00Z", "Succeeded", "p")
    )
    store.put_bytes("a/runs/r3/run.json", record("a", "r3", "2026-01-03T00:00:00Z", "Failed", "q"))
    store.put_bytes("a/runs/r3/t/outputs/parameters/run.json", b"not a record")
    store.put_bytes("b/runs/r9/run.json", record("b", "r9", "2026-01-04T00:00:00Z", "Failed", "p"))
    found = archive.load_records(store, "a")
    names = [r.record.name for r in history.select(found, pipeline=None, phase=None, limit=0)]
    assert names == ["r3", "r2", "r1"]
    failed = history.select(found, pipeline="p", phase="failed", limit=0)
    assert [r.record.name for r in failed] == ["r1"]
    every = archive.load_records(store, None)
    assert [r.record.name for r in history.select(every, pipeline=None, phase=None, limit=2)] == [
        "r9",
        "r3",
    ]
    history.print_table(
        history.select(every, pipeline=None, phase=None, limit=0), all_namespaces=True
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "NAME",
        "PIPELINE",
        "PHASE",
        "PROGRESS",
        "STARTED",
        "DURATION",
    ]
    assert lines[1].split()[:3] == ["b", "r9", "p"]
    assert len(lines) == 5


def test_the_record_keeps_each_artifacts_digest_and_a_cached_tasks_source() -> None:
    """What the cache keys consumers on (the sha256 the pod agent reported as it stored
    an artifact) and where a Cached task's results came from are in the S3 record, so a
    retry reusing a task from the record can still key what runs after it."""
    from pipesync.api.runstatus import RunRecord  # noqa: PLC0415
    from pipesync.engine.state import CacheSource  # noqa: PLC0415
    from pipesync.observe.records import build_record  # noqa: PLC0415

    nodes = {
        (0, TASK): NodeState(Phase.SUCCEEDED, 1, 1.0e9, {"count": "3"}, digests={"m": "a" * 64}),
        (1, TASK): NodeState(
            Phase.CACHED, 0, 1.0e9, {}, cached_from=CacheSource("flow-0", "square")
        ),
    }
    record = build_record(run_object(), {"phase": "Succeeded"}, PINNED, nodes, {})
    data = json.loads(json.dumps(record.to_json()))
    assert data["tasks"]["prepare"]["digests"] == {"m": "a" * 64}
    assert data["tasks"]["square"]["cachedFrom"] == {"run": "flow-0", "task": "square"}
    again = RunRecord.from_json(data)
    assert again is not None and again.tasks["prepare"].digests == {"m": "a" * 64}
