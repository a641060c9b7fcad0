"""Runs under docs/install.md's tenancy model, end to end: the operator holds keys for the
whole bucket, each namespace's task pods get only the keys of the `pipesync-s3` Secret in
their own namespace, and the S3 server enforces the documented per-namespace policy on
every request (moto with IAM authorization on).

A run with its namespace's own keys succeeds (its tasks write and read their artifacts
under `<namespace>/`); the same run with another team's keys in that Secret fails,
because those keys may not write there. So the pods really use their namespace's keys,
never the operator's, and the documented policy is enough for real runs.
"""

from __future__ import annotations

import base64
import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.killable_operator import KillableOperator
from tests.e2e.fixtures.operator import operator_command
from tests.e2e.fixtures.processes import free_port
from tests.e2e.fixtures.s3 import S3Server
from tests.e2e.fixtures.s3iam import ADMIN, Keys, iam_s3, s3_client
from tests.e2e.test_operator_runs import pods_of, run_document, wait_finished

SECRET = "pipesync-s3"
OTHER_TEAM = "team-other"

FLOW = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: flow}
spec:
  tasks:
    - name: prepare
      command: [sh, -c, 'echo "dataset v1" > "$0"', "{{outputs.artifacts.data}}"]
      outputs: {artifacts: [data]}
    - name: report
      inputs: {artifacts: {data: {from: "{{tasks.prepare.outputs.artifacts.data}}"}}}
      command: [sh, -c, 'cat "$0"', "{{inputs.artifacts.data}}"]
"""


@pytest.fixture
def tenancy(
    cluster: Cluster, crds: None, nodes: Any, solo_namespace: str, tmp_path: pathlib.Path
) -> Iterator[tuple[S3Server, dict[str, Keys], KillableOperator]]:
    """The IAM-enforcing S3 server (users: admin, the solo namespace, another team) and an
    operator on the admin's keys that gives task pods their namespace's Secret."""
    with iam_s3(tmp_path / "s3", (solo_namespace, OTHER_TEAM)) as (server, keys):
        admin = keys[ADMIN]
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        operator = KillableOperator(
            operator_command(
                cluster.kubeconfig,
                server,
                "--namespace",
                solo_namespace,
                "--liveness",
                liveness,
                "--metrics-address",
                "off",
                env={
                    "AWS_ACCESS_KEY_ID": admin["aws_access_key_id"],
                    "AWS_SECRET_ACCESS_KEY": admin["aws_secret_access_key"],
                },
                task_credentials_secret=SECRET,
            ),
            tmp_path / "operator.log",
            liveness,
        )
        try:
            operator.start()
            yield server, keys, operator
        finally:
            operator.stop()


def test_task_pods_use_their_namespaces_keys_under_the_documented_policy(
    cluster: Cluster,
    solo_namespace: str,
    tenancy: tuple[S3Server, dict[str, Keys], KillableOperator],
) -> None:
    server, keys, _ = tenancy
    namespace = solo_namespace
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=FLOW)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/flow", "-n", namespace, "--timeout=60s"
    )

    put_secret(cluster, namespace, keys[namespace])
    own = run_to_the_end(cluster, namespace, "own-keys")
    assert own["status"]["phase"] == "Succeeded", json.dumps(own["status"], indent=1)
    team = s3_client(server, keys[namespace])
    artifact = f"{namespace}/runs/own-keys/prepare/outputs/artifacts/data"
    assert team.get_object(Bucket=server.bucket, Key=artifact)["Body"].read() == b"dataset v1\n"
    # The operator's keys span the bucket: it wrote the run's record.
    record = f"{namespace}/runs/own-keys/run.json"
    admin = s3_client(server, keys[ADMIN])
    wait_until(lambda: exists(admin, server.bucket, record), f"{record} written")
    # No pod carries a key itself: each reads its namespace's Secret.
    own_pods = pods_of(cluster, namespace, "own-keys")
    assert own_pods, "no pods of own-keys"
    for pod in own_pods:
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            for variable in container.get("env", []):
                if variable["name"].startswith("AWS_"):
                    assert "value" not in variable, (pod["metadata"]["name"], variable)
                    assert variable["valueFrom"]["secretKeyRef"]["name"] == SECRET

    # Another team's keys in this namespace's Secret may not write under its prefix.
    put_secret(cluster, namespace, keys[OTHER_TEAM])
    foreign = run_to_the_end(cluster, namespace, "other-keys")
    assert foreign["status"]["phase"] == "Failed", json.dumps(foreign["status"], indent=1)
    assert "S3 refused the task's credentials" in json.dumps(foreign["status"])
    denied = f"{namespace}/runs/other-keys/prepare/outputs/artifacts/data"
    assert not exists(admin, server.bucket, denied)


def put_secret(cluster: Cluster, namespace: str, keys: Keys) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": namespace},
        "data": {
            name.upper(): base64.b64encode(value.encode()).decode() for name, value in keys.items()
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))


def run_to_the_end(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document(name, "flow"))
    return wait_finished(cluster, namespace, name, timeout=180)


def exists(client: Any, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def wait_until(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
