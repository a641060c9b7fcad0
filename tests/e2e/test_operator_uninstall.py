"""docs/install.md's uninstall procedure completes while the operator runs.

While a CRD terminates, kopf no longer serves it, so the finalizer it put on the objects
its daemons drive (unfinished Runs, GitSources, RecurringRuns) would never be removed and
`kubectl delete -f crds/` would hang; the operator watches its CRDs and releases that
finalizer itself. Both orders are tested: the objects first, then the CRDs; the CRDs alone.

Deleting CRDs removes every object of every test, so this runs in a control plane of its
own (no nodes: the Run's pod never has to start for its daemon to hold the finalizer).
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.fixtures.controlplane import Cluster, _start_local
from tests.e2e.fixtures.killable_operator import KillableOperator
from tests.e2e.fixtures.operator import operator_command
from tests.e2e.fixtures.processes import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]
CRDS = str(REPO / "crds")
FINALIZER = "pipesync.io/operator"
#: What the documented procedure may take: each daemon stops within its 10 s timeout.
PROCEDURE_TIMEOUT_S = 120.0

SLOW = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: slow}
spec:
  tasks:
    - {name: wait, command: [sh, -c, "sleep 600"]}
---
apiVersion: pipesync.io/v1alpha1
kind: Run
metadata: {name: slow-1}
spec: {pipelineRef: {name: slow}}
"""


@pytest.fixture
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    plane, started = _start_local(tmp_path_factory)
    try:
        started.kubectl("apply", "--server-side", "-f", CRDS)
        started.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", CRDS)
        yield started
    finally:
        plane.stop()


@pytest.mark.parametrize("objects_first", [True, False], ids=["objects-first", "crds-alone"])
def test_the_documented_uninstall_completes_without_hanging(
    own_cluster: Cluster, s3: Any, tmp_path: pathlib.Path, objects_first: bool
) -> None:
    cluster, namespace = own_cluster, "team-a"
    cluster.kubectl("create", "namespace", namespace)
    liveness = f"http://127.0.0.1:{free_port()}/healthz"
    command = operator_command(
        cluster.kubeconfig,
        s3,
        "--namespace",
        namespace,
        "--liveness",
        liveness,
        "--metrics-address",
        "off",
    )
    operator = KillableOperator(command, tmp_path / "operator.log", liveness)
    operator.start()
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=SLOW)
        deadline = time.monotonic() + 60
        while FINALIZER not in _finalizers(cluster, namespace, "run/slow-1"):
            assert time.monotonic() < deadline, operator.log()
            time.sleep(0.5)
        began = time.monotonic()
        if objects_first:  # docs/install.md, Uninstalling: the objects, then the CRDs
            cluster.kubectl(
                "delete",
                "runs,recurringruns,gitsources,experiments,pipelines",
                "--all",
                "--all-namespaces",
                "--wait",
                timeout=PROCEDURE_TIMEOUT_S,
            )
        left = max(PROCEDURE_TIMEOUT_S - (time.monotonic() - began), 1.0)
        cluster.kubectl("delete", "-f", CRDS, "--wait", timeout=left)
        assert time.monotonic() - began < PROCEDURE_TIMEOUT_S, operator.log()
    finally:
        operator.stop()


def _finalizers(cluster: Cluster, namespace: str, what: str) -> list[str]:
    found = json.loads(cluster.kubectl("get", what, "-n", namespace, "-o", "json").stdout)
    return list(found["metadata"].get("finalizers") or [])
