"""P6 (planning): the planner on a 10,000-task DAG and a 1,000-wide forEach.

The planner is pure, so it is timed directly: `compile_pipeline` once per run, then
`plan` once per state change. A run is simulated to completion by marking every launched
node Succeeded between calls (no processes), which is the planner's whole job in a run.
The in-process baseline is one bare Python pass over the same tasks reading each task's
state from the same mapping: the floor any one-pass planner pays, which makes the figure
comparable across machines.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from bench.figures import Figure, Section, hotspots, timed
from pipesync.api.model import pipeline_spec_from_spec
from pipesync.engine import compiler, planner
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.state import TASK, NodeKey, NodeState, Phase

TARGET_PLAN_SECONDS = 0.050
PARALLELISM = 50
LAYER_WIDTH = 100


def layered_dag(size: int, *, seed: int = 6, deps: int = 2) -> dict[str, Any]:
    """A pipeline spec of `size` tasks in layers of LAYER_WIDTH; each task after the first
    layer depends on `deps` random tasks of the layer before (~2 edges per task)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    tasks: list[dict[str, Any]] = []
    for number in range(size):
        layer = number // LAYER_WIDTH
        task: dict[str, Any] = {
            "name": f"t{number}",
            "command": ["/bin/true"],
            "args": ["--lr", "{{params.lr}}", "--out", "{{outputs.parameters.score}}"],
            "outputs": {"parameters": ["score"]},
        }
        if layer:
            start = (layer - 1) * LAYER_WIDTH
            parents = rng.sample(range(start, start + LAYER_WIDTH), k=deps)
            task["dependsOn"] = [f"t{p}" for p in sorted(parents)]
        tasks.append(task)
    return {"params": [{"name": "lr", "type": "number", "default": 0.1}], "tasks": tasks}


def fan_out(width: int, parallelism: int) -> dict[str, Any]:
    """prepare -> a forEach over `width` items -> collect."""
    return {
        "params": [{"name": "lr", "type": "number", "default": 0.1}],
        "tasks": [
            {"name": "prepare", "command": ["/bin/true"]},
            {
                "name": "sweep",
                "dependsOn": ["prepare"],
                "forEach": {"items": list(range(width)), "parallelism": parallelism},
                "command": ["/bin/true"],
                "args": ["{{item}}", "{{params.lr}}"],
            },
            {"name": "collect", "dependsOn": ["sweep"], "command": ["/bin/true"]},
        ],
    }


def loop_body(width: int, parallelism: int) -> dict[str, Any]:
    """A forEach group: train -> evaluate -> report per item, `parallelism` iterations."""
    each = {"group": "body"}
    return {
        "tasks": [
            {
                "name": "train",
                "forEach": {
                    "items": list(range(width)),
                    "group": "body",
                    "parallelism": parallelism,
                },
                "command": ["/bin/true", "{{item}}"],
                "outputs": {"parameters": ["score"]},
            },
            {
                "name": "evaluate",
                "forEach": each,
                "command": ["/bin/true", "{{tasks.train.outputs.parameters.score}}"],
                "outputs": {"parameters": ["score"]},
            },
            {
                "name": "report",
                "forEach": each,
                "when": "{{tasks.evaluate.outputs.parameters.score}} > 0.5",
                "command": ["/bin/true"],
            },
        ],
    }


def compile_spec(data: dict[str, Any]) -> CompiledPipeline:
    compiled, problems = compiler.compile_pipeline(pipeline_spec_from_spec(data))
    if compiled is None:
        raise RuntimeError(f"the generated pipeline does not compile: {problems[:3]}")
    return compiled


def context(max_running: int | None) -> planner.RunContext:
    return planner.RunContext(
        name="bench", namespace="bench", params={"lr": 0.1}, max_running=max_running
    )


class Simulation:
    """Drives a run to the end with the planner, as an executor would, minus processes."""

    def __init__(self, pipeline: CompiledPipeline, ctx: planner.RunContext) -> None:
        self.pipeline = pipeline
        self.context = ctx
        self.nodes: dict[NodeKey, NodeState] = {}
        self.running: list[NodeKey] = []
        self.plan_seconds: list[float] = []
        self.outcome: planner.Outcome | None = None
        self.now = 0.0

    def step(self) -> planner.Decision:
        started = time.perf_counter()
        decision = planner.plan(self.pipeline, self.nodes, self.context, self.now)
        self.plan_seconds.append(time.perf_counter() - started)
        for transition in decision.transitions:
            self.nodes[transition.key] = transition.state
        self.running.extend(launch.key for launch in decision.launches)
        if decision.finished is not None and not self.running:
            self.outcome = decision.finished
        return decision

    def complete(self, how_many: int | None) -> None:
        """The oldest `how_many` running nodes succeed (all when None)."""
        count = len(self.running) if how_many is None else how_many
        done, self.running = self.running[:count], self.running[count:]
        self.now += 1.0
        for key in done:
            attempts = self.nodes[key].attempts
            self.nodes[key] = NodeState(
                Phase.SUCCEEDED,
                attempts=attempts,
                finished_at=self.now,
                outputs={"score": "0.9"},
            )

    def run(self, batch: int | None, until: Callable[[Simulation], bool] | None = None) -> None:
        for _ in range(1_000_000):
            self.step()
            if self.outcome is not None or (until is not None and until(self)):
                return
            self.complete(batch)
        raise RuntimeError("the simulated run did not finish")


