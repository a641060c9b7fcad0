"""The Run controller's pure parts: the status a pass writes, bounded in size."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import pytest

from pipesync.api import conventions
from pipesync.controllers import errors, runs
from pipesync.engine import planner
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, NodeState, Phase, RunPhase
from pipesync.runtime import pods, podstate
from tests.unit.kubefakes import CreatedPods, UnusedKube
from tests.unit.pipelines import compile_yaml

RUN = {
    "metadata": {"name": "r", "namespace": "ns", "uid": "u", "generation": 1},
    "spec": {"pipelineRef": {"name": "p"}},
}


def pinned(text: str) -> runs.Pinned:
    return runs.Pinned(compile_yaml(text), {}, {"name": "p", "version": "v", "digest": "d"})


def test_a_finished_run_says_how_it_ended_in_phase_progress_and_conditions() -> None:
    pin = pinned("tasks: [{name: a, command: [x]}, {name: b, command: [x], dependsOn: [a]}]")
    nodes = {
        (0, TASK): NodeState(Phase.SUCCEEDED, attempts=1, finished_at=10.0, outputs={"o": "1"}),
        (1, TASK): NodeState(
            Phase.FAILED,
            attempts=1,
            finished_at=12.0,
            failure=FailureKind.FAILED,
            message="exited with code 3",
        ),
    }
    decision = planner.Decision(finished=planner.Outcome(RunPhase.FAILED, "failed tasks: b"))
    status = runs.summarise(RUN, pin, nodes, decision, started=0.0, now=20.0)
    assert status["phase"] == "Failed"
    assert status["progress"] == "2/2"
    assert status["taskCounts"]["failed"] == 1 and status["taskCounts"]["succeeded"] == 1
    assert status["tasks"]["b"]["message"] == "exited with code 3"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "False"
    # kstatus (Flux) reads Stalled=True as Failed; Ready=True would read as Current.
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Reconciling"]["status"] == "False"
    assert status["finishedAt"] == "1970-01-01T00:00:20Z"
    assert status["duration"] == "20s"


def test_a_cancel_request_shows_cancelling_until_the_run_ends() -> None:
    pin = pinned("tasks: [{name: a, command: [x]}]")
    run = {**RUN, "spec": {**RUN["spec"], "cancel": True}}
    nodes = {(0, TASK): NodeState(Phase.RUNNING, attempts=1)}
    status = runs.summarise(run, pin, nodes, planner.Decision(), started=0.0, now=1.0)
    assert status["phase"] == "Cancelling"


def test_the_status_of_a_2000_task_run_stays_under_256_kib() -> None:
    tasks = "".join(
        f"  - {{name: task-{i:04d}, command: [x], outputs: {{parameters: [value]}}}}\n"
        for i in range(2000)
    )
    pin = pinned("tasks:\n" + tasks)
    nodes = {}
    for i in range(2000):
        phase = (Phase.SUCCEEDED, Phase.FAILED, Phase.RUNNING, Phase.SKIPPED)[i % 4]
        nodes[(i, TASK)] = NodeState(
            phase,
            attempts=3,
            finished_at=1.0,
            outputs={"value": "x" * 200},
            failure=FailureKind.FAILED if phase is Phase.FAILED else None,
            message="m" * 400,
        )
    status = runs.summarise(RUN, pin, nodes, planner.Decision(), started=0.0, now=5.0)
    size = len(json.dumps(status).encode())
    assert size < 256 * 1024, size
    assert status["tasksTruncated"] is True
    assert status["taskCounts"]["total"] == 2000
    # what is kept is what a person looks for: unfinished and failed tasks
    assert {t["phase"] for t in status["tasks"].values()} <= {"Failed", "Running"}


def test_the_run_context_carries_creation_and_scheduled_times() -> None:
    pin = pinned("tasks: [{name: a, command: ['{{run.createdAt}}', '{{run.scheduledAt}}']}]")
    made = {**RUN, "metadata": {**RUN["metadata"], "creationTimestamp": "2026-11-22T01:02:03Z"}}
    context = runs.run_context(made, pin, now=5e9)
    launch = planner.plan(pin.compiled, {}, context, 5e9).launches[0]
    assert launch.values["run.createdAt"] == "2026-11-22T01:02:03Z"
    assert launch.values["run.scheduledAt"] == "2026-11-22T01:02:03Z"
    annotations = {"pipesync.io/scheduled-time": "2026-11-22T01:00:00Z"}
    scheduled = {**made, "metadata": {**made["metadata"], "annotations": annotations}}
    launch = planner.plan(pin.compiled, {}, runs.run_context(scheduled, pin, 5e9), 5e9).launches[0]
    assert launch.values["run.scheduledAt"] == "2026-11-22T01:00:00Z"


class KeyRecordingStore:
    """Answers every read and remembers which keys were read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.read.append(key)
        return b"big"


