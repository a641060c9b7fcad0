"""A Run's status and its run record as typed, immutable values, with their JSON forms.

Why here, in the lowest layer: the controller writes the status, the S3 mirror and the
local executor write the record, and `pipesync history`, the UI and the metrics read
them. One definition, importable by all of them, keeps the writers and the readers (and
`schemas/run.schema.json`, checked by a unit test field by field) agreeing on one shape.

No I/O: values in, JSON-ready dicts out, and back. `from_json` is lenient (a field of
the wrong type reads as absent), since records outlive the version that wrote them.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any, Self, TypeVar

API_VERSION = "pipesync.io/v1alpha1"
RECORD_KIND = "RunRecord"
#: The namespace of runs made by `pipesync run` (the local executor).
LOCAL_NAMESPACE = "local"

_T = TypeVar("_T")


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _integer(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


#: Output values longer than this stay out of status (the record keeps every value).
MAX_OUTPUT_IN_STATUS = 256


def small_outputs(outputs: Mapping[str, str]) -> dict[str, str]:
    """The output parameters short enough for a task's status."""
    return {name: value for name, value in outputs.items() if len(value) <= MAX_OUTPUT_IN_STATUS}


def _by_name(value: Any, read: Callable[[Mapping[str, Any]], _T]) -> dict[str, _T] | None:
    """A JSON object of objects (tasks by name) read one by one; None when not an object."""
    if not isinstance(value, Mapping):
        return None
    return {str(name): read(item) for name, item in value.items() if isinstance(item, Mapping)}


def _shared_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a task's status summary and its record detail share, read from JSON."""
    return {
        "phase": _text(data, "phase") or "Pending",
        "attempts": _integer(data, "attempts") or 0,
        "started_at": _text(data, "startedAt"),
        "finished_at": _text(data, "finishedAt"),
        "exit_code": _integer(data, "exitCode"),
        "message": _text(data, "message"),
        "outputs": _strings(data.get("outputs")),
        "cached_from": _strings(data.get("cachedFrom")),
    }


def precise_timestamp(moment: float) -> str:
    """RFC 3339 in UTC with milliseconds: the local executor's node times, where whole
    seconds (Kubernetes' precision) would hide which of two quick tasks ran first."""
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


@dataclasses.dataclass(frozen=True)
class _Counts:
    """Counters by name, in JSON as they are named; missing ones read as 0."""

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**{f.name: _integer(data, f.name) or 0 for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class InstanceCounts(_Counts):
    """How many instances of a forEach task are in each state."""

    total: int = 0
    succeeded: int = 0
    failed: int = 0
    running: int = 0


@dataclasses.dataclass(frozen=True)
class TaskCounts(InstanceCounts):
    """How many tasks of a run are in each phase (onExit not counted): the counts of
    instances, plus tasks not started and tasks skipped; `running` counts a task whose
    retry waits for its backoff too."""

    pending: int = 0
    skipped: int = 0
    cached: int = 0  # of the succeeded ones, those the task cache served


@dataclasses.dataclass(frozen=True)
class TaskStatus:
    """One task's summary in `status.tasks` (schema `$defs/taskStatus`). Empty fields
    are left out of the JSON, so status stays small."""

    phase: str
    attempts: int = 0
    pod: str = ""  # the pod of the latest attempt
    started_at: str = ""  # when the first attempt was launched
    finished_at: str = ""
    exit_code: int | None = None  # the latest attempt's program, once it ended
    message: str = ""
    outputs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    instances: InstanceCounts | None = None  # forEach tasks only
    #: A Cached task: {"run": ..., "task": ...}, whose results it reused.
    cached_from: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"phase": self.phase, "attempts": self.attempts}
        optional: dict[str, Any] = {
            "pod": self.pod,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "message": self.message,
            "outputs": dict(self.outputs),
            "cachedFrom": dict(self.cached_from),
        }
        data.update({key: value for key, value in optional.items() if value})
        if self.exit_code is not None:
            data["exitCode"] = self.exit_code
        if self.instances is not None:
            data["instances"] = self.instances.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskStatus:
        instances = data.get("instances")
        return cls(
            **_shared_fields(data),
            pod=_text(data, "pod"),
            instances=InstanceCounts.from_json(instances)
            if isinstance(instances, Mapping)
            else None,
        )


