"""How a local run looks while it runs: a live table on a terminal, plain lines otherwise,
and a summary table at the end."""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

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
    """One line per change: fit for CI logs and pipes (written directly: rich's
    rendering would cost more than starting a trivial task)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def node_changed(self, run: LocalRun, key: NodeKey, state: NodeState) -> None:
        stamp = time.strftime("%H:%M:%S")
        detail = f" (attempt {state.attempts})" if state.attempts else ""
        if state.message and (state.phase is not Phase.RUNNING or not state.attempts):
            detail = f": {state.message}"  # outcomes, and a forEach task's item count
        self.stream.write(f"{stamp} {run.task_name(key)} {state.phase.value}{detail}\n")
        self.stream.flush()

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


_COLUMNS = ("task", "state", "attempts", "duration", "outputs")
#: A forEach with more instances than this lists only those that did not succeed.
_MAX_INSTANCE_ROWS = 10


def summary_table(run: LocalRun) -> Table:
    """The end-of-run table for a terminal."""
    table = Table(title=f"run {run.context.name}", title_justify="left")
    for column in _COLUMNS:
        table.add_column(column, overflow="fold")
    for row in _visible_rows(run.summary()):
        cells = _cells(row)
        table.add_row(cells[0], Text(cells[1], style=_STYLES[Phase(cells[1])]), *cells[2:])
    return table


def summary_text(run: LocalRun) -> str:
    """The same table as aligned plain text, for logs and pipes (and cheap to print)."""
    rows = [_COLUMNS, *(_cells(row) for row in _visible_rows(run.summary()))]
    flat = [tuple(cell.replace("\n", " ") for cell in row) for row in rows]
    widths = [max(len(row[column]) for row in flat) for column in range(len(_COLUMNS))]
    lines = [f"run {run.context.name}"]
    lines.extend(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in flat
    )
    return "\n".join(lines)


def _cells(row: dict[str, Any]) -> tuple[str, str, str, str, str]:
    return (
        row["task"],
        row["phase"],
        str(row["attempts"]) if row["attempts"] else "",  # forEach totals have none
        _duration(row),
        _outputs(row),
    )


def _visible_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every task; forEach instances only while few, else only those that did not succeed."""
    instances: dict[str, int] = {}
    for row in rows:
        base, bracket, _ = row["task"].partition("[")
        if bracket:
            instances[base] = instances.get(base, 0) + 1
    return [
        row
        for row in rows
        if "[" not in row["task"]
        or instances[row["task"].partition("[")[0]] <= _MAX_INSTANCE_ROWS
        or row["phase"] != Phase.SUCCEEDED.value
    ]


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
