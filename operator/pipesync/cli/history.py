"""`pipesync history`: past runs, read from the run records the operator mirrors to S3,
or (`--local DIR`) from the ones `pipesync run` writes into its work directory.

Why S3 and not the cluster: Runs get deleted (by hand, by RecurringRun history limits,
with their namespace) and their pods with them; the record `<ns>/runs/<run>/run.json`
stays. So this command needs S3 access only, no kubeconfig. Both executors write the
same RunRecord under the same key layout, so one reader lists both.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipesync.api import runstatus
from pipesync.api.runstatus import RunRecord
from pipesync.cli import flags, s3options
from pipesync.runtime import archive, storage
from pipesync.runtime.archive import StoredRecord

EXIT_OK, EXIT_ERROR = 0, 1


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "history",
        run,
        help="list past runs from their S3 records (also runs no longer in the cluster)",
        description="List runs from the records the operator writes to S3, newest first, "
        "or with --local from the records of `pipesync run` in a work directory. "
        "S3 credentials come from the environment (AWS_ACCESS_KEY_ID, ...), as for boto3.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "-n",
        "--namespace",
        help="namespace (default: default; with --local: local, the namespace of local runs)",
    )
    where.add_argument(
        "-A", "--all-namespaces", action="store_true", help="runs of every namespace"
    )
    parser.add_argument("--pipeline", metavar="NAME", help="only runs of this pipeline")
    parser.add_argument("--phase", help="only runs in this phase, e.g. Failed")
    parser.add_argument(
        "--limit", type=int, default=50, metavar="N", help="at most N runs (default 50; 0: all)"
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--local",
        metavar="DIR",
        help="read the local runs in this work directory (pipesync run --workdir; usually "
        "./.pipesync) instead of S3",
    )
    s3options.add_arguments(parser)


def run(options: argparse.Namespace) -> int:
    if options.limit < 0:
        print("pipesync history: --limit must be 0 or more", file=sys.stderr)
        return 2
    store: storage.ObjectStore
    if options.local is not None:
        if not Path(options.local).is_dir():
            print(f"pipesync history: --local {options.local}: no such directory", file=sys.stderr)
            return 2
        store = storage.LocalStore(Path(options.local))
    else:
        store = s3options.store(options, patience=15.0)
    default = runstatus.LOCAL_NAMESPACE if options.local is not None else "default"
    namespace = None if options.all_namespaces else (options.namespace or default)
    try:
        records = archive.load_records(store, namespace)
    except storage.StoreError as error:
        where = options.local if options.local is not None else "S3"
        print(f"pipesync history: cannot read {where}: {error}", file=sys.stderr)
        return EXIT_ERROR
    rows = select(records, pipeline=options.pipeline, phase=options.phase, limit=options.limit)
    if options.format == "json":
        print(json.dumps([summary(r, store) for r in rows], indent=1))
    else:
        print_table(rows, all_namespaces=options.all_namespaces)
    return EXIT_OK


# --- selecting and showing ------------------------------------------------------------------


def started(record: RunRecord) -> str:
    return record.status.started_at or str(record.metadata.get("creationTimestamp") or "")


def pipeline_name(record: RunRecord) -> str:
    pipeline = record.pipeline or record.status.pipeline or {}
    return str(pipeline.get("name") or "")


def select(
    records: Iterable[StoredRecord], *, pipeline: str | None, phase: str | None, limit: int
) -> list[StoredRecord]:
    chosen = [
        r
        for r in records
        if (pipeline is None or pipeline_name(r.record) == pipeline)
        and (phase is None or r.record.status.phase.lower() == phase.lower())
    ]
    # RFC 3339 UTC stamps sort as strings; the name breaks ties deterministically.
    chosen.sort(key=lambda r: (started(r.record), r.record.name), reverse=True)
    return chosen[:limit] if limit else chosen


def summary(stored: StoredRecord, store: storage.ObjectStore) -> dict[str, Any]:
    record, status = stored.record, stored.record.status
    location = stored.key
    if isinstance(store, storage.S3Store):
        full = f"{store.settings.prefix}/{location}" if store.settings.prefix else location
        location = f"s3://{store.settings.bucket}/{full}"
    elif isinstance(store, storage.LocalStore):
        location = str(store.root / location)
    return {
        "namespace": record.namespace or None,
        "name": record.name or None,
        "uid": record.metadata.get("uid"),
        "pipeline": pipeline_name(record),
        "version": (record.pipeline or {}).get("version"),
        "experiment": (record.spec.get("experimentRef") or {}).get("name"),
        "phase": status.phase or None,
        "progress": status.progress or None,
        "startedAt": status.started_at or None,
        "finishedAt": status.finished_at or None,
        "duration": status.duration or None,
        "record": location,
    }


def print_table(records: list[StoredRecord], *, all_namespaces: bool) -> None:
    if not records:
        print("No runs recorded.", file=sys.stderr)
        return
    header = ["NAME", "PIPELINE", "PHASE", "PROGRESS", "STARTED", "DURATION"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for stored in records:
        record, status = stored.record, stored.record.status
        row = [
            record.name,
            pipeline_name(record) or "(inline)",
            status.phase,
            status.progress,
            status.started_at,
            status.duration,
        ]
        if all_namespaces:
            row.insert(0, record.namespace)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
