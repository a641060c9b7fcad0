"""The S3 mirror on the real control plane: run records and task logs in S3 that outlive
the Run and its pods, `pipesync history` reading them, and an S3 outage during a run."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import PIPESYNC, Operator
from tests.e2e.test_operator_runs import run_document, wait_finished

PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: recorded}
spec:
  tasks:
    - name: hello
      command: [sh, -c, 'echo "hello from $0"; printf 42 > "$1"', "{{run.name}}",
                "{{outputs.parameters.answer}}"]
      outputs: {parameters: [answer]}
    - name: fan
      forEach: {items: [a, b]}
      command: [sh, -c, 'echo "item $0"', "{{item}}"]
      dependsOn: [hello]
  onExit:
    name: bye
    command: [sh, -c, 'echo "bye $0"', "{{run.status}}"]
"""
#: node prefix (under <ns>/runs/<run>/) -> what its main container prints
EXPECTED_LOGS = {
    "hello": "hello from {run}",
    "fan/0": "item a",
    "fan/1": "item b",
    "bye": "bye Succeeded",
}


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"records-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def get_object(s3: Any, key: str) -> bytes | None:
    try:
        body: bytes = s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    except s3.client().exceptions.NoSuchKey:
        return None
    return body


def wait_for_object(s3: Any, key: str, timeout: float, check: Any = None) -> bytes:
    deadline = time.monotonic() + timeout
    data: bytes | None = None
    while time.monotonic() < deadline:
        data = get_object(s3, key)
        if data is not None and (check is None or check(data)):
            return data
        time.sleep(0.5)
    raise AssertionError(f"s3://{s3.bucket}/{key} did not appear in {timeout:.0f}s: {data!r}")


def finished_record(data: bytes) -> bool:
    return bool(json.loads(data)["status"].get("phase") == "Succeeded")


