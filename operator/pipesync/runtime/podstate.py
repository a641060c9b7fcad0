"""A task pod's status (as the API server reports it) read back as the planner's NodeState.

Pure: a dict in, a state out, so the controller can call it on every watch event and the
rules are tested without a cluster. The pod's shape is the one `pipesync.runtime.pods`
builds: the planner's node key in an annotation, the attempt in a label, the program's
exit code in the `main` container's status and the outputs in the `pipesync-outputs`
sidecar's termination message (one JSON object).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from pipesync.api import times
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import NodeKey, NodeState, Phase
from pipesync.runtime.pods import (
    ANNOTATION_NODE_KEY,
    INPUTS_CONTAINER,
    LABEL_ATTEMPT,
    MAIN_CONTAINER,
    OUTPUTS_CONTAINER,
    parse_node_key,
)

#: Waiting reasons that never resolve by themselves; after `stuck_seconds` they are errors.
STUCK_REASONS = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "InvalidImageName",
        "ErrImageNeverPull",
    }
)
DEFAULT_STUCK_SECONDS = 300.0
#: The sidecar exits 2 when S3 stayed unreachable for its whole patience.
SIDECAR_S3_FAILURE = 2
_MESSAGE_LIMIT = 500

JSON = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class SidecarReport:
    """The `pipesync-outputs` termination message."""

    exit_code: int | None = None
    parameters: Mapping[str, str] = dataclasses.field(default_factory=dict)
    missing: tuple[str, ...] = ()
    uploaded: int = 0
    truncated: bool = False  # parameters did not fit: read them from S3
    error: str = ""
    readable: bool = True  # False: the message was not the agent's JSON


def node_from_pod(
    pod: JSON, *, now: float | None = None, stuck_seconds: float = DEFAULT_STUCK_SECONDS
) -> tuple[NodeKey, NodeState] | None:
    """The node this pod runs and its state; None for a pod that is not a pipesync task pod.

    `now` (seconds since the epoch) lets a pod stuck on an image pull or a bad container
    config for longer than `stuck_seconds` count as an ERROR; without it such a pod is
    simply Running (waiting), which keeps the function free of clocks.
    """
    metadata = pod.get("metadata") or {}
    key = parse_node_key(str((metadata.get("annotations") or {}).get(ANNOTATION_NODE_KEY, "")))
    if key is None:
        return None
    try:
        attempts = int((metadata.get("labels") or {}).get(LABEL_ATTEMPT, "1"))
    except ValueError:
        attempts = 1
    return key, _state(pod, attempts, now, stuck_seconds)


def unschedulable(pod: JSON) -> str:
    """The scheduler's reason a pod still waits for a node, e.g. "0/2 nodes are available:
    2 Insufficient nvidia.com/gpu"; "" once it is placed or when the scheduler has not
    said. Kept apart from the node's state: the task is not failing, it waits, and the
    planner must keep counting it as launched."""
    status = pod.get("status") or {}
    if status.get("phase", "Pending") != "Pending":
        return ""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = str(condition.get("reason") or "Unschedulable")
            detail = str(condition.get("message") or "").strip()
            return _short(f"{reason}: {detail}" if detail else reason)
    return ""


def exit_code(pod: JSON) -> int | None:
    """The exit code of the pod's program (`main`), once it ended; None before."""
    terminated = _terminated(_container_status(pod, MAIN_CONTAINER))
    code = None if terminated is None else terminated.get("exitCode")
    return code if isinstance(code, int) else None


def attempt_of(pod: JSON) -> int | None:
    """The attempt a task pod runs (its label); None when the label is not a number."""
    label = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_ATTEMPT, "")
    return int(label) if str(label).isdigit() else None


def sidecar_report(pod: JSON) -> SidecarReport | None:
    """The sidecar's report once it has terminated; None before, or if it wrote nothing."""
    terminated = _terminated(_container_status(pod, OUTPUTS_CONTAINER))
    if terminated is None:
        return None
    text = str(terminated.get("message") or "").strip()
    if not text:
        return None
    try:
        data = json.loads(text.splitlines()[-1])
    except ValueError:
        return SidecarReport(error=_short(text), readable=False)
    if not isinstance(data, Mapping):
        return SidecarReport(error=_short(text), readable=False)
    parameters = data.get("parameters") or {}
    code = data.get("exitCode")
    return SidecarReport(
        exit_code=code if isinstance(code, int) else None,
        parameters={str(k): str(v) for k, v in parameters.items()}
        if isinstance(parameters, Mapping)
        else {},
        missing=tuple(str(m) for m in data.get("missing") or ()),
        uploaded=int(data.get("uploaded") or 0),
        truncated=bool(data.get("truncated", False)),
        error=str(data.get("error") or ""),
    )


# --- the rules ----------------------------------------------------------------------------