def test_outputs_too_big_for_the_message_are_read_from_the_runs_keys_not_the_pods() -> None:
    # A pod's annotations are whatever its creator wrote; the operator's credentials reach
    # every namespace, so a node-prefix annotation must never choose what it reads.
    compiled = compile_yaml(
        "tasks:\n  - name: a\n    image: busybox\n    command: [sh]\n"
        "    outputs: {parameters: [big]}\n"
    )
    settings = pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b", prefix="pre"))
    info = pods.RunInfo("r", "ns", "u")
    context = planner.RunContext("r", "ns", {})
    (launch,) = planner.plan(compiled, {}, context, now=0.0).launches
    pod = pods.build_pod(launch, run=info, settings=settings, pipeline=compiled)
    pod["metadata"]["uid"] = "pod-1"
    pod["metadata"]["annotations"][conventions.ANNOTATION_NODE_PREFIX] = "pre/other/runs/x/a"
    report = {"exitCode": 0, "parameters": {}, "missing": [], "uploaded": 1, "truncated": True}
    done = {"terminated": {"exitCode": 0, "message": json.dumps(report)}}
    pod["status"] = {
        "phase": "Succeeded",
        "containerStatuses": [
            {"name": "main", "state": {"terminated": {"exitCode": 0}}},
            {"name": conventions.OUTPUTS_CONTAINER, "state": done},
        ],
    }
    store = KeyRecordingStore()
    controller = runs.RunController(UnusedKube(), settings, store=cast(Any, store))
    nodes, _ = controller._observe(RUN_NS, compiled, [podstate.read_pod(pod)])
    assert nodes[(0, TASK)].outputs == {"big": "big"}
    assert store.read == ["pre/ns/runs/r/a/outputs/parameters/big"]


RUN_NS = {"metadata": {"name": "r", "namespace": "ns", "uid": "u"}, "spec": {}}


def test_the_operator_honours_the_pipelines_parallelism() -> None:
    # Five independent tasks, at most two pods at once: the controller's pass must launch 2.
    tasks = ", ".join(f"{{name: t{i}, command: [echo]}}" for i in range(5))
    pin = pinned(f"parallelism: 2\ntasks: [{tasks}]")
    context = runs.run_context(RUN, pin, now=5e9)
    assert context.max_running == 2
    assert len(planner.plan(pin.compiled, {}, context, 5e9).launches) == 2


def test_the_operator_takes_the_runs_timeout_else_the_pipelines() -> None:
    # The run deadline comes from the same builder as the parallelism (engine.planner).
    pin = pinned("timeout: 1h\nparallelism: 3\ntasks: [{name: a, command: [x]}]")
    context = runs.run_context(RUN, pin, now=5e9)
    assert (context.max_running, context.timeout_seconds) == (3, 3600.0)
    limited = {**RUN, "spec": {**RUN["spec"], "timeout": "90s"}}
    context = runs.run_context(limited, pin, now=5e9)
    assert (context.max_running, context.timeout_seconds) == (3, 90.0)
    unlimited = pinned("tasks: [{name: a, command: [x]}]")
    assert runs.run_context(RUN, unlimited, now=5e9).timeout_seconds is None


