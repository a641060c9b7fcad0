"""Pods built by `pipesync.runtime.pods.build_pod`, run on the real control plane.

The real scheduler places them on the node agent's cpu-1 / gpu-1 nodes; the agent runs the
three containers as local processes (`pipesync` resolves from the venv on PATH), with the
S3 fixture (moto over HTTP) as the object store. Assertions read what Kubernetes and S3
report; the final pod goes through `node_from_pod`, as the controller will do.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pipesync.engine import planner
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, NodeKey, NodeState, Phase
from pipesync.runtime.placement import GPU_TOLERATION
from pipesync.runtime.pods import PodSettings, RunInfo, S3Settings, build_pod
from pipesync.runtime.podstate import node_from_pod, sidecar_report
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.nodes import Nodes
from tests.e2e.fixtures.s3 import S3Server
from tests.unit.pipelines import compile_yaml

REPO = Path(__file__).resolve().parents[2]
JSON = dict[str, Any]
T = TypeVar("T")

PIPELINE = compile_yaml(
    """
params:
  - {name: note, type: string, default: "0.94 ; $(rm -rf /) 'q' \\"dq\\" *"}
tasks:
  - name: prepare
    image: busybox
    command: [sh, -c, 'echo hello-data > "$1"', prepare, "{{outputs.artifacts.dataset}}"]
    outputs: {artifacts: [dataset]}
  - name: train
    image: python:3.12-slim
    pool: gpu
    resources: {cpu: 500m, memory: 256Mi, gpu: 1}
    timeout: 5m
    inputs:
      artifacts:
        dataset: {from: "{{tasks.prepare.outputs.artifacts.dataset}}"}
    command:
      - sh
      - -c
      - >-
        set -e;
        test "$(cat "$1")" = hello-data;
        printf %s 0.94 > "$3";
        printf %s "$2" > "$4";
        mkdir -p "$5/sub";
        cp "$1" "$5/data.txt";
        echo weights > "$5/sub/weights.bin"
      - train
      - "{{inputs.artifacts.dataset}}"
      - "{{params.note}}"
      - "{{outputs.parameters.accuracy}}"
      - "{{outputs.parameters.note}}"
      - "{{outputs.artifacts.model}}"
    outputs: {parameters: [accuracy, note], artifacts: [model]}
  - name: crash
    image: busybox
    pool: cpu
    command: [sh, -c, 'echo about to fail >&2; exit 3']
  - name: forgetful
    image: busybox
    pool: cpu
    command: [sh, -c, 'true']
    outputs: {parameters: [result]}
  - name: slow
    image: busybox
    pool: cpu
    timeout: 2s
    command: [sh, -c, 'sleep 60']
