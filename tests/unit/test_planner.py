"""The planner: what starts, what is skipped, when a run ends, and how."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pipesync.engine import context as runcontext
from pipesync.engine import planner
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, NodeKey, NodeState, Phase, RunPhase
from tests.unit.pipelines import compile_yaml

Outcome = Callable[[planner.Launch], NodeState]


def succeed(outputs: dict[str, str] | None = None) -> Outcome:
    def outcome(launch: planner.Launch) -> NodeState:
        return NodeState(
            Phase.SUCCEEDED,
            attempts=launch.attempt,
            finished_at=0.0,
            outputs=outputs or dict.fromkeys(launch.task.task.output_parameters, "1"),
        )

    return outcome


def fail(kind: FailureKind = FailureKind.FAILED) -> Outcome:
    def outcome(launch: planner.Launch) -> NodeState:
        return NodeState(Phase.FAILED, attempts=launch.attempt, finished_at=0.0, failure=kind)

    return outcome


class Simulation:
    """Drives the planner like an executor would, with a scripted outcome per task."""

    def __init__(
        self,
        pipeline: CompiledPipeline,
        params: dict[str, Any] | None = None,
        cap: int | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.context = planner.RunContext("run-1", "ns", params or {}, max_running=cap)
        self.nodes: dict[NodeKey, NodeState] = {}
        self.launches: list[planner.Launch] = []
        self.now = 0.0

    def step(self, **outcomes: Outcome) -> planner.Decision:
        decision = planner.plan(self.pipeline, self.nodes, self.context, self.now)
        for transition in decision.transitions:
            self.nodes[transition.key] = transition.state
        for launch in decision.launches:
            self.launches.append(launch)
            outcome = outcomes.get(launch.task.name.replace("-", "_"), succeed())
            self.nodes[launch.key] = outcome(launch)
        return decision

    def run(self, max_steps: int = 100, **outcomes: Outcome) -> planner.Outcome:
        for _ in range(max_steps):
            decision = self.step(**outcomes)
            if decision.finished is not None:
                return decision.finished
            if decision.wake_at is not None:
                self.now = decision.wake_at
        raise AssertionError("the run did not finish")

    def phase(self, name: str) -> Phase:
        return self.nodes[(self.pipeline.task(name).index, TASK)].phase

    def launched(self) -> list[str]:
        return [launch.task.name for launch in self.launches]


DIAMOND = """
tasks:
  - {name: a, command: [x]}
  - {name: b, command: [x], dependsOn: [a]}
  - {name: c, command: [x], dependsOn: [a]}
  - {name: d, command: [x], dependsOn: [b, c]}
onExit: {name: bye, command: ["{{run.status}}"]}
"""


def test_a_diamond_runs_in_dependency_order_and_parallel_branches_start_together() -> None:
    sim = Simulation(compile_yaml(DIAMOND))
    first = sim.step()
    assert [launch.task.name for launch in first.launches] == ["a"]
    second = sim.step()
    assert sorted(launch.task.name for launch in second.launches) == ["b", "c"]
    assert [launch.task.name for launch in sim.step().launches] == ["d"]
    exit_step = sim.step()
    assert [launch.task.name for launch in exit_step.launches] == ["bye"]
    assert exit_step.launches[0].values["run.status"] == "Succeeded"
    assert sim.step().finished == planner.Outcome(
        RunPhase.SUCCEEDED, "all tasks succeeded or were skipped"
    )


def test_planning_again_without_news_decides_nothing_new() -> None:
    sim = Simulation(compile_yaml(DIAMOND))
    sim.step(a=lambda launch: NodeState(Phase.RUNNING, attempts=1))
    again = planner.plan(sim.pipeline, sim.nodes, sim.context, 0.0)
    assert again.launches == () and again.transitions == () and again.finished is None


def test_a_failed_task_omits_its_dependents_and_onExit_sees_failed() -> None:
    sim = Simulation(compile_yaml(DIAMOND))
    outcome = sim.run(b=fail())
    assert outcome.phase is RunPhase.FAILED
    assert "b" in outcome.message
    assert sim.phase("d") is Phase.OMITTED
    assert sim.phase("c") is Phase.SUCCEEDED
    exit_launch = sim.launches[-1]
    assert exit_launch.task.name == "bye" and exit_launch.values["run.status"] == "Failed"


def test_when_false_skips_the_task_but_not_its_plain_dependents() -> None:
    sim = Simulation(
        compile_yaml(
            """
