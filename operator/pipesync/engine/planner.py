"""Given the state of every task, decide what starts now, what is skipped, and whether
the run is over and how. One pass over the tasks in topological order: linear in the DAG.

The planner never changes state: it returns a `Decision` whose transitions and launches
the caller records. Calling it again with the same state returns the same decision, so a
controller that restarts at any point repeats nothing it already recorded.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from pipesync.engine import expressions, retries, templating
from pipesync.engine.compiler import CompiledPipeline, CompiledTask
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import PENDING, TASK, NodeKey, NodeState, Phase, RunPhase
from pipesync.engine.templating import Ref, RefKind

_DONE = frozenset({Phase.SUCCEEDED, Phase.SKIPPED, Phase.OMITTED, Phase.CANCELLED})
_BROKEN = frozenset({Phase.FAILED, Phase.OMITTED, Phase.CANCELLED})


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What is fixed for the whole run."""

    name: str
    namespace: str
    params: Mapping[str, Any]  # typed values (see engine.params.resolve)
    max_running: int | None = None  # run-wide cap on running task instances


@dataclasses.dataclass(frozen=True)
class Launch:
    key: NodeKey
    task: CompiledTask
    attempt: int  # 1 for the first
    item: Any = None
    has_item: bool = False
    run_status: str = ""  # for onExit: the outcome of the tasks
    values: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Rendered values of every non-path placeholder the task reads, by placeholder text."""

    def resolve(self, ref: Ref) -> str:
        """Value of a non-path placeholder (paths are the executor's business)."""
        return self.values[ref.text]


@dataclasses.dataclass(frozen=True)
class Transition:
    key: NodeKey
    state: NodeState


@dataclasses.dataclass(frozen=True)
class Outcome:
    phase: RunPhase
    message: str


@dataclasses.dataclass(frozen=True)
class Decision:
    transitions: tuple[Transition, ...] = ()
    launches: tuple[Launch, ...] = ()
    stop: tuple[NodeKey, ...] = ()  # running instances to stop (cancel or run timeout)
    wake_at: float | None = None  # when a waiting retry becomes due
    finished: Outcome | None = None
    tasks_outcome: Outcome | None = None  # set once all tasks (not onExit) are done


class _Pass:
    """The mutable scratch state of one planning pass (never escapes `plan`)."""

    def __init__(
        self,
        pipeline: CompiledPipeline,
        nodes: Mapping[NodeKey, NodeState],
        context: RunContext,
        now: float,
        stopping: bool,
    ) -> None:
        self.pipeline = pipeline
        self.nodes = nodes
        self.context = context
        self.now = now
        self.stopping = stopping
        self.overlay: dict[NodeKey, NodeState] = {}
        self.transitions: list[Transition] = []
        self.launches: list[Launch] = []
        self.stop: list[NodeKey] = []
        self.wake_at: float | None = None
        self.running = sum(
            1 for key, node in nodes.items() if node.phase is Phase.RUNNING and key[1] != TASK
        ) + sum(
            1
            for key, node in nodes.items()
            if node.phase is Phase.RUNNING and key[1] == TASK and not self._is_fan_out(key[0])
        )

    def _is_fan_out(self, index: int) -> bool:
        return index < len(self.pipeline.tasks) and self.pipeline.tasks[index].fan_out

    def get(self, key: NodeKey) -> NodeState:
        return self.overlay.get(key) or self.nodes.get(key) or PENDING

    def record(self, key: NodeKey, state: NodeState) -> None:
        self.overlay[key] = state
        self.transitions.append(Transition(key, state))

    def has_capacity(self) -> bool:
        cap = self.context.max_running
        return cap is None or self.running < cap

    def wake(self, at: float) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)


def plan(
    pipeline: CompiledPipeline,
    nodes: Mapping[NodeKey, NodeState],
    context: RunContext,
    now: float,
    *,
    cancel: bool = False,
    deadline_exceeded: bool = False,
) -> Decision:
    """The next decision for a run in the given state."""
    step = _Pass(pipeline, nodes, context, now, stopping=cancel or deadline_exceeded)
    for compiled in pipeline.tasks:
        if compiled.fan_out:
            _plan_fan_out(step, compiled)
        else:
            _plan_single(step, (compiled.index, TASK), compiled, item=None, has_item=False)
    tasks_outcome = _tasks_outcome(step, cancel=cancel, deadline_exceeded=deadline_exceeded)
    finished = None
    if tasks_outcome is not None:
        finished = _plan_exit(step, tasks_outcome)
    return Decision(
        transitions=tuple(step.transitions),
        launches=tuple(step.launches),
        stop=tuple(step.stop),
        wake_at=step.wake_at,
        finished=finished,
        tasks_outcome=tasks_outcome,
    )


