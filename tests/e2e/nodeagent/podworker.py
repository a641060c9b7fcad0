"""The life of one pod on one node, in its own thread.

Init containers run in order, then the containers run concurrently (one
thread each) with the pod's restart policy; every state change is written to
the pod's status subresource. Deletion, activeDeadlineSeconds and agent
shutdown stop the pod's processes; a deleted pod's object is then removed
with gracePeriodSeconds=0, as a kubelet does once its containers are gone.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .containers import Launch, StopSignal, run_once
from .envvars import ConfigError, container_argv, container_env
from .hostpaths import HostPaths
from .kube import JSON, Kube, KubeError
from .logstore import ContainerLog, LogRegistry
from .podstatus import ContainerState, PodView, pod_status
from .procs import ProcessTable
from .volumes import container_mounts, prepare

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 10.0
DEFAULT_GRACE_SECONDS = 30.0
SHUTDOWN_GRACE_SECONDS = 1.0


@dataclass
class NodeContext:
    """What every pod worker on a node shares."""

    kube: Kube
    node: str
    state_dir: Path
    procs: ProcessTable
    host_paths: HostPaths
    logs: LogRegistry
    base_env: Mapping[str, str]


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: JSON) -> None:
        self.ctx = ctx
        self.pod = pod
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.dir = ctx.state_dir / "pods" / self.uid
        spec = pod["spec"]
        self.view = PodView(
            init=[
                ContainerState(c["name"], c.get("image", ""), True, reason="PodInitializing")
                for c in spec.get("initContainers") or []
            ],
            main=[
                ContainerState(
                    c["name"],
                    c.get("image", ""),
                    False,
                    reason="PodInitializing" if spec.get("initContainers") else "ContainerCreating",
                )
                for c in spec.get("containers") or []
            ],
        )
        self._lock = threading.Lock()  # guards view and stop_reason
        self._publish_lock = threading.Lock()  # keeps status writes in order
        self.stop = threading.Event()
        self.stop_reason: str | None = None
        self._grace = DEFAULT_GRACE_SECONDS
        self._gone = threading.Event()  # the API object no longer exists
        self._deleting = threading.Event()  # the API object has a deletionTimestamp
        self._release = threading.Event()  # deleted, gone or agent shutdown: end the worker
        self.thread = threading.Thread(
            target=self._main, name=f"pod-{self.namespace}/{self.name}", daemon=True
        )

    @property
    def path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/pods/{self.name}"

    # --- signals from the watch (never block) ---------------------------------------

    def start(self) -> None:
        self.thread.start()

    def update(self, pod: JSON) -> None:
        self.pod = pod
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            self._deleting.set()
            self._interrupt(
                "deleted", float(grace) if grace is not None else self._termination_grace()
            )
            self._release.set()

    def removed(self) -> None:
        self._gone.set()
        self._interrupt("removed", SHUTDOWN_GRACE_SECONDS)
        self._release.set()

    def shutdown(self) -> None:
        self._interrupt("shutdown", SHUTDOWN_GRACE_SECONDS)
        self._release.set()

    def _interrupt(self, reason: str, grace: float) -> None:
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason, self._grace = reason, grace
            elif reason in ("removed", "shutdown"):
                self._grace = min(self._grace, grace)
            self.stop.set()

    def _termination_grace(self) -> float:
        value = self.pod["spec"].get("terminationGracePeriodSeconds")
        return float(value) if value is not None else DEFAULT_GRACE_SECONDS

    # --- the pod's life --------------------------------------------------------------

    def _main(self) -> None:
        deadline_timer = self._arm_deadline()
        try:
            self._lifecycle()
        except Exception as err:
            log.exception("pod %s/%s failed in the agent", self.namespace, self.name)
            with self._lock:
                self.view.phase, self.view.reason = "Failed", "NodeAgentError"
                self.view.message = f"test node agent error: {err}"
            self._publish()
        finally:
            if deadline_timer:
                deadline_timer.cancel()
        # A finished pod stays (with its logs) until its object is deleted.
        self._release.wait()
        if self._deleting.is_set() and not self._gone.is_set():
            self._delete_object()
        if self._deleting.is_set() or self._gone.is_set():
            self.ctx.logs.drop_pod(self.namespace, self.name, self.uid)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _arm_deadline(self) -> threading.Timer | None:
        seconds = self.pod["spec"].get("activeDeadlineSeconds")
        if seconds is None:
            return None
        started = self.pod.get("status", {}).get("startTime")
        elapsed = time.time() - datetime.fromisoformat(started).timestamp() if started else 0.0
        timer = threading.Timer(
            max(0.0, float(seconds) - elapsed),
            self._interrupt,
            args=("deadline", self._termination_grace()),
        )
        timer.daemon = True
        timer.start()
        return timer

    def _lifecycle(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._publish()
        if self.stop.is_set():
            return self._finish()
        try:
            volumes = prepare(self.ctx.kube, self.pod, self.dir)
        except ConfigError as err:
            return self._fail("CreateContainerConfigError", str(err))
        spec = self.pod["spec"]
        for container, state in zip(spec.get("initContainers") or [], self.view.init, strict=True):
            if not self._run_container(container, state, volumes) or self.stop.is_set():
                return self._finish()
        threads = [
            threading.Thread(
                target=self._run_container,
                args=(c, s, volumes),
                name=f"ctr-{self.name}/{c['name']}",
                daemon=True,
            )
            for c, s in zip(spec["containers"], self.view.main, strict=True)
        ]
        for s in self.view.main:
            s.wait("ContainerCreating")
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self._finish()

    def _fail(self, reason: str, message: str) -> None:
        with self._lock:
            self.view.phase, self.view.reason, self.view.message = "Failed", reason, message
        self._publish()

    def _finish(self) -> None:
        with self._lock:
            view = self.view
            if self.stop_reason == "deadline":
                view.phase, view.reason = "Failed", "DeadlineExceeded"
                view.message = "Pod was active on the node longer than the specified deadline"
            elif all(c.succeeded for c in view.init + view.main):
                view.phase = "Succeeded"
            else:
                view.phase = "Failed"
        self._publish()

    def _restarts(self, state: ContainerState, exit_code: int) -> bool:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        if policy == "Never":
            return False
        if state.init:  # init containers restart on failure only, whatever the policy
            return exit_code != 0
        return policy == "Always" or exit_code != 0

    def _run_container(
        self, container: JSON, state: ContainerState, volumes: dict[str, Path]
    ) -> bool:
        """Run with the restart policy until done or stopped; True if it succeeded."""
        clog = ContainerLog(self.dir / "logs", container["name"], self.uid)
        clog.directory.mkdir(parents=True, exist_ok=True)
        self.ctx.logs.add(self.namespace, self.name, clog)
        backoff = 1.0
        while True:
            try:
                env = container_env(self.ctx.kube, self.pod, container, self.ctx.base_env)
                launch = Launch(
                    argv=container_argv(container, env),
                    env=env,
                    mounts=container_mounts(container, volumes),
                    workdir=container.get("workingDir") or "/",
                    termination_path=container.get("terminationMessagePath")
                    or "/dev/termination-log",
                    fallback_to_logs=container.get("terminationMessagePolicy")
                    == "FallbackToLogsOnError",
                )
            except ConfigError as err:
                with self._lock:
                    state.wait("CreateContainerConfigError", str(err))
                    self.view.phase, self.view.reason = "Failed", "CreateContainerConfigError"
                    self.view.message = str(err)
                self._publish()
                return False

            def started(container_id: str, state: ContainerState = state) -> None:
                with self._lock:
                    state.start(container_id)
                    if not state.init:
                        self.view.phase = "Running"
                self._publish()

            code, message = run_once(
                launch,
                procs=self.ctx.procs,
                host_paths=self.ctx.host_paths,
                container_log=clog,
                scratch=self.dir / f"termination-{container['name']}",
                stop=StopSignal(self.stop, lambda: self._grace),
                on_start=started,
            )
            with self._lock:
                state.terminate(code, message)
            self._publish()
            if self.stop.is_set() or not self._restarts(state, code):
                return code == 0
            with self._lock:
                state.restart()
                state.wait(
                    "CrashLoopBackOff" if code else "Completed",
                    f"back-off {backoff:.0f}s restarting container {state.name}",
                )
            self._publish()
            if self.stop.wait(backoff):
                return False
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    # --- API writes ------------------------------------------------------------------

    def _publish(self) -> None:
        with self._publish_lock:
            with self._lock:
                existing = self.pod.get("status", {}).get("conditions") or []
                status = pod_status(self.view, existing)
            if self._gone.is_set():
                return
            try:
                self.ctx.kube.merge_patch(self.path + "/status", {"status": status})
            except KubeError as err:
                if err.status != 404:
                    log.warning("status of %s/%s: %s", self.namespace, self.name, err)

    def _delete_object(self) -> None:
        try:
            self.ctx.kube.request(
                "DELETE",
                self.path,
                query={"gracePeriodSeconds": 0},
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except KubeError as err:
            if err.status not in (404, 409):
                log.warning("deleting %s/%s: %s", self.namespace, self.name, err)
