"""How a local run looks while it runs: a live table on a terminal, plain lines otherwise,
and a summary table at the end."""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipesync.api import durations
from pipesync.engine import planner
from pipesync.engine.state import NodeKey, NodeState, Phase
from pipesync.runtime.local import LocalRun

_STYLES = {
    Phase.PENDING: "dim",
    Phase.RUNNING: "cyan",
    Phase.SUCCEEDED: "green",
    Phase.FAILED: "red",
    Phase.SKIPPED: "yellow",
    Phase.OMITTED: "magenta",
    Phase.CANCELLED: "magenta",
}
_MAX_LIVE_ROWS = 25


class PlainReporter:
    """One line per change: fit for CI logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def node_changed(self, run: LocalRun, key: NodeKey, state: NodeState) -> None:
        stamp = time.strftime("%H:%M:%S")
        detail = f" (attempt {state.attempts})" if state.attempts else ""
        if state.message and (state.phase is not Phase.RUNNING or not state.attempts):
            detail = f": {state.message}"  # outcomes, and a forEach task's item count
        self.console.print(
            f"{stamp} {run.task_name(key)} {state.phase.value}{detail}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    def run_finished(self, run: LocalRun, outcome: planner.Outcome) -> None:
        pass


class LiveReporter:
    """A table that redraws in place while tasks run (terminals only)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.states: dict[NodeKey, tuple[str, NodeState, float]] = {}
        self._lock = threading.Lock()
        self.live = Live(console=console, refresh_per_second=8, transient=True)
        self._run: LocalRun | None = None

    def __enter__(self) -> LiveReporter:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def node_changed(self, run: LocalRun, key: NodeKey, state: NodeState) -> None:
        with self._lock:
            self._run = run
            self.states[key] = (run.task_name(key), state, time.time())
            self.live.update(self._render())

    def run_finished(self, run: LocalRun, outcome: planner.Outcome) -> None:
        self.live.update(Text(""))

    def _render(self) -> Group:
        counts: dict[Phase, int] = {}
        for _, state, _ in self.states.values():
            counts[state.phase] = counts.get(state.phase, 0) + 1
        done = sum(n for phase, n in counts.items() if phase not in (Phase.RUNNING,))
        header = Text(
            f"{done}/{len(self.states)} done  "
            + "  ".join(f"{phase.value}: {n}" for phase, n in sorted(counts.items())),
            style="bold",
        )
        table = Table(box=None, show_header=False, pad_edge=False)
        # Running first, then the most recent changes: what a person watches for.
        rows = sorted(
            self.states.values(),
            key=lambda row: (row[1].phase is not Phase.RUNNING, -row[2]),
        )[:_MAX_LIVE_ROWS]
        now = time.time()
        for name, state, changed in rows:
            table.add_row(
                Text(state.phase.value, style=_STYLES[state.phase]),
                Text(name),
                Text(
                    durations.format_seconds(now - changed) if state.phase is Phase.RUNNING else ""
                ),
                Text(state.message[:80], style="dim"),
            )
        return Group(header, table)


def summary_table(run: LocalRun) -> Table:
    table = Table(title=f"run {run.context.name}", title_justify="left")
    for column in ("task", "state", "attempts", "duration", "outputs"):
        table.add_column(column, overflow="fold")
    for row in run.summary():
        table.add_row(
            row["task"],
            Text(row["phase"], style=_STYLES[Phase(row["phase"])]),
            str(row["attempts"]) if row["attempts"] else "",  # forEach totals have none
            _duration(row),
            _outputs(row),
        )
    return table


def _duration(row: dict[str, Any]) -> str:
    if row["startedAt"] is None or row["finishedAt"] is None:
        return ""
    return durations.format_seconds(max(row["finishedAt"] - row["startedAt"], 0.0))


def _outputs(row: dict[str, Any]) -> str:
    parts = []
    for name, value in row["outputs"].items():
        shown = value if len(value) <= 60 else value[:57] + "..."
        parts.append(f"{name}={shown}")
    if not parts and row["message"]:
        return str(row["message"])[:120]
    return "\n".join(parts)
