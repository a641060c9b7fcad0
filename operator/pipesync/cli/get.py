"""`pipesync get runs`: the Runs in the cluster, as `kubectl get runs` lists them, with
the columns and colours of pipesync's own tables (the local run summary, `history`).

Why not only kubectl: the pinned pipeline version and a running run's duration so far
are not printer columns (the version is only known once pinned), and the phases are
coloured as a local run's are. Reads with the user's own RBAC (list runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from pipesync.api import durations, runstatus, times
from pipesync.cli import cluster, flags, progress

COLUMNS = ("NAME", "PIPELINE", "VERSION", "PHASE", "PROGRESS", "STARTED", "DURATION")


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "get",
        run,
        help="list the runs in the cluster (phase, progress, version, duration)",
        description="List Runs with your kubeconfig: phase, progress, the pinned pipeline "
        "version, when each started and how long it ran (so far, while it runs), newest "
        "first. Exit 0 listed, 2 usage or the cluster refused (one line says why).",
    )
    parser.add_argument("kind", choices=("runs", "run"), help="what to list: runs")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-n", "--namespace", help="namespace (default: the kubeconfig context's namespace)"
    )
    where.add_argument(
        "-A", "--all-namespaces", action="store_true", help="runs of every namespace"
    )
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="table or json"
    )


def run(options: argparse.Namespace) -> int:
    return cluster.guarded("get", lambda: _get(options))


def _get(options: argparse.Namespace) -> int:
    kube = cluster.connect()
    namespace = "" if options.all_namespaces else options.namespace or cluster.default_namespace()
    with cluster.asking(kube, cluster.Doing("list", cluster.RUNS_RESOURCE, namespace)):
        found = (
            kube.list_all_objects("runs") if not namespace else kube.list_objects("runs", namespace)
        )
    rows = run_rows(found, time.time())
    if options.output == "json":
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        where = "any namespace" if not namespace else f"namespace {namespace}"
        print(f"No runs in {where}.", file=sys.stderr)
        return 0
    console = Console(highlight=False)
    if console.is_terminal:
        console.print(table(rows, all_namespaces=not namespace))
    else:
        print(text(rows, all_namespaces=not namespace))
    return 0


def run_rows(runs: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """One row per Run, newest first: what the table shows, and `-o json` prints."""
    rows = [run_row(found, now) for found in runs]
    # RFC 3339 UTC stamps sort as strings; the name breaks ties deterministically.
    rows.sort(key=lambda row: (row["startedAt"] or row["createdAt"], row["name"]), reverse=True)
    return rows


def run_row(found: Mapping[str, Any], now: float) -> dict[str, Any]:
    metadata, spec = found.get("metadata") or {}, found.get("spec") or {}
    status = runstatus.RunStatus.from_json(found.get("status"))
    pinned = status.pipeline or {}
    reference = spec.get("pipelineRef") or {}
    return {
        "namespace": str(metadata.get("namespace") or ""),
        "name": str(metadata.get("name") or ""),
        "pipeline": pinned.get("name") or str(reference.get("name") or ""),
        "version": pinned.get("version") or str(reference.get("version") or ""),
        "phase": status.phase or "Pending",
        "progress": status.progress,
        "createdAt": str(metadata.get("creationTimestamp") or ""),
        "startedAt": status.started_at,
        "finishedAt": status.finished_at,
        "duration": duration(status, now),
        "message": status.message,
    }


def duration(status: runstatus.RunStatus, now: float) -> str:
    """How long the run took, or has run so far while it runs."""
    if status.duration:
        return status.duration
    started = times.instant(status.started_at)
    if started is None:
        return ""
    ended = times.instant(status.finished_at)
    return durations.format_seconds(max((ended or now) - started, 0.0))


def ago(stamp: str, now: float) -> str:
    """`3m12s ago` (kubectl's AGE, to the second), or "" when there is no time."""
    moment = times.instant(stamp)
    return "" if moment is None else durations.format_seconds(max(now - moment, 0.0)) + " ago"


def cells(row: Mapping[str, Any], now: float, *, all_namespaces: bool) -> list[str]:
    values = [
        row["name"],
        row["pipeline"] or "(inline)",
        row["version"],
        row["phase"],
        row["progress"],
        ago(row["startedAt"], now),
        row["duration"],
    ]
    return [row["namespace"], *values] if all_namespaces else values


def _header(all_namespaces: bool) -> list[str]:
    return ["NAMESPACE", *COLUMNS] if all_namespaces else list(COLUMNS)


def table(rows: list[dict[str, Any]], *, all_namespaces: bool) -> Table:
    """The rows as a terminal table, the phase coloured as in a local run's summary."""
    now = time.time()
    drawn = Table(box=None, pad_edge=False, header_style="bold")
    header = _header(all_namespaces)
    for column in header:
        drawn.add_column(column, overflow="fold")
    phase = header.index("PHASE")
    for row in rows:
        shown: list[str | Text] = list(cells(row, now, all_namespaces=all_namespaces))
        shown[phase] = Text(row["phase"], style=progress.phase_style(row["phase"]))
        drawn.add_row(*shown)
    return drawn


def text(rows: list[dict[str, Any]], *, all_namespaces: bool, now: float | None = None) -> str:
    """The rows as aligned plain text, for pipes and logs."""
    moment = time.time() if now is None else now
    lines = [_header(all_namespaces)]
    lines.extend(cells(row, moment, all_namespaces=all_namespaces) for row in rows)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
