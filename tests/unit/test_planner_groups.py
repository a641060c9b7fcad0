"""forEach groups (a loop body of several tasks) and per-instance `when`."""

from __future__ import annotations

import json

from pipesync.engine import planner
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, NodeState, Phase, RunPhase
from tests.unit.pipelines import compile_yaml, problems_of
from tests.unit.test_planner import Simulation, fail, succeed

BODY = """
params: [{name: lrs, type: list}]
tasks:
  - name: train
    command: ["{{item}}"]
    forEach: {items: "{{params.lrs}}", group: body}
    outputs: {parameters: [loss], artifacts: [model]}
  - name: evaluate
    command: ["{{tasks.train.outputs.parameters.loss}}", "{{inputs.artifacts.model}}"]
    inputs: {artifacts: {model: {from: "{{tasks.train.outputs.artifacts.model}}"}}}
    forEach: {group: body}
    outputs: {parameters: [score]}
  - name: report
    command: ["{{tasks.evaluate.outputs.parameters.score}}"]
"""


def test_a_member_instance_reads_and_waits_for_its_own_iteration_only() -> None:
    pipeline = compile_yaml(BODY)
    sim = Simulation(pipeline, params={"lrs": [1, 2, 3]})
    running = {"train": lambda launch: NodeState(Phase.RUNNING, attempts=1)}
    sim.step(**running)
    train = pipeline.task("train").index
    # train[1] finishes first: evaluate[1] starts while train[0] and train[2] still run
    sim.nodes[(train, 1)] = NodeState(Phase.SUCCEEDED, attempts=1, outputs={"loss": "L1"})
    decision = sim.step(**running)
    assert [(launch.task.name, launch.key[1]) for launch in decision.launches] == [("evaluate", 1)]
    assert decision.launches[0].values["tasks.train.outputs.parameters.loss"] == "L1"
    for position in (0, 2):
        sim.nodes[(train, position)] = NodeState(
            Phase.SUCCEEDED, attempts=1, outputs={"loss": f"loss-{position + 1}"}
        )
    assert sim.run().phase is RunPhase.SUCCEEDED
    evaluations = {
        launch.key[1]: launch.values["tasks.train.outputs.parameters.loss"]
        for launch in sim.launches
        if launch.task.name == "evaluate"
    }
    assert evaluations == {0: "loss-1", 1: "L1", 2: "loss-3"}
    # outside the group the member's outputs are collected, as for any forEach task
    report = next(launch for launch in sim.launches if launch.task.name == "report")
    assert json.loads(report.values["tasks.evaluate.outputs.parameters.score"]) == [1, 1, 1]


def test_a_failed_iteration_omits_its_own_later_steps() -> None:
    pipeline = compile_yaml(BODY)
    sim = Simulation(pipeline, params={"lrs": [1]})
    assert sim.run(train=fail()).phase is RunPhase.FAILED
    evaluate = pipeline.task("evaluate").index
    assert sim.nodes[(evaluate, 0)].phase is Phase.OMITTED
    assert "'train' [0] failed" in sim.nodes[(evaluate, 0)].message
    assert sim.phase("report") is Phase.OMITTED


def test_group_parallelism_counts_iterations_not_pods() -> None:
    text = BODY.replace("group: body}", "group: body, parallelism: 2}", 1)
    pipeline = compile_yaml(text)
    sim = Simulation(pipeline, params={"lrs": [1, 2, 3, 4]})
    running = {
        "train": lambda launch: NodeState(Phase.RUNNING, attempts=1),
        "evaluate": lambda launch: NodeState(Phase.RUNNING, attempts=1),
    }
    assert [launch.key[1] for launch in sim.step(**running).launches] == [0, 1]
    train, evaluate = pipeline.task("train").index, pipeline.task("evaluate").index
    sim.nodes[(train, 0)] = NodeState(Phase.SUCCEEDED, attempts=1, outputs={"loss": "x"})
    # iteration 0 goes on (evaluate[0]); no third iteration starts while 0 and 1 run
    decision = sim.step(**running)
    assert [(launch.task.name, launch.key[1]) for launch in decision.launches] == [("evaluate", 0)]
    sim.nodes[(evaluate, 0)] = NodeState(Phase.SUCCEEDED, attempts=1, outputs={"score": "1"})
    decision = sim.step(**running)
    assert [(launch.task.name, launch.key[1]) for launch in decision.launches] == [("train", 2)]
    running_iterations = {
        position
        for (index, position), state in sim.nodes.items()
        if position != TASK and state.phase is Phase.RUNNING
    }
    assert running_iterations == {1, 2}


