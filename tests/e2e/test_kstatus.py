"""What Flux's kstatus and Argo CD's Lua health checks say of real pipesync objects.

Both are run for real: tests/e2e/tools/go/kstatus pins sigs.k8s.io/cli-utils (kstatus) and
github.com/yuin/gopher-lua (Argo CD's interpreter) and runs the chart's
charts/pipesync/argocd/health.lua on the object the API server returns.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.fixtures.binaries import binary
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_runs import run_document, wait_finished

HEALTH = pathlib.Path(__file__).parents[2] / "charts" / "pipesync" / "argocd" / "health.lua"

PIPELINES = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: ok}
spec:
  tasks:
    - {name: t, image: any, command: [sh, -c, "true"]}
---
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: boom}
spec:
  tasks:
    - {name: t, image: any, command: [sh, -c, "exit 3"]}
---
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: slow}
spec:
  tasks:
    - {name: t, image: any, command: [sh, -c, "sleep 600"]}
---
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: broken}
spec:
  tasks:
    - {name: t, image: any, dependsOn: [nowhere], command: [sh, -c, "true"]}
---
apiVersion: pipesync.io/v1alpha1
kind: RecurringRun
metadata: {name: orphan}
spec:
  pipelineRef: {name: missing}
  schedule: {interval: 5s}
"""


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"kstatus-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def check(obj: dict[str, Any]) -> tuple[str, str]:
    """(kstatus status, Argo CD health status) of one object."""
    raw = json.dumps(obj)
    tool = str(binary("kstatus"))
    ks = json.loads(
        subprocess.run([tool], input=raw, capture_output=True, text=True, check=True).stdout
    )
    argo = subprocess.run(
        [tool, "lua", str(HEALTH)], input=raw, capture_output=True, text=True, check=True
    )
    return ks["status"], json.loads(argo.stdout)["status"]


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def eventually(
    cluster: Cluster, namespace: str, kind: str, name: str, want: tuple[str, str]
) -> None:
    deadline = time.monotonic() + 60
    seen: tuple[str, str] = ("", "")
    obj: dict[str, Any] = {}
    while time.monotonic() < deadline:
        obj = get(cluster, namespace, kind, name)
        seen = check(obj)
        if seen == want:
            return
        time.sleep(0.5)
    raise AssertionError(f"{kind}/{name}: {seen} != {want}: {json.dumps(obj.get('status'))}")


def test_a_run_no_controller_has_seen_yet_is_in_progress(
    cluster: Cluster, crds: None, solo_namespace: str
) -> None:
    # A `solo-*` namespace: the session operator (which another test on this worker may
    # have started) never watches it, so the Run keeps only what the API server gives it.
    # The CRD defaults status to observedGeneration 0, which kstatus reads as "the
    # controller has not seen generation 1 yet".
    namespace = solo_namespace
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("fresh", "ok"))
    run = get(cluster, namespace, "run", "fresh")
    assert check(run) == ("InProgress", "Progressing")  # kstatus said Current without it
    assert run["status"] == {"observedGeneration": 0}


def test_kstatus_and_argocd_health_follow_the_run_and_pipeline_lifecycle(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINES)
    eventually(cluster, namespace, "pipeline", "ok", ("Current", "Healthy"))
    eventually(cluster, namespace, "pipeline", "broken", ("Failed", "Degraded"))
    eventually(cluster, namespace, "recurringrun", "orphan", ("Failed", "Degraded"))
    for run, pipeline in (
        ("r-ok", "ok"),
        ("r-boom", "boom"),
        ("r-slow", "slow"),
        ("r-stop", "slow"),
    ):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document(run, pipeline))
    eventually(cluster, namespace, "run", "r-slow", ("InProgress", "Progressing"))
    eventually(cluster, namespace, "run", "r-stop", ("InProgress", "Progressing"))
    cluster.kubectl(
        "patch",
        "run",
        "r-stop",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"cancel":true}}',
    )
    assert wait_finished(cluster, namespace, "r-ok")["status"]["phase"] == "Succeeded"
    assert wait_finished(cluster, namespace, "r-boom")["status"]["phase"] == "Failed"
    assert wait_finished(cluster, namespace, "r-stop")["status"]["phase"] == "Cancelled"
    assert check(get(cluster, namespace, "run", "r-ok")) == ("Current", "Healthy")
    assert check(get(cluster, namespace, "run", "r-boom")) == ("Failed", "Degraded")
    assert check(get(cluster, namespace, "run", "r-stop")) == ("Failed", "Degraded")
