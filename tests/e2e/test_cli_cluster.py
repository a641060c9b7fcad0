"""The cluster loop from the CLI on the real control plane, with a kubeconfig as a user
has one: `pipesync submit --watch` of a pipeline file, `get runs`, `wait`, `logs` (live
pod, then S3 once the pod is gone), and `retry` of a failed run."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_records import PIPESYNC
from tests.e2e.test_operator_runs import namespace, wait_finished

__all__ = ["namespace"]  # the fixture, used by name below

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: loop}}
spec:
  params:
    - {{name: word, type: string, default: hello}}
  tasks:
    - name: say
      command: [sh, -c, 'echo "said $0"; echo "$0" > "$1"', "{{{{params.word}}}}",
                "{{{{outputs.parameters.said}}}}"]
      outputs: {{parameters: [said]}}
    - name: check
      dependsOn: [say]
      command: [sh, -c, 'test -e {flag} || {{ echo "no flag yet" >&2; exit 5; }}']
"""


def cli(
    cluster: Cluster, s3: Any, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {
        **s3.env(),
        "PATH": "/usr/bin:/bin",
        "KUBECONFIG": str(cluster.kubeconfig),
        "PIPESYNC_S3_ENDPOINT": s3.endpoint_url,
        "PIPESYNC_S3_BUCKET": s3.bucket,
    }
    return subprocess.run(
        [str(PIPESYNC), *args], env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def test_submit_watch_get_wait_logs_and_retry(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "check-passes"
    pipeline = tmp_path / "pipelines" / "loop.yaml"
    pipeline.parent.mkdir()
    pipeline.write_text(textwrap.dedent(PIPELINE.format(flag=flag)))

    submitted = cli(cluster, s3, "submit", str(pipeline), "-n", namespace, "-p", "word=hi",
                    "--watch")  # fmt: skip
    assert submitted.returncode == 1, (submitted.stdout, submitted.stderr, operator.log())
    runs = json.loads(cli(cluster, s3, "get", "runs", "-n", namespace, "-o", "json").stdout)
    (run,) = runs if isinstance(runs, list) else runs["runs"]
    name = run["name"] if "name" in run else run["metadata"]["name"]
    assert name in submitted.stdout + submitted.stderr
    status = wait_finished(cluster, namespace, name)["status"]
    assert status["phase"] == "Failed"
    assert status["tasks"]["say"]["outputs"]["said"].strip() == "hi"

    waited = cli(cluster, s3, "wait", name, "-n", namespace)
    assert waited.returncode == 1, waited.stderr
    logs = cli(cluster, s3, "logs", name, "say", "-n", namespace)
    assert logs.returncode == 0 and "said hi" in logs.stdout, (logs.stdout, logs.stderr)

    flag.write_text("ok\n")
    retried = cli(cluster, s3, "retry", name, "-n", namespace, "--watch")
    assert retried.returncode == 0, (retried.stdout, retried.stderr, operator.log())
    listed = cli(cluster, s3, "get", "runs", "-n", namespace)
    assert listed.returncode == 0 and "Succeeded" in listed.stdout and "Failed" in listed.stdout

    # The pods are gone (the retry waited for the original's record, logs included):
    # the logs come from S3.
    cluster.kubectl("delete", "pods", "-n", namespace, "-l", f"pipesync.io/run={name}")
    archived = cli(cluster, s3, "logs", name, "say", "-n", namespace)
    assert archived.returncode == 0 and "said hi" in archived.stdout, archived.stderr

    missing = cli(cluster, s3, "wait", "no-such-run", "-n", namespace)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
