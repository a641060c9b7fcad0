"""Env from Secrets and ConfigMaps and mounted volumes, in task pods on the real control
plane (the test nodes resolve valueFrom and materialise secret/configMap/emptyDir
volumes as the kubelet does)."""

from __future__ import annotations

import json
from typing import Any

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_runs import namespace, run_document, wait_finished

__all__ = ["namespace"]

PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: secretive}
spec:
  tasks:
    - name: read
      command: [sh, -c, 'printf "%s|%s|%s|%s" "$DB_PASSWORD" "$MODE" "$(cat /etc/creds/token)"
                "$(ls /scratch && echo empty)" > "$0"', "{{outputs.parameters.seen}}"]
      env:
        - name: DB_PASSWORD
          valueFrom: {secretKeyRef: {name: db, key: password}}
        - name: MODE
          valueFrom: {configMapKeyRef: {name: settings, key: mode}}
      volumes:
        - {name: creds, mountPath: /etc/creds, readOnly: true, secret: {secretName: db}}
        - {name: scratch, mountPath: /scratch, emptyDir: {}}
      outputs: {parameters: [seen]}
"""


def test_a_task_reads_env_from_a_secret_and_a_config_map_and_a_mounted_secret(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "db", "-n", namespace,
        "--from-literal=password=s3cr3t", "--from-literal=token=tok-123",
    )  # fmt: skip
    cluster.kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=mode=fast")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/secretive", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("s-1", "secretive"))
    status = wait_finished(cluster, namespace, "s-1", timeout=120)["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    assert status["tasks"]["read"]["outputs"]["seen"] == "s3cr3t|fast|tok-123|empty"
    pod = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", namespace, "-l", "pipesync.io/run=s-1", "-o", "json"
        ).stdout
    )["items"][0]
    # the secret's value is referenced, never copied into the pod spec (the task itself
    # chose to write it into an output here)
    assert "s3cr3t" not in json.dumps(pod["spec"])
    main = next(c for c in pod["spec"]["containers"] if c["name"] == "main")
    assert {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {
        "name": "db", "key": "password", "optional": False}}} in main["env"]  # fmt: skip