params: [{name: threshold, type: number, default: 0.9}]
tasks:
  - {name: train, command: [x], outputs: {parameters: [acc]}}
  - name: publish
    command: [x]
    when: "{{tasks.train.outputs.parameters.acc}} >= {{params.threshold}}"
    outputs: {parameters: [url]}
  - {name: notify, command: [x], dependsOn: [publish]}
  - {name: announce, command: ["{{tasks.publish.outputs.parameters.url}}"]}
"""
        ),
        params={"threshold": 0.9},
    )
    outcome = sim.run(train=succeed({"acc": "0.5"}))
    assert outcome.phase is RunPhase.SUCCEEDED
    assert sim.phase("publish") is Phase.SKIPPED
    assert sim.phase("notify") is Phase.SUCCEEDED  # skipped counts as done for ordering
    assert sim.phase("announce") is Phase.SKIPPED  # but its outputs do not exist


def test_when_true_runs_the_task() -> None:
    sim = Simulation(
        compile_yaml(
            """
tasks:
  - {name: train, command: [x], outputs: {parameters: [acc]}}
  - {name: publish, command: [x], when: "{{tasks.train.outputs.parameters.acc}} >= 0.9"}
"""
        )
    )
    sim.run(train=succeed({"acc": "0.95"}))
    assert sim.phase("publish") is Phase.SUCCEEDED


def test_retries_wait_for_the_backoff_and_stop_at_the_limit() -> None:
    pipeline = compile_yaml(
        """
tasks:
  - name: flaky
    command: [x]
    retry: {limit: 3, backoff: 10s, factor: 2, maxBackoff: 15s}
"""
    )
    sim = Simulation(pipeline)
    sim.step(flaky=fail())
    waiting = sim.step()
    assert waiting.launches == () and waiting.wake_at == 10.0
    sim.now = 10.0
    assert [launch.attempt for launch in sim.step(flaky=fail()).launches] == [2]
    assert sim.step().wake_at == 15.0  # 10 * 2 = 20, capped by maxBackoff at 15 after t=0
    outcome = sim.run(flaky=fail())
    assert outcome.phase is RunPhase.FAILED
    assert [launch.attempt for launch in sim.launches] == [1, 2, 3, 4]


def test_a_retry_that_succeeds_ends_the_run_well() -> None:
    sim = Simulation(compile_yaml("tasks: [{name: t, command: [x], retry: {limit: 2}}]"))
    attempts = iter([fail(), fail(), succeed()])
    outcome = sim.run(t=lambda launch: next(attempts)(launch))  # noqa: PLW0108 - lazy
    assert outcome.phase is RunPhase.SUCCEEDED
    assert sim.nodes[(0, TASK)].attempts == 3


def test_the_default_policy_does_not_retry_system_errors_but_always_does() -> None:
    on_failure = Simulation(compile_yaml("tasks: [{name: t, command: [x], retry: {limit: 2}}]"))
    on_failure.run(t=fail(FailureKind.ERROR))
    assert len(on_failure.launches) == 1
    always = Simulation(
        compile_yaml("tasks: [{name: t, command: [x], retry: {limit: 2, policy: Always}}]")
    )
    always.run(t=fail(FailureKind.ERROR))
    assert len(always.launches) == 3


FAN_OUT = """
params: [{name: lrs, type: list, default: [0.1, 0.2, 0.3, 0.4, 0.5]}]
tasks:
  - name: train
    forEach: {items: "{{params.lrs}}", parallelism: 2}
    command: ["{{item}}", "{{outputs.parameters.acc}}"]
    outputs: {parameters: [acc]}
  - {name: best, command: ["{{tasks.train.outputs.parameters.acc}}"]}
