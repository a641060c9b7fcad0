"""The one reader of a task pod as the API server reports it: a frozen `PodState`, and the
rules that turn it into the planner's NodeState.

Pure: a dict in, a state out, so the controller can call it on every watch event and the
rules are tested without a cluster. Everything else that looks at a pod (the run
daemons' pod cache, the metrics, the S3 mirror) takes the `PodState` read here instead of
reading the pod's JSON again. The pod's shape is the one `pipesync.runtime.pods` builds:
the planner's node key in an annotation, the task, instance and attempt in labels, the
program's exit code in the `main` container's status and the outputs in the
`pipesync-outputs` sidecar's termination message (one JSON object).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from pipesync.api import times
from pipesync.api.conventions import (
    ANNOTATION_CACHE_KEY,
    ANNOTATION_NODE_KEY,
    INPUTS_CONTAINER,
    LABEL_ATTEMPT,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_POOL,
    LABEL_RUN,
    LABEL_TASK,
    MAIN_CONTAINER,
    MANAGED_BY,
    OUTPUTS_CONTAINER,
)
from pipesync.api.model import API_VERSION
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import NodeKey, NodeState, Phase
from pipesync.runtime.agent import UPLOAD_STORE_FAILED, UPLOAD_STORE_REFUSED
from pipesync.runtime.placement import GPU_RESOURCE
from pipesync.runtime.pods import parse_node_key

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
#: What the upload sidecar's exit code says went wrong with S3.
_SIDECAR_FAILURES: dict[int | None, str] = {
    UPLOAD_STORE_FAILED: "S3 stayed unreachable",
    UPLOAD_STORE_REFUSED: "S3 refused the task's credentials (the namespace's S3 Secret "
    "or its policy: see docs/install.md, Tenancy)",
}
_MESSAGE_LIMIT = 500
#: Task names are DNS-1123 labels (schemas/common.schema.json `dnsLabel`).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_POD_ENDED = frozenset({"Succeeded", "Failed"})

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
    digests: Mapping[str, str] = dataclasses.field(default_factory=dict)  # by artifact


@dataclasses.dataclass(frozen=True)
class ContainerEnd:
    """A container's `state.terminated`, as its kubelet wrote it."""

    exit_code: int | None
    reason: str = ""
    message: str = ""
    started_at: str = ""  # RFC 3339 as written: the S3 record keeps the text
    finished_at: str = ""

    @property
    def finished(self) -> float | None:
        """`finished_at` in seconds since the epoch; None when absent or unreadable."""
        return times.instant(self.finished_at or None)


@dataclasses.dataclass(frozen=True)
class ContainerState:
    """One entry of the pod's initContainerStatuses or containerStatuses."""

    name: str
    init: bool  # an init container (the inputs fetcher), not a regular one
    waiting_reason: str = ""
    waiting_message: str = ""
    ended: ContainerEnd | None = None