def is_terminal(compiled: CompiledTask, state: NodeState) -> bool:
    """Whether a node will not change again (a failed one only when out of retries)."""
    if state.phase in _DONE:
        return True
    if state.phase is Phase.FAILED:
        return not retries.is_retryable(
            compiled.task.retry, state.attempts, state.failure or FailureKind.FAILED
        )
    return False


def _plan_single(
    step: _Pass, key: NodeKey, compiled: CompiledTask, *, item: Any, has_item: bool
) -> None:
    state = step.get(key)
    if state.phase in _DONE:
        return
    if state.phase is Phase.RUNNING:
        if step.stopping:
            step.stop.append(key)
        return
    if state.phase is Phase.FAILED:
        _plan_retry(step, key, compiled, state, item=item, has_item=has_item)
        return
    if key[1] == TASK and not _gate(step, key, compiled):
        return
    _launch(step, key, compiled, attempt=1, item=item, has_item=has_item)


def _gate(step: _Pass, key: NodeKey, compiled: CompiledTask) -> bool:
    """For a pending task: whether it may start; records skips and omissions on the way."""
    tasks = step.pipeline.tasks
    for producer in compiled.upstream:
        if not is_terminal(tasks[producer], step.get((producer, TASK))):
            return False
    if step.stopping:
        step.record(key, NodeState(Phase.CANCELLED, message="the run was stopped"))
        return False
    for producer in compiled.upstream:
        phase = step.get((producer, TASK)).phase
        if phase in _BROKEN and not compiled.task.ignore_upstream_failure:
            step.record(
                key,
                NodeState(
                    Phase.OMITTED,
                    message=f"upstream task {tasks[producer].name!r} {phase.value.lower()}",
                ),
            )
            return False
    for producer in compiled.consumes:
        if step.get((producer, TASK)).phase is Phase.SKIPPED:
            step.record(
                key,
                NodeState(
                    Phase.SKIPPED,
                    message=f"upstream task {tasks[producer].name!r} was skipped, "
                    "so the outputs this task reads do not exist",
                ),
            )
            return False
    for group in compiled.consumes_any:
        if group and all(step.get((p, TASK)).phase is Phase.SKIPPED for p in group):
            names = ", ".join(repr(tasks[p].name) for p in group)
            step.record(
                key,
                NodeState(
                    Phase.SKIPPED,
                    message=f"upstream tasks {names} were all skipped, "
                    "so none of the alternative outputs this task reads exists",
                ),
            )
            return False
    if compiled.when is not None:
        try:
            go = expressions.evaluate(compiled.when, lambda ref: _value(step, ref, None))
        except (expressions.ExpressionError, _Unresolved) as error:
            step.record(
                key,
                NodeState(
                    Phase.FAILED,
                    failure=FailureKind.ERROR,
                    attempts=compiled.task.retry.limit + 1,
                    message=f"when: {error}",
                ),
            )
            return False
        if not go:
            step.record(
                key, NodeState(Phase.SKIPPED, message=f"when was false: {compiled.task.when}")
            )
            return False
    return True


def _plan_retry(
    step: _Pass,
    key: NodeKey,
    compiled: CompiledTask,
    state: NodeState,
    *,
    item: Any,
    has_item: bool,
) -> None:
    if not is_terminal(compiled, state) and not step.stopping:
        failed_at = step.now if state.finished_at is None else state.finished_at
        due = failed_at + retries.backoff_seconds(compiled.task.retry, state.attempts)
        if due <= step.now:
            _launch(step, key, compiled, attempt=state.attempts + 1, item=item, has_item=has_item)
        else:
            step.wake(due)


def _launch(
    step: _Pass, key: NodeKey, compiled: CompiledTask, *, attempt: int, item: Any, has_item: bool
) -> None:
    if not step.has_capacity():
        return
    try:
        values = _values(step, compiled, item if has_item else None, has_item)
    except _Unresolved as error:
        step.record(
            key,
            NodeState(
                Phase.FAILED,
                attempts=compiled.task.retry.limit + 1,
                failure=FailureKind.ERROR,
                message=str(error),
            ),
        )
        return
    step.running += 1
    state = NodeState(Phase.RUNNING, attempts=attempt)
    step.record(key, state)
    step.launches.append(
        Launch(key, compiled, attempt, item=item, has_item=has_item, values=values)
    )


