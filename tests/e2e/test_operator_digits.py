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


def _tasks(status: dict[str, Any]) -> dict[str, str]:
    return {name: task["phase"] for name, task in status["tasks"].items()}


def _run(cluster: Cluster, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    document = yaml.safe_load(run_document(name, "digits"))
    document["spec"].update(spec)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(document))
    status: dict[str, Any] = wait_finished(cluster, namespace, name, timeout=300)["status"]
    return status


def _ran(cluster: Cluster, namespace: str, run: str) -> list[str]:
    """The tasks the run created pods for."""
    return sorted(
        pod["metadata"]["labels"]["pipesync.io/task"] for pod in pods_of(cluster, namespace, run)
    )


def test_the_second_digits_run_is_served_by_the_cache(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    """Every cached task of a second run is served without a pod (only onExit runs: it
    reports on this run); a deleted artifact re-runs its task; Disabled runs everything
    and Refresh runs everything and rewrites the entries."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=digits_for_this_cluster())
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/digits", "-n", namespace, "--timeout=60s"
    )
    first = _run(cluster, namespace, "digits-1")
    assert first["phase"] == "Succeeded", (json.dumps(first, indent=1), operator.log())

    second = _run(cluster, namespace, "digits-2")
    assert second["phase"] == "Succeeded", json.dumps(second, indent=1)
    assert _ran(cluster, namespace, "digits-2") == ["notify"]
    cached = {name for name, phase in _tasks(second).items() if phase == "Cached"}
    assert cached == {name for name in _tasks(first) if name != "notify"}
    assert second["tasks"]["train"]["cachedFrom"] == {"run": "digits-1", "task": "train"}
    assert second["taskCounts"]["cached"] == len(cached)
    assert second["tasks"]["evaluate"]["outputs"] == first["tasks"]["evaluate"]["outputs"]
    model = s3.client().get_object(
        Bucket=s3.bucket, Key=f"{namespace}/runs/digits-2/train/outputs/artifacts/model"
    )
    assert model["ContentLength"] > 0  # the run's own copy
    events = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "reason=TasksCached", "-o", "json"
    ).stdout
    assert any("digits-1/train" in e["message"] for e in json.loads(events)["items"])

    # The model of the source run is gone: train runs again, the rest is still served
    # (training is deterministic, so evaluate's input digest is the same again).
    s3.client().delete_object(
        Bucket=s3.bucket, Key=f"{namespace}/runs/digits-1/train/outputs/artifacts/model"
    )
    third = _run(cluster, namespace, "digits-3")
    assert third["phase"] == "Succeeded", json.dumps(third, indent=1)
    assert _ran(cluster, namespace, "digits-3") == ["notify", "train"]
    assert _tasks(third)["evaluate"] == "Cached"

    disabled = _run(cluster, namespace, "digits-4", cache="Disabled")
    assert disabled["phase"] == "Succeeded", json.dumps(disabled, indent=1)
    assert "Cached" not in _tasks(disabled).values()

    refreshed = _run(cluster, namespace, "digits-5", cache="Refresh")
    assert refreshed["phase"] == "Succeeded", json.dumps(refreshed, indent=1)
    assert "Cached" not in _tasks(refreshed).values()
    after = _run(cluster, namespace, "digits-6")
    assert after["tasks"]["train"]["cachedFrom"] == {"run": "digits-5", "task": "train"}
