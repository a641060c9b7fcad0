"""Typed, immutable views of the five kinds, built from schema-checked data.

`from_spec` functions trust that the data passed the kind's JSON Schema (see
`pipesync.api.documents`), so they only shape it; semantic checks live in the engine.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from pipesync.api import durations

GROUP = "pipesync.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


class Kind(enum.StrEnum):
    GIT_SOURCE = "GitSource"
    PIPELINE = "Pipeline"
    EXPERIMENT = "Experiment"
    RUN = "Run"
    RECURRING_RUN = "RecurringRun"


class ParamType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    LIST = "list"
    OBJECT = "object"


class RetryPolicy(enum.StrEnum):
    ON_FAILURE = "OnFailure"
    ALWAYS = "Always"


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    type: ParamType = ParamType.STRING
    default: Any = None
    has_default: bool = False
    description: str = ""
    enum: tuple[Any, ...] = ()


@dataclasses.dataclass(frozen=True)
class Retry:
    limit: int = 0
    backoff_seconds: float = 0.0
    factor: float = 2.0
    max_backoff_seconds: float | None = None
    policy: RetryPolicy = RetryPolicy.ON_FAILURE


@dataclasses.dataclass(frozen=True)
class ForEach:
    items: tuple[Any, ...] | str | None  # a literal list, a placeholder holding a JSON list,
    # or None for a group member that takes the items declared by another member
    parallelism: int | None = None
    group: str | None = None  # tasks of one group form one loop body (instance-wise)
    # A grid: axis name -> items (list or placeholder); one instance per combination.
    matrix: tuple[tuple[str, tuple[Any, ...] | str], ...] | None = None
    within: str | None = None  # the group this group is nested in

    @property
    def source(self) -> Any:
        """What the instances come from (items or matrix); None for a member that inherits."""
        return self.matrix if self.matrix is not None else self.items


@dataclasses.dataclass(frozen=True)
class Resources:
    cpu: str | None = None
    memory: str | None = None
    gpu: int = 0
    ephemeral_storage: str | None = None
    #: The extended resource `gpu` counts ("" is nvidia.com/gpu): google.com/tpu, ...
    accelerator: str = ""
    #: Fields written as a placeholder, by schema name ("gpu", "{{params.gpus}}"): their
    #: values are known only when the task starts (engine/resources.py renders them);
    #: until then the field holds its default.
    templates: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class InputArtifact:
    name: str
    source: str  # "{{tasks.T.outputs.artifacts.A}}"
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class Cache:
    """A task's cache settings (schemas/common.schema.json `cache`)."""

    enabled: bool = False
    max_age_seconds: float | None = None  # None: a result of any age may be reused
    #: The repository paths that are the task's code: None, the whole tree; (), none
    #: (its code is all in its image and command, as a KFP component's).
    paths: tuple[str, ...] | None = None
    salt: str = ""


class CacheMode(enum.StrEnum):
    """How one run uses the cache (a Run's or RecurringRun's `spec.cache`)."""

    ENABLED = "Enabled"  # reuse and store results of tasks whose cache is enabled
    DISABLED = "Disabled"  # neither read nor write
    REFRESH = "Refresh"  # run everything, rewrite the entries


@dataclasses.dataclass(frozen=True)
class EnvRef:
    """An environment variable whose value comes from a Secret or ConfigMap key."""

    name: str
    kind: str  # "secretKeyRef" or "configMapKeyRef", as Kubernetes spells the source
    source: str  # the Secret's or ConfigMap's name
    key: str
    optional: bool = False


@dataclasses.dataclass(frozen=True)
class Volume:
    """A volume mounted into the task's container; `source` is the Kubernetes volume
    source as written (one of secret, configMap, persistentVolumeClaim, emptyDir)."""

    name: str
    mount_path: str
    read_only: bool
    kind: str
    source: Mapping[str, Any]


