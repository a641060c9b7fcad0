"""Two `pipesync operator --leader-election` replicas on the real control plane (R7).

Both watch one `solo-*` namespace (the session operator ignores it) and compete for a
coordination.k8s.io/v1 Lease there. The test SIGKILLs the leader while a task runs and
checks, from the Lease itself, that the standby took over within 15 s (the product's
promise: lease 10 s, retry every 2 s), and from a pod watch started before the run that
every pod was created once (no duplicate, none re-created) and the run succeeded.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.killable_operator import KillableOperator
from tests.e2e.fixtures.operator import operator_command
from tests.e2e.fixtures.processes import free_port
from tests.e2e.test_operator_robustness import RUN, PodWatch, apply, apply_pipeline
from tests.e2e.test_operator_runs import run_document, wait_finished

LEASE = "pipesync-ha"
TAKEOVER_LIMIT_S = 15.0

#: `slow` runs long enough to be killed in; `after` proves the new leader drives on.
PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: ha}
spec:
  tasks:
    - name: slow
      command: [sh, -c, "echo started; sleep 8; echo done"]
    - name: after
      dependsOn: [slow]
      command: [sh, -c, "echo after"]
"""


class Replica(KillableOperator):
    """A KillableOperator whose readiness is the metrics port's /healthz: it answers on a
    standby too (kopf's own liveness endpoint starts only once a replica leads)."""

    pod = ""

    @property
    def identity(self) -> str:
        assert self.popen is not None
        return f"{self.pod}_{self.popen.pid}"  # /usr/bin/env execs: the same pid


#: A stand-in for the replica's own pod (never scheduled: no node has this label), so the
#: replica's pipesync.io/leader label can be read as in a cluster (POD_NAME/POD_NAMESPACE).
STAND_IN = """
apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  nodeSelector: {pipesync.io/never: "true"}
  containers: [{name: operator, image: pipesync:stand-in}]
"""


def replica(cluster: Cluster, s3: Any, namespace: str, log: pathlib.Path) -> Replica:
    port = free_port()
    pod = f"replica-{log.stem[-1]}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=STAND_IN.replace("NAME", pod))
    made = Replica(
        operator_command(
            cluster.kubeconfig,
            s3,
            "--namespace",
            namespace,
            "--leader-election",
            "--leader-election-namespace",
            namespace,
            "--leader-election-lease",
            LEASE,
            "--metrics-address",
            f"127.0.0.1:{port}",
            env={"POD_NAME": pod, "POD_NAMESPACE": namespace},
        ),
        log,
        f"http://127.0.0.1:{port}/healthz",
    )
    made.pod = pod
    return made


@pytest.fixture
def replicas(
    cluster: Cluster,
    crds: None,
    nodes: Any,
    s3: Any,
    *,
    solo_namespace: str,
    tmp_path: pathlib.Path,
) -> Iterator[tuple[Replica, Replica]]:
    pair = (
        replica(cluster, s3, solo_namespace, tmp_path / "replica-a.log"),
        replica(cluster, s3, solo_namespace, tmp_path / "replica-b.log"),
    )
    try:
        yield pair
    finally:
        for each in pair:
            each.stop()


