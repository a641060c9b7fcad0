"""The CRDs in crds/: up to date with schemas/, and structural as Kubernetes demands.

A CRD that is not structural is rejected by the API server, and a stale one
silently disagrees with `pipesync validate`; both are caught here, without a
cluster. (The e2e suite applies the same files to a real kube-apiserver.)
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = sorted((ROOT / "crds").glob("*.pipesync.io.yaml"))

# What an openAPIV3Schema node may contain in a structural schema as we emit it.
ALLOWED_KEYS = {
    "description",
    "type",
    "format",
    "enum",
    "default",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "oneOf",
    "anyOf",
    "allOf",
    "not",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
    "x-kubernetes-embedded-resource",
}
JUNCTORS = ("oneOf", "anyOf", "allOf", "not")


def _load_generator() -> ModuleType:
    path = ROOT / "scripts" / "gen-crds.py"
    spec = importlib.util.spec_from_file_location("pipesync_gen_crds", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def _crd(path: Path) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1, f"{path.name}: one CRD per file"
    crd: dict[str, Any] = docs[0]
    return crd


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(node: dict[str, Any], where: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, node, inside a junctor) for every schema node."""
    yield from _walk(node, where, in_junctor=False)


def _walk(
    node: dict[str, Any], where: str, in_junctor: bool
) -> Iterator[tuple[str, dict[str, Any], bool]]:
    yield where, node, in_junctor
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{where}.{name}", in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{where}.*", in_junctor)
    if "items" in node:
        yield from _walk(node["items"], f"{where}[]", in_junctor)
    for key in ("oneOf", "anyOf", "allOf"):
        for i, sub in enumerate(node.get(key, [])):
            yield from _walk(sub, f"{where}<{key}{i}>", True)
    if "not" in node:
        yield from _walk(node["not"], f"{where}<not>", True)


def test_one_crd_per_kind() -> None:
    assert [p.name for p in CRDS] == sorted(k.file_name for k in gen.KINDS)
    assert len(CRDS) == 5


def test_committed_crds_match_the_generator() -> None:
    stale = "".join(gen.diff(gen.render_all()))
    assert stale == "", "crds/ is stale: run `python scripts/gen-crds.py`\n" + stale
    assert gen.main(["--check"]) == 0


def test_check_reports_drift(tmp_path: Path) -> None:
    for path in CRDS:
        shutil.copy(path, tmp_path / path.name)
    target = tmp_path / CRDS[0].name
    target.write_text(target.read_text().replace("served: true", "served: false"))
    lines = list(gen.diff(gen.render_all(), tmp_path))
    assert "-    served: false\n" in lines and "+    served: true\n" in lines


def test_generation_is_deterministic() -> None:
    assert gen.render_all() == gen.render_all()


@pytest.mark.parametrize("path", CRDS, ids=lambda p: p.name)
def test_crd_shape(path: Path) -> None:
    crd = _crd(path)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    spec = crd["spec"]
    names = spec["names"]
    assert crd["metadata"]["name"] == f"{names['plural']}.pipesync.io" == path.stem
    assert spec["group"] == "pipesync.io" and spec["scope"] == "Namespaced"
    assert names["listKind"] == names["kind"] + "List"
    assert names["singular"] == names["kind"].lower()
    assert names["categories"] == ["pipesync"]
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert all(c["description"] for c in version["additionalPrinterColumns"])


def test_short_names_per_contract() -> None:
    short = {_crd(p)["spec"]["names"]["kind"]: _crd(p)["spec"]["names"]["shortNames"] for p in CRDS}
    assert short == {
        "GitSource": ["gs"],
        "Pipeline": ["pl"],
        "Experiment": ["psexp"],
        "Run": ["psr"],
        "RecurringRun": ["rr"],
    }


