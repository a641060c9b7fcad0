"""docs/install.md's uninstall procedure completes while the operator runs.

`kubectl delete -f crds/` alone hangs: the API server marks every object Terminating, but
kopf stops serving a CRD that terminates, so the finalizer it put on the objects its
daemons drive (unfinished Runs, GitSources, RecurringRuns) is never removed. Deleting the
objects first lets the operator stop its daemons and release them; the CRDs then go.

Deletes the CRDs cluster-wide: they are applied again (and Established) before it ends.
"""

from __future__ import annotations

import json
import pathlib
import time

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.killable_operator import KillableOperator

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


def test_the_documented_uninstall_deletes_objects_then_crds_without_hanging(
    cluster: Cluster, killable_operator: KillableOperator, solo_namespace: str
) -> None:
    cluster.kubectl("apply", "-n", solo_namespace, "-f", "-", input=SLOW)
    deadline = time.monotonic() + 60
    while FINALIZER not in _finalizers(cluster, solo_namespace, "run/slow-1"):
        assert time.monotonic() < deadline, killable_operator.log()
        time.sleep(0.5)
    began = time.monotonic()
    try:
        # docs/install.md, Uninstalling: the objects first, then the CRDs.
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
    finally:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", CRDS)
        cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", CRDS)
    assert time.monotonic() - began < PROCEDURE_TIMEOUT_S


def _finalizers(cluster: Cluster, namespace: str, what: str) -> list[str]:
    found = json.loads(cluster.kubectl("get", what, "-n", namespace, "-o", "json").stdout)
    return list(found["metadata"].get("finalizers") or [])