def lease(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    found = cluster.kubectl("get", "lease", LEASE, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return None
    spec: dict[str, Any] = json.loads(found.stdout)["spec"]
    return spec


def wait_holder(cluster: Cluster, namespace: str, identity: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    spec: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        spec = lease(cluster, namespace)
        if spec is not None and spec.get("holderIdentity") == identity:
            return spec
        time.sleep(0.2)
    raise AssertionError(f"{identity} does not hold the lease: {spec}")


def leader_label(cluster: Cluster, namespace: str, pod: str) -> str:
    return cluster.kubectl(
        "get", "pod", pod, "-n", namespace, "-o", r"jsonpath={.metadata.labels.pipesync\.io/leader}"
    ).stdout


def wait_label(cluster: Cluster, namespace: str, pod: str, value: str) -> None:
    deadline = time.monotonic() + 15
    while leader_label(cluster, namespace, pod) != value:
        assert time.monotonic() < deadline, f"{pod}: label is not {value}"
        time.sleep(0.2)


def wait_standby(replica: Replica) -> None:
    """Until the replica has tried for the Lease once and lost (it logs it, once)."""
    deadline = time.monotonic() + 30
    while "standby" not in replica.log():
        assert time.monotonic() < deadline, replica.log()
        assert replica.alive(), replica.log()
        time.sleep(0.2)


def instant(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_passes(replica: Replica) -> float:
    """Reconcile passes of Runs this replica made (0 while it has not driven any)."""
    url = replica.liveness_url.replace("/healthz", "/metrics")
    with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "pipesync_reconcile_duration_seconds_count"
                and sample.labels.get("controller") == "runs"
            ):
                return float(sample.value)
    return 0.0


def healthy(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback
        return bool(answer.status == 200)


def test_the_standby_takes_over_a_killed_leader_and_the_run_completes_once(
    cluster: Cluster, replicas: tuple[Replica, Replica], solo_namespace: str
) -> None:
    namespace = solo_namespace
    first, second = replicas
    first.start()
    wait_holder(cluster, namespace, first.identity, timeout=30)
    second.start()  # ready (its /healthz answers) while it waits as a standby
    wait_standby(second)  # it has tried and lost
    spec = lease(cluster, namespace)
    assert spec is not None
    assert spec["holderIdentity"] == first.identity
    assert spec["leaseDurationSeconds"] == 10
    assert healthy(second.liveness_url)
    # what the chart's webhook Service selects: the leader's pod only
    assert leader_label(cluster, namespace, first.pod) == "true"
    assert leader_label(cluster, namespace, second.pod) == "false"

    watch = PodWatch(cluster, namespace)
    try:
        apply_pipeline(cluster, namespace, PIPELINE)
        apply(cluster, namespace, run_document("ha-1", "ha"))
        # kill while `slow` runs
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = [e for e in watch.of_run("ha-1") if e.phase == "Running" and "slow" in e.name]
            if running:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the task never ran:\n{first.log()}")
        before = lease(cluster, namespace)
        assert before is not None
        assert run_passes(second) == 0  # the standby has not touched the run
        assert run_passes(first) > 0
        killed_at = time.time()
        first.kill()

        taken = wait_holder(cluster, namespace, second.identity, timeout=40)
        takeover = instant(taken["acquireTime"]) - killed_at
        since_renewal = instant(taken["acquireTime"]) - instant(before["renewTime"])
        print(f"takeover {takeover:.1f} s after SIGKILL ({since_renewal:.1f} s after renewal)")
        assert taken["leaseTransitions"] == before["leaseTransitions"] + 1
        assert takeover <= TAKEOVER_LIMIT_S, taken
        wait_label(cluster, namespace, second.pod, "true")

        run = wait_finished(cluster, namespace, "ha-1", timeout=120)
        assert run["status"]["phase"] == "Succeeded", (run["status"], second.log())
        assert run_passes(second) > 0  # the new leader drove it to the end
        watch.check()
        events = watch.of_run("ha-1")
    finally:
        watch.close()
    uids: dict[str, set[str]] = {}
    for event in events:
        uids.setdefault(event.name, set()).add(event.uid)
    # one pod per task, each created once: never a second pod for the same work
    assert len(uids) == 2, sorted(uids)
    assert all(len(found) == 1 for found in uids.values()), uids
    tasks = sorted(e.labels.get("pipesync.io/task", "") for e in events if e.kind == "ADDED")
    assert tasks == ["after", "slow"], tasks
    assert {e.labels[RUN] for e in events} == {"ha-1"}
    assert run["status"]["tasks"]["slow"]["attempts"] == 1


def test_a_stopped_leader_hands_the_lease_over(
    cluster: Cluster, replicas: tuple[Replica, Replica], solo_namespace: str
) -> None:
    """SIGTERM (a rolling update): the leader stops kopf, then releases the Lease, and the
    standby takes it as soon as it next looks, without waiting for the lease to expire."""
    first, second = replicas
    first.start()
    wait_holder(cluster, solo_namespace, first.identity, timeout=30)
    second.start()
    wait_standby(second)
    before = lease(cluster, solo_namespace)
    assert before is not None
    assert before["holderIdentity"] == first.identity
    first.stop()  # SIGTERM
    assert "released the lease" in first.log(), first.log()
    taken = wait_holder(cluster, solo_namespace, second.identity, timeout=30)
    assert taken["leaseTransitions"] == before["leaseTransitions"] + 1
    assert "leads" in second.log()
    assert leader_label(cluster, solo_namespace, first.pod) == "false"
    wait_label(cluster, solo_namespace, second.pod, "true")
