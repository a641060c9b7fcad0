"""Runs driven by the operator on the real control plane: pods on the right nodes, data
through S3, `when`, forEach, retries, onExit, status and events."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator

FLOW = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: flow}
spec:
  params:
    - {name: items, type: list, default: [1, 2, 3]}
  tasks:
    - name: prepare
      command: [sh, -c, 'echo "dataset v1" > "$0"; printf 3 > "$1"',
                "{{outputs.artifacts.data}}", "{{outputs.parameters.count}}"]
      outputs: {artifacts: [data], parameters: [count]}
    - name: square
      forEach: {items: "{{params.items}}", parallelism: 2}
      command: [sh, -c, 'expr "$0" \\* "$0" > "$1"', "{{item}}", "{{outputs.parameters.sq}}"]
      outputs: {parameters: [sq]}
    - name: report
      inputs: {artifacts: {data: {from: "{{tasks.prepare.outputs.artifacts.data}}"}}}
      command: [sh, -c, 'cat "$0"; echo "squares $1"', "{{inputs.artifacts.data}}",
                "{{tasks.square.outputs.parameters.sq}}"]
    - name: train-on-gpu
      pool: gpu
      resources: {gpu: 1}
      command: [sh, -c, "echo training"]
      dependsOn: [prepare]
    - name: publish
      when: "{{tasks.prepare.outputs.parameters.count}} > 5"
      command: [sh, -c, "echo never"]
  onExit:
    name: done
    command: [sh, -c, 'echo "finished $0"', "{{run.status}}"]
"""

FLAKY = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: flaky}
spec:
  tasks:
    - name: fails
      retry: {limit: 2}  # backoff 0: each retry starts in the pass that saw the failure
      command: [sh, -c, "echo boom >&2; exit 3"]
    - name: after
      dependsOn: [fails]
      command: [sh, -c, "echo unreachable"]
  onExit:
    name: cleanup
    command: [sh, -c, 'echo "cleanup after $0"', "{{run.status}}"]
"""


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"runs-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def run_document(name: str, pipeline: str, params: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {"pipelineRef": {"name": pipeline}}
    if params:
        spec["params"] = params
    return yaml.safe_dump(
        {
            "apiVersion": "pipesync.io/v1alpha1",
            "kind": "Run",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def wait_finished(
    cluster: Cluster, namespace: str, name: str, timeout: float = 150
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = json.loads(cluster.kubectl("get", "run", name, "-n", namespace, "-o", "json").stdout)
        if run.get("status", {}).get("phase") in ("Succeeded", "Failed", "Cancelled"):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {name} did not finish: {json.dumps(run.get('status'), indent=1)}")


def pods_of(cluster: Cluster, namespace: str, run: str) -> list[dict[str, Any]]:
    out = cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"pipesync.io/run={run}", "-o", "json"
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_a_run_flows_data_through_s3_and_lands_pods_on_their_pools(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=FLOW)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/flow", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("flow-1", "flow"))
    run = wait_finished(cluster, namespace, "flow-1")
    status = run["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    tasks = status["tasks"]
    assert tasks["square"]["outputs"]["sq"] == "[1,4,9]"
    assert tasks["square"]["instances"] == {"total": 3, "succeeded": 3, "failed": 0, "running": 0}
    assert tasks["prepare"]["outputs"]["count"] == "3"
    assert tasks["publish"]["phase"] == "Skipped"
    assert status["progress"] == "5/5"
    ready = {c["type"]: c for c in status["conditions"]}
    assert ready["Succeeded"]["status"] == "True"

    pods = pods_of(cluster, namespace, "flow-1")
    by_task: dict[str, list[dict[str, Any]]] = {}
    for pod in pods:
        by_task.setdefault(pod["metadata"]["labels"]["pipesync.io/task"], []).append(pod)
    assert sorted(by_task) == ["done", "prepare", "report", "square", "train-on-gpu"]
    assert len(by_task["square"]) == 3
    assert by_task["train-on-gpu"][0]["spec"]["nodeName"] == "gpu-1"
    assert by_task["prepare"][0]["spec"]["nodeName"] == "cpu-1"
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "Run" for p in pods)

    report = by_task["report"][0]["metadata"]["name"]
    log = cluster.kubectl("logs", "-n", namespace, report, "-c", "main").stdout
    assert "dataset v1" in log and "squares [1,4,9]" in log
    done = by_task["done"][0]["metadata"]["name"]
    assert (
        "finished Succeeded" in cluster.kubectl("logs", "-n", namespace, done, "-c", "main").stdout
    )
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert f"{namespace}/runs/flow-1/prepare/outputs/artifacts/data" in keys

    table = cluster.kubectl("get", "runs", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert "PHASE" in header and "PROGRESS" in header
    assert "flow-1" in row and "Succeeded" in row and "5/5" in row


def test_a_failing_task_is_retried_then_the_run_fails_after_onExit(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=FLAKY)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/flaky", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("flaky-1", "flaky"))
    status = wait_finished(cluster, namespace, "flaky-1")["status"]
    assert status["phase"] == "Failed"
    assert status["tasks"]["fails"]["attempts"] == 3
    assert (
        "exited with code 3" in status["tasks"]["fails"]["message"]
        or "3" in status["tasks"]["fails"]["message"]
    )
    assert status["tasks"]["after"]["phase"] == "Omitted"
    pods = pods_of(cluster, namespace, "flaky-1")
    attempts = sorted(
        p["metadata"]["labels"]["pipesync.io/attempt"]
        for p in pods
        if p["metadata"]["labels"]["pipesync.io/task"] == "fails"
    )
    assert attempts == ["1", "2", "3"]  # one pod per attempt, never two for the same one
    cleanup = [p for p in pods if p["metadata"]["labels"]["pipesync.io/task"] == "cleanup"]
    assert len(cleanup) == 1
    log = cluster.kubectl("logs", "-n", namespace, cleanup[0]["metadata"]["name"], "-c", "main")
    assert "cleanup after Failed" in log.stdout
    events = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=flaky-1",
        "-o",
        "json",
    ).stdout
    items = json.loads(events)["items"]
    reasons = {e["reason"] for e in items}
    assert {"TaskFailed", "TaskRetried"} <= reasons
    # one TaskFailed per failed attempt: the retried ones and the last
    failed = [e for e in items if e["reason"] == "TaskFailed" and e["message"].startswith("fails:")]
    assert len(failed) == 3, [(e["reason"], e["message"]) for e in items]


def test_an_experiment_counts_its_runs_by_phase(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=FLAKY)
    experiment = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "tuning"},
        "spec": {"description": "counts"},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(experiment))
    for name in ("try-1", "try-2"):
        document = yaml.safe_load(run_document(name, "flaky"))
        document["spec"]["experimentRef"] = {"name": "tuning"}
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(document))
    for name in ("try-1", "try-2"):
        wait_finished(cluster, namespace, name)
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = cluster.kubectl("get", "experiment", "tuning", "-n", namespace, "-o", "json")
        status = json.loads(found.stdout).get("status", {})
        if status.get("runs", {}).get("failed") == 2:
            break
        time.sleep(0.5)
    assert status["runs"]["total"] == 2 and status["runs"]["failed"] == 2, status
    assert status["lastRun"]["name"] in ("try-1", "try-2")


ECHO = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: echo}
spec:
  tasks:
    - name: say
      command: [sh, -c, "echo VERSION"]
"""


