"""The Pipeline controller on a real API server: Ready with reasons, versions, no churn."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator


@pytest.fixture
def namespace(cluster: Cluster) -> Any:
    name = f"pl-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def pipeline(name: str, tasks: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "apiVersion": "pipesync.io/v1alpha1",
            "kind": "Pipeline",
            "metadata": {"name": name},
            "spec": {"tasks": tasks},
        }
    )


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "pipeline", name, "-n", namespace, "-o", "json").stdout
    result: dict[str, Any] = json.loads(out)
    return result


def wait_for(cluster: Cluster, namespace: str, name: str, condition: str) -> None:
    cluster.kubectl(
        "wait", f"--for={condition}", f"pipeline/{name}", "-n", namespace, "--timeout=60s"
    )


def test_a_valid_pipeline_becomes_ready_with_its_first_version(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    tasks = [
        {"name": "a", "image": "busybox", "command": ["true"]},
        {"name": "b", "image": "busybox", "command": ["true"], "dependsOn": ["a"]},
    ]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pipeline("two", tasks))
    wait_for(cluster, namespace, "two", "condition=Ready")
    status = get(cluster, namespace, "two")["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "DAGValid"
    assert status["taskCount"] == 2
    assert len(status["versions"]) == 1
    assert status["latestVersion"] == status["versions"][0]["id"]
    assert status["versions"][0]["digest"].startswith("sha256:" + status["latestVersion"])


def test_a_changed_spec_adds_a_version_and_an_unchanged_one_writes_nothing(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    tasks = [{"name": "a", "image": "busybox", "command": ["true"]}]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pipeline("p", tasks))
    wait_for(cluster, namespace, "p", "condition=Ready")
    first = get(cluster, namespace, "p")
    time.sleep(3)  # a controller that rewrites status on every pass would bump this
    assert (
        get(cluster, namespace, "p")["metadata"]["resourceVersion"]
        == (first["metadata"]["resourceVersion"])
    )
    tasks[0]["command"] = ["echo", "changed"]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pipeline("p", tasks))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = get(cluster, namespace, "p").get("status", {})
        if len(status.get("versions", [])) == 2:
            break
        time.sleep(0.3)
    ids = [v["id"] for v in status["versions"]]
    assert len(set(ids)) == 2
    assert status["latestVersion"] == ids[-1]
    assert status["observedGeneration"] == get(cluster, namespace, "p")["metadata"]["generation"]


def test_a_cycle_the_server_accepts_is_reported_not_ready_with_the_reason(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    tasks = [
        {"name": "a", "image": "busybox", "command": ["true"], "dependsOn": ["b"]},
        {"name": "b", "image": "busybox", "command": ["true"], "dependsOn": ["a"]},
    ]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pipeline("loop", tasks))
    wait_for(cluster, namespace, "loop", "condition=Ready=false")
    ready = next(
        c for c in get(cluster, namespace, "loop")["status"]["conditions"] if c["type"] == "Ready"
    )
    assert ready["reason"] == "InvalidSpec"
    assert "dependency cycle: a -> b -> a" in ready["message"]