@dataclasses.dataclass(frozen=True)
class PodState:
    """A task pod as pipesync reads it: what the controller, the run daemons' pod cache,
    the metrics and the S3 mirror need, and nothing else (commands, env and volumes stay
    out of memory while the pod cache holds every pod of every running run)."""

    name: str
    namespace: str
    uid: str
    resource_version: int  # 0 when absent: a newer event always wins over it
    #: The operator's labels and annotation (see pipesync.runtime.pods).
    run: str  # pipesync.io/run: the Run's name
    task: str | None  # pipesync.io/task; None: no such label
    instance: int | None  # pipesync.io/instance: the forEach item; None: not an item
    attempt: int  # pipesync.io/attempt; 1 when absent or not a number
    #: The task, instance and attempt labels name a node (a DNS-label task, digits):
    #: only then may the labels become an S3 key.
    names_a_node: bool
    node_key: NodeKey | None  # pipesync.io/node-key: the planner's node; None: not a task pod
    cache_key: str  # pipesync.io/cache-key: the attempt's cache key; "" when not cached
    managed: bool  # app.kubernetes.io/managed-by is pipesync
    controller_run_uid: str  # uid of the pipesync Run controlling the pod; "" for none
    deleting: bool  # metadata.deletionTimestamp is set
    created_at: float | None
    phase: str  # status.phase as reported; "" before the API server set one
    reason: str
    message: str
    started_at: float | None  # status.startTime
    #: The scheduler's reason the pod still waits for a node; "" once placed (unschedulable).
    scheduling: str
    node_name: str
    pool: str | None  # the pipesync.io/pool node selector
    gpus: float  # the containers' nvidia.com/gpu limits, summed
    containers: tuple[ContainerState, ...]  # init containers first, as the kubelet lists them

    def created_for(self, run_uid: str) -> bool:
        """The pod is one `build_pod` made for the Run with this uid: its controlling owner is
        that Run and it carries the operator's label. Anything else in the namespace (a pod
        of an earlier Run of the same name, or one made by hand with pipesync's labels) is
        not the operator's to read outputs for or to write logs of."""
        return self.managed and bool(run_uid) and self.controller_run_uid == run_uid

    def container(self, name: str) -> ContainerState | None:
        for entry in self.containers:
            if entry.name == name:
                return entry
        return None

    def ended(self, name: str) -> ContainerEnd | None:
        """The named container's end; None while it runs, waits or is not there."""
        entry = self.container(name)
        return None if entry is None else entry.ended

    @property
    def over(self) -> bool:
        """The kubelet says the pod is over (Succeeded or Failed)."""
        return self.phase in _POD_ENDED

    @property
    def pending(self) -> bool:
        """Not yet running: unscheduled or starting (no phase yet counts as Pending)."""
        return self.phase in ("", "Pending")

    @property
    def last_finished_at(self) -> float | None:
        """The latest end of any of its containers; None before any ended."""
        known = [end.finished for end in self._ends() if end.finished is not None]
        return max(known) if known else None

    @property
    def logs_final(self) -> bool:
        """The pod's logs are final: it ended, or its program and upload sidecar both ended."""
        if self.over:
            return True
        has_sidecar = any(c.name == OUTPUTS_CONTAINER and not c.init for c in self.containers)
        return self.ended(MAIN_CONTAINER) is not None and (
            not has_sidecar or self.ended(OUTPUTS_CONTAINER) is not None
        )

    def _ends(self) -> list[ContainerEnd]:
        return [entry.ended for entry in self.containers if entry.ended is not None]


