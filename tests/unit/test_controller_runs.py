"""The Run controller's pure parts: the status a pass writes, bounded in size."""

from __future__ import annotations

import json

from pipesync.controllers import runs
from pipesync.engine import planner
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, NodeState, Phase, RunPhase
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
