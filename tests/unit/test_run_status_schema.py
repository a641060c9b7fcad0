"""The Run status the controller writes against schemas/run.schema.json, field by field:
every status written across a run's phases is valid, and every property the schema
declares is written by some path (the schema promises nothing nobody writes)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import conventions, model, runstatus, schemas
from pipesync.controllers import runs
from pipesync.engine import compiler
from pipesync.engine.context import RunContext
from pipesync.kube.protocol import PIPELINES, RUNS
from pipesync.observe import records
from pipesync.runtime import cachestore, pods, podstate
from pipesync.runtime.local import LocalRun
from pipesync.runtime.storage import LocalStore

PIPELINE_SPEC = {
    "tasks": [
        {"name": "a", "image": "busybox", "command": ["x"], "retry": {"limit": 1}},
        {"name": "b", "image": "busybox", "command": ["x"], "dependsOn": ["a"]},
        {
            "name": "fan",
            "image": "busybox",
            "command": ["x"],
            "forEach": {"items": [1, 2]},
            "outputs": {"parameters": ["v"]},
        },
    ],
}


class ClusterOfOneRun:
    """The Kubernetes adapter's calls a Run pass makes, against dicts: a Run, a Pipeline,
    the pinned ConfigMap and the pods the passes create, whose state the test sets."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run
        self.pipeline = {"metadata": {"name": "p", "namespace": "ns"}, "spec": PIPELINE_SPEC}
        self.config_maps: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.written: list[dict[str, Any]] = []

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = {RUNS: self.run, PIPELINES: self.pipeline}[plural]
        return copy.deepcopy(found) if found["metadata"]["name"] == name else None

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> None:
        self.config_maps[body["metadata"]["name"]] = copy.deepcopy(dict(body))

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.config_maps.get(name))

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return copy.deepcopy(list(self.pods.values()))

    def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> None:
        body = copy.deepcopy(dict(pod))
        body["metadata"]["uid"] = f"pod-{len(self.pods)}"
        body["status"] = {"phase": "Pending"}
        self.pods.setdefault(body["metadata"]["name"], body)

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.config_maps.get(name)
        return None if found is None else dict(found["data"])

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None:
        return f"{pod} {container}\n".encode() if pod in self.pods else None

    def delete_pod(self, namespace: str, name: str) -> None:
        self.pods.pop(name, None)

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        assert plural == RUNS  # only Run status is written here
        self.run["status"] = {**(self.run.get("status") or {}), **copy.deepcopy(dict(status))}
        self.written.append(copy.deepcopy(self.run["status"]))

    # --- what the kubelet would report ----------------------------------------------------

    def pods_of(self, task: str) -> list[dict[str, Any]]:
        return [
            p for p in self.pods.values() if p["metadata"]["labels"][conventions.LABEL_TASK] == task
        ]

    def end(self, task: str, code: int, outputs: Mapping[str, str] | None = None) -> None:
        """The newest pod of each node of `task` ends: its program with `code`."""
        for pod in self.pods_of(task):
            if pod["status"]["phase"] not in ("Pending", "Running"):
                continue
            report = {"exitCode": code, "parameters": dict(outputs or {})}
            pod["status"] = {
                "phase": "Succeeded" if code == 0 else "Failed",
                "containerStatuses": [
                    _terminated(conventions.MAIN_CONTAINER, code),
                    _terminated(conventions.OUTPUTS_CONTAINER, 0, json.dumps(report)),
                ],
            }

    def unschedulable(self, task: str) -> None:
        reason = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        for pod in self.pods_of(task):
            pod["status"] = {"phase": "Pending", "conditions": [reason]}

    def start(self, task: str) -> None:
        for pod in self.pods_of(task):
            if pod["status"]["phase"] == "Pending":
                pod["status"] = {"phase": "Running", "containerStatuses": []}


def _terminated(name: str, code: int, message: str = "") -> dict[str, Any]:
    ended = {"exitCode": code, "finishedAt": "2026-01-01T00:01:00Z", "message": message}
    return {"name": name, "state": {"terminated": ended}}


#: Now, in the passes: after the kubelet's finishedAt above, so retries are due at once.
T = 1_800_000_000.0


def new_run(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "r", "namespace": "ns", "uid": "run-uid", "generation": 1},
        "spec": {"pipelineRef": {"name": "p"}, **spec},
    }


def controller(cluster: ClusterOfOneRun, observers: tuple[Any, ...] = ()) -> runs.RunController:
    settings = pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b"))
    return runs.RunController(cluster, settings, observers)  # type: ignore[arg-type]