"""
)
NOTE = "0.94 ; $(rm -rf /) 'q' \"dq\" *"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, nodes: Nodes) -> Iterator[str]:
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/runs.pipesync.io")
    name = f"pods-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@dataclasses.dataclass
class Harness:
    cluster: Cluster
    s3: S3Server
    run: RunInfo
    settings: PodSettings
    pipeline: CompiledPipeline = PIPELINE

    def launch(self, task: str, done: tuple[str, ...] = ()) -> planner.Launch:
        nodes: dict[NodeKey, NodeState] = {
            (self.pipeline.task(d).index, TASK): NodeState(Phase.SUCCEEDED, attempts=1)
            for d in done
        }
        context = planner.RunContext(self.run.name, self.run.namespace, {"note": NOTE})
        decision = planner.plan(self.pipeline, nodes, context, time.time())
        return next(launch for launch in decision.launches if launch.task.name == task)

    def create(self, task: str, done: tuple[str, ...] = ()) -> JSON:
        pod = build_pod(
            self.launch(task, done), run=self.run, settings=self.settings, pipeline=self.pipeline
        )
        self.cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
        return pod

    def get(self, name: str) -> JSON | None:
        result = self.cluster.kubectl(
            "get", "pod", name, "-n", self.run.namespace, "-o", "json", check=False
        )
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        pod: JSON = json.loads(result.stdout)
        return pod

    def finished(self, name: str, timeout: float = 90.0) -> JSON:
        def probe() -> JSON | None:
            pod = self.get(name)
            phase = (pod or {}).get("status", {}).get("phase")
            return pod if phase in ("Succeeded", "Failed") else None

        return wait_for(f"pod {name} to finish", probe, timeout)

    def key(self, task: str, name: str) -> str:
        return f"{self.settings.s3.prefix}/{self.run.namespace}/runs/{self.run.name}/{task}/{name}"

    def read(self, key: str) -> bytes:
        body: bytes = self.s3.client().get_object(Bucket=self.s3.bucket, Key=key)["Body"].read()
        return body


@pytest.fixture
def harness(cluster: Cluster, s3: S3Server, namespace: str) -> Iterator[Harness]:
    name = f"run-{uuid.uuid4().hex[:6]}"
    run_object = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"pipelineRef": {"name": "demo"}},
    }
    created = json.loads(
        cluster.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(run_object)).stdout
    )
    settings = PodSettings(
        image="ghcr.io/pipesync/pipesync:test",  # the node agent runs host binaries
        s3=S3Settings(
            bucket=s3.bucket,
            endpoint=s3.endpoint_url,
            region=s3.region,
            prefix=f"e2e-{uuid.uuid4().hex[:6]}",
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
        ),
        s3_patience_seconds=20,
    )
    run = RunInfo(name, namespace, created["metadata"]["uid"], pipeline="demo")
    yield Harness(cluster, s3, run, settings)
    cluster.kubectl("delete", "run", name, "-n", namespace, "--wait=false", check=False)


def state_of(pod: JSON) -> NodeState:
    result = node_from_pod(pod)
    assert result is not None
    return result[1]


def test_cpu_task_lands_on_cpu_and_succeeds(harness: Harness) -> None:
    built = harness.create("prepare")
    name = built["metadata"]["name"]
    pod = harness.finished(name)
    assert pod["spec"]["nodeName"] == "cpu-1"  # no pool: cpu-1 is the only untainted node
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert harness.read(harness.key("prepare", "outputs/artifacts/dataset")) == b"hello-data\n"
    assert state_of(pod).phase is Phase.SUCCEEDED
    assert pod["metadata"]["ownerReferences"][0]["uid"] == harness.run.uid


def test_gpu_task_gets_inputs_and_publishes_outputs(harness: Harness) -> None:
    # The producer's artifact is already in S3, as `prepare` would have left it.
    harness.s3.client().put_object(
        Bucket=harness.s3.bucket,
        Key=harness.key("prepare", "outputs/artifacts/dataset"),
        Body=b"hello-data\n",
    )
    built = harness.create("train", done=("prepare",))
    name = built["metadata"]["name"]
    pod = harness.finished(name)
    spec = pod["spec"]
    assert spec["nodeName"] == "gpu-1"
    assert dict(GPU_TOLERATION) in spec["tolerations"]
    main = next(c for c in spec["containers"] if c["name"] == "main")
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["activeDeadlineSeconds"] == 300
    assert pod["status"]["phase"] == "Succeeded", json.dumps(pod["status"], indent=1)

    assert harness.read(harness.key("train", "outputs/parameters/accuracy")) == b"0.94"
    assert harness.read(harness.key("train", "outputs/parameters/note")) == NOTE.encode()
    model = harness.key("train", "outputs/artifacts/model")
    assert harness.read(f"{model}/data.txt") == b"hello-data\n"
    assert harness.read(f"{model}/sub/weights.bin") == b"weights\n"

    report = sidecar_report(pod)
    assert report is not None
    assert dict(report.parameters) == {"accuracy": "0.94", "note": NOTE}
    assert report.missing == ()
    result = node_from_pod(pod)
    assert result is not None
    key, state = result
    assert key == (PIPELINE.task("train").index, TASK)
    assert state.phase is Phase.SUCCEEDED
    assert dict(state.outputs) == {"accuracy": "0.94", "note": NOTE}
    assert state.attempts == 1
    assert state.finished_at is not None and state.finished_at <= time.time()


def test_a_missing_input_is_an_error_before_the_program_runs(harness: Harness) -> None:
    built = harness.create("train", done=("prepare",))  # nothing was put into S3
    pod = harness.finished(built["metadata"]["name"])
    state = state_of(pod)
    assert state.phase is Phase.FAILED and state.failure is FailureKind.ERROR
    assert "fetching the input artifacts failed" in state.message
    main = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "main")
    assert "terminated" not in main["state"]


@pytest.mark.parametrize(
    ("task", "failure", "message"),
    [
        ("crash", FailureKind.FAILED, "exit code 3: about to fail"),
        ("forgetful", FailureKind.FAILED, "did not write declared output parameter 'result'"),
        ("slow", FailureKind.TIMED_OUT, "past its timeout"),
    ],
)
def test_failures_are_classified(
    harness: Harness, task: str, failure: FailureKind, message: str
) -> None:
    built = harness.create(task)
    pod = harness.finished(built["metadata"]["name"])
    assert pod["spec"]["nodeName"] == "cpu-1"
    state = state_of(pod)
    assert state.phase is Phase.FAILED
    assert state.failure is failure
    assert message in state.message


def test_deleting_the_run_deletes_its_pods(harness: Harness) -> None:
    built = harness.create("prepare")
    name = built["metadata"]["name"]
    harness.finished(name)
    harness.cluster.kubectl("delete", "run", harness.run.name, "-n", harness.run.namespace)
    wait_for("the garbage collector to delete the pod", lambda: harness.get(name) is None)
