"""How a run's tasks add up in its status: the count each task falls under, and a forEach
task's instance counts.

One definition for both executors: the controller's Run status and the local executor's
run record summarise a run the same way, so `pipesync history` and the UI read a local
run exactly as a cluster one.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipesync.api import runstatus
from pipesync.engine import planner
from pipesync.engine.compiler import CompiledPipeline, CompiledTask
from pipesync.engine.state import SUCCESSFUL, TASK, NodeKey, NodeState, Phase


def count_bucket(task: CompiledTask, state: NodeState | None) -> str:
    """The `taskCounts` field a task counts under: a failed task that will be retried
    is still running."""
    phase = state.phase if state is not None else Phase.PENDING
    if phase is Phase.FAILED:
        return "failed" if state is not None and planner.is_terminal(task, state) else "running"
    return {
        Phase.PENDING: "pending",
        Phase.RUNNING: "running",
        Phase.SUCCEEDED: "succeeded",
        Phase.CACHED: "succeeded",  # it did succeed, in an earlier run
        Phase.SKIPPED: "skipped",
        Phase.OMITTED: "skipped",
        Phase.CANCELLED: "skipped",
    }[phase]


def task_counts(
    compiled: CompiledPipeline, nodes: Mapping[NodeKey, NodeState]
) -> runstatus.TaskCounts:
    """How many tasks (onExit not counted) are in each phase."""
    counts = {"pending": 0, "running": 0, "succeeded": 0, "failed": 0, "skipped": 0}
    cached = 0
    for task in compiled.tasks:
        state = nodes.get((task.index, TASK))
        counts[count_bucket(task, state)] += 1
        cached += state is not None and state.phase is Phase.CACHED
    return runstatus.TaskCounts(total=len(compiled.tasks), cached=cached, **counts)


def progress(counts: runstatus.TaskCounts) -> str:
    """Finished tasks out of all, e.g. "3/7"."""
    return f"{counts.succeeded + counts.failed + counts.skipped}/{counts.total}"


def instance_counts(
    task: CompiledTask, nodes: Mapping[NodeKey, NodeState]
) -> runstatus.InstanceCounts | None:
    """A forEach task's instances by state; None for any other task."""
    if not task.fan_out:
        return None
    members = [s for (index, i), s in nodes.items() if index == task.index and i != TASK]
    return runstatus.InstanceCounts(
        total=len(members),
        succeeded=sum(1 for s in members if s.phase in SUCCESSFUL),
        failed=sum(1 for s in members if s.phase is Phase.FAILED),
        running=sum(1 for s in members if s.phase is Phase.RUNNING),
    )
