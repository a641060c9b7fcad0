"""Given the state of every task, decide what starts now, what is skipped, and whether
the run is over and how. One pass over the tasks in topological order: linear in the DAG.

The planner never changes state: it returns a `Decision` whose transitions and launches
the caller records. Calling it again with the same state returns the same decision, so a
controller that restarts at any point repeats nothing it already recorded.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import Mapping
from typing import Any

from pipesync.engine import expressions, limits, retries, templating
from pipesync.engine.compiler import CompiledPipeline, CompiledTask, InputBinding, Matrix
from pipesync.engine.context import RUN_PLACEHOLDERS, RunContext
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import (
    PENDING,
    SUCCESSFUL,
    TASK,
    NodeKey,
    NodeState,
    Phase,
    RunPhase,
)
from pipesync.engine.templating import Ref, RefKind

_DONE = SUCCESSFUL | {Phase.SKIPPED, Phase.OMITTED, Phase.CANCELLED}
_BROKEN = frozenset({Phase.FAILED, Phase.OMITTED, Phase.CANCELLED})


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
    sources: Mapping[str, tuple[int, str]] = dataclasses.field(default_factory=dict)
    """For inputs with alternatives: the (producer, artifact) chosen, by input name."""
    positions: Mapping[int, int] = dataclasses.field(default_factory=dict)
    """For a forEach instance: the instance of each paired producer it reads, by index."""
    slices: Mapping[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    """For a forEach instance: the instances (that ran) of each producer nested under it."""

    def resolve(self, ref: Ref) -> str:
        """Value of a non-path placeholder (paths are the executor's business)."""
        return self.values[ref.text]

    def source(self, binding: InputBinding) -> tuple[int, str]:
        """Which task's artifact an input reads: (producer index, artifact name)."""
        return self.sources.get(binding.name, (binding.producer, binding.artifact))


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


@dataclasses.dataclass(frozen=True)
class _At:
    """The forEach instance whose placeholders are being resolved."""

    task: CompiledTask
    position: int
    item: Any


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
            1
            for (index, instance), node in nodes.items()
            if node.phase is Phase.RUNNING and (instance != TASK or not self._is_fan_out(index))
        )
        # forEach groups with a parallelism: their members, and (per round) the iterations
        # started and not finished, which hold the group's slots.
        self.members: dict[str, list[CompiledTask]] = {}
        for compiled in pipeline.tasks:
            if compiled.group is not None and compiled.parallelism is not None:
                self.members.setdefault(compiled.group, []).append(compiled)
        self.flights: dict[str, set[int]] = {}
        self.sizes: dict[int, int] = {}
        self.shapes: dict[tuple[int, int], list[int]] = {}

    def _is_fan_out(self, index: int) -> bool:
        return index < len(self.pipeline.tasks) and self.pipeline.tasks[index].fan_out

    def get(self, key: NodeKey) -> NodeState:
        return self.overlay.get(key) or self.nodes.get(key) or PENDING

    def record(self, key: NodeKey, state: NodeState) -> None:
        self.overlay[key] = state
        self.transitions.append(Transition(key, state))

    def has_capacity(self) -> bool:
        if len(self.launches) >= self.context.bounds.launches:
            # The rest start in the next pass, which the caller schedules at once.
            self.wake(self.now)
            return False
        cap = self.context.max_running
        return cap is None or self.running < cap

    def admits(self, compiled: CompiledTask, key: NodeKey) -> bool:
        """Whether a group's parallelism lets this instance start: its iteration is under
        way already, or fewer iterations than the limit are (it then takes a slot)."""
        if compiled.group is None or compiled.parallelism is None or key[1] == TASK:
            return True
        if self.group_is_full_for(compiled, key[1]):
            return False
        self.flights_of(compiled.group).add(key[1])
        return True

    def paired_position(self, compiled: CompiledTask, producer: int, position: int) -> int:
        """The instance of a paired `producer` that `compiled`'s instance `position` reads:
        the same position in its group, or the outer item's in an enclosing group."""
        if producer not in compiled.outer:
            return position
        own, theirs = self.size_of(compiled), self.size_of(self.pipeline.tasks[producer])
        return position // max(own // theirs, 1) if theirs else position

    def slice_of(self, compiled: CompiledTask, producer: int, position: int) -> range:
        """The instances of a producer in a group nested in `compiled`'s that belong to
        `compiled`'s instance `position` (its matrix leads with this group's items)."""
        own, theirs = self.size_of(compiled), self.size_of(self.pipeline.tasks[producer])
        stride = theirs // own if own else 0
        return range(position * stride, (position + 1) * stride)

    def inner_shape(self, compiled: CompiledTask, producer: int) -> list[int]:
        """The axis lengths of a nested producer's matrix beyond `compiled`'s own axes."""
        key = (compiled.index, producer)
        if key not in self.shapes:
            made = self.pipeline.tasks[producer].items
            own = len(compiled.items.axes) if isinstance(compiled.items, Matrix) else 1
            axes = _axes(self, made) if isinstance(made, Matrix) else "not a matrix"
            self.shapes[key] = (
                [len(axis) for axis in axes[own:]] if not isinstance(axes, str) else []
            )
        return self.shapes[key] or [0]

    def size_of(self, compiled: CompiledTask) -> int:
        """How many instances a forEach task has (cached for the pass; 0 if unknown)."""
        size = self.sizes.get(compiled.index)
        if size is None:
            items = _items(self, compiled)
            size = self.sizes[compiled.index] = 0 if isinstance(items, str) else len(items)
        return size

    def group_is_full_for(self, compiled: CompiledTask, position: int) -> bool:
        """Whether the task's group has no slot for a new iteration `position`."""
        if compiled.group is None or compiled.parallelism is None:
            return False
        flights = self.flights_of(compiled.group)
        return position not in flights and len(flights) >= compiled.parallelism

    def flights_of(self, group: str) -> set[int]:
        """The group's iterations started and not finished (computed once per round)."""
        flights = self.flights.get(group)
        if flights is None:
            flights = self.flights[group] = self._in_flight(group)
        return flights

    def _in_flight(self, group: str) -> set[int]:
        members = self.members[group]
        indices = {m.index for m in members}
        started = {
            key[1]
            for key in itertools.chain(self.nodes, self.overlay)
            if key[0] in indices and key[1] != TASK and self.get(key).phase is not Phase.PENDING
        }
        return {
            position
            for position in started
            if not all(is_terminal(m, _paired_state(self, m.index, position)) for m in members)
        }

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
    for _ in range(_MAX_ROUNDS):
        launched, recorded = len(step.launches), len(step.transitions)
        step.flights = {}
        for compiled in pipeline.tasks:
            if compiled.fan_out:
                _plan_fan_out(step, compiled)
            else:
                _plan_single(step, (compiled.index, TASK), compiled, item=None, has_item=False)
        tasks_outcome = _tasks_outcome(step, cancel=cancel, deadline_exceeded=deadline_exceeded)
        # A group iteration that ended by skips late in this round frees a slot an earlier
        # member could not take; with nothing running, no event would come to take it.
        idle = step.running == 0 and len(step.launches) == launched
        if not (
            step.members and idle and tasks_outcome is None and len(step.transitions) > recorded
        ):
            break
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
    if key[1] != TASK and not _gate_instance(step, key, compiled, item):
        return
    _launch(step, key, compiled, attempt=1, item=item, has_item=has_item)