@pytest.mark.parametrize("path", CRDS, ids=lambda p: p.name)
def test_schema_is_structural(path: Path) -> None:
    schema = _schema(_crd(path))
    text = path.read_text()
    assert "$ref" not in text and "$defs" not in text and "&id" not in text
    assert schema["properties"]["metadata"] == {"type": "object"}
    problems = []
    for where, node, in_junctor in _nodes(schema):
        unknown = set(node) - ALLOWED_KEYS
        if unknown:
            problems.append(f"{where}: unsupported keys {sorted(unknown)}")
        if "additionalProperties" in node and not isinstance(node["additionalProperties"], dict):
            problems.append(f"{where}: additionalProperties must be a schema")
        if node.get("format", "date-time") != "date-time":
            problems.append(f"{where}: format {node['format']} not kept")
        if in_junctor:
            forbidden = {"description", "type", "default", "additionalProperties", "nullable"}
            if set(node) & forbidden and not _is_int_or_string_branch(node):
                problems.append(f"{where}: {sorted(set(node) & forbidden)} inside a junctor")
            continue
        if "properties" in node and node.get("type") != "object":
            problems.append(f"{where}: has properties but type {node.get('type')}")
        opaque = node.get("x-kubernetes-preserve-unknown-fields") or node.get(
            "x-kubernetes-int-or-string"
        )
        if "type" not in node and not opaque:
            problems.append(f"{where}: no type")
        if where and where != ".metadata" and not node.get("description"):
            problems.append(f"{where}: no description")
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            items = node["items"]
            if not set(keys) <= set(items.get("required", [])):
                problems.append(f"{where}: list-map keys {keys} must be required")
        if "default" in node:
            problems.extend(_default_problems(where, node))
    assert problems == []


def _is_int_or_string_branch(node: dict[str, Any]) -> bool:
    return node in ({"type": "integer"}, {"type": "string"})


def _default_problems(where: str, node: dict[str, Any]) -> list[str]:
    value = node["default"]
    expected = {
        "string": str,
        "integer": int,
        "boolean": bool,
        "object": dict,
        "array": list,
    }.get(node.get("type", ""), object)
    if not isinstance(value, expected):
        return [f"{where}: default {value!r} is not a {node.get('type')}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{where}: default {value!r} not in enum"]
    return []


