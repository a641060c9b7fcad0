"""Reading run records back from the object store: `pipesync history` and the web UI's
archived runs (records outlive their Runs; pipesync.observe.records writes them)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json

from pipesync.api.runstatus import RunRecord
from pipesync.engine import layout
from pipesync.runtime import storage

RECORD_NAME = "run.json"


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


@dataclasses.dataclass(frozen=True)
class StoredRecord:
    """A run record and the key it was read from."""

    key: str
    record: RunRecord


def load_records(store: storage.ObjectStore, namespace: str | None) -> list[StoredRecord]:
    """Every run record of the namespace (None: of all), from S3 or a local work
    directory (the same layout); objects that are not run records are passed over."""
    keys = record_keys(store, namespace)

    def read(key: str) -> StoredRecord | None:
        try:
            loaded = json.loads(store.get_bytes(key))
        except (storage.NotFound, ValueError):
            return None  # deleted meanwhile, or not JSON
        record = RunRecord.from_json(loaded) if isinstance(loaded, dict) else None
        return None if record is None else StoredRecord(key, record)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return [r for r in pool.map(read, keys) if r is not None]
