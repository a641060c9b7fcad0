"""The digits example in the cluster: the example repository's own pipeline and step code,
run by the operator as pods, with artifacts through S3."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import yaml

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_runs import namespace, pods_of, run_document, wait_finished

__all__ = ["namespace"]  # the fixture, used by name below

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "repo-layout"


def digits_for_this_cluster() -> str:
    """The example pipeline with its step paths made absolute.

    Tasks run in the repository tree once GitSource sync provides it; until then they run
    in the image's working directory, so this test points the commands at the example's
    steps/ folder (the test nodes run containers as local processes).
    """
    document = yaml.safe_load((EXAMPLE / "pipelines" / "digits.yaml").read_text())
    steps = str(EXAMPLE / "steps") + "/"
    for task in [*document["spec"]["tasks"], document["spec"]["onExit"]]:
        task["command"] = [part.replace("steps/", steps) for part in task["command"]]
    return yaml.safe_dump(document)


def test_the_digits_example_runs_in_the_cluster(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=digits_for_this_cluster())
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/digits", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("digits-1", "digits"))
    status = wait_finished(cluster, namespace, "digits-1", timeout=300)["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    tasks = status["tasks"]
    accuracy = float(tasks["evaluate"]["outputs"]["accuracy"])
    assert 0.8 < accuracy <= 1.0
    # the when gate: publish runs exactly when accuracy >= publish_threshold (0.9)
    assert tasks["publish"]["phase"] == ("Succeeded" if accuracy >= 0.9 else "Skipped")

    nodes = {
        pod["metadata"]["labels"]["pipesync.io/task"]: pod["spec"]["nodeName"]
        for pod in pods_of(cluster, namespace, "digits-1")
    }
    assert nodes["train"] == "gpu-1"
    assert nodes["prepare"] == nodes["evaluate"] == "cpu-1"

    keys = {o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]}
    prefix = f"{namespace}/runs/digits-1"
    assert f"{prefix}/prepare/outputs/artifacts/dataset" in keys
    assert f"{prefix}/train/outputs/artifacts/model" in keys
    assert f"{prefix}/evaluate/outputs/parameters/accuracy" in keys
    for picture in ("confusion_matrix_png", "roc_png"):
        key = f"{prefix}/evaluate/outputs/artifacts/{picture}"
        body = s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        assert body.startswith(b"\x89PNG\r\n\x1a\n"), key