def _plan_fan_out(step: _Pass, compiled: CompiledTask) -> None:
    key: NodeKey = (compiled.index, TASK)
    state = step.get(key)
    if state.phase in _DONE or state.phase is Phase.FAILED:
        return
    if state.phase is Phase.PENDING and not _gate(step, key, compiled):
        return
    items = _items(step, compiled)
    if isinstance(items, str):
        step.record(
            key,
            NodeState(
                Phase.FAILED,
                attempts=compiled.task.retry.limit + 1,
                failure=FailureKind.ERROR,
                message=items,
            ),
        )
        return
    if state.phase is Phase.PENDING:
        step.record(key, NodeState(Phase.RUNNING, message=f"{len(items)} items"))
    _advance_instances(step, compiled, items)


def _advance_instances(step: _Pass, compiled: CompiledTask, items: list[Any]) -> None:
    """Start instances up to the caps; finish the aggregate when all are terminal."""
    index = compiled.index
    cap = compiled.task.for_each.parallelism if compiled.task.for_each else None
    active = 0
    failed: list[int] = []
    open_instances: list[int] = []
    for position in range(len(items)):
        state = step.get((index, position))
        if state.phase is Phase.RUNNING:
            active += 1
            if step.stopping:
                step.stop.append((index, position))
        elif not is_terminal(compiled, state):
            open_instances.append(position)
        elif state.phase in _BROKEN:
            failed.append(position)
    # A permanently failed instance stops new ones from starting (running ones finish).
    if not failed and not step.stopping:
        for position in open_instances:
            if cap is not None and active >= cap:
                break
            before = len(step.launches)
            _plan_single(step, (index, position), compiled, item=items[position], has_item=True)
            if len(step.launches) > before or step.get((index, position)).phase is Phase.RUNNING:
                active += 1
        open_instances = [
            p for p in open_instances if not is_terminal(compiled, step.get((index, p)))
        ]
    elif step.stopping:
        for position in open_instances:
            if step.get((index, position)).phase is Phase.PENDING:
                step.record(
                    (index, position), NodeState(Phase.CANCELLED, message="the run was stopped")
                )
        open_instances = []
    if active or (open_instances and not failed):
        return
    if failed or open_instances:
        first = failed[0] if failed else open_instances[0]
        reason = step.get((index, first)).message
        step.record(
            (index, TASK),
            NodeState(
                Phase.CANCELLED if step.stopping and not failed else Phase.FAILED,
                attempts=compiled.task.retry.limit + 1,
                failure=FailureKind.FAILED,
                message=f"{len(failed)} of {len(items)} instances failed; "
                f"first: item {first}: {reason}",
            ),
        )
        return
    outputs = {
        name: json.dumps(
            [
                expressions.typed(step.get((index, p)).outputs.get(name, ""))
                for p in range(len(items))
            ],
            separators=(",", ":"),
        )
        for name in compiled.task.output_parameters
    }
    step.record(
        (index, TASK),
        NodeState(Phase.SUCCEEDED, outputs=outputs, message=f"{len(items)} instances succeeded"),
    )


def _items(step: _Pass, compiled: CompiledTask) -> list[Any] | str:
    """The forEach items, or a message saying why they are not a list."""
    items = compiled.items
    if isinstance(items, tuple):
        return list(items)
    if not isinstance(items, Ref):
        return "forEach has no items"
    try:
        text = _value(step, items, None)
    except _Unresolved as error:
        return str(error)
    try:
        value = json.loads(text)
    except ValueError:
        return f"forEach items {items} is not a JSON list: {text[:200]!r}"
    if not isinstance(value, list):
        return f"forEach items {items} is a JSON {type(value).__name__}, not a list"
    return value


class _Unresolved(Exception):
    """A placeholder whose value does not exist (e.g. an output that was never written)."""