def read_pod(pod: JSON) -> PodState:
    """The one place a pod's JSON is read (a full pod from the API or a watch event)."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    task = labels.get(LABEL_TASK)
    instance, attempt = labels.get(LABEL_INSTANCE), str(labels.get(LABEL_ATTEMPT, "1"))
    phase = str(status.get("phase") or "")
    return PodState(
        name=str(metadata.get("name") or ""),
        namespace=str(metadata.get("namespace") or ""),
        uid=str(metadata.get("uid") or ""),
        resource_version=_number(metadata.get("resourceVersion"), 0),
        run=str(labels.get(LABEL_RUN) or ""),
        task=None if task is None else str(task),
        instance=int(instance) if instance is not None and str(instance).isdigit() else None,
        attempt=_number(attempt, 1),
        names_a_node=bool(_DNS_LABEL.match(str(task or "")))
        and attempt.isdigit()
        and (instance is None or str(instance).isdigit()),
        node_key=parse_node_key(str(annotations.get(ANNOTATION_NODE_KEY, ""))),
        cache_key=_cache_key(annotations.get(ANNOTATION_CACHE_KEY)),
        managed=labels.get(LABEL_MANAGED_BY) == MANAGED_BY,
        controller_run_uid=_controller_run_uid(metadata),
        deleting=bool(metadata.get("deletionTimestamp")),
        created_at=times.instant(metadata.get("creationTimestamp")),
        phase=phase,
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        started_at=times.instant(status.get("startTime")),
        scheduling=_scheduling(phase, status),
        node_name=str(spec.get("nodeName") or ""),
        pool=_pool(spec),
        gpus=_gpus(spec),
        containers=tuple(
            _container(entry, init)
            for init, field in ((True, "initContainerStatuses"), (False, "containerStatuses"))
            for entry in status.get(field) or ()
        ),
    )


def node_from_pod(
    pod: JSON | PodState,
    *,
    now: float | None = None,
    stuck_seconds: float = DEFAULT_STUCK_SECONDS,
) -> tuple[NodeKey, NodeState] | None:
    """The node this pod runs and its state; None for a pod that is not a pipesync task pod.

    `now` (seconds since the epoch) lets a pod stuck on an image pull or a bad container
    config for longer than `stuck_seconds` count as an ERROR; without it such a pod is
    simply Running (waiting), which keeps the function free of clocks.
    """
    state = _parsed(pod)
    if state.node_key is None:
        return None
    return state.node_key, _state(state, now, stuck_seconds)


def unschedulable(pod: JSON | PodState) -> str:
    """The scheduler's reason a pod still waits for a node, e.g. "0/2 nodes are available:
    2 Insufficient nvidia.com/gpu"; "" once it is placed or when the scheduler has not
    said. Kept apart from the node's state: the task is not failing, it waits, and the
    planner must keep counting it as launched."""
    return _parsed(pod).scheduling


def sidecar_report(pod: JSON | PodState) -> SidecarReport | None:
    """The sidecar's report once it has terminated; None before, or if it wrote nothing."""
    terminated = _parsed(pod).ended(OUTPUTS_CONTAINER)
    if terminated is None:
        return None
    text = terminated.message.strip()
    if not text:
        return None
    try:
        data = json.loads(text.splitlines()[-1])
    except ValueError:
        return SidecarReport(error=_short(text), readable=False)
    if not isinstance(data, Mapping):
        return SidecarReport(error=_short(text), readable=False)
    parameters = data.get("parameters") or {}
    digests = data.get("digests")
    code = data.get("exitCode")
    return SidecarReport(
        digests={str(k): v for k, v in digests.items() if isinstance(v, str) and _SHA256.match(v)}
        if isinstance(digests, Mapping)
        else {},
        exit_code=code if isinstance(code, int) else None,
        parameters={str(k): str(v) for k, v in parameters.items()}
        if isinstance(parameters, Mapping)
        else {},
        missing=tuple(str(m) for m in data.get("missing") or ()),
        uploaded=int(data.get("uploaded") or 0),
        truncated=bool(data.get("truncated", False)),
        error=str(data.get("error") or ""),
    )


# --- reading the JSON ---------------------------------------------------------------------


def _parsed(pod: JSON | PodState) -> PodState:
    return pod if isinstance(pod, PodState) else read_pod(pod)


def _cache_key(value: Any) -> str:
    return value if isinstance(value, str) and _SHA256.match(value) else ""


def _number(text: Any, default: int) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _controller_run_uid(metadata: JSON) -> str:
    # The API server allows one controller reference per object: the first is the one.
    group = API_VERSION.split("/")[0] + "/"
    for owner in metadata.get("ownerReferences") or ():
        if (
            owner.get("kind") == "Run"
            and owner.get("controller") is True
            and str(owner.get("apiVersion", "")).startswith(group)
        ):
            return str(owner.get("uid") or "")
    return ""


def _scheduling(phase: str, status: JSON) -> str:
    if phase not in ("", "Pending"):
        return ""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = str(condition.get("reason") or "Unschedulable")
            detail = str(condition.get("message") or "").strip()
            return _short(f"{reason}: {detail}" if detail else reason)
    return ""


def _pool(spec: JSON) -> str | None:
    selected = (spec.get("nodeSelector") or {}).get(LABEL_POOL)
    return str(selected) if selected else None


def _gpus(spec: JSON) -> float:
    total = 0.0
    for container in spec.get("containers") or ():
        limit = ((container.get("resources") or {}).get("limits") or {}).get(GPU_RESOURCE)
        with contextlib.suppress(TypeError, ValueError):
            total += float(limit or 0)
    return total


def _container(entry: JSON, init: bool) -> ContainerState:
    state = entry.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated")
    ended = None
    if isinstance(terminated, Mapping):
        code = terminated.get("exitCode")
        ended = ContainerEnd(
            exit_code=code if isinstance(code, int) else None,
            reason=str(terminated.get("reason") or ""),
            message=str(terminated.get("message") or ""),
            started_at=str(terminated.get("startedAt") or ""),
            finished_at=str(terminated.get("finishedAt") or ""),
        )
    return ContainerState(
        name=str(entry.get("name") or ""),
        init=init,
        waiting_reason=str(waiting.get("reason") or ""),
        waiting_message=str(waiting.get("message") or ""),
        ended=ended,
    )