def test_when_on_the_item_skips_single_instances_and_collects_the_rest() -> None:
    pipeline = compile_yaml(
        """
tasks:
  - name: fit
    command: ["{{item}}"]
    forEach: {items: [1, 5, 2, 7]}
    when: "{{item}} > 3"
    outputs: {parameters: [v]}
  - {name: after, command: ["{{tasks.fit.outputs.parameters.v}}"]}
"""
    )
    sim = Simulation(pipeline)
    outcome = sim.run(fit=lambda launch: succeed({"v": launch.values["item"]})(launch))
    assert outcome.phase is RunPhase.SUCCEEDED
    fit = pipeline.task("fit").index
    phases = [sim.nodes[(fit, position)].phase for position in range(4)]
    assert phases == [Phase.SKIPPED, Phase.SUCCEEDED, Phase.SKIPPED, Phase.SUCCEEDED]
    assert sim.nodes[(fit, TASK)].outputs == {"v": "[5,7]"}
    assert "2 skipped" in sim.nodes[(fit, TASK)].message
    after = next(launch for launch in sim.launches if launch.task.name == "after")
    assert after.values["tasks.fit.outputs.parameters.v"] == "[5,7]"


def test_when_on_a_paired_output_and_all_instances_skipped() -> None:
    pipeline = compile_yaml(
        """
tasks:
  - name: a
    command: ["{{item}}"]
    forEach: {items: [1, 2], group: g}
    outputs: {parameters: [ok]}
  - name: b
    command: [x]
    forEach: {group: g}
    when: "'{{tasks.a.outputs.parameters.ok}}' == 'yes'"
  - {name: c, command: [x], dependsOn: [b]}
"""
    )
    sim = Simulation(pipeline)
    assert sim.run(a=succeed({"ok": "no"})).phase is RunPhase.SUCCEEDED
    assert sim.phase("b") is Phase.SKIPPED
    assert sim.nodes[(pipeline.task("b").index, TASK)].message == "all 2 instances skipped"
    assert sim.phase("c") is Phase.SUCCEEDED  # a plain dependent of a skipped task runs


def test_members_must_agree_on_items_and_parallelism_and_someone_gives_items() -> None:
    problems = problems_of(
        """
tasks:
  - {name: a, command: [x], forEach: {items: [1, 2], group: g, parallelism: 1}}
  - {name: b, command: [x], forEach: {items: [1, 3], group: g, parallelism: 2}}
  - {name: c, command: [x], forEach: {group: lonely}}
"""
    )
    messages = {problem.path: problem.message for problem in problems}
    assert "items of 'b' differs from that of 'a'" in messages[("tasks", 1, "forEach", "items")]
    assert "differs from that of 'a'" in messages[("tasks", 1, "forEach", "parallelism")]
    assert "group 'lonely' has no items" in messages[("tasks", 2, "forEach")]


def test_item_in_when_is_refused_outside_forEach() -> None:
    problems = problems_of('tasks: [{name: a, command: [x], when: "{{item}} > 1"}]')
    assert any("only defined inside a task with forEach" in p.message for p in problems)


def test_a_slot_freed_by_a_skip_is_taken_in_the_same_plan() -> None:
    pipeline = compile_yaml(
        """
tasks:
  - name: a
    command: ["{{item}}"]
    forEach: {items: [1, 2, 3], group: g, parallelism: 1}
    outputs: {parameters: [ok]}
  - name: b
    command: [x]
    forEach: {group: g}
    when: "'{{tasks.a.outputs.parameters.ok}}' == 'yes'"
"""
    )
    sim = Simulation(pipeline)
    running = {"a": lambda launch: NodeState(Phase.RUNNING, attempts=1)}
    assert [launch.key for launch in sim.step(**running).launches] == [(0, 0)]
    sim.nodes[(0, 0)] = NodeState(Phase.SUCCEEDED, attempts=1, outputs={"ok": "no"})
    # b[0] is skipped late in the pass, ending iteration 0; nothing runs, so the same
    # plan must start a[1] (no pod event would come to ask again)
    decision = sim.step(**running)
    assert [launch.key for launch in decision.launches] == [(0, 1)]
    assert sim.nodes[(1, 0)].phase is Phase.SKIPPED


