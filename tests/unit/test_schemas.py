"""The JSON Schemas in schemas/: well-formed, documented, and strict where they must be.

They are the source of truth for `pipesync validate`, the CRDs and editor
support, so these tests pin both what must pass (the documented examples)
and what must fail, at which path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from pipesync.api import schemas

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILES = sorted((ROOT / "schemas").glob("*.schema.json"))

MINIMAL: dict[str, dict[str, Any]] = {
    "GitSource": {"spec": {"url": "https://git.example.com/ml/pipelines.git"}},
    "Pipeline": {"spec": {"tasks": [{"name": "train"}]}},
    "Experiment": {"spec": {}},
    "Run": {"spec": {"pipelineRef": {"name": "digits"}}},
    "RecurringRun": {"spec": {"pipelineRef": {"name": "digits"}, "schedule": {"interval": "6h"}}},
}

# The documents of DESIGN.md's format section, verbatim.
DESIGN_EXAMPLES = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata:
  name: digits
spec:
  description: Train and evaluate a digits classifier.
  params:
    - {name: learning_rate, type: number, default: 0.1}
    - {name: epochs, type: integer, default: 5}
  defaults:
    image: python:3.12-slim
    pool: cpu
    retry: {limit: 2, backoff: 5s, factor: 2, maxBackoff: 1m}
  tasks:
    - name: prepare
      command: [python, steps/prepare.py, --out, "{{outputs.artifacts.dataset}}"]
      outputs:
        artifacts: [dataset]
    - name: train
      dependsOn: [prepare]
      pool: gpu
      resources: {cpu: "2", memory: 4Gi, gpu: 1}
      command: [python, steps/train.py]
      args: [--data, "{{inputs.artifacts.dataset}}", --lr, "{{params.learning_rate}}",
             --accuracy-out, "{{outputs.parameters.accuracy}}",
             --model-out, "{{outputs.artifacts.model}}"]
      inputs:
        artifacts:
          dataset: {from: "{{tasks.prepare.outputs.artifacts.dataset}}"}
      outputs:
        parameters: [accuracy]
        artifacts: [model]
      timeout: 30m
    - name: sweep
      dependsOn: [prepare]
      forEach: {items: [0.01, 0.1, 1.0], parallelism: 2}
      command: [python, -c, "print({{item}})"]
    - name: publish
      dependsOn: [train]
      when: "{{tasks.train.outputs.parameters.accuracy}} >= 0.9"
      command: [sh, -c, "echo publishing"]
  onExit:
    name: notify
    command: [sh, -c, "echo finished: {{run.status}}"]
  trigger:
    onChange: true
---
apiVersion: pipesync.io/v1alpha1
kind: RecurringRun
metadata: {name: nightly-digits}
spec:
  pipelineRef: {name: digits}
  experimentRef: {name: digits-tuning}
  params: {learning_rate: 0.05}
  schedule: {cron: "0 2 * * *", timezone: Europe/Berlin}
  startTime: "2026-01-01T00:00:00Z"
  concurrencyPolicy: Forbid
  maxConcurrency: 1
  catchup: {policy: Latest, maxRuns: 3}
  startingDeadlineSeconds: 600
  suspend: false
  history: {succeeded: 5, failed: 3}
---
apiVersion: pipesync.io/v1alpha1
kind: Experiment
metadata: {name: digits-tuning}
spec: {description: Learning-rate tuning for the digits classifier.}
---
apiVersion: pipesync.io/v1alpha1
kind: Run
metadata: {name: digits-manual-1}
spec:
  pipelineRef: {name: digits}
  experimentRef: {name: digits-tuning}
  params: {learning_rate: 0.2}
  timeout: 2h
---
apiVersion: pipesync.io/v1alpha1
kind: GitSource
metadata: {name: ml-repo}
spec:
  url: https://git.example.com/ml/pipelines.git
  ref: {branch: main}
  path: ./
  interval: 1m
  secretRef: {name: git-credentials}
  webhook: {secretRef: {name: webhook-token}}
  prune: true
"""