@dataclasses.dataclass(frozen=True)
class RunStatus:
    """A Run's `status` (schema `properties.status`). `tasks` and `task_counts` are None
    when the status never had them (a run that failed before its spec was pinned)."""

    phase: str = ""
    observed_generation: int | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()
    started_at: str = ""
    finished_at: str = ""
    duration: str = ""  # set once finished
    message: str = ""  # what the run waits for, while it cannot progress
    progress: str = ""
    pipeline: Mapping[str, str] | None = None  # the pinned version
    tasks: Mapping[str, TaskStatus] | None = None
    task_counts: TaskCounts | None = None
    tasks_truncated: bool = False
    record_uri: str = ""  # set once the final record is written

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.observed_generation is not None:
            data["observedGeneration"] = self.observed_generation
        if self.conditions:
            data["conditions"] = [dict(c) for c in self.conditions]
        texts = {
            "phase": self.phase,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "duration": self.duration,
            "message": self.message,
            "progress": self.progress,
        }
        data.update({key: value for key, value in texts.items() if value})
        if self.pipeline is not None:
            data["pipeline"] = dict(self.pipeline)
        if self.tasks is not None:
            data["tasks"] = {name: task.to_json() for name, task in self.tasks.items()}
        if self.task_counts is not None:
            data["taskCounts"] = self.task_counts.to_json()
        if self.tasks_truncated:
            data["tasksTruncated"] = True
        if self.record_uri:
            data["record"] = {"uri": self.record_uri}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RunStatus:
        data = data or {}
        conditions = data.get("conditions")
        pipeline, tasks, counts = data.get("pipeline"), data.get("tasks"), data.get("taskCounts")
        record = data.get("record")
        return cls(
            phase=_text(data, "phase"),
            observed_generation=_integer(data, "observedGeneration"),
            conditions=tuple(c for c in conditions if isinstance(c, Mapping))
            if isinstance(conditions, list)
            else (),
            started_at=_text(data, "startedAt"),
            finished_at=_text(data, "finishedAt"),
            duration=_text(data, "duration"),
            message=_text(data, "message"),
            progress=_text(data, "progress"),
            pipeline=_strings(pipeline) if isinstance(pipeline, Mapping) else None,
            tasks=_by_name(tasks, TaskStatus.from_json),
            task_counts=TaskCounts.from_json(counts) if isinstance(counts, Mapping) else None,
            tasks_truncated=data.get("tasksTruncated") is True,
            record_uri=_text(record, "uri") if isinstance(record, Mapping) else "",
        )


@dataclasses.dataclass(frozen=True)
class NodeDetail:
    """One task or forEach instance in full, as the record keeps it (status keeps a
    summary). Cluster runs fill the pod fields, local runs `log`; both fill the rest."""

    phase: str = "Pending"
    attempts: int = 0
    message: str = ""
    outputs: Mapping[str, str] = dataclasses.field(default_factory=dict)  # all, however long
    failure: str = ""  # the failure class: Failed, TimedOut, Error, Cancelled
    started_at: str = ""  # local runs: when the latest attempt started
    finished_at: str = ""
    exit_code: int | None = None
    log: str = ""  # local runs: the latest attempt's log file
    pod: str = ""
    task: str = ""  # the pod's task label
    instance: int | None = None  # the pod's instance label
    attempt: int | None = None  # the pod's attempt label
    node_name: str = ""
    main_started_at: str = ""  # the pod's `main` container
    main_finished_at: str = ""
    pod_phase: str = ""
    on_exit: bool = False
    index: int | None = None  # a forEach instance's item index
    instances: tuple[NodeDetail, ...] | None = None  # a forEach task's instances
    cached_from: Mapping[str, str] = dataclasses.field(default_factory=dict)  # as TaskStatus
    #: each output artifact's sha256 (runtime.digests) as it was stored, by name
    digests: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"phase": self.phase, "attempts": self.attempts}
        optional: dict[str, Any] = {
            "message": self.message,
            "outputs": dict(self.outputs),
            "cachedFrom": dict(self.cached_from),
            "digests": dict(self.digests),
            "failure": self.failure,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "log": self.log,
            "pod": self.pod,
            "task": self.task,
            "nodeName": self.node_name,
            "mainStartedAt": self.main_started_at,
            "mainFinishedAt": self.main_finished_at,
            "podPhase": self.pod_phase,
        }
        data.update({key: value for key, value in optional.items() if value})
        numbers = {
            "exitCode": self.exit_code,
            "instance": self.instance,
            "attempt": self.attempt,
            "index": self.index,
        }
        data.update({key: value for key, value in numbers.items() if value is not None})
        if self.on_exit:
            data["onExit"] = True
        if self.instances is not None:
            data["instances"] = [instance.to_json() for instance in self.instances]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeDetail:
        instances = data.get("instances")
        texts: dict[str, Any] = {attribute: _text(data, key) for attribute, key in _DETAIL_TEXTS}
        numbers: dict[str, Any] = {a: _integer(data, key) for a, key in _DETAIL_NUMBERS}
        return cls(
            **_shared_fields(data),
            **texts,
            **numbers,
            on_exit=data.get("onExit") is True,
            digests=_strings(data.get("digests")),
            instances=tuple(cls.from_json(i) for i in instances if isinstance(i, Mapping))
            if isinstance(instances, list)
            else None,
        )


