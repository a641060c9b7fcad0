"""What the agent's nodes look like: names, labels, taints, capacity.

The e2e suite needs one CPU node and one GPU node so the real scheduler has
to honour node selectors, extended resources and taints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

POOL_LABEL = "pipesync.io/pool"
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    labels: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)
    extra_capacity: dict[str, str] = field(default_factory=dict)

    def capacity(self) -> dict[str, str]:
        # Generous but plausible: the scheduler only does arithmetic with these.
        base = {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"}
        return base | self.extra_capacity

    def all_labels(self) -> dict[str, str]:
        return {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        } | self.labels


DEFAULT_NODES: tuple[NodeSpec, ...] = (
    NodeSpec(name="cpu-1", labels={POOL_LABEL: "cpu"}),
    NodeSpec(
        name="gpu-1",
        labels={POOL_LABEL: "gpu"},
        taints=[{"key": GPU_RESOURCE, "value": "present", "effect": "NoSchedule"}],
        extra_capacity={GPU_RESOURCE: "2"},
    ),
)