"""


def test_forEach_respects_its_parallelism_and_collects_outputs_in_item_order() -> None:
    sim = Simulation(compile_yaml(FAN_OUT), params={"lrs": [0.1, 0.2, 0.3, 0.4, 0.5]})
    running = {"train": lambda launch: NodeState(Phase.RUNNING, attempts=1)}
    first = sim.step(**running)
    assert [launch.key[1] for launch in first.launches] == [0, 1]
    assert [launch.values["item"] for launch in first.launches] == ["0.1", "0.2"]
    assert sim.step(**running).launches == ()  # both slots busy
    # instances finish out of order; outputs still come back in item order
    for position in (1, 0, 2, 3, 4):
        sim.nodes[(0, position)] = NodeState(
            Phase.SUCCEEDED, attempts=1, outputs={"acc": str(position / 10)}
        )
    sim.run()
    assert sim.nodes[(0, TASK)].outputs["acc"] == "[0.0,0.1,0.2,0.3,0.4]"
    best = next(launch for launch in sim.launches if launch.task.name == "best")
    assert best.values["tasks.train.outputs.parameters.acc"] == "[0.0,0.1,0.2,0.3,0.4]"


def test_forEach_over_an_upstream_output_that_is_not_a_list_fails_clearly() -> None:
    sim = Simulation(
        compile_yaml(
            """
tasks:
  - {name: list, command: [x], outputs: {parameters: [items]}}
  - {name: each, command: ["{{item}}"], forEach: {items: "{{tasks.list.outputs.parameters.items}}"}}