def test_a_matrix_runs_every_combination_and_collects_nested_lists() -> None:
    pipeline = compile_yaml(
        """
params: [{name: sizes, type: list}]
tasks:
  - name: fit
    command: ["{{item.lr}}", "{{item.size}}", "{{item.cfg.depth}}"]
    forEach:
      matrix:
        lr: [0.1, 0.2]
        size: "{{params.sizes}}"
        cfg: [{depth: 3}]
    outputs: {parameters: [score]}
  - {name: best, command: ["{{tasks.fit.outputs.parameters.score}}"]}
"""
    )
    sim = Simulation(pipeline, params={"sizes": [8, 16, 32]})
    outcome = sim.run(
        fit=lambda launch: succeed(
            {"score": f"{launch.values['item.lr']}/{launch.values['item.size']}"}
        )(launch)
    )
    assert outcome.phase is RunPhase.SUCCEEDED
    fits = [launch for launch in sim.launches if launch.task.name == "fit"]
    assert [
        (launch.values["item.lr"], launch.values["item.size"], launch.values["item.cfg.depth"])
        for launch in fits
    ] == [
        ("0.1", "8", "3"),
        ("0.1", "16", "3"),
        ("0.1", "32", "3"),
        ("0.2", "8", "3"),
        ("0.2", "16", "3"),
        ("0.2", "32", "3"),
    ]
    assert json.loads(sim.nodes[(0, TASK)].outputs["score"]) == [
        [["0.1/8"], ["0.1/16"], ["0.1/32"]],
        [["0.2/8"], ["0.2/16"], ["0.2/32"]],
    ]


def test_a_matrix_axis_that_is_not_a_list_fails_with_its_name() -> None:
    pipeline = compile_yaml(
        """
params: [{name: sizes, type: string}]
tasks:
  - {name: fit, command: [x], forEach: {matrix: {lr: [1], size: "{{params.sizes}}"}}}
"""
    )
    sim = Simulation(pipeline, params={"sizes": "seven"})
    assert sim.run().phase is RunPhase.FAILED
    assert "matrix axis 'size'" in sim.nodes[(0, TASK)].message


def test_task_uid_differs_per_task_and_instance_and_stays_on_retry() -> None:
    pipeline = compile_yaml(
        """
tasks:
  - {name: a, command: ["{{task.uid}}"], retry: {limit: 1}}
  - {name: b, command: ["{{task.uid}}"], forEach: {items: [1, 2]}}
"""
    )
    attempts: list[int] = []

    def flaky(launch: planner.Launch) -> NodeState:
        attempts.append(launch.attempt)
        return fail()(launch) if launch.attempt == 1 else succeed()(launch)

    sim = Simulation(pipeline)
    assert sim.run(a=flaky).phase is RunPhase.SUCCEEDED
    uids = [(launch.task.name, launch.values["task.uid"]) for launch in sim.launches]
    a_uids = {uid for name, uid in uids if name == "a"}
    b_uids = [uid for name, uid in uids if name == "b"]
    assert attempts == [1, 2] and len(a_uids) == 1  # a retry keeps its id
    assert len(set(b_uids)) == 2 and not a_uids & set(b_uids)
    other = Simulation(compile_yaml("tasks: [{name: a, command: ['{{task.uid}}']}]"))
    other.context = planner.RunContext("run-2", "ns", {})
    other.run()
    assert other.launches[0].values["task.uid"] not in a_uids  # another run, another id


NESTED = """
tasks:
  - name: prepare
    command: ["{{item}}"]
    forEach: {items: [a, b], group: data}
    outputs: {parameters: [path]}
  - name: fit
    command: ["{{item.data}}", "{{item.lr}}", "{{tasks.prepare.outputs.parameters.path}}"]
    forEach: {matrix: {data: [a, b], lr: [1, 2, 3]}, group: grid, within: data}
    outputs: {parameters: [score]}
  - {name: report, command: ["{{tasks.fit.outputs.parameters.score}}"]}
"""