def history(s3: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(PIPESYNC),
            "history",
            "--s3-endpoint",
            s3.endpoint_url,
            "--s3-bucket",
            s3.bucket,
            *args,
        ],
        env={**s3.env(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_records_and_logs_outlive_the_run_and_history_lists_it(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/recorded", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("rec-1", "recorded"))
    run = wait_finished(cluster, namespace, "rec-1")
    assert run["status"]["phase"] == "Succeeded", (run["status"], operator.log())

    key = f"{namespace}/runs/rec-1/run.json"
    record = json.loads(wait_for_object(s3, key, 30, finished_record))
    assert record["kind"] == "RunRecord"
    assert record["metadata"]["uid"] == run["metadata"]["uid"]
    assert record["status"]["phase"] == "Succeeded"
    assert record["pipeline"]["name"] == "recorded"
    assert record["pipeline"]["digest"].startswith("sha256:")
    assert [t["name"] for t in record["pipeline"]["spec"]["tasks"]] == ["hello", "fan"]
    tasks = record["tasks"]
    assert sorted(tasks) == ["bye", "fan", "hello"]
    assert all(t["phase"] == "Succeeded" for t in tasks.values()), tasks
    assert tasks["hello"]["outputs"] == {"answer": "42"}
    assert tasks["hello"]["exitCode"] == 0
    assert tasks["hello"]["pod"].startswith("rec-1-hello")
    assert [i["phase"] for i in tasks["fan"]["instances"]] == ["Succeeded", "Succeeded"]

    # The run's status points at its record once the final record is written.
    deadline = time.monotonic() + 30
    uri = ""
    while time.monotonic() < deadline and not uri:
        current = json.loads(
            cluster.kubectl("get", "run", "rec-1", "-n", namespace, "-o", "json").stdout
        )
        uri = ((current["status"].get("record")) or {}).get("uri", "")
        time.sleep(0.3)
    assert uri == f"s3://{s3.bucket}/{key}"

    logs = {}
    for node, text in EXPECTED_LOGS.items():
        log_key = f"{namespace}/runs/rec-1/{node}/logs/attempt-1.log"
        logs[node] = wait_for_object(s3, log_key, 30).decode()
        assert text.format(run="rec-1") in logs[node], (node, logs[node])
    assert "===== pipesync-outputs =====" in logs["hello"]

    # Delete the Run: Kubernetes garbage-collects its pods; the history stays in S3.
    cluster.kubectl("delete", "run", "rec-1", "-n", namespace, "--wait=true")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = cluster.kubectl(
            "get", "pods", "-n", namespace, "-l", "pipesync.io/run=rec-1", "-o", "name"
        ).stdout.split()
        if not pods:
            break
        time.sleep(0.5)
    assert not pods, pods
    assert get_object(s3, key) is not None
    for node in EXPECTED_LOGS:
        assert get_object(s3, f"{namespace}/runs/rec-1/{node}/logs/attempt-1.log") is not None

    listed = history(s3, "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "PIPELINE", "PHASE"]
    assert lines[1].split()[:4] == ["rec-1", "recorded", "Succeeded", "2/2"], lines
    as_json = json.loads(history(s3, "-n", namespace, "--format", "json").stdout)
    assert [(r["name"], r["phase"], r["record"]) for r in as_json] == [
        ("rec-1", "Succeeded", f"s3://{s3.bucket}/{key}")
    ]
    assert (
        json.loads(history(s3, "-n", namespace, "--phase", "Failed", "--format", "json").stdout)
        == []
    )


def test_an_s3_outage_during_a_run_delays_the_record_but_not_the_run(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/recorded", "-n", namespace, "--timeout=60s"
    )
    key = f"{namespace}/runs/rec-2/run.json"
    s3.stop()  # from this (the main) thread: the server's pdeathsig follows its starter
    try:
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=run_document("rec-2", "recorded")
        )
        stopped_at = time.monotonic()
        # While S3 is away, the run goes on as far as it can (its first pod waits in
        # its sidecar, which retries S3) and its phase is written to the cluster.
        deadline = stopped_at + 30
        phase = ""
        while time.monotonic() < deadline:
            current = json.loads(
                cluster.kubectl("get", "run", "rec-2", "-n", namespace, "-o", "json").stdout
            )
            phase = (current.get("status") or {}).get("phase", "")
            time.sleep(0.5)
        assert phase in ("Pending", "Running"), phase
    finally:
        s3.start()
    restored_at = time.monotonic()
    assert restored_at - stopped_at >= 30
    run = wait_finished(cluster, namespace, "rec-2", timeout=240)
    assert run["status"]["phase"] == "Succeeded", (run["status"], operator.log())
    record = json.loads(wait_for_object(s3, key, 60, finished_record))
    assert sorted(record["tasks"]) == ["bye", "fan", "hello"]
    assert record["tasks"]["hello"]["outputs"] == {"answer": "42"}
    assert wait_for_object(s3, f"{namespace}/runs/rec-2/hello/logs/attempt-1.log", 30)
    # The operator counted the failed writes of the outage.
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as answer:  # noqa: S310
        metrics = answer.read().decode()
    failures = [
        line
        for line in metrics.splitlines()
        if line.startswith("pipesync_s3_mirror_failures_total")
    ]
    assert failures and float(failures[0].split()[-1]) >= 1, failures


SLOW_PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: slow}
spec:
  tasks:
    - name: hello
      command: [sh, -c, 'sleep 4; echo mine']
"""


def test_a_hand_made_pod_cannot_point_the_mirror_at_another_namespace(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    # Tenant B's log already in S3; tenant A makes a pod that copies everything the
    # operator's pods carry (labels, the Run as controlling owner) and points its
    # node-prefix annotation at B's task. The operator writes with its own credentials,
    # so a key taken from the annotation would overwrite B's log.
    victim = "tenant-b/runs/victim/hello/logs/attempt-2.log"
    s3.client().put_object(Bucket=s3.bucket, Key=victim, Body=b"b's log")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=SLOW_PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/slow", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("mine", "slow"))
    uid = cluster.kubectl(
        "get", "run", "mine", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout.strip()
    hostile = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "mine-hello-hostile",
            "labels": {
                "pipesync.io/run": "mine",
                "pipesync.io/task": "hello",
                # A later attempt than the operator's pod: the newest of its node.
                "pipesync.io/attempt": "2",
                "app.kubernetes.io/managed-by": "pipesync",
            },
            "annotations": {
                "pipesync.io/node-key": "0/-1",
                "pipesync.io/node-prefix": "tenant-b/runs/victim/hello",
            },
            "ownerReferences": [
                {
                    "apiVersion": "pipesync.io/v1alpha1",
                    "kind": "Run",
                    "name": "mine",
                    "uid": uid,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["echo", "pwned"]}],
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(hostile))
    wait_finished(cluster, namespace, "mine")  # how it ends is A's business, not B's
    wait_for_object(
        s3, f"{namespace}/runs/mine/run.json", 30, lambda data: json.loads(data)["status"]
    )
    time.sleep(3)  # the mirror's queue: any write to B's key would have happened by now
    assert get_object(s3, victim) == b"b's log", operator.log()
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="tenant-b/")
    assert [o["Key"] for o in listed.get("Contents", [])] == [victim]
