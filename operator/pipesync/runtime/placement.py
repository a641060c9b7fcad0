"""Where a task's pod may run: node pools from the operator configuration, merged with the
task's own nodeSelector, tolerations and affinity.

Pools exist so pipeline authors write `pool: gpu` and cluster admins decide, in one place,
what that means on their cluster (labels, taints, affinity). Without configuration a pool
named P selects nodes labelled `pipesync.io/pool=P`, and the `gpu` pool tolerates the
`nvidia.com/gpu` taint GPU nodes usually carry.

Merge rules (task on top of pool): nodeSelector keys of the task win; tolerations are
appended without duplicates; affinity is replaced per top-level key (nodeAffinity,
podAffinity, podAntiAffinity), since merging inside those trees has no single meaning.
A task asking for GPUs always tolerates the GPU taint, whatever its pool.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from pipesync.api import conventions
from pipesync.api.model import Resources, Task
from pipesync.engine import resources as task_resources

GPU_RESOURCE = "nvidia.com/gpu"
GPU_POOL = "gpu"
GPU_TOLERATION: Mapping[str, str] = {
    "key": GPU_RESOURCE,
    "operator": "Exists",
    "effect": "NoSchedule",
}
AFFINITY_KEYS = ("nodeAffinity", "podAffinity", "podAntiAffinity")


class PlacementConfigError(ValueError):
    """The operator configuration's `pools` section is malformed (names the offending path)."""


@dataclasses.dataclass(frozen=True)
class Pool:
    name: str
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class Placement:
    """The scheduling fields of a pod spec, ready to be put into the manifest."""

    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    affinity: Mapping[str, Any] | None

    def as_pod_spec(self) -> dict[str, Any]:
        """Only the fields that say something (an empty nodeSelector is left out)."""
        spec: dict[str, Any] = {}
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            spec["tolerations"] = [dict(t) for t in self.tolerations]
        if self.affinity:
            spec["affinity"] = dict(self.affinity)
        return spec


def default_pool(name: str) -> Pool:
    """The pool an unconfigured name means: its label, plus the GPU toleration for `gpu`."""
    return Pool(
        name=name,
        node_selector={conventions.LABEL_POOL: name},
        tolerations=(dict(GPU_TOLERATION),) if name == GPU_POOL else (),
    )


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """Pool names mapped to pools; names not configured fall back to `default_pool`."""

    pools: Mapping[str, Pool] = dataclasses.field(default_factory=dict)
    default: str | None = None  # the pool of tasks that name none (None: no pool placement)

    def pool(self, name: str) -> Pool:
        return self.pools.get(name) or default_pool(name)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PoolSettings:
        """From the operator configuration, e.g.::

            defaultPool: cpu
            pools:
              gpu:
                nodeSelector: {cloud.example.com/accelerator: a100}
                tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
                affinity: {nodeAffinity: {...}}

        A field a pool leaves out keeps its default (`nodeSelector` the pool label,
        `tolerations` the GPU toleration for `gpu`); an explicit empty value clears it.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise PlacementConfigError("the pool configuration must be a mapping")
        unknown = set(data) - {"pools", "defaultPool"}
        if unknown:
            raise PlacementConfigError(f"unknown pool settings: {', '.join(sorted(unknown))}")
        default = data.get("defaultPool")
        if default is not None and not isinstance(default, str):
            raise PlacementConfigError("defaultPool must be a pool name")
        raw_pools = data.get("pools")
        raw_pools = {} if raw_pools is None else raw_pools
        if not isinstance(raw_pools, Mapping):
            raise PlacementConfigError("pools must map pool names to settings")
        pools = {str(name): _pool_from_dict(str(name), spec) for name, spec in raw_pools.items()}
        return cls(pools=pools, default=default)


def _pool_from_dict(name: str, spec: Any) -> Pool:
    where = f"pools.{name}"
    spec = spec if spec is not None else {}
    if not isinstance(spec, Mapping):
        raise PlacementConfigError(f"{where} must be a mapping")
    unknown = set(spec) - {"nodeSelector", "tolerations", "affinity"}
    if unknown:
        raise PlacementConfigError(f"{where}: unknown fields {', '.join(sorted(unknown))}")
    base = default_pool(name)
    node_selector: Mapping[str, str] = base.node_selector
    if "nodeSelector" in spec:
        raw = spec["nodeSelector"] or {}
        if not isinstance(raw, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise PlacementConfigError(f"{where}.nodeSelector must map strings to strings")
        node_selector = dict(raw)
    tolerations = base.tolerations
    if "tolerations" in spec:
        raw_list = spec["tolerations"] or []
        if not isinstance(raw_list, list) or not all(isinstance(t, Mapping) for t in raw_list):
            raise PlacementConfigError(f"{where}.tolerations must be a list of mappings")
        tolerations = tuple(dict(t) for t in raw_list)
    affinity = spec.get("affinity")
    if affinity is not None:
        if not isinstance(affinity, Mapping):
            raise PlacementConfigError(f"{where}.affinity must be a mapping")
        unknown = set(affinity) - set(AFFINITY_KEYS)
        if unknown:
            raise PlacementConfigError(
                f"{where}.affinity: unknown keys {', '.join(sorted(unknown))}"
            )
        affinity = dict(affinity)
    return Pool(name, node_selector, tolerations, affinity)


def place(task: Task, settings: PoolSettings, resources: Resources | None = None) -> Placement:
    """The placement of one task: its pool's, with the task's own fields on top.
    `resources`: the attempt's, when placeholders gave them (engine/attempt.py)."""
    resources = task.resources if resources is None else resources
    pool_name = task.pool or settings.default
    pool = settings.pool(pool_name) if pool_name else Pool("")
    node_selector = {**pool.node_selector, **task.node_selector}
    # Nodes with accelerators are usually tainted with the resource's name (the NVIDIA and
    # GKE TPU device plugins do so): a task asking for one tolerates it.
    gpu: tuple[Mapping[str, Any], ...] = (
        ({**GPU_TOLERATION, "key": accelerator(resources)},) if resources.gpu > 0 else ()
    )
    tolerations = _unique([*pool.tolerations, *gpu, *task.tolerations])
    affinity = merge_affinity(pool.affinity, task.affinity)
    return Placement(node_selector, tolerations, affinity)


def accelerator(resources: Resources) -> str:
    """The extended resource a task's `gpu` count asks for (nvidia.com/gpu by default)."""
    return task_resources.accelerator_resource(resources.accelerator) or GPU_RESOURCE


def merge_affinity(
    base: Mapping[str, Any] | None, override: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The task's affinity replaces the pool's per top-level key."""
    merged = {**(base or {}), **(override or {})}
    return merged or None


def _unique(tolerations: Iterable[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """First occurrence wins; equality is by content, whatever the key order."""
    seen: set[str] = set()
    kept: list[Mapping[str, Any]] = []
    for toleration in tolerations:
        fingerprint = json.dumps(toleration, sort_keys=True, default=str)
        if fingerprint not in seen:
            seen.add(fingerprint)
            kept.append(dict(toleration))
    return tuple(kept)
