"""How a local run looks while it runs: a live table on a terminal, plain lines otherwise,
and a summary table at the end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pipesync.api import durations
from pipesync.engine import planner
from pipesync.engine.state import NodeKey, NodeState, Phase, RunPhase
from pipesync.runtime.local import LocalRun

_STYLES = {
    Phase.PENDING: "dim",
    Phase.RUNNING: "cyan",
    Phase.SUCCEEDED: "green",
    Phase.CACHED: "blue",
    Phase.FAILED: "red",
    Phase.SKIPPED: "yellow",
    Phase.OMITTED: "magenta",
    Phase.CANCELLED: "magenta",
}
_MAX_LIVE_ROWS = 25
#: A run's own phases, drawn as the task phases they resemble.
_RUN_STYLES = {
    RunPhase.PENDING: "dim",
    RunPhase.RUNNING: "cyan",
    RunPhase.SUCCEEDED: "green",
    RunPhase.FAILED: "red",
    RunPhase.CANCELLING: "magenta",
    RunPhase.CANCELLED: "magenta",
}


def phase_style(phase: str) -> str:
    """The colour of a task's or a run's phase, the same in every table pipesync draws."""
    for styles in (_STYLES, _RUN_STYLES):
        for known, style in styles.items():
            if known.value == phase:
                return style
    return ""


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
        self._finished = False
        # get_renderable: each refresh draws anew, so a running task's time keeps counting
        # (a table handed over at each change would show 0.0s until the next change).
        self.live = Live(
            console=console,
            refresh_per_second=8,
            transient=True,
            get_renderable=self._render,
        )
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
        self.live.refresh()

    def run_finished(self, run: LocalRun, outcome: planner.Outcome) -> None:
        with self._lock:
            self._finished = True
        self.live.refresh()

    def _render(self) -> Group | Text:
        with self._lock:
            if self._finished:
                return Text("")
            return live_view(list(self.states.values()), time.time())


def live_view(states: list[tuple[str, NodeState, float]], now: float) -> Group:
    """The live table: counts by phase, then the running tasks and the latest changes.
    `states`: (task name, its state, since when it is in it)."""
    counts: dict[Phase, int] = {}
    for _, state, _ in states:
        counts[state.phase] = counts.get(state.phase, 0) + 1
    done = sum(n for phase, n in counts.items() if phase not in (Phase.RUNNING,))
    header = Text(
        f"{done}/{len(states)} done  "
        + "  ".join(f"{phase.value}: {n}" for phase, n in sorted(counts.items())),
        style="bold",
    )
    table = Table(box=None, show_header=False, pad_edge=False)
    # Running first, then the most recent changes: what a person watches for.
    rows = sorted(
        states,
        key=lambda row: (row[1].phase is not Phase.RUNNING, -row[2]),
    )[:_MAX_LIVE_ROWS]
    for name, state, changed in rows:
        table.add_row(
            Text(state.phase.value, style=_STYLES[state.phase]),
            Text(name),
            Text(durations.format_seconds(now - changed) if state.phase is Phase.RUNNING else ""),
            Text(state.message[:80], style="dim"),
        )
    return Group(header, table)


_COLUMNS = ("task", "state", "attempts", "duration", "outputs")
#: A forEach with more instances than this lists only those that did not succeed.
_MAX_INSTANCE_ROWS = 10


def summary_table(run: LocalRun) -> Table:
    """The end-of-run table for a terminal."""
    return rows_table(run.context.name, run.summary())


def rows_table(run_name: str, summary: list[dict[str, Any]]) -> Table:
    """The end-of-run table of summary rows (LocalRun.summary's shape; a cluster run's
    rows come from its status in the same shape)."""
    table = Table(title=f"run {run_name}", title_justify="left")
    for column in _COLUMNS:
        table.add_column(column, overflow="fold")
    for row in _visible_rows(summary):
        cells = _cells(row)
        table.add_row(cells[0], Text(cells[1], style=phase_style(cells[1])), *cells[2:])
    return table


def summary_text(run: LocalRun) -> str:
    """The same table as aligned plain text, for logs and pipes (and cheap to print)."""
    return rows_text(run.context.name, run.summary())


def rows_text(run_name: str, summary: list[dict[str, Any]]) -> str:
    """rows_table as aligned plain text."""
    rows = [_COLUMNS, *(_cells(row) for row in _visible_rows(summary))]
    flat = [tuple(cell.replace("\n", " ") for cell in row) for row in rows]
    widths = [max(len(row[column]) for row in flat) for column in range(len(_COLUMNS))]
    lines = [f"run {run_name}"]
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
        or row["phase"] not in (Phase.SUCCEEDED.value, Phase.CACHED.value)
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


#: How much of a failed task's log the end of a run shows.
FAILED_LOG_LINES = 10


def failure_details(run: LocalRun) -> list[str]:
    """For each failed task or instance: its message, its log's path and its last lines,
    so the reason is on screen without opening a file."""
    lines: list[str] = []
    for key, record in sorted(run.records.items()):
        if record.state.phase is not Phase.FAILED or record.log is None:
            continue  # Omitted/Cancelled say why in the table; no log, nothing to show
        lines.append(f"{run.task_name(key)} failed: {record.state.message}")
        lines.append(f"  log: {record.log}")
        tail = _last_lines(record.log, FAILED_LOG_LINES)
        lines.extend(f"  | {line}" for line in tail)
        if not tail:
            lines.append("  (the log is empty)")
    return lines


def artifact_lines(run: LocalRun) -> list[str]:
    """The output artifacts the run wrote, with their paths."""
    found = run.artifacts()
    if not found:
        return []
    return ["artifacts:", *(f"  {task} {name}: {path}" for task, name, path in found)]


def _last_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a log, read from its end (a log can be large)."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(size - _TAIL_BYTES, 0))
            data = log.read()
    except OSError:
        return []
    text = data.decode(errors="replace")
    return [line.rstrip("\r") for line in text.splitlines()[-count:]]


_TAIL_BYTES = 16 * 1024
