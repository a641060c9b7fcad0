"""A pod the API server refuses to create (an invalid pod, Pod Security Admission, a full
ResourceQuota) is told in the Run's status, never a pass that fails again and again with
the status left empty."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api import schemas
from pipesync.kube.protocol import PodRefused
from tests.unit.test_run_status_schema import ClusterOfOneRun, T, controller, new_run

QUOTA = (
    'pods "r-a-1" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=1, '
    "used: requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4"
)
PSA = 'pods "r-a-1" is forbidden: violates PodSecurity "restricted:latest": hostPath volumes'


class RefusingCluster(ClusterOfOneRun):
    """Refuses the next `refusals` pod creations with (status, message)."""

    def __init__(self, status: int, message: str, refusals: int = 10**9) -> None:
        super().__init__(new_run())
        self.refusal = (status, message)
        self.refusals = refusals

    def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise PodRefused(*self.refusal)
        super().create_pod(namespace, pod)


def valid(status: Mapping[str, Any]) -> list[str]:
    return [
        e.message for e in schemas.validator("Run").iter_errors({**new_run(), "status": status})
    ]


def test_a_pod_the_api_server_refuses_fails_the_run_with_its_message() -> None:
    cluster = RefusingCluster(403, PSA)
    result = controller(cluster).reconcile("ns", "r", T)
    status = cluster.run["status"]
    assert result.finished and status["phase"] == "Failed"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["reason"] == "PodRefused"
    assert conditions["Stalled"]["status"] == "True"
    assert "task a: the API server refused its pod: " + PSA in conditions["Ready"]["message"]
    assert ("Warning", "PodRefused") in [event[:2] for event in result.events]
    assert valid(status) == []


def test_a_full_quota_leaves_the_task_pending_with_the_reason_and_retries_soon() -> None:
    cluster = RefusingCluster(403, QUOTA, refusals=1)
    control = controller(cluster)
    result = control.reconcile("ns", "r", T)
    status = cluster.run["status"]
    assert not result.finished and status["phase"] == "Running"
    assert status["tasks"]["a"]["phase"] == "Pending"
    assert "exceeded quota: gpus" in status["tasks"]["a"]["message"]
    assert "exceeded quota: gpus" in status["message"]
    assert result.wake_at is not None and result.wake_at <= T + 10
    assert any(event[1] == "TaskUnschedulable" for event in result.events)
    assert valid(status) == []
    # The quota frees up: the next pass creates the pod.
    control.reconcile("ns", "r", T + 10)
    assert cluster.pods_of("a")