VOLUME_KINDS = ("secret", "configMap", "persistentVolumeClaim", "emptyDir")


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    description: str = ""
    image: str | None = None
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    input_artifacts: tuple[InputArtifact, ...] = ()
    output_parameters: tuple[str, ...] = ()
    output_artifacts: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    ignore_upstream_failure: bool = False  # runs even when a task it waits for failed
    when: str | None = None
    for_each: ForEach | None = None
    retry: Retry = Retry()
    timeout_seconds: float | None = None
    resources: Resources = Resources()
    pool: str | None = None
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None
    cache: Cache = Cache()
    service_account_name: str | None = None
    env_refs: tuple[EnvRef, ...] = ()  # variables from Secrets and ConfigMaps (cluster only)
    volumes: tuple[Volume, ...] = ()  # cluster only


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    tasks: tuple[Task, ...]
    params: tuple[Param, ...] = ()
    description: str = ""
    on_exit: Task | None = None
    trigger_on_change: bool = False
    parallelism: int | None = None
    timeout_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Metadata:
    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


# --- building from data ---------------------------------------------------------------------


def _seconds(value: str | None) -> float | None:
    return None if value is None else durations.parse(value)


def param_from_spec(data: Mapping[str, Any]) -> Param:
    return Param(
        name=data["name"],
        type=ParamType(data.get("type", "string")),
        default=data.get("default"),
        has_default="default" in data,
        description=data.get("description", ""),
        enum=tuple(data.get("enum", ())),
    )


def retry_from_spec(data: Mapping[str, Any]) -> Retry:
    return Retry(
        limit=int(data.get("limit", 0)),
        backoff_seconds=_seconds(data.get("backoff")) or 0.0,
        factor=float(data.get("factor", 2.0)),
        max_backoff_seconds=_seconds(data.get("maxBackoff")),
        policy=RetryPolicy(data.get("policy", "OnFailure")),
    )


def _resources(data: Mapping[str, Any]) -> Resources:
    """A task's resources; a field holding a placeholder waits in `templates`."""
    templates = tuple(
        (field, value) for field, value in data.items() if isinstance(value, str) and "{{" in value
    )
    fixed = {field: value for field, value in data.items() if (field, value) not in templates}
    return Resources(
        cpu=None if fixed.get("cpu") is None else str(fixed["cpu"]),
        memory=fixed.get("memory"),
        gpu=int(fixed.get("gpu", 0)),
        ephemeral_storage=fixed.get("ephemeralStorage"),
        accelerator=str(fixed.get("accelerator", "")),
        templates=templates,
    )


def _env_ref(entry: Mapping[str, Any]) -> EnvRef:
    kind, reference = next(iter(entry["valueFrom"].items()))
    return EnvRef(
        entry["name"],
        kind,
        reference["name"],
        reference["key"],
        bool(reference.get("optional", False)),
    )


def _volume(entry: Mapping[str, Any]) -> Volume:
    kind = next(k for k in VOLUME_KINDS if k in entry)
    return Volume(
        entry["name"], entry["mountPath"], bool(entry.get("readOnly", False)), kind, entry[kind]
    )


#: Task fields a pipeline's `spec.defaults` fill in where the task does not set them
#: (schemas/common.schema.json `taskDefaults`).
DEFAULTED_FIELDS = (
    "image",
    "pool",
    "retry",
    "timeout",
    "resources",
    "env",
    "nodeSelector",
    "tolerations",
    "affinity",
    "cache",
    "serviceAccountName",
)


