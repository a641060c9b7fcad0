"""Pool placement: defaults, operator configuration, and the task's fields merged on top."""

from __future__ import annotations

from typing import Any

import pytest

from pipesync.api import model
from pipesync.runtime.placement import (
    GPU_TOLERATION,
    PlacementConfigError,
    Pool,
    PoolSettings,
    default_pool,
    place,
)

GPU = dict(GPU_TOLERATION)
SPOT = {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
ZONE_AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
            ]
        }
    }
}
SPREAD = {
    "podAntiAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 1,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"},
            }
        ]
    }
}
OTHER_ZONE = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}


def task(**fields: Any) -> model.Task:
    return model.task_from_spec({"name": "t", "command": ["true"], **fields})


CONFIG = PoolSettings.from_dict(
    {
        "defaultPool": "cpu",
        "pools": {
            "gpu": {
                "nodeSelector": {"accelerator": "a100"},
                "affinity": ZONE_AFFINITY | SPREAD,
            },
            "spot": {"tolerations": [SPOT]},
            "anywhere": {"nodeSelector": {}},
        },
    }
)


@pytest.mark.parametrize(
    ("settings", "fields", "selector", "tolerations", "affinity"),
    [
        # No configuration: the pool label, and the gpu pool tolerates the GPU taint.
        (PoolSettings(), {"pool": "cpu"}, {"pipesync.io/pool": "cpu"}, [], None),
        (PoolSettings(), {"pool": "gpu"}, {"pipesync.io/pool": "gpu"}, [GPU], None),
        # No pool and no default pool: nothing constrains the pod.
        (PoolSettings(), {}, {}, [], None),
        # GPUs requested outside the gpu pool still tolerate the taint, once.
        (
            PoolSettings(),
            {"pool": "cpu", "resources": {"gpu": 1}},
            {"pipesync.io/pool": "cpu"},
            [GPU],
            None,
        ),
        (
            PoolSettings(),
            {"pool": "gpu", "resources": {"gpu": 2}},
            {"pipesync.io/pool": "gpu"},
            [GPU],
            None,
        ),
        # Task fields on top: selector keys win, tolerations appended without duplicates.
        (
            PoolSettings(),
            {
                "pool": "gpu",
                "nodeSelector": {"pipesync.io/pool": "gpu-big", "disk": "ssd"},
                "tolerations": [SPOT, dict(reversed(list(GPU.items())))],
            },
            {"pipesync.io/pool": "gpu-big", "disk": "ssd"},
            [GPU, SPOT],
            None,
        ),
        # Configured pools: an explicit selector replaces the label; gpu keeps its toleration.
        (CONFIG, {"pool": "gpu"}, {"accelerator": "a100"}, [GPU], ZONE_AFFINITY | SPREAD),
        (CONFIG, {"pool": "spot"}, {"pipesync.io/pool": "spot"}, [SPOT], None),
        (CONFIG, {"pool": "anywhere"}, {}, [], None),
        # The configured default pool applies to tasks that name none.
        (CONFIG, {}, {"pipesync.io/pool": "cpu"}, [], None),
        # Affinity: the task's replaces the pool's per top-level key only.
        (
            CONFIG,
            {"pool": "gpu", "affinity": OTHER_ZONE},
            {"accelerator": "a100"},
            [GPU],
            OTHER_ZONE | SPREAD,
        ),
        (
            PoolSettings(),
            {"pool": "cpu", "affinity": SPREAD},
            {"pipesync.io/pool": "cpu"},
            [],
            SPREAD,
        ),
    ],
)
def test_placement_merges_pool_and_task(
    settings: PoolSettings,
    fields: dict[str, Any],
    selector: dict[str, str],
    tolerations: list[dict[str, Any]],
    affinity: dict[str, Any] | None,
) -> None:
    result = place(task(**fields), settings)
    assert dict(result.node_selector) == selector
    assert [dict(t) for t in result.tolerations] == tolerations
    assert (None if result.affinity is None else dict(result.affinity)) == affinity


def test_pod_spec_fields_leave_out_what_is_empty() -> None:
    assert place(task(), PoolSettings()).as_pod_spec() == {}
    spec = place(task(pool="gpu"), PoolSettings()).as_pod_spec()
    assert spec == {"nodeSelector": {"pipesync.io/pool": "gpu"}, "tolerations": [GPU]}


def test_default_pools() -> None:
    assert default_pool("cpu") == Pool("cpu", {"pipesync.io/pool": "cpu"}, ())
    assert default_pool("gpu").tolerations == (GPU,)
    assert PoolSettings().pool("x") == default_pool("x")


def test_configured_gpu_pool_can_replace_its_tolerations() -> None:
    settings = PoolSettings.from_dict({"pools": {"gpu": {"tolerations": [SPOT]}}})
    assert settings.pool("gpu").tolerations == (SPOT,)
    # ...but a task that asks for GPUs tolerates the GPU taint regardless.
    assert list(place(task(pool="gpu", resources={"gpu": 1}), settings).tolerations) == [SPOT, GPU]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"pool": {}}, "unknown pool settings: pool"),
        ({"pools": []}, "pools must map"),
        ({"pools": {"gpu": {"selector": {}}}}, "pools.gpu: unknown fields selector"),
        ({"pools": {"gpu": {"nodeSelector": {"a": 1}}}}, "pools.gpu.nodeSelector"),
        ({"pools": {"gpu": {"tolerations": {"key": "x"}}}}, "pools.gpu.tolerations"),
        ({"pools": {"gpu": {"affinity": {"nodeAfinity": {}}}}}, "unknown keys nodeAfinity"),
        ({"defaultPool": 3}, "defaultPool"),
    ],
)
def test_bad_configuration_is_refused_with_its_path(data: dict[str, Any], message: str) -> None:
    with pytest.raises(PlacementConfigError, match=message):
        PoolSettings.from_dict(data)


def test_empty_configuration_means_defaults() -> None:
    assert PoolSettings.from_dict(None) == PoolSettings()
    assert PoolSettings.from_dict({"pools": None}) == PoolSettings()
    assert PoolSettings.from_dict({"pools": {"cpu": None}}).pool("cpu") == default_pool("cpu")
