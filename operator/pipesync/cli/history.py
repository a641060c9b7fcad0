"""`pipesync history`: past runs, read from the run records the operator mirrors to S3.

Why S3 and not the cluster: Runs get deleted (by hand, by RecurringRun history limits,
with their namespace) and their pods with them; the record `<ns>/runs/<run>/run.json`
stays. So this command needs S3 access only, no kubeconfig.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any

from pipesync.cli import s3options
from pipesync.runtime import archive, storage

EXIT_OK, EXIT_ERROR = 0, 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "history",
        help="list past runs from their S3 records (also runs no longer in the cluster)",
        description="List runs from the records the operator writes to S3, newest first. "
        "S3 credentials come from the environment (AWS_ACCESS_KEY_ID, ...), as for boto3.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", default="default", help="namespace (default: default)")
    where.add_argument(
        "-A", "--all-namespaces", action="store_true", help="runs of every namespace"
    )
    parser.add_argument("--pipeline", metavar="NAME", help="only runs of this pipeline")
    parser.add_argument("--phase", help="only runs in this phase, e.g. Failed")
    parser.add_argument(
        "--limit", type=int, default=50, metavar="N", help="at most N runs (default 50; 0: all)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    s3options.add_arguments(parser)
    parser.set_defaults(command=run)


def run(options: argparse.Namespace) -> int:
    if options.limit < 0:
        print("pipesync history: --limit must be 0 or more", file=sys.stderr)
        return 2
    store = s3options.store(options, patience=15.0)
    namespace = None if options.all_namespaces else options.namespace
    try:
        records = archive.load_records(store, namespace)
    except storage.StoreError as error:
        print(f"pipesync history: cannot read S3: {error}", file=sys.stderr)
        return EXIT_ERROR
    rows = select(records, pipeline=options.pipeline, phase=options.phase, limit=options.limit)
    if options.format == "json":
        print(json.dumps([summary(r, store) for r in rows], indent=1))
    else:
        print_table(rows, all_namespaces=options.all_namespaces)
    return EXIT_OK


# --- reading ------------------------------------------------------------------------------


# --- selecting and showing ------------------------------------------------------------------


def started(record: dict[str, Any]) -> str:
    status = record.get("status") or {}
    metadata = record.get("metadata") or {}
    return str(status.get("startedAt") or metadata.get("creationTimestamp") or "")


def pipeline_name(record: dict[str, Any]) -> str:
    pipeline = record.get("pipeline") or (record.get("status") or {}).get("pipeline") or {}
    return str(pipeline.get("name") or "")


def select(
    records: Iterable[dict[str, Any]], *, pipeline: str | None, phase: str | None, limit: int
) -> list[dict[str, Any]]:
    chosen = [
        r
        for r in records
        if (pipeline is None or pipeline_name(r) == pipeline)
        and (
            phase is None or str((r.get("status") or {}).get("phase", "")).lower() == phase.lower()
        )
    ]
    # RFC 3339 UTC stamps sort as strings; the name breaks ties deterministically.
    chosen.sort(key=lambda r: (started(r), (r.get("metadata") or {}).get("name", "")), reverse=True)
    return chosen[:limit] if limit else chosen


def summary(record: dict[str, Any], store: storage.ObjectStore) -> dict[str, Any]:
    metadata = record.get("metadata") or {}
    status = record.get("status") or {}
    key = str(record.get("_key", ""))
    location = key
    if isinstance(store, storage.S3Store):
        full = f"{store.settings.prefix}/{key}" if store.settings.prefix else key
        location = f"s3://{store.settings.bucket}/{full}"
    return {
        "namespace": metadata.get("namespace"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "pipeline": pipeline_name(record),
        "version": (record.get("pipeline") or {}).get("version"),
        "experiment": ((record.get("spec") or {}).get("experimentRef") or {}).get("name"),
        "phase": status.get("phase"),
        "progress": status.get("progress"),
        "startedAt": status.get("startedAt"),
        "finishedAt": status.get("finishedAt"),
        "duration": status.get("duration"),
        "record": location,
    }


def print_table(records: list[dict[str, Any]], *, all_namespaces: bool) -> None:
    if not records:
        print("No runs recorded.", file=sys.stderr)
        return
    header = ["NAME", "PIPELINE", "PHASE", "PROGRESS", "STARTED", "DURATION"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for record in records:
        metadata = record.get("metadata") or {}
        status = record.get("status") or {}
        row = [
            str(metadata.get("name", "")),
            pipeline_name(record) or "(inline)",
            str(status.get("phase", "")),
            str(status.get("progress", "")),
            str(status.get("startedAt", "")),
            str(status.get("duration", "")),
        ]
        if all_namespaces:
            row.insert(0, str(metadata.get("namespace", "")))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