"""
        )
    )
    outcome = sim.run(list=succeed({"items": '{"a": 1}'}))
    assert outcome.phase is RunPhase.FAILED
    assert "not a list" in sim.nodes[(1, TASK)].message


def test_forEach_over_an_empty_list_succeeds_with_an_empty_collection() -> None:
    sim = Simulation(
        compile_yaml(
            "tasks: [{name: e, command: ['{{item}}'], forEach: {items: []}, "
            "outputs: {parameters: [p]}}]"
        )
    )
    assert sim.run().phase is RunPhase.SUCCEEDED
    assert sim.nodes[(0, TASK)].outputs == {"p": "[]"}


def test_a_failed_instance_fails_the_fan_out_and_starts_no_more() -> None:
    sim = Simulation(compile_yaml(FAN_OUT), params={"lrs": [1, 2, 3, 4, 5]})
    outcome = sim.run(train=fail())
    assert outcome.phase is RunPhase.FAILED
    assert sim.phase("train") is Phase.FAILED
    assert len(sim.launches) == 2  # the first two failed; nothing else started
    assert sim.phase("best") is Phase.OMITTED


def test_the_run_wide_cap_limits_running_tasks() -> None:
    wide = "tasks:\n" + "".join(f"  - {{name: t{i}, command: [x]}}\n" for i in range(10))
    sim = Simulation(compile_yaml(wide), cap=3)
    first = sim.step(
        **{f"t{i}": lambda launch: NodeState(Phase.RUNNING, attempts=1) for i in range(10)}
    )
    assert len(first.launches) == 3


def test_cancel_stops_running_tasks_cancels_pending_ones_and_still_runs_onExit() -> None:
    sim = Simulation(compile_yaml(DIAMOND))
    sim.step()  # a succeeded
    sim.step(b=lambda launch: NodeState(Phase.RUNNING, attempts=1), c=succeed())
    decision = planner.plan(sim.pipeline, sim.nodes, sim.context, 0.0, cancel=True)
    assert decision.stop == ((sim.pipeline.task("b").index, TASK),)
    assert decision.launches == ()
    for transition in decision.transitions:
        sim.nodes[transition.key] = transition.state
    sim.nodes[(sim.pipeline.task("b").index, TASK)] = NodeState(
        Phase.CANCELLED, attempts=1, failure=FailureKind.CANCELLED
    )
    decision = planner.plan(sim.pipeline, sim.nodes, sim.context, 0.0, cancel=True)
    for transition in decision.transitions:
        sim.nodes[transition.key] = transition.state
    assert sim.phase("d") is Phase.CANCELLED
    assert [launch.task.name for launch in decision.launches] == ["bye"]
    assert decision.launches[0].values["run.status"] == "Cancelled"
    sim.nodes[decision.launches[0].key] = NodeState(Phase.SUCCEEDED, attempts=1)
    final = planner.plan(sim.pipeline, sim.nodes, sim.context, 0.0, cancel=True)
    assert final.finished is not None and final.finished.phase is RunPhase.CANCELLED


def test_a_run_timeout_fails_the_run_after_onExit() -> None:
    sim = Simulation(compile_yaml(DIAMOND))
    decision = planner.plan(sim.pipeline, sim.nodes, sim.context, 0.0, deadline_exceeded=True)
    for transition in decision.transitions:
        sim.nodes[transition.key] = transition.state
    assert sim.phase("a") is Phase.CANCELLED
    assert [launch.task.name for launch in decision.launches] == ["bye"]
    sim.nodes[decision.launches[0].key] = NodeState(Phase.SUCCEEDED, attempts=1)
    final = planner.plan(sim.pipeline, sim.nodes, sim.context, 0.0, deadline_exceeded=True)
    assert final.finished == planner.Outcome(RunPhase.FAILED, "the run exceeded its timeout")


def test_a_failing_onExit_fails_an_otherwise_successful_run() -> None:
    sim = Simulation(compile_yaml(DIAMOND))
    outcome = sim.run(bye=fail())
    assert outcome.phase is RunPhase.FAILED
    assert "onExit" in outcome.message


def test_parameters_and_run_name_are_rendered_into_launch_values() -> None:
    sim = Simulation(
        compile_yaml(
            """
params: [{name: lr, type: number}, {name: cfg, type: object}]
tasks: [{name: t, command: ["--lr={{params.lr}}", "{{params.cfg}}", "{{run.name}}"]}]
"""
        ),
        params={"lr": 0.05, "cfg": {"a": [1, 2]}},
    )
    (launch,) = sim.step().launches
    assert launch.values == {"params.lr": "0.05", "params.cfg": '{"a":[1,2]}', "run.name": "run-1"}


def test_an_input_artifact_with_alternatives_reads_the_producer_that_ran() -> None:
    pipeline = compile_yaml(
        """
params: [{name: side, default: b}]
tasks:
  - {name: a, command: [x], when: "'{{params.side}}' == 'a'", outputs: {artifacts: [m]}}
  - {name: b, command: [x], when: "'{{params.side}}' == 'b'", outputs: {artifacts: [n]}}
  - name: c
    command: ["{{inputs.artifacts.model}}"]
    inputs:
      artifacts:
        model: {from: "{{tasks.a.outputs.artifacts.m|tasks.b.outputs.artifacts.n}}"}
