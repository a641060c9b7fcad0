"""Watches the pods bound to one node and hands them to pod workers.

List, then watch from the list's resourceVersion; on 410 Gone or a broken
connection, list again and reconcile (a pod missing from the new list was
deleted while we were not watching). The loop only dispatches: all per-pod
work happens in the workers' own threads, so a slow pod never delays events.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import quote

from .kube import JSON, Kube, KubeError, WatchExpired
from .podworker import NodeContext, PodWorker

log = logging.getLogger(__name__)

WATCH_SECONDS = 60
RETRY_SECONDS = 1.0


class PodManager:
    """The workers of one node, by pod uid."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()

    def sync(self, pod: JSON) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self.workers.get(uid)
            if worker is None:
                worker = self._adopt(pod)
                if worker is None:
                    return
                self.workers[uid] = worker
                worker.start()
        worker.update(pod)

    def _adopt(self, pod: JSON) -> PodWorker | None:
        phase = pod.get("status", {}).get("phase", "Pending")
        if phase in ("Succeeded", "Failed"):
            return None  # finished before this agent started: nothing to run
        return PodWorker(self.ctx, pod)

    def removed(self, uid: str) -> None:
        with self._lock:
            worker = self.workers.pop(uid, None)
        if worker is not None:
            worker.removed()

    def reconcile(self, pods: list[JSON]) -> None:
        present = {p["metadata"]["uid"] for p in pods}
        with self._lock:
            vanished = [uid for uid in self.workers if uid not in present]
        for uid in vanished:
            self.removed(uid)
        for pod in pods:
            self.sync(pod)

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown()
        for worker in workers:
            worker.thread.join(timeout)


def watch_pods(kube: Kube, manager: PodManager, stop: threading.Event) -> None:
    """Keep `manager` in sync with the pods bound to its node until `stop`."""
    path = "/api/v1/pods"
    selector = quote(f"spec.nodeName={manager.ctx.node}")
    while not stop.is_set():
        try:
            listed = kube.get(path, fieldSelector=f"spec.nodeName={manager.ctx.node}")
            manager.reconcile(listed.get("items") or [])
            version = listed["metadata"]["resourceVersion"]
            while not stop.is_set():
                for event in kube.watch(
                    path,
                    version,
                    timeout_seconds=WATCH_SECONDS,
                    fieldSelector=f"spec.nodeName={manager.ctx.node}",
                ):
                    obj = event["object"]
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        manager.sync(obj)
                    elif event["type"] == "DELETED":
                        manager.removed(obj["metadata"]["uid"])
                    if stop.is_set():
                        return
        except WatchExpired:
            log.info("pod watch of %s expired; relisting", selector)
        except (KubeError, OSError, ValueError) as err:
            log.warning("pod watch of %s broke (%s); relisting", manager.ctx.node, err)
            stop.wait(RETRY_SECONDS)
        except Exception:
            # urllib3 raises its own hierarchy on dropped connections: relist on anything.
            log.exception("pod watch of %s failed; relisting", manager.ctx.node)
            stop.wait(RETRY_SECONDS)
