"""Retry from failure on the real control plane: a Run with spec.retryOf reuses the
original's succeeded tasks and forEach instances (no pod, Cached from the original, its
artifacts copied through S3) and runs only what failed, what it blocked, and onExit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_runs import namespace, pods_of, wait_finished

__all__ = ["namespace"]  # the fixture, used by name below

RECOVER = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: recover}}
spec:
  tasks:
    - name: prepare
      command: [sh, -c, 'echo rows > "$0"', "{{{{outputs.artifacts.data}}}}"]
      outputs: {{artifacts: [data]}}
    - name: shard
      forEach: {{items: [1, 2, 3]}}
      # Item 2 fails until the flag file exists (the nodes run containers as processes).
      command: [sh, -c, 'if [ "$0" = 2 ] && [ ! -e {flag} ]; then exit 4; fi; echo "$0" > "$1"',
                "{{{{item}}}}", "{{{{outputs.parameters.out}}}}"]
      outputs: {{parameters: [out]}}
    - name: train
      dependsOn: [shard]
      inputs: {{artifacts: {{data: {{from: "{{{{tasks.prepare.outputs.artifacts.data}}}}"}}}}}}
      command: [sh, -c, 'cat "$0" > "$1"', "{{{{inputs.artifacts.data}}}}",
                "{{{{outputs.parameters.seen}}}}"]
      outputs: {{parameters: [seen]}}
  onExit:
    name: report
    command: [sh, -c, 'echo "$0"', "{{{{run.status}}}}"]
"""


def _apply_run(cluster: Cluster, namespace: str, name: str, **spec: Any) -> None:
    document = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": "recover"}, **spec},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(document))


def test_a_failed_run_retried_runs_only_what_failed_and_after(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "item-2-may-pass"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=RECOVER.format(flag=flag))
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/recover", "-n", namespace, "--timeout=60s"
    )
    _apply_run(cluster, namespace, "recover-1")
    first = wait_finished(cluster, namespace, "recover-1", timeout=180)["status"]
    assert first["phase"] == "Failed", (json.dumps(first, indent=1), operator.log())
    assert first["tasks"]["train"]["phase"] == "Omitted"

    flag.write_text("ok\n")
    _apply_run(cluster, namespace, "recover-2", retryOf={"name": "recover-1"})
    retried = wait_finished(cluster, namespace, "recover-2", timeout=180)["status"]
    assert retried["phase"] == "Succeeded", (json.dumps(retried, indent=1), operator.log())
    tasks = retried["tasks"]
    assert tasks["prepare"]["phase"] == "Cached"
    assert tasks["prepare"]["cachedFrom"] == {"run": "recover-1", "task": "prepare"}
    assert tasks["train"]["outputs"]["seen"].strip() == "rows"  # the original's artifact
    ran = sorted(
        (p["metadata"]["labels"]["pipesync.io/task"], p["metadata"]["labels"].get(
            "pipesync.io/instance", "")) for p in pods_of(cluster, namespace, "recover-2")
    )  # fmt: skip
    assert ran == [("report", ""), ("shard", "1"), ("train", "")], ran
    assert tasks["shard"]["instances"]["succeeded"] == 3
    assert retried["pipeline"]["version"] == first["pipeline"]["version"]
