"""KFP accelerators (`set_accelerator_limit`, `set_accelerator_type`) and cpu/memory
limits, constant or from a pipeline input or a task output, and importer URIs whose
scheme pipesync does not read: what `validate` and `run` say, never a traceback.
Pipelines are compiled by kfp 2.17.0 during the test; the odd forms are small edits of
the compiled IR."""

# No `from __future__ import annotations`: the KFP SDK reads component annotations as types.

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.conftest import Cli

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    kfp = pytest.importorskip(
        "kfp", reason="kfp is not installed (pip install kfp==2.17.0; see docs/kfp.md)"
    )
    from kfp import compiler as kfp_compiler
    from kfp import dsl
    from kfp.dsl import Dataset

from pipesync.engine import kfp as kfp_reader

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

IMAGE = "python:3.11"
TRACEBACK = "Traceback (most recent call last)"


@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def text(value: str) -> str:
    return value


@dsl.pipeline(name="from-inputs")
def from_inputs(
    accelerator_limit: str = "1", accelerator_type: str = "NVIDIA_TESLA_P4", memory: str = "1G"
) -> None:
    (
        add(a=1, b=2)
        .set_accelerator_limit(accelerator_limit)
        .set_accelerator_type(accelerator_type)
        .set_memory_limit(memory)
    )


@dsl.pipeline(name="from-outputs")
def from_outputs() -> None:
    limit = text(value="1").set_caching_options(False)
    kind = text(value="TPU_V3").set_caching_options(False)
    (
        add(a=1, b=2)
        .set_caching_options(False)
        .set_accelerator_limit(limit.output)
        .set_accelerator_type(kind.output)
    )


def compile_to(pipeline: Any, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kfp_compiler.Compiler().compile(pipeline, str(path))
    return path


def body_of(path: Path) -> dict[str, Any]:
    loaded = kfp_reader.load(path.read_bytes(), path.name)
    assert loaded is not None
    resources, problems = loaded
    assert problems == [], [p.format() for p in problems]
    return {t["name"]: t for t in resources[0].body["spec"]["tasks"]}


def run(cli: Cli, path: Path, tmp_path: Path, *params: str) -> tuple[int, str]:
    args = ["run", str(path), "--workdir", str(tmp_path / "work"), "--plain", "--no-cache"]
    for param in params:
        args += ["-p", param]
    result = cli(*args)
    return result.code, result.text


def test_an_accelerator_from_pipeline_inputs_becomes_parameter_placeholders(
    tmp_path: Path,
) -> None:
    tasks = body_of(compile_to(from_inputs, tmp_path / "p.yaml"))
    assert tasks["add"]["resources"] == {
        "memory": "{{params.memory}}",
        "gpu": "{{params.accelerator_limit}}",
        "accelerator": "{{params.accelerator_type}}",
    }
    assert tasks["add"]["pool"] == "gpu"


def test_an_accelerator_from_task_outputs_waits_for_them(tmp_path: Path) -> None:
    tasks = body_of(compile_to(from_outputs, tmp_path / "p.yaml"))
    assert tasks["add"]["resources"] == {
        "gpu": "{{tasks.text.outputs.parameters.Output}}",
        "accelerator": "{{tasks.text-2.outputs.parameters.Output}}",
    }


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("TPU_V3", {"gpu": 2, "accelerator": "google.com/tpu"}),
        ("google.com/tpu", {"gpu": 2, "accelerator": "google.com/tpu"}),
        ("NVIDIA_TESLA_T4", {"gpu": 2}),
    ],
)
def test_a_constant_type_is_its_extended_resource(
    tmp_path: Path, kind: str, expected: dict[str, Any]
) -> None:
    @dsl.pipeline(name="constant")
    def pipeline() -> None:
        add(a=1, b=2).set_accelerator_type(kind).set_accelerator_limit(2)

    task = body_of(compile_to(pipeline, tmp_path / "p.yaml"))["add"]
    assert task["resources"] == expected
    assert ("pool" in task) == ("accelerator" not in expected)  # the gpu pool is NVIDIA's


def test_both_machine_field_pipelines_validate_and_run(cli: Cli, tmp_path: Path) -> None:
    for pipeline in (from_inputs, from_outputs):
        path = compile_to(pipeline, tmp_path / f"{pipeline.name}.yaml")
        result = cli("validate", path)
        assert result.code == 0, result.text
        code, output = run(cli, path, tmp_path)
        assert code == 0, output


def test_a_parameter_no_pod_can_be_given_fails_the_task_in_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    path = compile_to(from_inputs, tmp_path / "p.yaml")
    code, output = run(cli, path, tmp_path, "accelerator_limit=two")
    assert code == 1
    assert "resources.gpu '{{params.accelerator_limit}}' is 'two': not a whole number" in output
    assert TRACEBACK not in output


