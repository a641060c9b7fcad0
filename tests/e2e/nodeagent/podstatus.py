"""Pod status documents, built the way a kubelet reports them.

Pure functions of the agent's view of a pod's containers, so the exact shape
(container states, conditions, phases) can be read and tested in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .kube import JSON, now_rfc3339

HOST_IP = "127.0.0.1"


@dataclass
class ContainerState:
    """What the agent knows about one container of a pod."""

    name: str
    image: str
    init: bool
    state: str = "waiting"  # waiting | running | terminated
    reason: str = ""
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    last_state: JSON = field(default_factory=dict)
    container_id: str = ""

    def wait(self, reason: str, message: str = "") -> None:
        self.state, self.reason, self.message = "waiting", reason, message

    def start(self, container_id: str) -> None:
        self.state, self.reason, self.message = "running", "", ""
        self.started_at, self.finished_at, self.exit_code = now_rfc3339(), None, None
        self.container_id = container_id

    def terminate(self, exit_code: int, message: str) -> None:
        self.state, self.exit_code, self.message = "terminated", exit_code, message
        self.reason = "Completed" if exit_code == 0 else "Error"
        self.finished_at = now_rfc3339()

    def restart(self) -> None:
        """Keep the finished run as lastState; the next run starts from waiting."""
        self.last_state = {"terminated": self._terminated()}
        self.restart_count += 1

    def _terminated(self) -> JSON:
        doc: JSON = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.message:
            doc["message"] = self.message
        return doc

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0

    def to_status(self) -> JSON:
        state: JSON
        if self.state == "running":
            state = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            state = {"terminated": self._terminated()}
        else:
            state = {
                "waiting": {"reason": self.reason}
                | ({"message": self.message} if self.message else {})
            }
        doc: JSON = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.state == "running" and not self.init,
            "started": self.state == "running",
            "restartCount": self.restart_count,
            "state": state,
            "lastState": self.last_state,
        }
        if self.container_id:
            doc["containerID"] = self.container_id
        return doc


@dataclass
class PodView:
    """The agent's view of a whole pod."""

    init: list[ContainerState]
    main: list[ContainerState]
    start_time: str = field(default_factory=now_rfc3339)
    phase: str = "Pending"
    reason: str = ""
    message: str = ""

    @property
    def initialized(self) -> bool:
        return all(c.succeeded for c in self.init)


def _condition(
    kind: str, ok: bool, reason: str = "", message: str = "", previous: JSON | None = None
) -> JSON:
    status = "True" if ok else "False"
    doc: JSON = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now_rfc3339(),
    }
    if previous and previous.get("status") == status:
        doc["lastTransitionTime"] = previous.get("lastTransitionTime")
    if reason:
        doc["reason"] = reason
    if message:
        doc["message"] = message
    return doc


def conditions(view: PodView, existing: list[JSON]) -> list[JSON]:
    """Our conditions, keeping those other components own (PodScheduled, DisruptionTarget...)."""
    before = {c["type"]: c for c in existing}
    done_reason = "PodCompleted" if view.phase in ("Succeeded", "Failed") else ""
    pending_init = [c.name for c in view.init if not c.succeeded]
    unready = [c.name for c in view.main if c.state != "running"]
    ready = not unready and view.initialized
    ours = [
        _condition(
            "PodReadyToStartContainers",
            view.phase != "Pending" or any(c.state != "waiting" for c in view.init + view.main),
            previous=before.get("PodReadyToStartContainers"),
        ),
        _condition(
            "Initialized",
            view.initialized,
            "" if view.initialized else "ContainersNotInitialized",
            ""
            if view.initialized
            else f"containers with incomplete status: [{' '.join(pending_init)}]",
            before.get("Initialized"),
        ),
        _condition(
            "Ready",
            ready,
            "" if ready else done_reason or "ContainersNotReady",
            ""
            if ready or done_reason
            else f"containers with unready status: [{' '.join(unready)}]",
            before.get("Ready"),
        ),
        _condition(
            "ContainersReady",
            ready,
            "" if ready else done_reason or "ContainersNotReady",
            ""
            if ready or done_reason
            else f"containers with unready status: [{' '.join(unready)}]",
            before.get("ContainersReady"),
        ),
    ]
    mine = {c["type"] for c in ours}
    return [c for c in existing if c["type"] not in mine] + ours


def pod_status(view: PodView, existing_conditions: list[JSON]) -> JSON:
    status: JSON = {
        "phase": view.phase,
        "conditions": conditions(view, existing_conditions),
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": HOST_IP,
        "podIPs": [{"ip": HOST_IP}],
        "startTime": view.start_time,
        "containerStatuses": [c.to_status() for c in view.main],
        "reason": view.reason or None,
        "message": view.message or None,
    }
    if view.init:
        status["initContainerStatuses"] = [c.to_status() for c in view.init]
    return status