def _value(step: _Pass, ref: Ref, item: Any, *, has_item: bool = False) -> str:
    if ref.kind is RefKind.PARAM:
        return templating.render_value(step.context.params[ref.name])
    if ref.kind is RefKind.RUN:
        if ref.name == "name":
            return step.context.name
        if ref.name == "namespace":
            return step.context.namespace
        raise _Unresolved(f"{ref} is only known in onExit")
    if ref.kind is RefKind.TASK_PARAMETER and ref.alternatives:
        for choice in ref.alternatives:
            state = step.get((step.pipeline.task(choice.task).index, TASK))
            if state.phase is Phase.SUCCEEDED and choice.name in state.outputs:
                return state.outputs[choice.name]
        raise _Unresolved(f"{ref}: none of these tasks produced its output")
    if ref.kind is RefKind.TASK_PARAMETER:
        producer = step.pipeline.task(ref.task)
        outputs = step.get((producer.index, TASK)).outputs
        if ref.name not in outputs:
            raise _Unresolved(f"{ref}: task {ref.task!r} did not produce output {ref.name!r}")
        return outputs[ref.name]
    if ref.kind is RefKind.ITEM:
        if not has_item:
            raise _Unresolved(f"{ref} is only defined inside forEach")
        if ref.name:
            if not isinstance(item, dict) or ref.name not in item:
                raise _Unresolved(f"{ref}: the item {item!r} has no key {ref.name!r}")
            return templating.render_value(item[ref.name])
        return templating.render_value(item)
    raise _Unresolved(f"{ref} is a path, resolved by the executor")


_PATH_KINDS = frozenset(
    {
        RefKind.INPUT_ARTIFACT,
        RefKind.OUTPUT_ARTIFACT,
        RefKind.OUTPUT_PARAMETER,
        RefKind.TASK_ARTIFACT,
    }
)


def _values(step: _Pass, compiled: CompiledTask, item: Any, has_item: bool) -> dict[str, str]:
    values: dict[str, str] = {}
    templates = [*compiled.argv, *(template for _, template in compiled.env)]
    for template in templates:
        for ref in template.refs:
            if ref.kind in _PATH_KINDS or ref.text in values:
                continue
            if ref.kind is RefKind.RUN and ref.name == "status":
                continue  # filled in by _plan_exit
            values[ref.text] = _value(step, ref, item, has_item=has_item)
    return values


def _tasks_outcome(step: _Pass, *, cancel: bool, deadline_exceeded: bool) -> Outcome | None:
    failed: list[str] = []
    for compiled in step.pipeline.tasks:
        state = step.get((compiled.index, TASK))
        if not is_terminal(compiled, state):
            return None
        if state.phase is Phase.FAILED:
            failed.append(compiled.name)
    if cancel:
        return Outcome(RunPhase.CANCELLED, "the run was cancelled")
    if deadline_exceeded:
        return Outcome(RunPhase.FAILED, "the run exceeded its timeout")
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        return Outcome(RunPhase.FAILED, f"failed tasks: {shown}")
    return Outcome(RunPhase.SUCCEEDED, "all tasks succeeded or were skipped")


def _plan_exit(step: _Pass, outcome: Outcome) -> Outcome | None:
    exit_task = step.pipeline.on_exit
    if exit_task is None:
        return outcome
    key: NodeKey = (exit_task.index, TASK)
    state = step.get(key)
    if state.phase is Phase.PENDING:
        before = len(step.launches)
        _launch(step, key, exit_task, attempt=1, item=None, has_item=False)
        _set_run_status(step, before, outcome)
        return None
    if state.phase is Phase.RUNNING:
        return None
    if state.phase is Phase.FAILED and not is_terminal(exit_task, state):
        before = len(step.launches)
        # onExit retries even while stopping: it is the clean-up that must run.
        stopping, step.stopping = step.stopping, False
        _plan_retry(step, key, exit_task, state, item=None, has_item=False)
        step.stopping = stopping
        _set_run_status(step, before, outcome)
        return None
    if state.phase is Phase.FAILED and outcome.phase is RunPhase.SUCCEEDED:
        return Outcome(RunPhase.FAILED, f"onExit task {exit_task.name!r} failed: {state.message}")
    return outcome


def _set_run_status(step: _Pass, before: int, outcome: Outcome) -> None:
    """onExit sees the tasks' outcome as {{run.status}}."""
    for position in range(before, len(step.launches)):
        launch = step.launches[position]
        values = {**launch.values, "run.status": outcome.phase.value}
        step.launches[position] = dataclasses.replace(
            launch, run_status=outcome.phase.value, values=values
        )