def test_a_nested_group_reads_the_enclosing_iteration_of_its_outer_item() -> None:
    pipeline = compile_yaml(NESTED)
    sim = Simulation(pipeline)
    running = {"prepare": lambda launch: NodeState(Phase.RUNNING, attempts=1)}
    sim.step(**running)
    prepare = pipeline.task("prepare").index
    sim.nodes[(prepare, 1)] = NodeState(Phase.SUCCEEDED, attempts=1, outputs={"path": "/b"})
    # prepare[1] (item b) is done: the three fits of b start, those of a still wait
    decision = sim.step(**running)
    assert [(launch.task.name, launch.key[1]) for launch in decision.launches] == [
        ("fit", 3),
        ("fit", 4),
        ("fit", 5),
    ]
    assert {
        launch.values["tasks.prepare.outputs.parameters.path"] for launch in decision.launches
    } == {"/b"}
    assert {launch.positions[prepare] for launch in decision.launches} == {1}
    sim.nodes[(prepare, 0)] = NodeState(Phase.SUCCEEDED, attempts=1, outputs={"path": "/a"})
    assert sim.run().phase is RunPhase.SUCCEEDED
    fits = sorted(
        (launch.key[1], launch.values["tasks.prepare.outputs.parameters.path"])
        for launch in sim.launches
        if launch.task.name == "fit"
    )
    assert [path for _, path in fits] == ["/a", "/a", "/a", "/b", "/b", "/b"]


def test_within_needs_a_matrix_led_by_the_enclosing_items() -> None:
    bad = NESTED.replace("matrix: {data: [a, b], lr: [1, 2, 3]}", "matrix: {lr: [1, 2, 3]}")
    problems = problems_of(bad)
    assert any(
        problem.path == ("tasks", 1, "forEach", "within")
        and "needs a matrix whose first axes are the items of 'data'" in problem.message
        for problem in problems
    ), problems
    unknown = NESTED.replace("within: data", "within: nowhere")
    assert any("names no other group" in p.message for p in problems_of(unknown))


def test_an_outer_task_reads_the_nested_instances_of_its_own_item() -> None:
    pipeline = compile_yaml(
        NESTED
        + """
  - name: best
    forEach: {group: data}
    command: ["{{tasks.fit.outputs.parameters.score}}"]
"""
    )
    sim = Simulation(pipeline)
    fit = pipeline.task("fit").index

    def score(launch: planner.Launch) -> NodeState:
        return succeed({"score": f"{launch.values['item.data']}{launch.values['item.lr']}"})(launch)

    assert sim.run(fit=score).phase is RunPhase.SUCCEEDED
    best = {
        launch.key[1]: launch.values["tasks.fit.outputs.parameters.score"]
        for launch in sim.launches
        if launch.task.name == "best"
    }
    assert best == {0: '["a1","a2","a3"]', 1: '["b1","b2","b3"]'}
    assert {launch.slices[fit] for launch in sim.launches if launch.task.name == "best"} == {
        (0, 1, 2),
        (3, 4, 5),
    }


def test_an_outer_instance_waits_only_for_its_own_nested_instances() -> None:
    pipeline = compile_yaml(
        NESTED + "  - {name: best, forEach: {group: data}, command: [x], dependsOn: [fit]}\n"
    )
    sim = Simulation(pipeline)
    fit, best = pipeline.task("fit").index, pipeline.task("best").index
    running = {"fit": lambda launch: NodeState(Phase.RUNNING, attempts=1)}
    sim.step()
    sim.step(**running)  # prepare done; all six fits running
    for position in (3, 4, 5):
        sim.nodes[(fit, position)] = NodeState(Phase.SUCCEEDED, attempts=1)
    decision = sim.step(**running)
    assert [(launch.task.name, launch.key[1]) for launch in decision.launches] == [("best", 1)]
    sim.nodes[(fit, 0)] = NodeState(Phase.FAILED, attempts=1, failure=FailureKind.FAILED)
    sim.step(**running)
    assert (best, 0) not in sim.nodes  # fit[1] and fit[2] still run: it waits for them
    for position in (1, 2):
        sim.nodes[(fit, position)] = NodeState(Phase.SUCCEEDED, attempts=1)
    sim.step(**running)
    assert sim.nodes[(best, 0)].phase is Phase.OMITTED
