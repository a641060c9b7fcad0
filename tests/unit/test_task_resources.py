"""Resources written as placeholders (`gpu: "{{params.gpus}}"`): checked by the compiler,
rendered per attempt for both executors, and accelerator types as the extended resource
a pod's limits count."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pipesync.api import model
from pipesync.engine import attempt, planner
from pipesync.engine import resources as task_resources
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.state import TASK, NodeState, Phase
from pipesync.runtime import pods
from pipesync.runtime.pods import PodBuildError, PodSettings, RunInfo, S3Settings
from tests.unit.conftest import Cli, WriteYaml
from tests.unit.pipelines import compile_yaml, problems_of

RUN = RunInfo(name="r", namespace="ml", uid="0b8c2a4e-1111-2222-3333-444455556666")
SETTINGS = PodSettings(image="op", s3=S3Settings(bucket="art"))

PIPELINE = """
params:
  - {name: gpus, type: string, default: "2"}
  - {name: kind, type: string, default: TPU_V3}
  - {name: memory, type: string, default: 4Gi}
tasks:
  - name: size
    command: [sh, -c, 'echo 3 > "$1"', size, "{{outputs.parameters.n}}"]
    outputs: {parameters: [n]}
  - name: train
    image: trainer:1
    command: [python, train.py]
    resources:
      cpu: "1"
      memory: "{{params.memory}}"
      gpu: "{{tasks.size.outputs.parameters.n}}"
      accelerator: "{{params.kind}}"
  - name: plain
    image: trainer:1
    command: [python, plain.py]
    resources: {gpu: 1, accelerator: TPU_V3}
"""


def launch(
    pipeline: CompiledPipeline, name: str, params: dict[str, Any], outputs: dict[str, str]
) -> planner.Launch:
    """The planner's launch of `name` once `size` succeeded with output n."""
    size = (pipeline.task("size").index, TASK)
    nodes = {size: NodeState(Phase.SUCCEEDED, attempts=1, outputs=outputs)}
    context = planner.RunContext(RUN.name, RUN.namespace, params)
    for found in planner.plan(pipeline, nodes, context, now=0.0).launches:
        if found.task.name == name:
            return dataclasses.replace(found, attempt=1)
    raise AssertionError(f"{name} was not launched")


def main(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "main")


def test_a_task_output_gives_the_count_and_a_parameter_the_tpu_type() -> None:
    pipeline = compile_yaml(PIPELINE)
    train = pipeline.task("train")
    assert pipeline.task("size").index in train.upstream  # it waits for the count
    ran = launch(pipeline, "train", {"gpus": "2", "kind": "TPU_V3", "memory": "4Gi"}, {"n": "3"})
    assert attempt.resources(ran) == model.Resources(
        cpu="1", memory="4Gi", gpu=3, accelerator="google.com/tpu"
    )
    pod = pods.build_pod(ran, run=RUN, settings=SETTINGS, pipeline=pipeline)
    assert main(pod)["resources"]["limits"] == {
        "cpu": "1",
        "memory": "4Gi",
        "google.com/tpu": "3",
    }
    assert pod["spec"]["tolerations"] == [
        {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_a_constant_kfp_type_name_is_its_extended_resource_in_the_pod() -> None:
    pipeline = compile_yaml(PIPELINE)
    ran = launch(pipeline, "plain", {"gpus": "2", "kind": "TPU_V3", "memory": "4Gi"}, {"n": "3"})
    pod = pods.build_pod(ran, run=RUN, settings=SETTINGS, pipeline=pipeline)
    assert main(pod)["resources"] == {"limits": {"google.com/tpu": "1"}}


@pytest.mark.parametrize(
    ("params", "output", "message"),
    [
        (
            {"memory": "4Gi", "kind": "TPU_V3"},
            "many",
            "task 'train': resources.gpu '{{tasks.size.outputs.parameters.n}}' is 'many': "
            "not a whole number",
        ),
        ({"memory": "4Gi", "kind": "TPU_V3"}, "1.5", "not a whole number of at least 0"),
        ({"memory": "lots", "kind": "TPU_V3"}, "1", "is 'lots': not a Kubernetes quantity"),
        ({"memory": "4Gi", "kind": "FPGA"}, "1", "is 'FPGA': not an extended resource name"),
    ],
)
def test_a_value_no_pod_can_be_given_fails_the_attempt_in_one_line(
    params: dict[str, Any], output: str, message: str
) -> None:
    pipeline = compile_yaml(PIPELINE)
    ran = launch(pipeline, "train", params, {"n": output})
    with pytest.raises(task_resources.ResourceError) as raised:
        attempt.resources(ran)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    with pytest.raises(PodBuildError) as built:
        pods.build_pod(ran, run=RUN, settings=SETTINGS, pipeline=pipeline)
    assert message in str(built.value)


@pytest.mark.parametrize(
    ("kind", "resource"),
    [
        ("", "nvidia.com/gpu"),
        ("nvidia.com/gpu", "nvidia.com/gpu"),
        ("NVIDIA_TESLA_P4", "nvidia.com/gpu"),
        ("nvidia-l4", "nvidia.com/gpu"),
        ("TPU_V3", "google.com/tpu"),
        ("tpu-v3", "google.com/tpu"),
        ("google.com/tpu", "google.com/tpu"),
        ("AMD_MI300X", "amd.com/gpu"),
        ("example.com/fpga", "example.com/fpga"),
        ("FPGA", None),
        ("not a/name", None),
    ],
)
def test_accelerator_types_name_their_extended_resource(kind: str, resource: str | None) -> None:
    assert task_resources.accelerator_resource(kind) == resource


def test_the_compiler_refuses_files_and_unknown_constant_types_in_resources() -> None:
    problems = problems_of(
        """
tasks:
  - name: t
    command: [x, "{{outputs.artifacts.a}}"]
    outputs: {artifacts: [a]}
    resources: {gpu: "{{outputs.artifacts.a}}", accelerator: FPGA}
"""
    )
    assert {(p.path, p.message) for p in problems} == {
        (
            ("tasks", 0, "resources", "gpu"),
            "resources.gpu: {{outputs.artifacts.a}} is a file, not a value",
        ),
        (
            ("tasks", 0, "resources", "accelerator"),
            f"accelerator 'FPGA': pipesync asks for {task_resources.SUPPORTED}",
        ),
    }


def test_validate_locates_resource_text_that_is_neither_a_value_nor_a_placeholder(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml(
        "p.yaml",
        """
        apiVersion: pipesync.io/v1alpha1
        kind: Pipeline
        metadata: {name: p}
        spec:
          params: [{name: gpus, type: string, default: "1"}]
          tasks:
            - name: t
              command: [x]
              resources: {gpu: two, memory: "{{params.gpus}}Gi"}
        """,
    )
    result = cli("validate", path)
    assert result.code == 1
    assert "p.yaml:9:" in result.out and "gpu" in result.out, result.out
    assert "memory" not in result.out  # a placeholder in a quantity waits for the run