"""
    )
    for side, chosen in (("a", ("a", "m")), ("b", ("b", "n"))):
        sim = Simulation(pipeline, params={"side": side})
        assert sim.run().phase is RunPhase.SUCCEEDED
        launch = next(launch for launch in sim.launches if launch.task.name == "c")
        producer, artifact = launch.source(launch.task.inputs[0])
        assert (pipeline.tasks[producer].name, artifact) == chosen
    sim = Simulation(pipeline, params={"side": "none"})
    assert sim.run().phase is RunPhase.SUCCEEDED
    assert sim.phase("c") is Phase.SKIPPED  # neither branch ran: nothing to read


def built_context(pipeline_yaml: str, **given: Any) -> planner.RunContext:
    """The context engine.planner.run_context builds for a run of this pipeline."""
    spec = compile_yaml(pipeline_yaml + "tasks: [{name: a, command: [x]}]").spec
    return runcontext.run_context(spec, {}, name="r", namespace="n", created_at=1.0, **given)


def test_one_run_context_builder_takes_the_smaller_of_the_pipeline_and_executor_caps() -> None:
    spec, unlimited = "parallelism: 3\n", ""

    def cap(of: str, executor: int | None) -> int | None:
        return built_context(of, max_running=executor).max_running

    assert (cap(spec, None), cap(spec, 2), cap(spec, 8)) == (3, 2, 3)
    assert (cap(unlimited, None), cap(unlimited, 4)) == (None, 4)


def test_one_run_context_builder_takes_the_runs_timeout_else_the_pipelines() -> None:
    spec, unlimited = "timeout: 2h\n", ""

    def limit(of: str, timeout: str | None) -> float | None:
        return built_context(of, timeout=timeout).timeout_seconds

    assert (limit(spec, None), limit(spec, "30m"), limit(spec, "")) == (7200.0, 1800.0, 7200.0)
    assert (limit(unlimited, None), limit(unlimited, "1m")) == (None, 60.0)
    with pytest.raises(ValueError):
        limit(spec, "soon")


def test_a_hostile_matrix_fails_its_task_without_being_built() -> None:
    # 300 x 300 x 300: 27 million instances, 1.5 GiB if the product were materialised.
    import tracemalloc  # noqa: PLC0415 - only this test measures allocation

    axis = "[" + ", ".join(str(i) for i in range(300)) + "]"
    compiled = compile_yaml(
        "params: [{name: big, type: list}]\n"
        "tasks: [{name: grid, command: [echo, '{{item.a}}'],"
        f" forEach: {{matrix: {{a: {axis}, b: {axis}, c: '{{{{params.big}}}}'}}}}}}]"
    )
    context = planner.RunContext("r", "n", {"big": list(range(300))})
    tracemalloc.start()
    try:
        decision = planner.plan(compiled, {}, context, 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak} bytes"
    assert decision.launches == ()
    failed = {t.key: t.state for t in decision.transitions}[(0, TASK)]
    assert failed.phase is Phase.FAILED
    assert "300 x 300 x 300" in failed.message and "limit" in failed.message
    assert decision.finished is not None and decision.finished.phase is RunPhase.FAILED


def test_items_from_a_task_output_over_the_limit_fail_that_task_with_the_reason() -> None:
    compiled = compile_yaml(
        "tasks:\n"
        "- {name: make, command: [x], outputs: {parameters: [list]}}\n"
        "- {name: each, command: [echo, '{{item}}'],"
        " forEach: {items: '{{tasks.make.outputs.parameters.list}}'}}\n"
    )
    made = NodeState(Phase.SUCCEEDED, attempts=1, outputs={"list": str(list(range(10_001)))})
    decision = planner.plan(compiled, {(0, TASK): made}, planner.RunContext("r", "n", {}), 0.0)
    failed = {t.key: t.state for t in decision.transitions}[(1, TASK)]
    assert failed.phase is Phase.FAILED
    assert "10001 items" in failed.message and "limit of 10000" in failed.message


def test_one_pass_starts_at_most_the_launch_limit_and_asks_to_be_called_again() -> None:
    compiled = compile_yaml(
        "tasks: [{name: each, command: [echo, '{{item}}'], forEach: {items: "
        + str(list(range(50)))
        + "}}]"
    )
    context = planner.RunContext("r", "n", {}, bounds=runcontext.Limits(launches=20))
    decision = planner.plan(compiled, {}, context, 7.0)
    assert len(decision.launches) == 20
    assert decision.wake_at == 7.0
    nodes = {t.key: t.state for t in decision.transitions}
    assert len(planner.plan(compiled, nodes, context, 8.0).launches) == 20
