"""The runs list from a watch, not a list per request.

Why: the runs page polls, and listing a namespace of 5,000 Runs with their status costs
the API server (and this process) megabytes per poll. One list and a watch per namespace
keep a row per Run in memory (the row only, not the object: memory matters in the
operator), so a poll filters a few thousand small dicts.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

from pipesync.kube.client import ApiException
from pipesync.kube.protocol import RUNS, Kube
from pipesync.ui import views

_log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

WATCH_SECONDS = 240
RETRY_SECONDS = 2.0


class RunRows:
    """Rows of one namespace's Runs, kept current by a watch in a daemon thread."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        row: Callable[[Mapping[str, Any]], dict[str, Any]] = views.run_row,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.row = row
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._version = ""
        self._thread = threading.Thread(target=self._run, name=f"ui-runs-{namespace}", daemon=True)
        self._thread.start()

    def rows(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        if not self._ready.wait(timeout):
            raise TimeoutError(f"runs of namespace {self.namespace} not listed yet")
        with self._lock:
            return list(self._rows.values())

    def _list(self) -> None:
        items, version = self.kube.list_objects_with_version(RUNS, self.namespace)
        rows = {item["metadata"]["name"]: self.row(item) for item in items}
        with self._lock:
            self._rows = rows
            self._version = version
        self._ready.set()

    def _run(self) -> None:
        while True:
            try:
                if not self._version:
                    self._list()
                self._watch()
            except ApiException as error:
                if error.status == 410:  # our resourceVersion is too old: list again
                    self._version = ""
                    continue
                _log.warning("ui: watching runs of %s: %s", self.namespace, error.reason)
                self._version = ""
                time.sleep(RETRY_SECONDS)
            except Exception as error:  # the connection dropped: list again after a pause
                _log.warning("ui: watching runs of %s: %s", self.namespace, error)
                self._version = ""
                time.sleep(RETRY_SECONDS)

    def _watch(self) -> None:
        stream = self.kube.watch_objects(RUNS, self.namespace, self._version, WATCH_SECONDS)
        for event in stream:
            obj, kind = event["object"], event["type"]
            if kind == "ERROR":
                if isinstance(obj, Mapping) and obj.get("code") == 410:
                    self._version = ""
                return
            metadata = obj.get("metadata") or {}
            self._version = metadata.get("resourceVersion", self._version)
            if kind == "BOOKMARK":
                continue
            with self._lock:
                if kind == "DELETED":
                    self._rows.pop(str(metadata.get("name")), None)
                else:
                    self._rows[metadata["name"]] = self.row(obj)


class RunCaches:
    """One RunRows per namespace, started on first use."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._caches: dict[str, RunRows] = {}
        self._lock = threading.Lock()

    def rows(self, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            cache = self._caches.get(namespace)
            if cache is None:
                cache = self._caches[namespace] = RunRows(self.kube, namespace)
        return cache.rows()


class Lru(Generic[K, V]):
    """At most `size` entries, each until its expiry time; when full, the entry used
    longest ago goes. Why not clear when full: a flood of new keys (junk tokens) would
    then throw out the entries in use, and every visitor would cost a review again.
    Thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: collections.OrderedDict[K, tuple[float, V]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, now: float) -> tuple[bool, V | None]:
        """(found, value): found only while the entry has not expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if entry[0] <= now:
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, entry[1]

    def put(self, key: K, value: V, expires: float) -> None:
        with self._lock:
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
