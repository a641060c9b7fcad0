"""Proof that the test node agent behaves like a kubelet for the e2e suite (issue 3, item 3).

Every pod here is placed by the real kube-scheduler and run by the agent as local
processes; assertions read the API server's view (and `kubectl logs` through it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.nodes import Nodes

T = TypeVar("T")
JSON = dict[str, Any]
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll until `probe` returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.3)


class Pods:
    """Creates pods in one namespace and deletes them all at the end of a test."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.created: list[str] = []

    def create(self, name: str, spec: JSON) -> str:
        name = f"{name}-{uuid.uuid4().hex[:6]}"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        self.cluster.kubectl("create", "-f", "-", input=json.dumps(pod))
        self.created.append(name)
        return name

    def get(self, name: str) -> JSON | None:
        result = self.cluster.kubectl(
            "get", "pod", name, "-n", self.namespace, "-o", "json", check=False
        )
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        pod: JSON = json.loads(result.stdout)
        return pod

    def wait_phase(self, name: str, *phases: str, timeout: float = 60.0) -> JSON:
        def probe() -> JSON | None:
            pod = self.get(name)
            return pod if pod and pod.get("status", {}).get("phase") in phases else None

        return wait_for(f"pod {name} in phase {phases}", probe, timeout)

    def logs(self, name: str, *args: str) -> str:
        return self.cluster.kubectl("logs", name, "-n", self.namespace, *args).stdout

    def delete_all(self) -> None:
        if self.created:
            self.cluster.kubectl(
                "delete",
                "pod",
                "-n",
                self.namespace,
                "--ignore-not-found",
                "--wait=false",
                *self.created,
                check=False,
            )


@pytest.fixture(scope="module")
def namespace(cluster: Cluster, nodes: Nodes) -> Iterator[str]:
    name = f"nodeagent-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def pods(cluster: Cluster, namespace: str) -> Iterator[Pods]:
    pods = Pods(cluster, namespace)
    yield pods
    pods.delete_all()


def shell(name: str, script: str, **extra: Any) -> JSON:
    container: JSON = {
        "name": name,
        "image": "ignored.invalid/none",
        "command": ["sh", "-c", script],
    }
    return container | extra


def gpu_pod(script: str) -> JSON:
    container = shell("main", script, resources={"limits": {"nvidia.com/gpu": 1}})
    return {
        "restartPolicy": "Never",
        "nodeSelector": {"pipesync.io/pool": "gpu"},
        "tolerations": [GPU_TOLERATION],
        "containers": [container],
    }


def terminated(pod: JSON, container: str = "main", init: bool = False) -> JSON:
    key = "initContainerStatuses" if init else "containerStatuses"
    status = next(s for s in pod["status"][key] if s["name"] == container)
    state: JSON = status["state"]["terminated"]
    return state


def test_gpu_pod_lands_on_gpu_node_and_succeeds(pods: Pods) -> None:
    name = pods.create("gpu", gpu_pod("echo gpu-ok"))
    pod = pods.wait_phase(name, "Succeeded", "Failed")
    assert pod["spec"]["nodeName"] == "gpu-1"
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert terminated(pod)["exitCode"] == 0
    assert terminated(pod)["reason"] == "Completed"
    assert "gpu-ok" in pods.logs(name)


def test_gpu_capacity_is_two_and_cpu_pods_go_to_cpu_node(pods: Pods, cluster: Cluster) -> None:
    holders = [pods.create(f"gpu-hold{i}", gpu_pod("sleep 300")) for i in range(2)]
    for name in holders:
        pod = pods.wait_phase(name, "Running")
        assert pod["spec"]["nodeName"] == "gpu-1"
    third = pods.create("gpu-third", gpu_pod("echo never"))

    def unschedulable() -> JSON | None:
        pod = pods.get(third)
        conditions = (pod or {}).get("status", {}).get("conditions") or []
        return next(
            (c for c in conditions if c["type"] == "PodScheduled" and c["status"] == "False"), None
        )

    condition = wait_for("third GPU pod to be unschedulable", unschedulable)
    assert condition["reason"] == "Unschedulable"
    assert "nvidia.com/gpu" in condition["message"]

    def failed_scheduling() -> list[JSON]:
        events = json.loads(
            cluster.kubectl(
                "get",
                "events",
                "-n",
                pods.namespace,
                "-o",
                "json",
                f"--field-selector=involvedObject.name={third},reason=FailedScheduling",
            ).stdout
        )
        items: list[JSON] = events["items"]
        return items

    events = wait_for("a FailedScheduling event", failed_scheduling)
    assert any("nvidia.com/gpu" in e["message"] for e in events)

    still = pods.get(third)
    assert still is not None
    assert still["status"]["phase"] == "Pending"
    assert not still["spec"].get("nodeName")

    cpu = pods.create(
        "cpu",
        {
            "restartPolicy": "Never",
            "nodeSelector": {"pipesync.io/pool": "cpu"},
            "containers": [shell("main", "echo cpu-ok")],
        },
    )
    pod = pods.wait_phase(cpu, "Succeeded")
    assert pod["spec"]["nodeName"] == "cpu-1"


