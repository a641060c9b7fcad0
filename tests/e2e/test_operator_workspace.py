"""A pipeline synced from git runs in its repository tree: the task pods unpack the
source's archive of the pinned commit (put in S3 by the GitSource controller; here by the
test, so this proves the pod side on its own) and start in <tree>/<source path>."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pipesync.engine import layout
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_runs import run_document, wait_finished

COMMIT = "c0ffee" * 6 + "c0ff"

PIPELINE = f"""
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata:
  name: from-git
  annotations:
    pipesync.io/source: ml-repo
    pipesync.io/commit: "{COMMIT}"
    pipesync.io/source-path: project
spec:
  tasks:
    - name: read-repo
      command: [sh, -c, 'cat steps/message.txt > "$0"; pwd > "$1"; sh steps/touch.sh',
                "{{{{outputs.parameters.message}}}}", "{{{{outputs.parameters.where}}}}"]
      outputs: {{parameters: [message, where]}}
    - name: in-subdirectory
      workingDir: steps
      command: [sh, -c, 'cat message.txt > "$0"', "{{{{outputs.parameters.message}}}}"]
      outputs: {{parameters: [message]}}
"""


def repository_archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"workspace-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def test_tasks_run_in_the_repository_tree_of_the_pinned_commit(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    archive = repository_archive(
        {
            "project/steps/message.txt": b"hello from the repository\n",
            # Writing next to the code works although the task may run as another uid.
            "project/steps/touch.sh": b"echo done > steps/written.txt\n",
            "README.md": b"outside the source path\n",
        }
    )
    key = layout.source_archive_key(namespace, "ml-repo", COMMIT)
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=archive)

    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/from-git", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("ws-1", "from-git"))
    status = wait_finished(cluster, namespace, "ws-1")["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    tasks = status["tasks"]
    assert tasks["read-repo"]["outputs"]["message"] == "hello from the repository\n"
    assert tasks["read-repo"]["outputs"]["where"] == "/pipesync/workspace/project\n"
    assert tasks["in-subdirectory"]["outputs"]["message"] == "hello from the repository\n"
    assert status["pipeline"]["source"] == "ml-repo"
    assert status["pipeline"]["commit"] == COMMIT
    assert status["pipeline"]["path"] == "project"


def test_a_missing_archive_fails_the_task_with_its_key(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    missing = PIPELINE.replace(COMMIT, "0" * 40).replace("from-git", "lost")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=missing)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/lost", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=run_document("ws-2", "lost"))
    status = wait_finished(cluster, namespace, "ws-2")["status"]
    assert status["phase"] == "Failed"
    message = status["tasks"]["read-repo"]["message"]
    assert f"sources/ml-repo/{'0' * 40}.tar.gz" in message, message


def test_a_replaced_archive_is_refused_before_it_runs(
    cluster: Cluster, operator: Operator, namespace: str, s3: Any
) -> None:
    """Someone else who can write the key (another tenant) replaced the archive after the
    operator recorded its digest: the task fails instead of running the planted code."""
    recorded = repository_archive({"project/steps/message.txt": b"the real tree\n"})
    planted = repository_archive({"project/steps/message.txt": b"planted\n"})
    commit = "d00d" * 10
    key = layout.source_archive_key(namespace, "ml-repo", commit)
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=planted)
    pipeline = (
        PIPELINE.replace(COMMIT, commit)
        .replace("from-git", "pinned-digest")
        .replace(
            "    pipesync.io/source-path: project\n",
            "    pipesync.io/source-path: project\n"
            f'    pipesync.io/archive-sha256: "{hashlib.sha256(recorded).hexdigest()}"\n',
        )
    )
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=pipeline)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/pinned-digest", "-n", namespace, "--timeout=60s"
    )
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=run_document("ws-3", "pinned-digest")
    )
    status = wait_finished(cluster, namespace, "ws-3")["status"]
    assert status["phase"] == "Failed", (json.dumps(status, indent=1), operator.log())
    assert status["pipeline"]["archiveSha256"] == hashlib.sha256(recorded).hexdigest()
    message = status["tasks"]["read-repo"]["message"]
    assert f"repository archive {key} does not match the digest the operator recorded" in message, (
        message
    )
