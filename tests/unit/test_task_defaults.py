"""A pipeline's `defaults` merged into its tasks (api.model.with_defaults), read the same
by the model and by `pipesync diff`."""

from __future__ import annotations

from pipesync.api import model, schemas
from pipesync.gitops import diff

DEFAULTS = {
    "image": "python:3.12-slim",
    "pool": "cpu",
    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
    "nodeSelector": {"zone": "a", "disk": "ssd"},
    "retry": {"limit": 2},
}


def test_a_task_takes_every_default_it_does_not_set() -> None:
    merged = model.with_defaults({"name": "t"}, DEFAULTS)
    assert merged == {"name": "t", **DEFAULTS}


def test_the_task_wins_and_env_and_node_selector_merge() -> None:
    task = {
        "name": "t",
        "image": "own:1",
        "env": [{"name": "B", "value": "task"}, {"name": "C", "value": "3"}],
        "nodeSelector": {"disk": "hdd"},
    }
    merged = model.with_defaults(task, DEFAULTS)
    assert merged["image"] == "own:1" and merged["pool"] == "cpu"
    assert merged["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "task"},
        {"name": "C", "value": "3"},
    ]
    assert merged["nodeSelector"] == {"zone": "a", "disk": "hdd"}
    assert task["nodeSelector"] == {"disk": "hdd"}  # the input is left alone


def test_the_defaulted_fields_are_the_schemas() -> None:
    common = schemas.load("common")
    assert set(model.DEFAULTED_FIELDS) == set(common["$defs"]["taskDefaults"]["properties"])


def test_the_model_and_the_diff_see_the_same_task() -> None:
    task = {"name": "t", "command": ["x"], "env": [{"name": "B", "value": "task"}]}
    spec = {"defaults": DEFAULTS, "tasks": [task]}
    built = model.pipeline_spec_from_spec(spec).tasks[0]
    shown = diff.effective_tasks(spec)["t"]
    assert built.image == shown["image"] and built.pool == shown["pool"]
    assert dict(built.env) == {e["name"]: e["value"] for e in shown["env"]}
    assert dict(built.node_selector) == shown["nodeSelector"]