def test_conditions_are_list_maps_keyed_by_type() -> None:
    for path in CRDS:
        conditions = _schema(_crd(path))["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        item = conditions["items"]
        assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(
            item["required"]
        )
        assert item["properties"]["lastTransitionTime"]["format"] == "date-time"


def test_free_form_and_any_value_fields_are_preserved() -> None:
    pipeline = _schema(_crd(ROOT / "crds" / "pipelines.pipesync.io.yaml"))
    task = pipeline["properties"]["spec"]["properties"]["tasks"]["items"]
    assert task["properties"]["affinity"]["x-kubernetes-preserve-unknown-fields"] is True
    cpu = task["properties"]["resources"]["properties"]["cpu"]
    assert cpu.get("x-kubernetes-preserve-unknown-fields") is True and "type" not in cpu
    run = _schema(_crd(ROOT / "crds" / "runs.pipesync.io.yaml"))
    params = run["properties"]["spec"]["properties"]["params"]
    assert params["type"] == "object"
    assert params["additionalProperties"]["x-kubernetes-preserve-unknown-fields"] is True
    assert "type" not in params["additionalProperties"]


def test_one_of_constraints_survive_as_required_lists() -> None:
    run = _schema(_crd(ROOT / "crds" / "runs.pipesync.io.yaml"))
    assert run["properties"]["spec"]["oneOf"] == [
        {"required": ["pipelineRef"]},
        {"required": ["pipelineSpec"]},
    ]
    rr = _schema(_crd(ROOT / "crds" / "recurringruns.pipesync.io.yaml"))
    schedule = rr["properties"]["spec"]["properties"]["schedule"]
    assert schedule["oneOf"] == [{"required": ["cron"]}, {"required": ["interval"]}]
    assert set(schedule["properties"]) == {"cron", "timezone", "interval"}


def _json_path_exists(schema: dict[str, Any], json_path: str) -> bool:
    node = schema
    # .status.conditions[?(@.type=="Ready")].status -> status, conditions, [], status
    for part in re.findall(r"\.([A-Za-z0-9_]+)|(\[[^\]]*\])", json_path):
        name, index = part
        if index:
            if node.get("type") != "array":
                return False
            node = node["items"]
            continue
        props = node.get("properties", {})
        if name not in props:
            return False
        node = props[name]
    return True


@pytest.mark.parametrize("path", CRDS, ids=lambda p: p.name)
def test_printer_columns_point_into_the_schema(path: Path) -> None:
    crd = _crd(path)
    version = crd["spec"]["versions"][0]
    schema = _schema(crd)
    for column in version["additionalPrinterColumns"]:
        json_path = column["jsonPath"]
        if json_path == ".metadata.creationTimestamp":
            continue  # metadata is Kubernetes'
        assert _json_path_exists(schema, json_path), f"{column['name']}: {json_path}"
    for selectable in version.get("selectableFields", []):
        assert _json_path_exists(schema, selectable["jsonPath"]), selectable


def test_json_path_check_rejects_missing_fields() -> None:
    schema = _schema(_crd(ROOT / "crds" / "runs.pipesync.io.yaml"))
    assert _json_path_exists(schema, '.status.conditions[?(@.type=="Ready")].status')
    assert not _json_path_exists(schema, ".status.nope")
    assert not _json_path_exists(schema, ".spec.params[0]")


def test_contract_printer_columns() -> None:
    columns = {
        _crd(p)["spec"]["names"]["kind"]: {
            c["name"]: c["jsonPath"]
            for c in _crd(p)["spec"]["versions"][0]["additionalPrinterColumns"]
            if c.get("priority", 0) == 0
        }
        for p in CRDS
    }
    # Issue 4: `kubectl get runs` shows NAME, PIPELINE, EXPERIMENT, PHASE, PROGRESS,
    # STARTED, DURATION (AGE with -o wide), and MESSAGE: what a waiting run waits for.
    assert list(columns["Run"]) == [
        "Pipeline",
        "Experiment",
        "Phase",
        "Progress",
        "Started",
        "Duration",
        "Message",
    ]
    assert columns["Run"]["Pipeline"] == ".spec.pipelineRef.name"
    assert columns["RecurringRun"]["Active"] == ".status.activeCount"
    assert columns["RecurringRun"]["Schedule"] == ".spec.schedule.cron"
    assert columns["Pipeline"]["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["GitSource"]["Revision"] == ".status.lastAppliedRevision"
    assert columns["Experiment"]["Last Run"] == ".status.lastRun.name"


def test_generator_rejects_what_kubernetes_cannot_express() -> None:
    with pytest.raises(gen.ConversionError, match="if"):
        gen.to_structural({"description": "x", "type": "string", "if": {}}, "/x")
    with pytest.raises(gen.ConversionError, match="description"):
        gen.to_structural({"type": "string"}, "/undocumented")
    with pytest.raises(gen.ConversionError, match="set"):
        gen.to_structural(
            {
                "description": "x",
                "type": "array",
                "uniqueItems": True,
                "items": {"description": "y", "type": "object"},
            },
            "/x",
        )


def test_generator_conversions() -> None:
    out = gen.to_structural(
        {
            "description": "d",
            "type": "object",
            "additionalProperties": False,
            "oneOf": [{"required": ["a"], "description": "doc only"}, {"required": ["b"]}],
            "properties": {
                "a": {"description": "a", "const": "x", "format": "uri", "type": "string"},
                "b": {"description": "b", "type": "string", "format": "date-time"},
                "n": {"description": "n", "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "s": {
                    "description": "s",
                    "type": "array",
                    "uniqueItems": True,
                    "items": {"description": "i", "type": "string"},
                },
            },
        }
    )
    assert "additionalProperties" not in out
    assert out["oneOf"] == [{"required": ["a"]}, {"required": ["b"]}]
    assert out["properties"]["a"] == {"description": "a", "type": "string", "enum": ["x"]}
    assert out["properties"]["b"]["format"] == "date-time"
    assert out["properties"]["n"]["x-kubernetes-int-or-string"] is True
    assert out["properties"]["s"]["x-kubernetes-list-type"] == "set"
    assert "uniqueItems" not in out["properties"]["s"]