def drive_to_success(cluster: ClusterOfOneRun, control: runs.RunController) -> None:
    """Pending -> Running -> a fails once and is retried -> every task succeeds."""
    now = T
    control.reconcile("ns", "r", now)  # pins, launches a and the fan instances
    cluster.start("a")
    control.reconcile("ns", "r", now + 1)
    cluster.end("a", 3)  # attempt 1 fails: retried at once (no backoff)
    control.reconcile("ns", "r", now + 2)
    cluster.end("a", 0)
    cluster.end("fan", 0, {"v": "1"})
    control.reconcile("ns", "r", now + 3)  # launches b
    cluster.end("b", 0)
    control.reconcile("ns", "r", now + 4)


def fail_a_for_good(cluster: ClusterOfOneRun, control: runs.RunController, code: int) -> None:
    """Task a's two attempts (one retry) both end with `code`."""
    control.reconcile("ns", "r", T)
    for attempt in (1, 2):
        cluster.end("a", code)
        control.reconcile("ns", "r", T + attempt)


def written_statuses() -> Iterator[dict[str, Any]]:
    """Every status the controller writes, through its passes, in every run phase."""
    succeeded = ClusterOfOneRun(new_run())
    drive_to_success(succeeded, controller(succeeded))
    yield from succeeded.written

    failed = ClusterOfOneRun(new_run())
    control = controller(failed)
    fail_a_for_good(failed, control, code=1)
    failed.end("fan", 0, {"v": "2"})
    control.reconcile("ns", "r", T + 3)
    yield from failed.written

    waiting = ClusterOfOneRun(new_run())
    control = controller(waiting)
    control.reconcile("ns", "r", T)
    waiting.unschedulable("a")
    control.reconcile("ns", "r", T + 1)
    yield from waiting.written

    cancelled = ClusterOfOneRun(new_run())
    control = controller(cancelled)
    control.reconcile("ns", "r", T)
    cancelled.run["spec"]["cancel"] = True
    control.reconcile("ns", "r", T + 1)  # Cancelling: the pods are being stopped
    control.reconcile("ns", "r", T + 2)
    yield from cancelled.written

    unpinned = ClusterOfOneRun(new_run())
    unpinned.pipeline["metadata"]["name"] = "another"  # the reference finds nothing
    controller(unpinned).reconcile("ns", "r", T)
    yield from unpinned.written

    truncated = ClusterOfOneRun(new_run())
    many = [{"name": f"t{i}", "image": "busybox", "command": ["x"]} for i in range(250)]
    truncated.pipeline["spec"] = {"tasks": many}
    controller(truncated).reconcile("ns", "r", T)
    yield from truncated.written

    recorded = ClusterOfOneRun(new_run())
    drive_to_success(recorded, controller(recorded, (ReportsTheRecord(),)))
    yield from recorded.written


class ReportsTheRecord:
    """An observer that knows where the final record is, as the S3 mirror does."""

    def run_pass(self, report: runs.PassReport) -> runs.ObserverResult | None:
        if report.status.get("phase") not in runs.FINISHED:
            return None
        return runs.ObserverResult(record_uri="s3://b/ns/runs/r/run.json")


STATUSES = list(written_statuses())


def test_the_passes_write_every_run_phase() -> None:
    # (a run is Pending only until its first pass, which launches or decides something)
    phases = {status["phase"] for status in STATUSES}
    assert phases == {"Running", "Succeeded", "Failed", "Cancelling", "Cancelled"}
    task_phases = {t["phase"] for s in STATUSES for t in (s.get("tasks") or {}).values()}
    assert task_phases >= {"Pending", "Running", "Succeeded", "Failed", "Cancelled", "Omitted"}
    assert any(status.get("tasksTruncated") for status in STATUSES)


@pytest.mark.parametrize("index", range(len(STATUSES)))
def test_every_status_the_controller_writes_is_valid_against_the_schema(index: int) -> None:
    run = {**new_run(), "status": STATUSES[index]}
    problems = [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in schemas.validator("Run").iter_errors(run)
    ]
    assert problems == []