def _done_count(nodes: Mapping[NodeKey, NodeState]) -> int:
    return sum(1 for state in nodes.values() if state.phase is Phase.SUCCEEDED)


def _state_at(pipeline: CompiledPipeline, fraction: float) -> dict[NodeKey, NodeState]:
    """The node states of a simulated run once `fraction` of the tasks succeeded."""
    sim = Simulation(pipeline, context(PARALLELISM))
    target = int(len(pipeline.tasks) * fraction)
    if target:
        sim.run(None, until=lambda s: _done_count(s.nodes) >= target)
    return dict(sim.nodes)


def _baseline_pass(pipeline: CompiledPipeline, nodes: Mapping[NodeKey, NodeState]) -> int:
    """One bare pass: every task's state and its upstream states looked up once."""
    ready = 0
    for compiled in pipeline.tasks:
        state = nodes.get((compiled.index, TASK))
        if state is None and all((p, TASK) in nodes for p in compiled.upstream):
            ready += 1
    return ready


def _one_plan(pipeline: CompiledPipeline, nodes: Mapping[NodeKey, NodeState]) -> None:
    planner.plan(pipeline, nodes, context(PARALLELISM), 1e9)


def measure(quick: bool, log: Callable[[str], None]) -> Section:
    section = Section("engine (P6, planning)")
    figures = section.figures
    size = 1000 if quick else 10_000
    repeats = 3 if quick else 5

    data = layered_dag(size)
    compile_time = timed(lambda: compile_spec(data), 3 if not quick else 1)
    pipeline = compile_spec(data)
    edges = sum(len(t.upstream) for t in pipeline.tasks)
    log(f"{size}-task layered DAG ({edges} edges): compile_pipeline {compile_time.describe()}")
    figures.append(
        Figure(
            "engine",
            f"compile_pipeline, {size}-task DAG ({edges} edges)",
            compile_time.best * 1000,
            "ms",
            note=compile_time.describe(),
        )
    )

    worst = 0.0
    worst_name = ""
    for label, fraction in (
        ("start (nothing run)", 0.0),
        ("half the tasks done", 0.5),
        ("all but the last layer done", 1 - LAYER_WIDTH / size),
    ):
        nodes = _state_at(pipeline, fraction)
        plan_time = timed(lambda nodes=nodes: _one_plan(pipeline, nodes), repeats)
        base_time = timed(lambda nodes=nodes: _baseline_pass(pipeline, nodes), repeats)
        ratio = plan_time.best / base_time.best
        log(
            f"one plan, {size} tasks, {label} ({len(nodes)} node states): "
            f"{plan_time.describe()}; bare pass {base_time.describe()}; ratio {ratio:.1f}x"
        )
        figures.append(
            Figure(
                "engine",
                f"one plan(), {size}-task DAG, {label}",
                plan_time.best * 1000,
                "ms",
                note=f"{ratio:.1f}x a bare Python pass over the same state "
                f"({base_time.best * 1000:.2f} ms); {plan_time.describe()}",
            )
        )
        if plan_time.best > worst:
            worst, worst_name, worst_nodes = plan_time.best, label, nodes
    if size >= 10_000:
        met = worst <= TARGET_PLAN_SECONDS
        figures.append(
            Figure(
                "engine",
                f"one plan(), {size}-task DAG, worst of the states above ({worst_name})",
                worst * 1000,
                "ms",
                target=f"P6: <= {TARGET_PLAN_SECONDS * 1000:.0f} ms",
                met=met,
                margin=f"{worst / TARGET_PLAN_SECONDS:.0%} of the budget"
                + ("" if met else f"; {worst / TARGET_PLAN_SECONDS:.2f}x over"),
            )
        )
        if not met:
            section.profiles[f"one plan(), {size}-task DAG, {worst_name} (cProfile, x20)"] = (
                hotspots(
                    lambda: [_one_plan(pipeline, worst_nodes) for _ in range(20)], only="pipesync/"
                )
            )

    _simulations(section, pipeline, size, quick, log)
    _scaling(section, quick, repeats, log)
    return section