# --- the rules ----------------------------------------------------------------------------


def _state(pod: PodState, now: float | None, stuck_seconds: float) -> NodeState:
    attempts = pod.attempt
    phase = pod.phase or "Pending"
    main_done = pod.ended(MAIN_CONTAINER)
    sidecar_done = pod.ended(OUTPUTS_CONTAINER)
    finished_at = _finished_at(pod)

    def failed(kind: FailureKind, message: str) -> NodeState:
        return NodeState(
            Phase.FAILED,
            attempts=attempts,
            finished_at=finished_at,
            failure=kind,
            message=_short(message),
        )

    if phase == "Failed" and pod.reason == "DeadlineExceeded":
        return failed(FailureKind.TIMED_OUT, "the task ran past its timeout")

    inputs = pod.ended(INPUTS_CONTAINER)
    if inputs is not None and inputs.exit_code != 0:
        detail = (inputs.message or inputs.reason).strip()
        return failed(FailureKind.ERROR, "fetching the input artifacts failed: " + detail)

    if main_done is None:
        if pod.over:  # ended without the program: evicted, lost
            reason = pod.reason or "the pod ended"
            detail = pod.message or "before the task's program ran"
            return failed(FailureKind.ERROR, f"{reason}: {detail}")
        stuck = _stuck(pod, now, stuck_seconds)
        if stuck:
            return failed(FailureKind.ERROR, stuck)
        return NodeState(Phase.RUNNING, attempts=attempts)

    if sidecar_done is None:
        if pod.over:
            return failed(FailureKind.ERROR, "the outputs sidecar never ran")
        stuck = _stuck(pod, now, stuck_seconds)
        if stuck:
            return failed(FailureKind.ERROR, stuck)
        return NodeState(Phase.RUNNING, attempts=attempts)  # uploading the outputs

    if not pod.over:
        # Both containers ended, but the pod is over only when its kubelet says so: until
        # then it still counts against parallelism caps and GPU capacity.
        return NodeState(Phase.RUNNING, attempts=attempts)

    code = main_done.exit_code
    report = sidecar_report(pod)
    if code != 0:
        reason = main_done.reason
        text = f"exit code {code}" + (f" ({reason})" if reason and reason != "Error" else "")
        log_tail = main_done.message.strip()
        return failed(FailureKind.FAILED, f"{text}: {log_tail}" if log_tail else text)
    sidecar_code = sidecar_done.exit_code
    if sidecar_code != 0:
        detail = (report.error if report else "") or sidecar_done.reason
        what = _SIDECAR_FAILURES.get(
            sidecar_code, f"the outputs sidecar failed with exit code {sidecar_code}"
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
        digests=dict(report.digests),
    )


def _output_name(missing: str) -> str:
    """The agent names missing outputs `parameters/NAME` or `artifacts/NAME`."""
    kind, _, name = missing.partition("/")
    if kind == "parameters" and name:
        return f"output parameter {name!r}"
    if kind == "artifacts" and name:
        return f"output artifact {name!r}"
    return f"output {missing!r}"


def _stuck(pod: PodState, now: float | None, stuck_seconds: float) -> str:
    """Why the pod is stuck for good, or "" (not stuck, or not for long enough yet)."""
    if now is None:
        return ""
    started = pod.started_at or pod.created_at
    if started is None or now - started < stuck_seconds:
        return ""
    for entry in pod.containers:
        if entry.waiting_reason in STUCK_REASONS:
            detail = entry.waiting_message
            return f"container {entry.name!r}: {entry.waiting_reason}" + (
                f": {detail}" if detail else ""
            )
    return ""


def _finished_at(pod: PodState) -> float | None:
    """When the program ended (main's finishedAt), else the latest container end."""
    main = pod.ended(MAIN_CONTAINER)
    if main is not None and main.finished is not None:
        return main.finished
    return pod.last_finished_at


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