def test_init_container_hands_file_to_main_container_through_empty_dir(pods: Pods) -> None:
    shared = "/work/shared-dir"
    assert not Path(shared).exists(), "the test needs a mount path the host does not have"
    mount = {"volumeMounts": [{"name": "shared", "mountPath": shared}]}
    name = pods.create(
        "emptydir",
        {
            "restartPolicy": "Never",
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [
                shell(
                    "writer",
                    f'echo "hello from $POD_NAME" > {shared}/greeting',
                    env=[
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        }
                    ],
                    **mount,
                )
            ],
            "containers": [shell("reader", f"cat {shared}/greeting", **mount)],
        },
    )
    pod = pods.wait_phase(name, "Succeeded", "Failed")
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert terminated(pod, "writer", init=True)["exitCode"] == 0
    assert f"hello from {name}" in pods.logs(name, "-c", "reader")
    # The mount point existed only for the pod: the host is left as it was.
    assert not Path(shared).exists()


def test_failing_container_fails_pod_with_exit_code_and_message(pods: Pods) -> None:
    name = pods.create(
        "fail",
        {
            "restartPolicy": "Never",
            "containers": [shell("main", "echo 'disk on fire' > /dev/termination-log; exit 3")],
        },
    )
    pod = pods.wait_phase(name, "Failed", "Succeeded")
    assert pod["status"]["phase"] == "Failed"
    state = terminated(pod)
    assert state["exitCode"] == 3
    assert state["reason"] == "Error"
    assert state["message"].strip() == "disk on fire"
    assert state["startedAt"] and state["finishedAt"]


def test_active_deadline_kills_pod_with_deadline_exceeded(pods: Pods) -> None:
    name = pods.create(
        "deadline",
        {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": 3,
            "containers": [shell("main", "exec sleep 300")],
        },
    )
    pod = pods.wait_phase(name, "Failed", "Succeeded", timeout=60)
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert terminated(pod)["exitCode"] != 0


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_deleting_running_pod_stops_its_process_and_removes_it(pods: Pods) -> None:
    name = pods.create(
        "delete",
        {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 10,
            "containers": [shell("main", "echo $$$$; exec sleep 300")],
        },
    )
    pods.wait_phase(name, "Running")
    pid = int(wait_for("the pod to print its pid", lambda: pods.logs(name).strip()))
    assert _alive(pid)
    assert "sleep" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    pods.cluster.kubectl("delete", "pod", name, "-n", pods.namespace, "--wait=false")
    wait_for("the pod object to disappear", lambda: pods.get(name) is None, timeout=30)
    assert not Path(f"/proc/{pid}").exists()


def test_logs_follow_tail_timestamps_through_api_server(pods: Pods) -> None:
    script = "for i in 1 2 3 4 5; do echo line-$i; sleep 0.3; done"
    name = pods.create("logs", {"restartPolicy": "Never", "containers": [shell("main", script)]})
    pods.wait_phase(name, "Running", "Succeeded")
    # follow returns once the container ends, with every line.
    followed = pods.logs(name, "-f")
    assert followed.split() == [f"line-{i}" for i in range(1, 6)]
    assert pods.logs(name, "--tail=2").split() == ["line-4", "line-5"]
    assert pods.logs(name, "--limit-bytes=9") == "line-1\nli"
    stamped = pods.logs(name, "--timestamps").splitlines()
    assert stamped[0].endswith(" line-1") and stamped[0][:4].isdigit() and "T" in stamped[0]
    missing = pods.cluster.kubectl("logs", name, "-n", pods.namespace, "-c", "nope", check=False)
    assert missing.returncode != 0