def health(status: dict[str, object]) -> tuple[str, str, str]:
    found = {c["type"]: c["status"] for c in status["conditions"]}  # type: ignore[attr-defined]
    return found["Ready"], found["Reconciling"], found["Stalled"]


def test_a_running_run_is_reconciling_a_succeeded_one_ready_a_cancelled_one_stalled() -> None:
    pin = pinned("tasks: [{name: a, command: [x]}]")
    nodes = {(0, TASK): NodeState(Phase.RUNNING, attempts=1)}
    running = runs.summarise(RUN, pin, nodes, planner.Decision(), started=0.0, now=1.0)
    assert health(running) == ("False", "True", "False")
    done = planner.Decision(finished=planner.Outcome(RunPhase.SUCCEEDED, "all tasks succeeded"))
    succeeded = runs.summarise(RUN, pin, nodes, done, started=0.0, now=2.0)
    assert health(succeeded) == ("True", "False", "False")
    stop = planner.Decision(finished=planner.Outcome(RunPhase.CANCELLED, "cancelled"))
    cancelled = runs.summarise(RUN, pin, nodes, stop, started=0.0, now=2.0)
    assert health(cancelled) == ("False", "False", "True")


def test_a_task_the_scheduler_cannot_place_is_pending_with_its_reason_told_once() -> None:
    pin = pinned("tasks: [{name: a, command: [x]}, {name: b, command: [x]}]")
    nodes = {
        (0, TASK): NodeState(Phase.RUNNING, attempts=1),
        (1, TASK): NodeState(Phase.RUNNING, attempts=1),
    }
    scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
    reason = "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    unplaced = {"status": {"phase": "Pending", "conditions": [{**scheduled, "message": reason}]}}
    placed = {"status": {"phase": "Running"}}
    waiting = runs._waiting(
        nodes, {(0, TASK): podstate.read_pod(unplaced), (1, TASK): podstate.read_pod(placed)}
    )
    assert waiting == {(0, TASK): f"Unschedulable: {reason}"}
    status = runs.summarise(
        RUN, pin, nodes, planner.Decision(), started=0.0, now=1.0, waiting=waiting
    )
    assert status["tasks"]["a"] == {
        "phase": "Pending",
        "attempts": 1,
        "message": f"Unschedulable: {reason}",
        "pod": pods.pod_name("r", "a", None, 1),
        "startedAt": "1970-01-01T00:00:01Z",
    }
    assert status["tasks"]["b"]["phase"] == "Running"
    assert status["taskCounts"]["pending"] == 1 and status["taskCounts"]["running"] == 1
    assert status["message"] == f"task a cannot be scheduled: Unschedulable: {reason}"
    reconciling = {c["type"]: c for c in status["conditions"]}["Reconciling"]
    assert reconciling["status"] == "True" and reconciling["reason"] == "TaskUnschedulable"
    assert reason in reconciling["message"]

    controller = runs.RunController(
        UnusedKube(), pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b"))
    )

    def events(run: dict[str, Any]) -> list[tuple[str, str, str]]:
        told = controller._act(run, pin, planner.Decision(), nodes, {}, waiting=waiting)
        return [e for e in told if e[1] == "TaskUnschedulable"]

    assert events(RUN) == [("Warning", "TaskUnschedulable", f"a: Unschedulable: {reason}")]
    # the next pass reads what this one wrote: no second Event for the same pod
    assert events({**RUN, "status": status}) == []
    placed_later = runs.summarise(
        {**RUN, "status": status}, pin, nodes, planner.Decision(), started=0.0, now=2.0
    )
    assert "message" not in placed_later
    assert placed_later["tasks"]["a"]["phase"] == "Running"