def _gate(step: _Pass, key: NodeKey, compiled: CompiledTask) -> bool:
    """For a pending task: whether it may start; records skips and omissions on the way."""
    tasks = step.pipeline.tasks
    upstream = [p for p in compiled.upstream if not compiled.pairs_with(p)]
    for producer in upstream:
        if not is_terminal(tasks[producer], step.get((producer, TASK))):
            return False
    if step.stopping:
        step.record(key, NodeState(Phase.CANCELLED, message="the run was stopped"))
        return False
    for producer in upstream:
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
        if compiled.pairs_with(producer):
            continue
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
        if any(compiled.pairs_with(p) for p in group):
            continue
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
    if compiled.when_per_item:
        return True  # decided by each instance
    return _when(step, key, compiled, None)


def _record_error(step: _Pass, key: NodeKey, compiled: CompiledTask, message: str) -> None:
    """Records a task (or instance) as failed by an error in its spec or its inputs (a
    `when` that does not evaluate, an unresolved placeholder, a bad forEach): retrying
    cannot help, so its attempts count as used up."""
    step.record(
        key,
        NodeState(
            Phase.FAILED,
            attempts=compiled.task.retry.limit + 1,
            failure=FailureKind.ERROR,
            message=message,
        ),
    )


def _when(step: _Pass, key: NodeKey, compiled: CompiledTask, at: _At | None) -> bool:
    """Whether the task's `when` lets it (or one instance) run; records a skip or error."""
    if compiled.when is None:
        return True
    try:
        go = expressions.evaluate(compiled.when, lambda ref: _value(step, ref, at))
    except (expressions.ExpressionError, _Unresolved) as error:
        _record_error(step, key, compiled, f"when: {error}")
        return False
    if not go:
        step.record(key, NodeState(Phase.SKIPPED, message=f"when was false: {compiled.task.when}"))
        return False
    return True


