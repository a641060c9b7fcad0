"""The chart's values without helm: values.yaml satisfies values.schema.json, the schema
refuses the mistakes it exists for, the pool defaults are what the operator's --pools parser
accepts, and the chart's CRDs are the repository's crds/ (one source of truth)."""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import jsonschema
import pytest
import yaml

from pipesync.runtime import placement

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "pipesync"


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json.loads((CHART / "values.schema.json").read_text()))


def test_the_default_values_satisfy_the_schema() -> None:
    assert list(validator().iter_errors(values())) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("s3", "endpoint"), "minio:9000"),  # no scheme
        (("watchNamespaces",), ["Team_A"]),  # not a namespace name
        (("image", "digest"), "latest"),
        (("replicaCount",), -1),
        (("serviceMonitor", "enabeld"), True),  # a typo is not silently ignored
        (("http", "port"), 80),  # privileged port for a non-root process
        (("networkPolicy", "allowNamespaces"), ["Monitoring"]),  # not a namespace name
        (("networkPolicy", "enabeld"), True),
    ],
)
def test_the_schema_refuses(path: tuple[str, ...], value: Any) -> None:
    changed = copy.deepcopy(values())
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert list(validator().iter_errors(changed)), f"{'.'.join(path)}={value!r} accepted"


def test_the_default_pools_are_a_valid_pools_file() -> None:
    pools = placement.PoolSettings.from_dict(values()["pools"])
    assert pools.pool("gpu").tolerations


def test_the_chart_crds_are_the_repository_crds() -> None:
    linked = CHART / "crds"
    assert linked.is_symlink(), "charts/pipesync/crds must link to crds/ (one source)"
    assert linked.resolve() == (ROOT / "crds").resolve()
