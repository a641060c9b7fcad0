"""The cluster as a RunSource: the Runs that exist now, their pins and their pods' logs.

The list comes from a watch per namespace (cache.RunCaches), not a list per poll. Reads
use this process's credentials: the routes check the person's access before they ask.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipesync.controllers import runs
from pipesync.controllers.kube import RUNS, Kube
from pipesync.ui.auth import Access
from pipesync.ui.cache import RunCaches
from pipesync.ui.sources import MAX_LOG_BYTES, FoundRun


class ClusterRuns:
    """Runs from the API server (a RunSource)."""

    live = True
    log_source = "pod"

    def __init__(self, kube: Kube, caches: RunCaches | None = None) -> None:
        self.kube = kube
        self.caches = RunCaches(kube.custom) if caches is None else caches

    def rows(self, namespace: str) -> list[dict[str, Any]]:
        return self.caches.rows(namespace)

    def find(self, namespace: str, name: str) -> FoundRun | None:
        run = self.kube.get_object(RUNS, namespace, name)
        if run is None:
            return None
        status = run.get("status") or {}
        return FoundRun(
            run,
            None,
            archived=False,
            pinned=self.pinned(namespace, name),
            wants_record=bool(status.get("tasksTruncated") or status.get("phase") in runs.FINISHED),
        )

    def pinned(self, namespace: str, name: str) -> dict[str, Any] | None:
        """What the run was pinned to: {"spec": ..., "pipeline": {version, commit, ...}}."""
        stored = self.kube.get_config_map(namespace, runs.pinned_config_name(name))
        if stored is None or runs.SPEC_KEY not in stored:
            return None
        try:
            saved = json.loads(stored[runs.SPEC_KEY])
        except ValueError:
            return None
        if not isinstance(saved, dict) or not isinstance(saved.get("spec"), dict):
            return None
        return saved

    def log_access(self, namespace: str) -> Access | None:
        return Access("get", "pods", namespace, "log", group="")

    def log(
        self, namespace: str, run: str, task: str, instance: int | None, attempt: int
    ) -> bytes | None:
        """From the attempt's pod, while it exists (of a task itself, not of its forEach
        instances, when `instance` is None)."""
        selector = f"pipesync.io/run={run},pipesync.io/task={task},pipesync.io/attempt={attempt}"
        if instance is not None:
            selector += f",pipesync.io/instance={instance}"
        for pod in self.kube.list_pods(namespace, selector):
            labels = (pod.get("metadata") or {}).get("labels") or {}
            if instance is None and "pipesync.io/instance" in labels:
                continue
            data = self.kube.read_pod_log(
                namespace, pod["metadata"]["name"], "main", limit_bytes=MAX_LOG_BYTES
            )
            if data is not None:
                return data
        return None

    def artifact(
        self, namespace: str, run: str, task: str, instance: int | None, artifact: str
    ) -> tuple[str, Iterator[bytes]] | None:
        return None  # artifacts live in the object store only