def test_a_running_run_has_no_duration_to_freeze_a_finished_one_has() -> None:
    # Passes that only move the clock write nothing, so a running duration froze at 0.0s.
    pin = pinned("tasks: [{name: a, command: [x]}]")
    nodes = {(0, TASK): NodeState(Phase.RUNNING, attempts=1)}
    earlier: dict[str, Any] = {**RUN, "status": {"duration": "0.0s"}}
    running = runs.summarise(earlier, pin, nodes, planner.Decision(), started=0.0, now=5.0)
    assert "duration" not in running
    assert running["startedAt"] == "1970-01-01T00:00:00Z"
    done = planner.Decision(finished=planner.Outcome(RunPhase.SUCCEEDED, "all tasks succeeded"))
    finished = runs.summarise({**RUN, "status": running}, pin, nodes, done, started=0.0, now=75.0)
    assert finished["duration"] == "1m15s"


def test_every_failed_attempt_is_told_once_also_when_its_retry_starts_at_once() -> None:
    # backoff 0 (the default): the pass that sees attempt 1 fail launches attempt 2, and
    # the planner's transition replaced the failure before the Events were chosen.
    pin = pinned("tasks: [{name: a, image: busybox, command: [x], retry: {limit: 1}}]")
    controller = runs.RunController(
        CreatedPods(), pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b"))
    )
    context = planner.RunContext("r", "ns", {})
    run: dict[str, Any] = dict(RUN)
    told: list[tuple[str, str]] = []

    def one_pass(observed: dict[Any, NodeState], now: float) -> None:
        nonlocal run
        decision = planner.plan(pin.compiled, observed, context, now)
        nodes = dict(observed)
        for transition in decision.transitions:
            nodes[transition.key] = transition.state
        events = controller._act(run, pin, decision, nodes, {}, waiting={}, observed=observed)
        told.extend((reason, message) for _, reason, message in events)
        status = runs.summarise(run, pin, nodes, decision, started=0.0, now=now)
        run = {**RUN, "status": status}

    def failed(attempt: int) -> NodeState:
        return NodeState(
            Phase.FAILED, attempts=attempt, failure=FailureKind.FAILED, message=f"exit {attempt}"
        )

    one_pass({}, 0.0)
    one_pass({(0, TASK): NodeState(Phase.RUNNING, attempts=1)}, 1.0)
    one_pass({(0, TASK): failed(1)}, 2.0)
    one_pass({(0, TASK): NodeState(Phase.RUNNING, attempts=2)}, 3.0)
    one_pass({(0, TASK): failed(2)}, 4.0)
    one_pass({(0, TASK): failed(2)}, 5.0)  # a later pass: nothing new to tell
    assert told == [
        ("TaskFailed", "a: exit 1"),
        ("TaskRetried", "a: attempt 2"),
        ("TaskFailed", "a: exit 2"),
    ]


# --- a re-run's pin, handed over by the UI ------------------------------------------------

ORIGINAL_SPEC = {"tasks": [{"name": "a", "command": ["original"]}]}
CHANGED_SPEC = {"tasks": [{"name": "a", "command": ["changed"]}]}
CREATED_AT = 1_000.0  # RERUN's creationTimestamp, 1970-01-01T00:16:40Z
RERUN = {
    "metadata": {
        "name": "r-rerun",
        "namespace": "ns",
        "uid": "u-rerun",
        "creationTimestamp": "1970-01-01T00:16:40Z",
        "annotations": {
            conventions.ANNOTATION_RERUN_OF: "r",
            conventions.ANNOTATION_PIN_HANDOVER: "ui",
        },
    },
    "spec": {"pipelineRef": {"name": "p"}},
}


class PinKube(UnusedKube):
    """A pipeline `p` (already changed since the original ran) and ConfigMaps in memory."""

    def __init__(self) -> None:
        self.config_maps: dict[str, dict[str, Any]] = {}

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}, "spec": CHANGED_SPEC} if name == "p" else None

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.config_maps.get(name)

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> bool:
        name = body["metadata"]["name"]
        if name in self.config_maps:
            return False
        self.config_maps[name] = dict(body)
        return True