def _simulations(
    section: Section, pipeline: CompiledPipeline, size: int, quick: bool, log: Callable[[str], None]
) -> None:
    figures = section.figures
    # The whole run, all running tasks finishing between plan calls.
    sim = Simulation(pipeline, context(PARALLELISM))
    started = time.perf_counter()
    sim.run(None)
    wall = time.perf_counter() - started
    total = sum(sim.plan_seconds)
    outcome = sim.outcome.phase.value if sim.outcome else "?"
    log(
        f"simulated {size}-task run at parallelism {PARALLELISM}: {len(sim.plan_seconds)} plan "
        f"calls, {total:.2f} s planning ({wall:.2f} s wall), outcome {outcome}"
    )
    figures.append(
        Figure(
            "engine",
            f"whole {size}-task run simulated (parallelism {PARALLELISM}): planning time",
            total,
            "s",
            note=f"{len(sim.plan_seconds)} plan calls, "
            f"mean {total / len(sim.plan_seconds) * 1000:.1f} ms, "
            f"max {max(sim.plan_seconds) * 1000:.1f} ms; outcome {outcome}; "
            "every running task finishes between calls",
        )
    )

    # A 1,000-wide forEach, tasks finishing one at a time (what a local run sees).
    width = 200 if quick else 1000
    _one_completion_per_call(
        section,
        compile_spec(fan_out(width, PARALLELISM)),
        f"{width}-wide forEach (parallelism {PARALLELISM})",
        log,
    )
    # A loop body of three tasks (a forEach group), iterations capped by the group.
    _one_completion_per_call(
        section,
        compile_spec(loop_body(width, PARALLELISM)),
        f"{width}-item loop body of 3 tasks (group parallelism {PARALLELISM})",
        log,
    )


def _one_completion_per_call(
    section: Section, pipeline: CompiledPipeline, label: str, log: Callable[[str], None]
) -> None:
    """A run driven to its end with one running instance finishing between plan calls."""
    sim = Simulation(pipeline, context(None))
    sim.run(1)
    total = sum(sim.plan_seconds)
    outcome = sim.outcome.phase.value if sim.outcome else "?"
    log(
        f"{label}, one completion per call: {len(sim.plan_seconds)} plan calls, "
        f"{total:.2f} s planning, outcome {outcome}"
    )
    section.figures.append(
        Figure(
            "engine",
            f"{label} simulated: planning time",
            total,
            "s",
            note=f"{len(sim.plan_seconds)} plan calls (one per finished instance), mean "
            f"{total / len(sim.plan_seconds) * 1000:.2f} ms, max {max(sim.plan_seconds) * 1000:.2f}"
            f" ms; outcome {outcome}",
        )
    )


def _scaling(section: Section, quick: bool, repeats: int, log: Callable[[str], None]) -> None:
    """Per-task cost should stay flat as the DAG grows."""
    figures = section.figures
    sizes = (250, 500, 1000) if quick else (1000, 2000, 5000, 10_000)
    rows = []
    for n in sizes:
        compiled = compile_spec(layered_dag(n))
        c_time = timed(lambda n=n: compile_spec(layered_dag(n)), 1 if quick else 2)
        nodes = _state_at(compiled, 0.5)
        p_time = timed(lambda compiled=compiled, nodes=nodes: _one_plan(compiled, nodes), repeats)
        rows.append((n, c_time.best, p_time.best))
        log(
            f"scaling n={n}: compile (incl. building the spec) {c_time.best * 1000:.1f} ms "
            f"({c_time.best / n * 1e6:.1f} us/task), plan at half done {p_time.best * 1000:.2f} "
            f"ms ({p_time.best / n * 1e6:.2f} us/task)"
        )
        figures.append(
            Figure(
                "engine scaling",
                f"plan() at half done, {n} tasks",
                p_time.best / n * 1e6,
                "us/task",
                note=f"{p_time.best * 1000:.2f} ms; compile {c_time.best / n * 1e6:.1f} us/task",
            )
        )
    growth = (rows[-1][2] / rows[-1][0]) / (rows[0][2] / rows[0][0])
    figures.append(
        Figure(
            "engine scaling",
            f"plan time per task, {sizes[-1]} vs {sizes[0]} tasks",
            growth,
            "x",
            note="1.0 is perfectly linear; above ~1.5 would mean super-linear work",
        )
    )