def _declared(schema: Mapping[str, Any], where: str) -> Iterator[str]:
    """The slash paths of every property of a status schema node ('*' for a map's value)."""
    if "$ref" in schema:
        reference = str(schema["$ref"])
        if reference.startswith("#/$defs/"):
            yield from _declared(schemas.load("Run")["$defs"][reference[8:]], where)
        return  # a common definition (conditions, dateTime): a leaf here
    for name, child in (schema.get("properties") or {}).items():
        yield f"{where}/{name}"
        yield from _declared(child, f"{where}/{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping) and ("$ref" in extra or "properties" in extra):
        yield f"{where}/*"
        yield from _declared(extra, f"{where}/*")


def _written(value: Any, where: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            path = f"{where}/{'*' if where.endswith('/tasks') else key}"
            yield path
            yield from _written(child, path)


def local_statuses(workdir: Path) -> list[dict[str, Any]]:
    """The statuses the other writer, the local executor, puts in its run records: a run
    whose task succeeds, then one the task cache serves."""
    spec = {
        "tasks": [
            {
                "name": "a",
                "command": ["sh", "-c", "echo 1 > $0", "{{outputs.parameters.v}}"],
                "outputs": {"parameters": ["v"]},
                "cache": {"enabled": True, "paths": []},
            }
        ]
    }
    compiled, problems = compiler.compile_pipeline(model.pipeline_spec_from_spec(spec))
    assert compiled is not None, problems
    store = cachestore.LocalCacheStore(workdir, runstatus.LOCAL_NAMESPACE)
    found = []
    for name in ("ran", "cached"):
        context = RunContext(name, runstatus.LOCAL_NAMESPACE, {})
        local = LocalRun(
            compiled,
            context,
            repo_root=workdir,
            workdir=workdir,
            cache=cachestore.LocalCache(store, lambda paths: ""),
        )
        local.execute()
        found.append(local.record().status.to_json())
    assert found[1]["tasks"]["a"]["phase"] == "Cached"
    return found


def test_the_local_executors_statuses_are_valid_against_the_schema(tmp_path: Path) -> None:
    for status in local_statuses(tmp_path):
        run = {**new_run(), "status": status}
        assert [e.message for e in schemas.validator("Run").iter_errors(run)] == []


def test_every_status_property_the_schema_declares_is_written_by_some_pass(
    tmp_path: Path,
) -> None:
    declared = set(_declared(schemas.load("Run")["properties"]["status"], "status"))
    writers = [*STATUSES, *local_statuses(tmp_path)]
    written = {path for status in writers for path in _written(status, "status")}
    assert declared - written == set()
    assert written - declared <= {"status/tasks/*/outputs/v"}  # a free-form map's keys


def test_every_task_phase_the_schema_allows_is_one_a_task_can_have() -> None:
    from pipesync.engine.state import Phase  # noqa: PLC0415

    task = schemas.load("Run")["$defs"]["taskStatus"]["properties"]["phase"]
    assert set(task["enum"]) == {phase.value for phase in Phase}


def test_a_task_carries_its_pod_first_start_and_exit_code() -> None:
    cluster = ClusterOfOneRun(new_run())
    drive_to_success(cluster, controller(cluster))
    tasks = runstatus.RunStatus.from_json(cluster.run["status"]).tasks or {}
    first_launch = next(s for s in cluster.written if "a" in (s.get("tasks") or {}))
    assert tasks["a"].attempts == 2
    assert tasks["a"].pod == pods.pod_name("r", "a", None, 2)
    assert tasks["a"].started_at == first_launch["tasks"]["a"]["startedAt"]
    assert tasks["a"].exit_code == 0
    assert "exitCode" not in cluster.written[-1]["tasks"]["fan"]  # an aggregate has no pod
    assert "pod" not in cluster.written[-1]["tasks"]["fan"]
    # attempt 1 failed with 3 and attempt 2 started in the same pass: no stale exit code
    assert all(s["tasks"]["a"].get("exitCode") != 3 for s in cluster.written if "tasks" in s)


def test_a_task_that_failed_for_good_carries_its_exit_code() -> None:
    cluster = ClusterOfOneRun(new_run())
    fail_a_for_good(cluster, controller(cluster), code=7)
    task = cluster.run["status"]["tasks"]["a"]
    assert (task["phase"], task["attempts"], task["exitCode"]) == ("Failed", 2, 7)


def test_the_mirror_reports_the_final_records_uri_and_the_controller_writes_it(
    tmp_path: Path,
) -> None:
    cluster = ClusterOfOneRun(new_run())
    store = LocalStore(tmp_path)
    recorder = records.RunRecorder(store, bucket="b", read_pod=podstate.read_pod)
    control = controller(cluster, (recorder,))
    recorder.kube = cluster  # no worker thread: step() writes
    recorder.on_recorded = control.reconcile
    drive_to_success(cluster, control)
    assert cluster.run["status"]["phase"] == "Succeeded"
    assert "record" not in cluster.run["status"]  # not before the record is in S3
    while recorder.step() is not None:
        pass
    assert cluster.run["status"]["record"] == {"uri": "s3://b/ns/runs/r/run.json"}
    written = runstatus.RunRecord.from_json(json.loads(store.get_bytes("ns/runs/r/run.json")))
    assert written is not None and written.status.phase == "Succeeded"
    assert written.tasks["a"].attempts == 2 and written.tasks["a"].exit_code == 0
    # the record pass wrote once; a later pass of the finished run writes nothing
    count = len(cluster.written)
    control.reconcile("ns", "r")
    assert len(cluster.written) == count