def with_defaults(task: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """A task as it runs, still as spec data: every DEFAULTED_FIELDS field the task does
    not set comes from `defaults`; env (by name) and nodeSelector (by key) are merged, the
    task's entry winning, whether a value or a reference. The model and `pipesync diff`
    (which compares tasks as they will run) both read tasks through this."""
    merged = dict(task)
    for key in DEFAULTED_FIELDS:
        if key not in task and key in defaults:
            merged[key] = defaults[key]
    if "env" in task and "env" in defaults:
        entries = {e["name"]: e for e in [*defaults["env"], *task["env"]]}
        merged["env"] = list(entries.values())
    if "nodeSelector" in task and "nodeSelector" in defaults:
        merged["nodeSelector"] = {**defaults["nodeSelector"], **task["nodeSelector"]}
    return merged


def task_from_spec(data: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> Task:
    """A task with the pipeline's `defaults` filled in where the task is silent."""
    data = with_defaults(data, defaults or {})

    # Env names are unique (the schema says so); a repeated one keeps its last entry.
    env_entries = {e["name"]: e for e in data.get("env", [])}
    env = {n: str(e.get("value", "")) for n, e in env_entries.items() if "valueFrom" not in e}
    env_refs = tuple(_env_ref(e) for e in env_entries.values() if "valueFrom" in e)
    node_selector = dict(data.get("nodeSelector", {}))
    inputs = data.get("inputs", {}).get("artifacts", {})
    outputs = data.get("outputs", {})
    for_each = data.get("forEach")
    resources = data.get("resources") or {}
    cache = data.get("cache") or {}
    return Task(
        name=data["name"],
        description=data.get("description", ""),
        image=data.get("image"),
        command=tuple(data.get("command", ())),
        args=tuple(data.get("args", ())),
        working_dir=data.get("workingDir"),
        env=tuple(env.items()),
        input_artifacts=tuple(
            InputArtifact(name, spec["from"], bool(spec.get("optional", False)))
            for name, spec in inputs.items()
        ),
        output_parameters=tuple(outputs.get("parameters", ())),
        output_artifacts=tuple(outputs.get("artifacts", ())),
        depends_on=tuple(data.get("dependsOn", ())),
        ignore_upstream_failure=bool(data.get("ignoreUpstreamFailure", False)),
        when=data.get("when"),
        for_each=None
        if for_each is None
        else ForEach(
            items=_items(for_each.get("items")),
            parallelism=for_each.get("parallelism"),
            group=for_each.get("group"),
            within=for_each.get("within"),
            matrix=None
            if for_each.get("matrix") is None
            else tuple(
                (axis, values if isinstance(values, str) else tuple(values))
                for axis, values in for_each["matrix"].items()
            ),
        ),
        retry=retry_from_spec(data.get("retry") or {}),
        timeout_seconds=_seconds(data.get("timeout")),
        resources=_resources(resources),
        pool=data.get("pool"),
        node_selector=node_selector,
        tolerations=tuple(data.get("tolerations") or ()),
        affinity=data.get("affinity"),
        cache=Cache(
            bool(cache.get("enabled", False)),
            _seconds(cache.get("maxAge")),
            None if cache.get("paths") is None else tuple(cache["paths"]),
            str(cache.get("salt", "")),
        ),
        service_account_name=data.get("serviceAccountName"),
        env_refs=env_refs,
        volumes=tuple(_volume(v) for v in data.get("volumes", ())),
    )


def pipeline_spec_from_spec(data: Mapping[str, Any]) -> PipelineSpec:
    defaults = data.get("defaults", {})
    on_exit = data.get("onExit")
    return PipelineSpec(
        tasks=tuple(task_from_spec(task, defaults) for task in data.get("tasks", ())),
        params=tuple(param_from_spec(param) for param in data.get("params", ())),
        description=data.get("description", ""),
        on_exit=None if on_exit is None else task_from_spec(on_exit, defaults),
        trigger_on_change=bool(data.get("trigger", {}).get("onChange", False)),
        parallelism=data.get("parallelism"),
        timeout_seconds=_seconds(data.get("timeout")),
    )


def metadata_from_spec(data: Mapping[str, Any]) -> Metadata:
    return Metadata(
        name=data["name"],
        namespace=data.get("namespace"),
        labels=dict(data.get("labels") or {}),
        annotations=dict(data.get("annotations") or {}),
    )


def _items(items: Any) -> tuple[Any, ...] | str | None:
    if items is None or isinstance(items, str):
        return items
    return tuple(items)