def _gate_instance(step: _Pass, key: NodeKey, compiled: CompiledTask, item: Any) -> bool:
    """For a pending forEach instance: the group's instance-wise dependencies and a
    `when` that reads the item or a paired output."""
    tasks = step.pipeline.tasks
    position = key[1]
    at = {p: step.paired_position(compiled, p, position) for p in compiled.paired}
    states = {p: _upstream_state(step, compiled, p, position) for p in compiled.paired}
    for producer, state in states.items():
        if not is_terminal(tasks[producer], state):
            return False
    for producer, state in states.items():
        if state.phase in _BROKEN and not compiled.task.ignore_upstream_failure:
            step.record(
                key,
                NodeState(
                    Phase.OMITTED,
                    message=f"upstream task {tasks[producer].name!r} "
                    f"[{at[producer]}] {state.phase.value.lower()}",
                ),
            )
            return False
    for producer in compiled.consumes:
        if producer in states and states[producer].phase is Phase.SKIPPED:
            step.record(
                key,
                NodeState(
                    Phase.SKIPPED,
                    message=f"upstream task {tasks[producer].name!r} [{at[producer]}] was "
                    "skipped, so the outputs this instance reads do not exist",
                ),
            )
            return False
    for group in compiled.consumes_any:
        if not any(p in states for p in group):
            continue
        phases = [(states.get(p) or step.get((p, TASK))).phase for p in group]
        if all(phase is Phase.SKIPPED for phase in phases):
            step.record(
                key,
                NodeState(
                    Phase.SKIPPED,
                    message="none of the alternative outputs this instance reads exists",
                ),
            )
            return False
    if not compiled.when_per_item:
        return True
    return _when(step, key, compiled, _At(compiled, position, item))


def _upstream_state(step: _Pass, compiled: CompiledTask, producer: int, position: int) -> NodeState:
    """What `compiled`'s instance `position` sees of a paired producer: one instance of
    it, or for a group nested in this one, its instances under this item together
    (pending until all ended, broken if one is, their outputs collected)."""
    if producer not in compiled.inner:
        return _paired_state(step, producer, step.paired_position(compiled, producer, position))
    whole = step.get((producer, TASK))
    if whole.phase in (Phase.SKIPPED, Phase.OMITTED, Phase.CANCELLED):
        return whole
    made = step.pipeline.tasks[producer]
    under = step.slice_of(compiled, producer, position)
    states = [_paired_state(step, producer, i) for i in under]
    if not all(is_terminal(made, state) for state in states):
        return PENDING
    broken = next((state for state in states if state.phase in _BROKEN), None)
    if broken is not None:
        return broken
    ran = [
        (i - under.start, s)
        for i, s in zip(under, states, strict=True)
        if s.phase is not Phase.SKIPPED
    ]
    if states and not ran:
        return NodeState(Phase.SKIPPED, message=f"all {len(states)} instances skipped")
    outputs = _collect(made, ran, step.inner_shape(compiled, producer))
    return NodeState(Phase.SUCCEEDED, outputs=outputs)