#: NodeDetail's fields beyond the shared ones: (attribute, JSON key).
_DETAIL_TEXTS = (
    ("failure", "failure"),
    ("log", "log"),
    ("pod", "pod"),
    ("task", "task"),
    ("node_name", "nodeName"),
    ("main_started_at", "mainStartedAt"),
    ("main_finished_at", "mainFinishedAt"),
    ("pod_phase", "podPhase"),
)
_DETAIL_NUMBERS = (("instance", "instance"), ("attempt", "attempt"), ("index", "index"))


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """`<namespace>/runs/<run>/run.json`: the Run (metadata, spec, status), its pinned
    pipeline and every node's full detail. The S3 mirror writes it for cluster runs, the
    local executor for `pipesync run`; `pipesync history` and the UI read both."""

    metadata: Mapping[str, Any]  # name, namespace, uid, labels, creationTimestamp
    spec: Mapping[str, Any]  # the Run's spec (params, pipelineRef, ...)
    status: RunStatus
    pipeline: Mapping[str, Any] | None = None  # the pinned version, with its full `spec`
    tasks: Mapping[str, NodeDetail] = dataclasses.field(default_factory=dict)
    recovered: bool = False  # rebuilt after a crash, from the Run and its pods
    pods: tuple[NodeDetail, ...] | None = None  # a recovered record's pods

    @property
    def name(self) -> str:
        return _text(self.metadata, "name")

    @property
    def namespace(self) -> str:
        return _text(self.metadata, "namespace")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": RECORD_KIND,
            "metadata": dict(self.metadata),
            "spec": dict(self.spec),
            "status": self.status.to_json(),
            "pipeline": None if self.pipeline is None else dict(self.pipeline),
            "tasks": {name: task.to_json() for name, task in self.tasks.items()},
        }
        if self.recovered:
            data["recovered"] = True
        if self.pods is not None:
            data["pods"] = [pod.to_json() for pod in self.pods]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunRecord | None:
        """None when `data` is not a run record (another JSON file, a foreign kind, the
        local format before it was this one)."""
        if data.get("kind", RECORD_KIND) != RECORD_KIND:
            return None
        if not isinstance(data.get("metadata"), Mapping):
            return None
        status, spec, pipeline = data.get("status"), data.get("spec"), data.get("pipeline")
        tasks, pods = data.get("tasks"), data.get("pods")
        return cls(
            metadata=dict(data["metadata"]),
            spec=dict(spec) if isinstance(spec, Mapping) else {},
            status=RunStatus.from_json(status if isinstance(status, Mapping) else None),
            pipeline=dict(pipeline) if isinstance(pipeline, Mapping) else None,
            tasks=_by_name(tasks, NodeDetail.from_json) or {},
            recovered=data.get("recovered") is True,
            pods=tuple(NodeDetail.from_json(p) for p in pods if isinstance(p, Mapping))
            if isinstance(pods, list)
            else None,
        )
