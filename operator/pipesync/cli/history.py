"""`pipesync history`: past runs, read from the run records the operator mirrors to S3.

Why S3 and not the cluster: Runs get deleted (by hand, by RecurringRun history limits,
with their namespace) and their pods with them; the record `<ns>/runs/<run>/run.json`
stays. So this command needs S3 access only, no kubeconfig.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from pipesync.engine import layout
from pipesync.runtime import storage

EXIT_OK, EXIT_ERROR = 0, 1
RECORD_NAME = "run.json"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = os.environ.get
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
    parser.add_argument(
        "--s3-bucket", default=env("PIPESYNC_S3_BUCKET", "pipesync"), help="[PIPESYNC_S3_BUCKET]"
    )
    parser.add_argument(
        "--s3-endpoint", default=env("PIPESYNC_S3_ENDPOINT"), help="[PIPESYNC_S3_ENDPOINT]"
    )
    parser.add_argument(
        "--s3-region", default=env("PIPESYNC_S3_REGION", "us-east-1"), help="[PIPESYNC_S3_REGION]"
    )
    parser.add_argument(
        "--s3-prefix", default=env("PIPESYNC_S3_PREFIX", ""), help="[PIPESYNC_S3_PREFIX]"
    )
    parser.set_defaults(command=run)


def run(options: argparse.Namespace) -> int:
    if options.limit < 0:
        print("pipesync history: --limit must be 0 or more", file=sys.stderr)
        return 2
    store = storage.S3Store(
        storage.S3Settings(
            bucket=options.s3_bucket,
            endpoint_url=options.s3_endpoint,
            region=options.s3_region,
            prefix=options.s3_prefix.strip("/"),
        ),
        storage.Retry(storage.Backoff(patience=15.0)),
    )
    namespace = None if options.all_namespaces else options.namespace
    try:
        records = load_records(store, namespace)
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


def record_keys(store: storage.ObjectStore, namespace: str | None) -> list[str]:
    """Keys `<ns>/runs/<run>/run.json`; on S3 found by delimiter listing, so the
    artifacts and logs under each run are never listed."""
    if isinstance(store, storage.S3Store):
        namespaces = [f"{namespace}/"] if namespace else _children(store, "")
        runs = [run for ns in namespaces for run in _children(store, f"{ns}runs/")]
        return [f"{run}{RECORD_NAME}" for run in runs]
    prefix = layout.run_prefix(namespace, "") if namespace else ""
    return [
        key
        for key in store.list_prefix(prefix)
        if key.endswith(f"/{RECORD_NAME}") and len(key.split("/")) == 4 and "/runs/" in key
    ]


def _children(store: storage.S3Store, under: str) -> list[str]:
    """The 'directories' right below `under` (without the store's prefix), each ending in /."""
    base = f"{store.settings.prefix}/" if store.settings.prefix else ""

    def listing() -> list[str]:
        found: list[str] = []
        paginator = store.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=store.settings.bucket, Prefix=base + under, Delimiter="/")
        for page in pages:
            found.extend(item["Prefix"][len(base) :] for item in page.get("CommonPrefixes", []))
        return found

    # S3Store._call: the store's own retry and error translation for a call it lacks.
    return store._call(f"list {base}{under}", listing)


def load_records(store: storage.ObjectStore, namespace: str | None) -> list[dict[str, Any]]:
    keys = record_keys(store, namespace)

    def read(key: str) -> dict[str, Any] | None:
        try:
            loaded = json.loads(store.get_bytes(key))
        except (storage.NotFound, ValueError):
            return None  # deleted meanwhile, or not a record
        if not isinstance(loaded, dict):
            return None
        loaded["_key"] = key
        return loaded

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return [r for r in pool.map(read, keys) if r is not None]


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