def _paired_state(step: _Pass, producer: int, position: int) -> NodeState:
    """The state of `producer`'s instance at `position`, or of the whole task when it
    ended without instances (skipped, omitted, cancelled, or its items failed)."""
    whole = step.get((producer, TASK))
    if whole.phase in (Phase.SKIPPED, Phase.OMITTED, Phase.CANCELLED):
        return whole
    instance = step.get((producer, position))
    if instance.phase is Phase.PENDING and whole.phase is Phase.FAILED:
        return whole
    return instance


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
    if not step.has_capacity() or not step.admits(compiled, key):
        return
    at = _At(compiled, key[1], item) if has_item else None
    try:
        values = _values(step, compiled, at)
        sources = _sources(step, compiled, at)
    except _Unresolved as error:
        _record_error(step, key, compiled, str(error))
        return
    step.running += 1
    state = NodeState(Phase.RUNNING, attempts=attempt)
    step.record(key, state)
    step.launches.append(
        Launch(
            key,
            compiled,
            attempt,
            item=item,
            has_item=has_item,
            values=values,
            sources=sources,
            positions={
                p: step.paired_position(compiled, p, key[1])
                for p in compiled.paired
                if p not in compiled.inner
            }
            if key[1] != TASK
            else {},
            slices={
                p: tuple(
                    i
                    for i in step.slice_of(compiled, p, key[1])
                    if step.get((p, i)).phase is not Phase.SKIPPED
                )
                for p in compiled.inner
            }
            if key[1] != TASK
            else {},
        )
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
        _record_error(step, key, compiled, items)
        return
    if state.phase is Phase.PENDING:
        step.record(key, NodeState(Phase.RUNNING, message=f"{len(items)} items"))
    _advance_instances(step, compiled, items)


def _advance_instances(step: _Pass, compiled: CompiledTask, items: list[Any]) -> None:
    """Start instances up to the caps; finish the aggregate when all are terminal."""
    index = compiled.index
    # A group's parallelism counts iterations instead (see _Pass.admits).
    cap = compiled.parallelism if compiled.group is None else None
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
            if step.group_is_full_for(compiled, position):
                continue  # not even gated: an iteration not started has nothing to skip yet
            before = len(step.launches)
            _plan_single(step, (index, position), compiled, item=items[position], has_item=True)
            if len(step.launches) > before or step.get((index, position)).phase is Phase.RUNNING:
                active += 1
        decided = [p for p in open_instances if is_terminal(compiled, step.get((index, p)))]
        # Gating may omit instances now (a group member's iteration failed upstream).
        failed += [p for p in decided if step.get((index, p)).phase in _BROKEN]
        finished = frozenset(decided)
        open_instances = [p for p in open_instances if p not in finished]
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
    ran = [p for p in range(len(items)) if step.get((index, p)).phase is not Phase.SKIPPED]
    if items and not ran:
        step.record(
            (index, TASK), NodeState(Phase.SKIPPED, message=f"all {len(items)} instances skipped")
        )
        return
    # Collected outputs: one entry per instance that ran, in item order (a matrix: nested
    # lists, one level per axis).
    shape = [len(items)]
    if isinstance(compiled.items, Matrix):
        axes = _axes(step, compiled.items)
        shape = [len(axis) for axis in axes] if not isinstance(axes, str) else shape
    outputs = _collect(compiled, [(p, step.get((index, p))) for p in ran], shape)
    skipped = len(items) - len(ran)
    message = f"{len(ran)} instances succeeded" + (f", {skipped} skipped" if skipped else "")
    step.record((index, TASK), NodeState(Phase.SUCCEEDED, outputs=outputs, message=message))


def _collect(
    producer: CompiledTask, ran: list[tuple[int, NodeState]], shape: list[int]
) -> dict[str, str]:
    """A forEach task's output parameters gathered from the instances that ran (position,
    state): typed values as JSON lists, nested to `shape`."""
    return {
        name: json.dumps(
            _nest([(p, expressions.typed(s.outputs.get(name, ""))) for p, s in ran], shape),
            separators=(",", ":"),
        )
        for name in producer.task.output_parameters
    }


def _nest(values: list[tuple[int, Any]], shape: list[int]) -> list[Any]:
    """(position, value) pairs as nested lists of `shape`; absent positions left out."""
    if len(shape) == 1:
        return [value for _, value in values]
    stride = 1
    for length in shape[1:]:
        stride *= length
    rows: list[list[tuple[int, Any]]] = [[] for _ in range(shape[0])]
    for position, value in values:
        rows[position // stride].append((position % stride, value))
    return [_nest(row, shape[1:]) for row in rows]


def _items(step: _Pass, compiled: CompiledTask) -> list[Any] | str:
    """The forEach items, or a message saying why they are not a list (a matrix's items
    are dicts, axis name to value, in row-major order)."""
    items = compiled.items
    if isinstance(items, Matrix):
        axes = _axes(step, items)
        if isinstance(axes, str):
            return axes
        # Checked before the product is built: 300 x 300 x 300 would be 27 million dicts.
        too_many = limits.instances_problem([len(axis) for axis in axes], step.context.bounds)
        if too_many is not None:
            return too_many
        names = [axis for axis, _ in items.axes]
        return [dict(zip(names, values, strict=True)) for values in itertools.product(*axes)]
    return _list(step, items)


def _axes(step: _Pass, matrix: Matrix) -> list[list[Any]] | str:
    """Each axis's items, or a message saying which is not a list."""
    axes: list[list[Any]] = []
    for axis, values in matrix.axes:
        found = _list(step, values)
        if isinstance(found, str):
            return f"matrix axis {axis!r}: {found}"
        axes.append(found)
    return axes


def _list(step: _Pass, items: tuple[Any, ...] | Ref | None) -> list[Any] | str:
    bounds = step.context.bounds
    if isinstance(items, tuple):
        too_long = limits.items_problem(len(items), bounds)
        return too_long if too_long is not None else list(items)
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
    too_long = limits.items_problem(len(value), bounds, f"forEach items {items}")
    return too_long if too_long is not None else value


#: Namespace of `{{task.uid}}`: a UUID5 of namespace/run/task[/instance], the same on retries.
_TASK_UIDS = uuid.UUID("7d1f3c52-5f0e-4b8e-9a51-3c1e2f6b0a94")

#: Bound on planning rounds in one call (each extra round needs new transitions).
_MAX_ROUNDS = 1000


class _Unresolved(Exception):
    """A placeholder whose value does not exist (e.g. an output that was never written)."""


def _value(step: _Pass, ref: Ref, at: _At | None) -> str:
    if ref.kind is RefKind.PARAM:
        return templating.render_value(step.context.params[ref.name])
    if ref.kind is RefKind.RUN:
        read = RUN_PLACEHOLDERS[ref.name]
        if read is None:
            raise _Unresolved(f"{ref} is only known in onExit")
        return read(step.context)
    if ref.kind is RefKind.TASK_PARAMETER and ref.alternatives:
        for choice in ref.alternatives:
            state = _producer_state(step, step.pipeline.task(choice.task).index, at)
            if state.phase in SUCCESSFUL and choice.name in state.outputs:
                return state.outputs[choice.name]
        raise _Unresolved(f"{ref}: none of these tasks produced its output")
    if ref.kind is RefKind.TASK_PARAMETER:
        outputs = _producer_state(step, step.pipeline.task(ref.task).index, at).outputs
        if ref.name not in outputs:
            raise _Unresolved(f"{ref}: task {ref.task!r} did not produce output {ref.name!r}")
        return outputs[ref.name]
    if ref.kind is RefKind.ITEM:
        if at is None:
            raise _Unresolved(f"{ref} is only defined inside forEach")
        item = at.item
        for key in ref.name.split(".") if ref.name else ():
            if not isinstance(item, dict) or key not in item:
                raise _Unresolved(f"{ref}: the item {at.item!r} has no key {ref.name!r}")
            item = item[key]
        return templating.render_value(item)
    raise _Unresolved(f"{ref} is a path, resolved by the executor")


#: Placeholders the planner leaves to the executor: the files of the attempt, and a task
#: artifact (a path too, wherever the executor keeps it).
_PATH_KINDS = templating.FILE_KINDS | {RefKind.TASK_ARTIFACT}


def _producer_state(step: _Pass, producer: int, at: _At | None) -> NodeState:
    """Whose outputs a placeholder reads: the paired instance inside a group, else the task
    (a forEach task's outputs there are the collected lists)."""
    if at is not None and at.task.pairs_with(producer):
        return _upstream_state(step, at.task, producer, at.position)
    return step.get((producer, TASK))


def _sources(step: _Pass, compiled: CompiledTask, at: _At | None) -> dict[str, tuple[int, str]]:
    """For each input artifact with alternatives, the first whose producer succeeded."""
    chosen: dict[str, tuple[int, str]] = {}
    for binding in compiled.inputs:
        if not binding.alternatives:
            continue
        for producer, artifact in binding.alternatives:
            if _producer_state(step, producer, at).phase in SUCCESSFUL:
                chosen[binding.name] = (producer, artifact)
                break
        else:
            if not binding.optional and not compiled.is_exit:
                raise _Unresolved(
                    f"input artifact {binding.name!r}: none of its alternative producers succeeded"
                )
    return chosen


def _task_uid(step: _Pass, compiled: CompiledTask, at: _At | None) -> str:
    position = "" if at is None else f"/{at.position}"
    name = f"{step.context.namespace}/{step.context.name}/{compiled.name}{position}"
    return str(uuid.uuid5(_TASK_UIDS, name))


def _values(step: _Pass, compiled: CompiledTask, at: _At | None) -> dict[str, str]:
    values: dict[str, str] = {}
    templates = [
        *compiled.argv,
        *(template for _, template in compiled.env),
        *(template for _, template in compiled.resources),
    ]
    for template in templates:
        for ref in template.refs:
            if ref.kind in _PATH_KINDS or ref.text in values:
                continue
            if ref.kind is RefKind.RUN and ref.name == "status":
                continue  # filled in by _plan_exit
            if ref.kind is RefKind.TASK_UID:
                values[ref.text] = _task_uid(step, compiled, at)
                continue
            values[ref.text] = _value(step, ref, at)
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
