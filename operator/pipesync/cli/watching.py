"""`--watch` of `pipesync submit` and `pipesync retry`: a cluster run shown as a local run
is (cli/progress: the live table on a terminal, a line per change otherwise, the summary
table at the end), from the Run's status.tasks as its watch reports them.

The rows are made here, pure, from `api.runstatus` values; drawing them is progress's.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from pipesync.api import runstatus, times
from pipesync.cli import cluster, progress
from pipesync.engine.state import NodeState, Phase, RunPhase
from pipesync.kube.protocol import Kube

#: (task name, its state, since when it is in it), as progress.live_view draws them.
LiveRow = tuple[str, NodeState, float]


def node_state(task: runstatus.TaskStatus) -> NodeState:
    """A task's status summary as the state the live table draws."""
    try:
        phase = Phase(task.phase)
    except ValueError:
        phase = Phase.PENDING  # a phase this release does not know: shown as not done
    message = task.message
    if task.instances is not None and not message:
        counts = task.instances
        message = f"{counts.succeeded}/{counts.total} instances done"
        message += f", {counts.failed} failed" if counts.failed else ""
    return NodeState(phase=phase, attempts=task.attempts, message=message)


def live_rows(
    status: runstatus.RunStatus, previous: Mapping[str, LiveRow], now: float
) -> dict[str, LiveRow]:
    """The live table's rows for a new status: a running task counts from its start, any
    other from when its phase was first seen (kept from `previous` while unchanged)."""
    rows: dict[str, LiveRow] = {}
    for name, task in (status.tasks or {}).items():
        state = node_state(task)
        before = previous.get(name)
        since = now
        if state.phase is Phase.RUNNING and times.instant(task.started_at) is not None:
            since = times.instant(task.started_at) or now
        elif before is not None and before[1].phase is state.phase:
            since = before[2]
        rows[name] = (name, state, since)
    return rows


def change_lines(previous: Mapping[str, LiveRow], current: Mapping[str, LiveRow]) -> list[str]:
    """The plain output: one line per task whose phase or attempt changed, as a local
    run's plain lines read (`HH:MM:SS task Phase: message`)."""
    stamp = time.strftime("%H:%M:%S")
    lines = []
    for name, (_, state, _) in current.items():
        before = previous.get(name)
        if before is not None and (before[1].phase, before[1].attempts) == (
            state.phase,
            state.attempts,
        ):
            continue
        detail = f" (attempt {state.attempts})" if state.attempts > 1 else ""
        if state.message and state.phase is not Phase.RUNNING:
            detail = f": {state.message}"
        lines.append(f"{stamp} {name} {state.phase.value}{detail}")
    return lines


def summary_rows(status: runstatus.RunStatus) -> list[dict[str, Any]]:
    """The end-of-run table's rows (LocalRun.summary's shape) from a Run's status."""
    return [
        {
            "task": name,
            "phase": task.phase,
            "attempts": task.attempts,
            "startedAt": times.instant(task.started_at),
            "finishedAt": times.instant(task.finished_at),
            "exitCode": task.exit_code,
            "message": node_state(task).message,
            "outputs": dict(task.outputs),
        }
        for name, task in (status.tasks or {}).items()
    ]


def closing_lines(name: str, namespace: str, status: runstatus.RunStatus) -> list[str]:
    """After the table: each failed task's reason and how to read its log, then the
    outcome line."""
    lines: list[str] = []
    for task_name, task in (status.tasks or {}).items():
        if task.phase != Phase.FAILED.value:
            continue
        lines.append(f"{task_name} failed: {task.message or 'no reason given'}")
        lines.append(f"  log: pipesync logs {name} {task_name} -n {namespace}")
    if status.tasks_truncated:
        lines.append("(status lists only some tasks: the run record in S3 has them all)")
    took = f" in {status.duration}" if status.duration else ""
    lines.append(f"{status.phase}{took}" + (f": {status.message}" if status.message else ""))
    return lines


def created(kube: Kube, namespace: str, name: str, *, watch_it: bool, plain: bool) -> int:
    """After a Run was created: its name on stdout (for scripts), what to do next on
    stderr, then, with --watch, the run shown until it ends and its exit code."""
    print(name, flush=True)
    if not watch_it:
        print(
            f"created run {name} in namespace {namespace}: follow it with "
            f"`pipesync wait {name} -n {namespace}` or `pipesync logs {name} TASK -f -n "
            f"{namespace}`",
            file=sys.stderr,
        )
        return cluster.EXIT_SUCCEEDED
    return watch(kube, namespace, name, plain=plain)


def watch(kube: Kube, namespace: str, name: str, *, plain: bool = False) -> int:
    """Shows the run until it finishes; its exit code (as `pipesync run`'s)."""
    console = Console(highlight=False)
    live = console.is_terminal and not plain
    rows: dict[str, LiveRow] = {}
    last: dict[str, Any] = {}
    try:
        with _live(console, lambda: list(rows.values()), enabled=live):
            for last in cluster.follow(kube, namespace, name):
                status = runstatus.RunStatus.from_json(last.get("status"))
                current = live_rows(status, rows, time.time())
                if not live:
                    for line in change_lines(rows, current):
                        print(line, flush=True)
                rows = current
    except KeyboardInterrupt:
        print(
            f"stopped watching; run {name} goes on (pipesync wait {name} -n {namespace})",
            file=sys.stderr,
        )
        return 130
    status = runstatus.RunStatus.from_json(last.get("status"))
    summary = summary_rows(status)
    if live:
        console.print(progress.rows_table(name, summary))
    else:
        print(progress.rows_text(name, summary), flush=True)
    lines = closing_lines(name, namespace, status)
    for line in lines:
        if live:
            style = "green" if status.phase == RunPhase.SUCCEEDED.value else "red"
            console.print(Text(line, style=style if line is lines[-1] else ""), soft_wrap=True)
        else:
            print(line, flush=True)
    code = cluster.exit_code(status.phase)
    return cluster.EXIT_USAGE if code is None else code


@contextlib.contextmanager
def _live(console: Console, states: Any, *, enabled: bool) -> Iterator[None]:
    """The live table redrawn in place (a running task's time keeps counting between
    events), or nothing when the output is not a terminal."""
    if not enabled:
        yield
        return
    with Live(
        console=console,
        refresh_per_second=4,
        transient=True,
        get_renderable=lambda: progress.live_view(states(), time.time()),
    ):
        yield