def pinned_spec(name: str, command: str) -> str:
    spec = {"tasks": [{"name": "say", "command": ["sh", "-c", command]}]}
    pipeline = {"name": "echo", "version": "planted", "digest": "sha256:0", "commit": ""}
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"{name}-pipeline"},
            "data": {"spec.json": json.dumps({"spec": spec, "pipeline": pipeline})},
        }
    )


def test_a_planted_pinned_spec_fails_the_run_instead_of_running(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=ECHO.replace("VERSION", "v1"))
    # Whoever may create ConfigMaps here plants the spec of a predictable run name first.
    planted = pinned_spec("nightly", "echo planted")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=planted)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("nightly", "echo"))
    status = wait_finished(cluster, namespace, "nightly")["status"]
    assert status["phase"] == "Failed"
    reasons = {c["type"]: c.get("reason") for c in status["conditions"]}
    assert reasons["Succeeded"] == "PinConflict", status["conditions"]
    assert pods_of(cluster, namespace, "nightly") == []


def test_a_recreated_run_pins_the_current_spec_not_its_predecessors(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=ECHO.replace("VERSION", "v1"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("again", "echo"))
    first = wait_finished(cluster, namespace, "again")["status"]
    cluster.kubectl("delete", "run", "again", "-n", namespace, "--timeout=60s")
    cluster.kubectl("delete", "pods", "-n", namespace, "-l", "pipesync.io/run=again")
    # What that Run left while the garbage collector lags: its pinned spec, owned by it.
    stale = yaml.safe_load(pinned_spec("again", "echo stale"))
    stale["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "pipesync"}
    stale["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "pipesync.io/v1alpha1",
            "kind": "Run",
            "name": "again",
            "uid": str(uuid.uuid4()),
            "controller": True,
        }
    ]
    cluster.kubectl("delete", "configmap", "again-pipeline", "-n", namespace, "--ignore-not-found")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(stale))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=ECHO.replace("VERSION", "v2"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("again", "echo"))
    second_run = wait_finished(cluster, namespace, "again")
    second = second_run["status"]
    assert second["phase"] == "Succeeded", second
    assert second["pipeline"]["version"] != first["pipeline"]["version"]
    uid = second_run["metadata"]["uid"]
    logs = [
        cluster.kubectl("logs", "-n", namespace, p["metadata"]["name"], "-c", "main").stdout
        for p in pods_of(cluster, namespace, "again")
        if p["metadata"]["ownerReferences"][0]["uid"] == uid
    ]
    assert logs and all("v2" in log for log in logs), logs