def test_on_failure_restarts_container_in_place(pods: Pods) -> None:
    script = (
        "if [ -e /scratch/tried ]; then echo second-run; exit 0; fi; "
        "touch /scratch/tried; echo first-run; exit 1"
    )
    name = pods.create(
        "retry",
        {
            "restartPolicy": "OnFailure",
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "containers": [
                shell("main", script, volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}])
            ],
        },
    )
    pod = pods.wait_phase(name, "Succeeded", "Failed")
    assert pod["status"]["phase"] == "Succeeded"
    status = pod["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert "second-run" in pods.logs(name)
    assert "first-run" in pods.logs(name, "--previous")


def test_env_and_volumes_from_config_map_and_secret_and_working_dir(
    pods: Pods, cluster: Cluster
) -> None:
    suffix = uuid.uuid4().hex[:6]
    cluster.kubectl(
        "create", "configmap", f"cm-{suffix}", "-n", pods.namespace, "--from-literal=color=blue"
    )
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        f"sec-{suffix}",
        "-n",
        pods.namespace,
        "--from-literal=token=s3cr3t",
    )
    workdir = f"/nonexistent-{suffix}/work"
    script = 'echo "$COLOR $TOKEN $(cat /etc/demo-cm/color) $(cat /etc/demo-sec/token) $(pwd)"'
    name = pods.create(
        "config",
        {
            "restartPolicy": "Never",
            "volumes": [
                {"name": "cm", "configMap": {"name": f"cm-{suffix}"}},
                {"name": "sec", "secret": {"secretName": f"sec-{suffix}"}},
            ],
            "containers": [
                shell(
                    "main",
                    script,
                    workingDir=workdir,
                    env=[
                        {
                            "name": "COLOR",
                            "valueFrom": {
                                "configMapKeyRef": {"name": f"cm-{suffix}", "key": "color"}
                            },
                        },
                        {
                            "name": "TOKEN",
                            "valueFrom": {
                                "secretKeyRef": {"name": f"sec-{suffix}", "key": "token"}
                            },
                        },
                    ],
                    volumeMounts=[
                        {"name": "cm", "mountPath": "/etc/demo-cm"},
                        {"name": "sec", "mountPath": "/etc/demo-sec", "readOnly": True},
                    ],
                )
            ],
        },
    )
    pod = pods.wait_phase(name, "Succeeded", "Failed")
    assert pod["status"]["phase"] == "Succeeded", pods.logs(name)
    assert pods.logs(name).split() == ["blue", "s3cr3t", "blue", "s3cr3t", workdir]
    assert not Path(workdir).parent.exists()


def test_failed_init_container_fails_pod_without_starting_containers(pods: Pods) -> None:
    name = pods.create(
        "initfail",
        {
            "restartPolicy": "Never",
            "initContainers": [shell("setup", "exit 2")],
            "containers": [shell("main", "echo must-not-run")],
        },
    )
    pod = pods.wait_phase(name, "Failed", "Succeeded")
    assert pod["status"]["phase"] == "Failed"
    assert terminated(pod, "setup", init=True)["exitCode"] == 2
    assert "waiting" in pod["status"]["containerStatuses"][0]["state"]


def test_container_without_command_fails_with_clear_message(pods: Pods) -> None:
    name = pods.create(
        "nocmd", {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    )
    pod = pods.wait_phase(name, "Failed", "Succeeded")
    assert pod["status"]["phase"] == "Failed"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "neither command nor args" in waiting["message"]


def test_processes_left_behind_by_a_container_are_killed_and_reaped(pods: Pods) -> None:
    # `$$!` is Kubernetes' escape for the shell's `$!`: the background child's pid.
    name = pods.create(
        "orphan", {"restartPolicy": "Never", "containers": [shell("main", "sleep 321 & echo $$!")]}
    )
    pod = pods.wait_phase(name, "Succeeded", "Failed")
    assert pod["status"]["phase"] == "Succeeded"
    pid = int(pods.logs(name).strip())
    wait_for(
        f"left-behind pid {pid} to be gone", lambda: not Path(f"/proc/{pid}").exists(), timeout=10
    )
