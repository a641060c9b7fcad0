"""engine/cache: every input that decides a task's results changes its key, and nothing
else does; entries round-trip and serve only while fresh and complete."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from pipesync.api import model
from pipesync.api.model import CacheMode
from pipesync.engine import cache, compiler, planner
from pipesync.engine.context import RunContext

TASK: dict[str, Any] = {
    "name": "train",
    "image": "registry.example.com/train:1",
    "command": ["python", "steps/train.py"],
    "args": ["--lr", "{{params.lr}}", "--out", "{{outputs.artifacts.model}}"],
    "env": [
        {"name": "MODE", "value": "fast"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
    ],
    "workingDir": "steps",
    "outputs": {"artifacts": ["model"], "parameters": ["accuracy"]},
    "cache": {"enabled": True, "paths": ["steps/train.py"]},
    "description": "trains",
    "resources": {"cpu": "1", "memory": "1Gi"},
    "retry": {"limit": 1},
    "timeout": "10m",
    "pool": "cpu",
}
PARAMS = [{"name": "lr", "type": "number", "default": 0.1}]


def launch_of(
    task: dict[str, Any], params: dict[str, Any] | None = None, run: str = "r1"
) -> planner.Launch:
    spec = model.pipeline_spec_from_spec({"params": PARAMS, "tasks": [task]})
    compiled, problems = compiler.compile_pipeline(spec)
    assert compiled is not None, problems
    context = RunContext(run, "ns", params or {"lr": 0.1})
    (launch,) = planner.plan(compiled, {}, context, now=0.0).launches
    return launch


def key_of(
    task: dict[str, Any],
    *,
    params: dict[str, Any] | None = None,
    run: str = "r1",
    inputs: dict[str, str] | None = None,
    code: str = "code-1",
) -> str:
    return cache.cache_key(
        launch_of(task, params, run), input_digests=inputs or {}, code_digest=code
    )


BASE = key_of(TASK)


def changed(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    task = copy.deepcopy(TASK)
    edit(task)
    return task


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.update(image="registry.example.com/train:2"), id="image"),
        pytest.param(lambda t: t["command"].append("-O"), id="command"),
        pytest.param(lambda t: t["args"].insert(0, "--verbose"), id="args"),
        pytest.param(lambda t: t["env"][0].update(value="slow"), id="env value"),
        pytest.param(lambda t: t["env"].append({"name": "X", "value": "1"}), id="env added"),
        pytest.param(
            lambda t: t["env"][1]["valueFrom"]["secretKeyRef"].update(key="other"),
            id="secret key",
        ),
        pytest.param(
            lambda t: t["env"][1]["valueFrom"]["secretKeyRef"].update(name="creds2"),
            id="secret name",
        ),
        pytest.param(lambda t: t.update(workingDir="src"), id="workingDir"),
        pytest.param(lambda t: t["outputs"]["artifacts"].append("extra"), id="outputs"),
        pytest.param(lambda t: t["cache"].update(salt="v2"), id="salt"),
        pytest.param(
            lambda t: t.update(
                volumes=[
                    {"name": "d", "mountPath": "/d", "persistentVolumeClaim": {"claimName": "c"}}
                ]
            ),
            id="volume",
        ),
    ],
)
def test_what_decides_the_results_changes_the_key(edit: Callable[[dict[str, Any]], None]) -> None:
    assert key_of(changed(edit)) != BASE


def test_parameter_values_input_digests_and_code_change_the_key() -> None:
    assert key_of(TASK, params={"lr": 0.2}) != BASE
    assert key_of(TASK, code="code-2") != BASE
    with_input = {
        **TASK,
        "inputs": {"artifacts": {"data": {"from": "{{tasks.p.outputs.artifacts.d}}"}}},
    }
    producer = {"name": "p", "image": "i", "command": ["true"], "outputs": {"artifacts": ["d"]}}
    spec = model.pipeline_spec_from_spec({"params": PARAMS, "tasks": [producer, with_input]})
    compiled, problems = compiler.compile_pipeline(spec)
    assert compiled is not None, problems
    states = {(0, -1): planner.NodeState(planner.Phase.SUCCEEDED)}
    (launch,) = planner.plan(compiled, states, RunContext("r", "ns", {"lr": 0.1}), now=0.0).launches
    one = cache.cache_key(launch, input_digests={"data": "a" * 64}, code_digest="c")
    two = cache.cache_key(launch, input_digests={"data": "b" * 64}, code_digest="c")
    assert one != two


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda t: t.update(description="trains faster"), id="description"),
        pytest.param(
            lambda t: t.update(resources={"cpu": "4", "memory": "8Gi", "gpu": 1}), id="resources"
        ),
        pytest.param(lambda t: t.update(retry={"limit": 5, "backoff": "10s"}), id="retry"),
        pytest.param(lambda t: t.update(timeout="1h"), id="timeout"),
        pytest.param(lambda t: t.update(pool="gpu"), id="pool"),
        pytest.param(lambda t: t["cache"].update(maxAge="1d"), id="maxAge"),
        pytest.param(
            lambda t: t["cache"].update(paths=["steps/other.py"]), id="paths (the code digest is)"
        ),
    ],
)
def test_how_and_where_a_task_runs_leaves_the_key_alone(
    edit: Callable[[dict[str, Any]], None],
) -> None:
    assert key_of(changed(edit)) == BASE


def test_another_run_of_the_same_task_has_the_same_key() -> None:
    # PIPESYNC_RUN and PIPESYNC_ATTEMPT differ per run; they are not inputs
    assert key_of(TASK, run="r2") == BASE


def test_a_task_that_reads_its_run_name_is_keyed_per_run() -> None:
    task = changed(lambda t: t["args"].extend(["--run", "{{run.name}}"]))
    assert key_of(task, run="r1") != key_of(task, run="r2")


def test_a_key_is_a_sha256_hex_digest() -> None:
    assert len(BASE) == 64 and set(BASE) <= set("0123456789abcdef")


def test_modes_decide_whether_a_task_reads_and_writes_the_cache() -> None:
    compiled = launch_of(TASK).task
    assert cache.applies(compiled, CacheMode.ENABLED) and cache.looks_up(
        compiled, CacheMode.ENABLED
    )
    assert cache.applies(compiled, CacheMode.REFRESH)
    assert not cache.looks_up(compiled, CacheMode.REFRESH)  # runs, then rewrites
    assert not cache.applies(compiled, CacheMode.DISABLED)
    off = launch_of(changed(lambda t: t["cache"].update(enabled=False))).task
    assert not cache.applies(off, CacheMode.ENABLED)


def entry(created_at: float = 1000.0, **fields: Any) -> cache.CacheEntry:
    values: dict[str, Any] = {
        "key": BASE,
        "created_at": created_at,
        "run": "r0",
        "task": "train",
        "outputs": {"accuracy": "0.9"},
        "artifacts": {"model": cache.StoredArtifact("ns/cache/blobs/x", "x" * 64)},
        "duration_seconds": 12.5,
        "gpus": 1,
    }
    values.update(fields)
    return cache.CacheEntry(**values)


def test_an_entry_round_trips_and_a_foreign_one_reads_as_none() -> None:
    stored = entry()
    assert cache.CacheEntry.from_json(stored.to_json()) == stored
    for foreign in (None, [], {}, {"format": "other"}, {**stored.to_json(), "createdAt": "x"}):
        assert cache.CacheEntry.from_json(foreign) is None
    assert cache.CacheEntry.from_json({**stored.to_json(), "createdAt": float("nan")}) is None


def test_an_entry_serves_while_fresh_and_complete() -> None:
    launch = launch_of(TASK)
    day = 86400.0
    assert cache.serves(entry(), launch, BASE, now=1000.0 + day, max_age=None)
    assert cache.serves(entry(), launch, BASE, now=1000.0 + day, max_age=day)
    assert not cache.serves(entry(), launch, BASE, now=1000.0 + day + 1, max_age=day)
    assert not cache.serves(entry(), launch, "0" * 64, now=1000.0, max_age=None)
    assert not cache.serves(None, launch, BASE, now=1000.0, max_age=None)
    assert not cache.serves(entry(outputs={}), launch, BASE, now=1000.0, max_age=None)
    assert not cache.serves(entry(artifacts={}), launch, BASE, now=1000.0, max_age=None)


# --- the definition's part of the key (what `pipesync diff` compares) ---------------------


def compiled_task(task: dict[str, Any]) -> compiler.CompiledTask:
    spec = model.pipeline_spec_from_spec({"params": PARAMS, "tasks": [task]})
    compiled, problems = compiler.compile_pipeline(spec)
    assert compiled is not None, problems
    return compiled.tasks[0]


def test_the_definition_keeps_placeholders_and_ignores_how_a_task_runs() -> None:
    definition = cache.definition(compiled_task(TASK))
    assert definition["argv"][:4] == ["python", "steps/train.py", "--lr", "{{params.lr}}"]
    moved = {**TASK, "resources": {"cpu": "4"}, "retry": {"limit": 5}, "description": "x"}
    assert cache.definition(compiled_task(moved)) == definition
    salted = {**TASK, "cache": {**TASK["cache"], "salt": "2"}}
    assert cache.definition(compiled_task(salted)) != definition


def test_keyed_upstream_is_the_tasks_whose_outputs_enter_the_key() -> None:
    spec = model.pipeline_spec_from_spec(
        {
            "tasks": [
                {
                    "name": "a",
                    "image": "i",
                    "command": ["x", "{{outputs.artifacts.d}}"],
                    "outputs": {"artifacts": ["d"]},
                },
                {
                    "name": "b",
                    "image": "i",
                    "command": ["x", "{{outputs.parameters.p}}"],
                    "outputs": {"parameters": ["p"]},
                },
                {"name": "c", "image": "i", "command": ["x"], "outputs": {"parameters": ["q"]}},
                {"name": "gate", "image": "i", "command": ["x"]},
                {
                    "name": "t",
                    "image": "i",
                    "command": ["x", "{{inputs.artifacts.d}}", "{{tasks.b.outputs.parameters.p}}"],
                    "inputs": {"artifacts": {"d": {"from": "{{tasks.a.outputs.artifacts.d}}"}}},
                    "when": "{{tasks.c.outputs.parameters.q}} == 1",
                    "dependsOn": ["gate"],
                },
            ]
        }
    )
    pipeline, problems = compiler.compile_pipeline(spec)
    assert pipeline is not None, problems
    assert cache.keyed_upstream(pipeline, pipeline.task("t")) == ("a", "b")