def test_the_operator_runs_at_most_the_pipelines_parallelism_at_once(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    tasks = [{"name": f"t{i}", "command": ["sh", "-c", "sleep 2"]} for i in range(3)]
    pipeline = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": "serial"},
        "spec": {"parallelism": 1, "tasks": tasks},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(pipeline))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("serial-1", "serial"))
    assert wait_finished(cluster, namespace, "serial-1")["status"]["phase"] == "Succeeded"
    spans = []
    for pod in pods_of(cluster, namespace, "serial-1"):
        main = next(s for s in pod["status"]["containerStatuses"] if s["name"] == "main")
        ended = main["state"]["terminated"]
        spans.append((ended["startedAt"], ended["finishedAt"]))
    spans.sort()
    assert len(spans) == 3
    for (_, finished), (started, _) in itertools.pairwise(spans):
        assert started >= finished, spans  # one pod at a time: none starts before one ends


def test_task_pods_pass_pod_security_restricted_enforced_by_the_api_server(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    # The API server's PodSecurity admission (on by default) refuses pods that violate it.
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    refused = cluster.kubectl(
        "run", "rooted", "-n", namespace, "--image=any", "--restart=Never", check=False
    )
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=FLOW)
    run = yaml.safe_load(run_document("restricted-1", "flow"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(run))
    status = wait_finished(cluster, namespace, "restricted-1")["status"]
    assert status["phase"] == "Succeeded", status
    pods = pods_of(cluster, namespace, "restricted-1")
    assert pods and all(p["spec"]["securityContext"]["runAsNonRoot"] for p in pods)


def test_the_runs_service_account_is_used_and_control_plane_tolerations_are_refused(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("create", "serviceaccount", "trainer", "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=ECHO.replace("VERSION", "sa"))
    run = yaml.safe_load(run_document("as-trainer", "echo"))
    run["spec"]["serviceAccountName"] = "trainer"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(run))
    assert wait_finished(cluster, namespace, "as-trainer")["status"]["phase"] == "Succeeded"
    (pod,) = pods_of(cluster, namespace, "as-trainer")
    assert pod["spec"]["serviceAccountName"] == "trainer"
    # The default operator refuses a task that tolerates the control-plane taint.
    toleration = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}
    inline = {
        "tasks": [{"name": "sneak", "command": ["true"], "tolerations": [toleration]}],
    }
    sneaky = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "sneaky"},
        "spec": {"pipelineSpec": inline},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(sneaky))
    status = wait_finished(cluster, namespace, "sneaky")["status"]
    assert status["phase"] == "Failed"
    reasons = {c["type"]: c for c in status["conditions"]}
    assert reasons["Succeeded"]["reason"] == "NotAllowed", reasons
    assert "control-plane" in reasons["Succeeded"]["message"]
    assert pods_of(cluster, namespace, "sneaky") == []


GREEDY = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: greedy}
spec:
  tasks:
    - name: train
      pool: gpu
      resources: {gpu: 4}
      command: [sh, -c, "echo never placed"]
"""


def test_an_unschedulable_task_is_pending_with_the_schedulers_reason_and_one_event(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    # gpu-1 has 2 GPUs: the scheduler can never place a pod asking for 4.
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=GREEDY)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/greedy", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("greedy-1", "greedy"))
    deadline = time.monotonic() + 90
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = json.loads(
            cluster.kubectl("get", "run", "greedy-1", "-n", namespace, "-o", "json").stdout
        )
        status = run.get("status", {})
        if status.get("tasks", {}).get("train", {}).get("phase") == "Pending" and status.get(
            "message"
        ):
            break
        time.sleep(0.5)
    else:
        raise AssertionError((json.dumps(status, indent=1), operator.log()))
    task = status["tasks"]["train"]
    assert "Insufficient nvidia.com/gpu" in task["message"], task
    assert "task train cannot be scheduled" in status["message"]
    reconciling = {c["type"]: c for c in status["conditions"]}["Reconciling"]
    assert reconciling["reason"] == "TaskUnschedulable"
    assert "Insufficient nvidia.com/gpu" in reconciling["message"]

    table = cluster.kubectl("get", "runs", "-n", namespace).stdout
    header, row = table.splitlines()[:2]
    assert "MESSAGE" in header and "Insufficient nvidia.com/gpu" in row, table
    assert "0.0s" not in row, table  # no duration frozen at the first pass

    # Passes go on (cancel, resyncs); the Event is told once per pod, not per pass.
    time.sleep(5)
    events = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=greedy-1,reason=TaskUnschedulable",
        "-o",
        "json",
    ).stdout
    items = json.loads(events)["items"]
    assert len(items) == 1 and items[0].get("count", 1) == 1, items
    assert "Insufficient nvidia.com/gpu" in items[0]["message"]
    cluster.kubectl(
        "patch",
        "run",
        "greedy-1",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec": {"cancel": true}}',
    )
    assert wait_finished(cluster, namespace, "greedy-1")["status"]["phase"] == "Cancelled"