def pin_map(owner_uid: str | None, spec: Mapping[str, Any]) -> dict[str, Any]:
    owners = [
        {"apiVersion": "pipesync.io/v1alpha1", "kind": "Run", "uid": owner_uid, "controller": True}
    ]
    return {
        "metadata": {"name": "r-rerun-pipeline", "ownerReferences": owners if owner_uid else []},
        "data": {conventions.PINNED_SPEC_KEY: json.dumps({"spec": spec, "pipeline": {}})},
    }


def pin_controller(kube: PinKube) -> runs.RunController:
    return runs.RunController(kube, pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b")))


def command_of(pin: runs.Pinned) -> tuple[str, ...]:
    return tuple(pin.compiled.tasks[0].task.command)


def test_a_rerun_waits_for_the_pin_the_ui_hands_over_instead_of_pinning_first() -> None:
    kube = PinKube()
    controller = pin_controller(kube)
    # The operator sees the Run before the UI wrote its ConfigMap: it must not pin the
    # pipeline's current (changed) spec itself, it waits for the UI's.
    with pytest.raises(errors.Waiting):
        controller._pin(RERUN, CREATED_AT + 1)
    assert kube.config_maps == {}
    kube.config_maps["r-rerun-pipeline"] = pin_map("u-rerun", ORIGINAL_SPEC)
    assert command_of(controller._pin(RERUN, CREATED_AT + 3)) == ("original",)


def test_a_rerun_whose_pin_never_comes_is_pinned_by_the_operator_after_a_while() -> None:
    kube = PinKube()
    late = CREATED_AT + conventions.PIN_HANDOVER_SECONDS
    assert command_of(pin_controller(kube)._pin(RERUN, late)) == ("changed",)
    assert pin_owner_of(kube) == "u-rerun"


def test_a_planted_config_map_still_cannot_pin_a_run_that_awaits_the_ui() -> None:
    kube = PinKube()
    kube.config_maps["r-rerun-pipeline"] = pin_map(None, ORIGINAL_SPEC)
    with pytest.raises(runs.RunError) as refused:
        pin_controller(kube)._pin(RERUN, CREATED_AT + 1)
    assert refused.value.reason == "PinConflict"
    kube.config_maps["r-rerun-pipeline"] = pin_map("u-other", ORIGINAL_SPEC)
    with pytest.raises(errors.Waiting):  # an earlier Run's: waited out, never taken
        pin_controller(kube)._pin(RERUN, CREATED_AT + 1)


def test_a_run_without_the_handover_annotation_is_pinned_at_once() -> None:
    kube = PinKube()
    plain = {**RERUN, "metadata": {**RERUN["metadata"], "annotations": {}}}
    assert command_of(pin_controller(kube)._pin(plain, CREATED_AT + 1)) == ("changed",)


def pin_owner_of(kube: PinKube) -> str | None:
    return runs.pin_owner(kube.config_maps["r-rerun-pipeline"])


def test_a_resource_placeholder_no_pod_can_be_given_fails_the_run_with_its_reason() -> None:
    pin = pinned(
        "params: [{name: g, type: string}]\n"
        'tasks: [{name: a, command: [x], image: i, resources: {gpu: "{{params.g}}"}}]'
    )
    decision = planner.plan(pin.compiled, {}, planner.RunContext("r", "ns", {"g": "two"}), 0.0)
    controller = runs.RunController(
        UnusedKube(), pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b"))
    )
    with pytest.raises(runs.RunError) as failed:
        controller._act(RUN, pin, decision, {}, {}, waiting={})
    assert failed.value.reason == "PodBuildFailed"
    assert "task 'a': resources.gpu '{{params.g}}' is 'two': not a whole number" in str(
        failed.value
    )