# Every accelerator form the IR can hold, edited into a compiled pipeline whose task has
# the inputs `pipelinechannel--accelerator_limit` and `pipelinechannel--accelerator_type`.
LIMIT = "{{$.inputs.parameters['pipelinechannel--accelerator_limit']}}"
KIND = "{{$.inputs.parameters['pipelinechannel--accelerator_type']}}"
FORMS: list[tuple[Any, str | None]] = [
    ({"resourceCount": "1", "resourceType": "nvidia.com/gpu"}, None),
    ({"count": 2, "type": "NVIDIA_TESLA_T4"}, None),
    ({"count": "1", "resourceCount": "1", "resourceType": "TPU_V3", "type": "TPU_V3"}, None),
    ({"resourceCount": "1", "resourceType": "tpu-v3"}, None),
    ({"resourceCount": "1"}, None),
    ({"resourceCount": "0", "resourceType": "FPGA"}, None),
    ({"resourceType": "TPU_V3"}, None),
    ({"resourceCount": LIMIT, "resourceType": KIND}, None),
    ({"resourceCount": LIMIT, "resourceType": "TPU_V3"}, None),
    ({"resourceCount": "2", "resourceType": KIND}, None),
    ({"resourceCount": "two"}, "accelerator count 'two' is not a whole number"),
    ({"resourceCount": "1.5"}, "accelerator count '1.5' is not a whole number"),
    ({"resourceCount": "-1"}, "accelerator count '-1' is not a whole number"),
    ({"resourceCount": "1", "resourceType": "FPGA"}, "accelerator type 'FPGA': pipesync asks"),
    ({"resourceCount": "{{$.inputs.parameters['nope']}}"}, "accelerator.resourceCount"),
    ({"resourceCount": "{{$.inputs.artifacts['nope'].path}}"}, "accelerator.resourceCount"),
    ({"resourceCount": ["1"]}, "is not a whole number"),
    ({"resourceCount": {"a": 1}}, "is not a whole number"),
    ({"resourceCount": "1", "resourceType": 7}, "accelerator type '7'"),
    ("TPU_V3", None),  # not a mapping: read as no accelerator
]


@pytest.mark.parametrize(("accelerator", "problem"), FORMS)
def test_every_accelerator_form_validates_and_runs_without_a_traceback(
    cli: Cli, tmp_path: Path, accelerator: Any, problem: str | None
) -> None:
    path = compile_to(from_inputs, tmp_path / "p.yaml")
    ir = yaml.safe_load(path.read_text())
    container = ir["deploymentSpec"]["executors"]["exec-add"]["container"]
    container["resources"]["accelerator"] = accelerator
    path.write_text(yaml.safe_dump(ir, sort_keys=False))
    result = cli("validate", path)
    assert TRACEBACK not in result.text
    if problem is None:
        assert result.code == 0, result.text
        code, output = run(cli, path, tmp_path)
        assert TRACEBACK not in output
        assert code == 0, output
    else:
        assert result.code == 1, result.text
        line = next(line for line in result.out.splitlines() if problem in line)
        assert line.startswith(f"{path}:"), line  # file:line:col: message
        code, output = run(cli, path, tmp_path)
        assert code == 2
        assert TRACEBACK not in output


@pytest.mark.parametrize("uri", ["gs://bucket/data.txt", "oci://registry/model:1", "GS://b/x"])
def test_an_importer_uri_pipesync_does_not_read_is_a_located_validate_error(
    cli: Cli, tmp_path: Path, uri: str
) -> None:
    @dsl.pipeline(name="imports")
    def pipeline() -> None:
        dsl.importer(artifact_uri=uri, artifact_class=Dataset)

    path = compile_to(pipeline, tmp_path / "p.yaml")
    result = cli("validate", path)
    assert result.code == 1
    scheme = uri.split(":", maxsplit=1)[0].lower()
    lines = result.out.splitlines()
    assert len(lines) == 1, result.out  # the importer's consumers are not reported too
    assert lines[0].startswith(f"{path}:")
    assert (
        f"importer URI {uri!r}: pipesync does not read {scheme}:// URIs; it imports a path, "
        "file://, http(s):// or s3://" in lines[0]
    )
    assert TRACEBACK not in result.text


def test_importer_uris_pipesync_reads_or_learns_at_run_time_are_valid(
    cli: Cli, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("hello")

    @dsl.pipeline(name="imports")
    def pipeline(uri: str = "gs://bucket/later.txt") -> None:
        for constant in (str(data), data.as_uri(), "s3://bucket/key", "https://example.com/x"):
            dsl.importer(artifact_uri=constant, artifact_class=Dataset)
        dsl.importer(artifact_uri=uri, artifact_class=Dataset)  # a parameter: run time

    path = compile_to(pipeline, tmp_path / "p.yaml")
    result = cli("validate", path)
    assert result.code == 0, result.text
    assert json.dumps(str(data)) in json.dumps(body_of(path)["importer"]["command"])
