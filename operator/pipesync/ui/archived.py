"""An object store as a RunSource: the run records, logs and artifacts the operator keeps.

The keys are engine.layout's, the same in S3 and in a local directory, so this source
reads a LocalStore as well as an S3Store (`log_source` then says where logs came from).
A finished run's record no longer changes, so the list keeps the ones it read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipesync.controllers import runs
from pipesync.engine import layout
from pipesync.runtime import archive, storage
from pipesync.ui import views
from pipesync.ui.auth import Access
from pipesync.ui.responses import streamed
from pipesync.ui.sources import MAX_LOG_BYTES, FoundRun


class ArchivedRuns:
    """Runs from their records in an object store (a RunSource)."""

    live = False

    def __init__(self, store: storage.ObjectStore, log_source: str = "s3") -> None:
        self.store = store
        self.log_source = log_source
        self._finished: dict[str, dict[str, Any]] = {}

    def records(self, namespace: str) -> list[dict[str, Any]]:
        """Every run record of the namespace (finished ones are cached: a finished run's
        record no longer changes)."""
        found = []
        for key in archive.record_keys(self.store, namespace):
            record = self._finished.get(key)
            if record is None:
                try:
                    record = json.loads(self.store.get_bytes(key))
                except (storage.NotFound, ValueError):
                    continue
                if not isinstance(record, dict):
                    continue
                if (record.get("status") or {}).get("phase") in runs.FINISHED:
                    self._finished[key] = record
            found.append(record)
        return found

    def rows(self, namespace: str) -> list[dict[str, Any]]:
        return [
            views.run_row(views.record_as_run(record), archived=True)
            for record in self.records(namespace)
        ]

    def record(self, namespace: str, name: str) -> dict[str, Any] | None:
        key = layout.record_key(namespace, name)
        try:
            record: dict[str, Any] = json.loads(self.store.get_bytes(key))
        except (storage.NotFound, ValueError):
            return None
        return record

    def find(self, namespace: str, name: str) -> FoundRun | None:
        record = self.record(namespace, name)
        if record is None:
            return None
        return FoundRun(views.record_as_run(record), record, archived=True)

    def log_access(self, namespace: str) -> Access | None:
        return None  # getting the run is enough: its logs were mirrored with it

    def log(
        self, namespace: str, run: str, task: str, instance: int | None, attempt: int
    ) -> Iterator[bytes] | None:
        key = layout.log_key(layout.node_prefix(namespace, run, task, instance), attempt)
        try:
            chunks = self.store.get_chunks(key, last=MAX_LOG_BYTES)
        except storage.NotFound:
            return None
        return streamed(b"", chunks, key)

    def artifact(
        self, namespace: str, run: str, task: str, instance: int | None, artifact: str
    ) -> tuple[str, Iterator[bytes]] | None:
        key = storage.check_key(
            layout.output_artifact_key(layout.node_prefix(namespace, run, task, instance), artifact)
        )
        try:
            return key, self.store.get_chunks(key)
        except storage.NotFound:
            return None