def minimal(kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "example"},
    }
    doc.update(copy.deepcopy(MINIMAL[kind]))
    return doc


def errors(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(slash-joined instance path, failing keyword) of every error of doc."""
    found = schemas.validator(doc["kind"]).iter_errors(doc)
    return sorted(("/".join(str(p) for p in e.absolute_path), str(e.validator)) for e in found)


def with_change(kind: str, path: str, value: Any) -> dict[str, Any]:
    """minimal(kind) with the value at a slash path (list indexes as digits) set."""
    doc = minimal(kind)
    *parents, last = path.split("/")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


# --- the schemas themselves ------------------------------------------------


def test_every_kind_has_a_schema_file() -> None:
    names = {p.name for p in SCHEMA_FILES}
    assert names == set(schemas.SCHEMA_FILES.values())


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12(path: Path) -> None:
    doc = json.loads(path.read_text())
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"].startswith("https://pipesync.io/schemas/v1alpha1/")


def _property_nodes(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every schema that describes a field: properties, map values, list items."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _property_nodes(item, f"{where}/{i}")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "properties":
            for name, sub in value.items():
                yield f"{where}/properties/{name}", sub
                yield from _property_nodes(sub, f"{where}/properties/{name}")
        elif key in ("additionalProperties", "items") and isinstance(value, dict):
            if "$ref" not in value or len(value) > 1:
                yield f"{where}/{key}", value
            yield from _property_nodes(value, f"{where}/{key}")
        elif key == "$defs":
            for name, sub in value.items():
                yield f"{where}/$defs/{name}", sub
                yield from _property_nodes(sub, f"{where}/$defs/{name}")
        elif key not in ("const", "default", "enum"):
            yield from _property_nodes(value, f"{where}/{key}")


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_every_property_has_a_description(path: Path) -> None:
    doc = json.loads(path.read_text())
    nodes = list(_property_nodes(doc, ""))
    assert len(nodes) > 3
    missing = [
        where
        for where, node in nodes
        if not isinstance(node, dict) or not str(node.get("description", "")).strip()
    ]
    assert missing == []


def test_schemas_are_reachable_through_the_package() -> None:
    # What an installed wheel uses: pipesync/schemas/*.json, not the checkout.
    folder = resources.files("pipesync") / "schemas"
    for name in schemas.SCHEMA_FILES.values():
        assert json.loads((folder / name).read_text())["$id"]


def test_load_returns_a_private_copy() -> None:
    first = schemas.load("Pipeline")
    first["properties"].clear()
    assert schemas.load("pipeline")["properties"]
    assert schemas.validator("Pipeline") is schemas.validator("Pipeline")
    with pytest.raises(KeyError, match="no schema for kind"):
        schemas.load("Workflow")


# --- documents that must pass --------------------------------------------


@pytest.mark.parametrize("kind", schemas.KINDS)
def test_minimal_document_is_valid(kind: str) -> None:
    assert errors(minimal(kind)) == []


def test_design_examples_are_valid() -> None:
    docs = [d for d in yaml.safe_load_all(DESIGN_EXAMPLES) if d]
    assert {d["kind"] for d in docs} == set(schemas.KINDS)
    for doc in docs:
        assert errors(doc) == [], doc["kind"]


def test_inline_pipeline_spec_and_free_form_fields_are_valid() -> None:
    doc = minimal("Run")
    doc["spec"] = {
        "pipelineSpec": {
            "params": [{"name": "cfg", "type": "object", "default": {"a": [1, 2]}}],
            "tasks": [
                {
                    "name": "fan",
                    "forEach": {"items": "{{params.cfg}}"},
                    "resources": {"cpu": 0.5, "memory": "512Mi"},
                    "affinity": {"nodeAffinity": {"anything": ["goes", 1]}},
                    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "env": [{"name": "OMP_NUM_THREADS", "value": "1"}],
                }
            ],
        },
        "params": {"cfg": {"nested": True}, "lr": 0.1, "tags": ["a"]},
        "cancel": True,
    }
    assert errors(doc) == []


# --- documents that must fail, and where ------------------------------------

INVALID = [
    pytest.param(
        with_change("Pipeline", "spec/tasks/0/imgae", "python"),
        [("spec/tasks/0", "additionalProperties")],
        id="unknown-field-in-task",
    ),
    pytest.param(
        with_change("Pipeline", "spec", {"description": "no tasks"}),
        [("spec", "required")],
        id="missing-tasks",
    ),
    pytest.param(
        with_change("Pipeline", "spec/tasks", []),
        [("spec/tasks", "minItems")],
        id="empty-tasks",
    ),
    pytest.param(
        with_change("Pipeline", "spec/tasks/0/timeout", "30 minutes"),
        [("spec/tasks/0/timeout", "pattern")],
        id="bad-duration",
    ),
    pytest.param(
        with_change("Pipeline", "metadata/name", "Digits_V2"),
        [("metadata/name", "pattern")],
        id="bad-object-name",
    ),
    pytest.param(
        with_change("Pipeline", "spec/tasks/0/name", "x" * 64),
        [("spec/tasks/0/name", "maxLength")],
        id="task-name-too-long",
    ),
    pytest.param(
        with_change("Pipeline", "spec/params", [{"name": "learning rate"}]),
        [("spec/params/0/name", "pattern")],
        id="bad-param-name",
    ),
    pytest.param(
        with_change("RecurringRun", "spec/concurrencyPolicy", "Sometimes"),
        [("spec/concurrencyPolicy", "enum")],
        id="bad-enum",
    ),
    pytest.param(
        with_change("Run", "spec/pipelineSpec", {"tasks": [{"name": "a"}]}),
        [("spec", "oneOf")],
        id="both-pipelineRef-and-pipelineSpec",
    ),
    pytest.param(
        with_change("Run", "spec", {"params": {}}),
        [("spec", "oneOf")],
        id="neither-pipelineRef-nor-pipelineSpec",
    ),
    pytest.param(
        with_change("RecurringRun", "spec/schedule", {"cron": "0 2 * * *", "interval": "1h"}),
        [("spec/schedule", "oneOf")],
        id="cron-and-interval",
    ),
    pytest.param(
        with_change("GitSource", "spec/ref", {"branch": "main", "tag": "v1"}),
        [("spec/ref", "oneOf")],
        id="branch-and-tag",
    ),
    pytest.param(
        with_change("GitSource", "spec/url", "not a url"),
        [("spec/url", "pattern")],
        id="bad-url",
    ),
    pytest.param(
        with_change("RecurringRun", "spec/startTime", "2026-13-01T00:00:00Z"),
        [("spec/startTime", "format")],
        id="bad-date-time",
    ),
    pytest.param(
        with_change("Pipeline", "spec/onExit", {"name": "notify", "dependsOn": ["train"]}),
        [("spec/onExit/dependsOn", "not")],
        id="onExit-with-dependsOn",
    ),
    pytest.param(
        with_change("Pipeline", "spec/tasks/0/resources", {"cpu": "two"}),
        [("spec/tasks/0/resources/cpu", "anyOf")],
        id="bad-cpu-quantity",
    ),
    pytest.param(
        with_change("Pipeline", "spec/tasks/0/forEach", {"items": "{{item}}"}),
        [("spec/tasks/0/forEach/items", "anyOf")],
        id="bad-forEach-placeholder",
    ),
    pytest.param(
        with_change("Run", "spec/params", {"bad name": 1}),
        [("spec/params", "pattern")],
        id="bad-run-param-name",
    ),
    pytest.param(
        with_change("Run", "apiVersion", "pipesync.io/v1"),
        [("apiVersion", "const")],
        id="wrong-apiVersion",
    ),
    pytest.param(
        with_change("Experiment", "spec/owner", "me"),
        [("spec", "additionalProperties")],
        id="unknown-spec-field",
    ),
]


@pytest.mark.parametrize(("doc", "expected"), INVALID)
def test_invalid_document_fails_at_the_expected_path(
    doc: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert errors(doc) == expected