def _state(pod: JSON, attempts: int, now: float | None, stuck_seconds: float) -> NodeState:
    status = pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    main = _container_status(pod, MAIN_CONTAINER)
    sidecar = _container_status(pod, OUTPUTS_CONTAINER)
    main_done = _terminated(main)
    sidecar_done = _terminated(sidecar)
    finished_at = _finished_at(pod)

    def failed(kind: FailureKind, message: str) -> NodeState:
        return NodeState(
            Phase.FAILED,
            attempts=attempts,
            finished_at=finished_at,
            failure=kind,
            message=_short(message),
        )

    if phase == "Failed" and status.get("reason") == "DeadlineExceeded":
        return failed(FailureKind.TIMED_OUT, "the task ran past its timeout")

    inputs = _terminated(_container_status(pod, INPUTS_CONTAINER))
    if inputs is not None and inputs.get("exitCode") != 0:
        detail = str(inputs.get("message") or inputs.get("reason") or "").strip()
        return failed(FailureKind.ERROR, "fetching the input artifacts failed: " + detail)

    if main_done is None:
        if phase in ("Failed", "Succeeded"):  # ended without the program: evicted, lost
            reason = status.get("reason") or "the pod ended"
            detail = status.get("message") or "before the task's program ran"
            return failed(FailureKind.ERROR, f"{reason}: {detail}")
        stuck = _stuck(pod, status, now, stuck_seconds)
        if stuck:
            return failed(FailureKind.ERROR, stuck)
        return NodeState(Phase.RUNNING, attempts=attempts)

    if sidecar_done is None:
        if phase in ("Failed", "Succeeded"):
            return failed(FailureKind.ERROR, "the outputs sidecar never ran")
        stuck = _stuck(pod, status, now, stuck_seconds)
        if stuck:
            return failed(FailureKind.ERROR, stuck)
        return NodeState(Phase.RUNNING, attempts=attempts)  # uploading the outputs

    if phase not in ("Failed", "Succeeded"):
        # Both containers ended, but the pod is over only when its kubelet says so: until
        # then it still counts against parallelism caps and GPU capacity.
        return NodeState(Phase.RUNNING, attempts=attempts)

    code = main_done.get("exitCode")
    report = sidecar_report(pod)
    if code != 0:
        reason = main_done.get("reason")
        text = f"exit code {code}" + (f" ({reason})" if reason and reason != "Error" else "")
        log_tail = str(main_done.get("message") or "").strip()
        return failed(FailureKind.FAILED, f"{text}: {log_tail}" if log_tail else text)
    sidecar_code = sidecar_done.get("exitCode")
    if sidecar_code != 0:
        detail = (report.error if report else "") or str(sidecar_done.get("reason") or "")
        what = (
            "S3 stayed unreachable"
            if sidecar_code == SIDECAR_S3_FAILURE
            else (f"the outputs sidecar failed with exit code {sidecar_code}")
        )
        return failed(FailureKind.ERROR, f"{what}: {detail}" if detail else what)
    if report is None or not report.readable:
        detail = f": {report.error}" if report else ""
        return failed(FailureKind.ERROR, "the outputs sidecar left no readable report" + detail)
    if report.missing:
        names = ", ".join(_output_name(m) for m in report.missing)
        return failed(FailureKind.FAILED, f"did not write declared {names}")
    message = (
        "output parameters truncated in the pod status; read them from S3"
        if (report.truncated)
        else ""
    )
    return NodeState(
        Phase.SUCCEEDED,
        attempts=attempts,
        finished_at=finished_at,
        outputs=dict(report.parameters),
        message=message,
    )


def _output_name(missing: str) -> str:
    """The agent names missing outputs `parameters/NAME` or `artifacts/NAME`."""
    kind, _, name = missing.partition("/")
    if kind == "parameters" and name:
        return f"output parameter {name!r}"
    if kind == "artifacts" and name:
        return f"output artifact {name!r}"
    return f"output {missing!r}"


def _stuck(pod: JSON, status: JSON, now: float | None, stuck_seconds: float) -> str:
    """Why the pod is stuck for good, or "" (not stuck, or not for long enough yet)."""
    if now is None:
        return ""
    started = times.instant(status.get("startTime")) or times.instant(
        (pod.get("metadata") or {}).get("creationTimestamp")
    )
    if started is None or now - started < stuck_seconds:
        return ""
    for entry in _all_statuses(pod):
        waiting = (entry.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_REASONS:
            detail = waiting.get("message") or ""
            return f"container {entry.get('name')!r}: {waiting['reason']}" + (
                f": {detail}" if detail else ""
            )
    return ""


def _all_statuses(pod: JSON) -> list[JSON]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _container_status(pod: JSON, name: str) -> JSON | None:
    for entry in _all_statuses(pod):
        if entry.get("name") == name:
            return entry
    return None


def _terminated(entry: JSON | None) -> JSON | None:
    if entry is None:
        return None
    terminated = (entry.get("state") or {}).get("terminated")
    return terminated if isinstance(terminated, Mapping) else None


def _finished_at(pod: JSON) -> float | None:
    """When the program ended (main's finishedAt), else the latest container end."""
    main = _terminated(_container_status(pod, MAIN_CONTAINER))
    if main is not None and times.instant(main.get("finishedAt")) is not None:
        return times.instant(main.get("finishedAt"))
    moments = [
        times.instant(t.get("finishedAt"))
        for t in (_terminated(entry) for entry in _all_statuses(pod))
        if t is not None
    ]
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
