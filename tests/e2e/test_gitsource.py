"""GitSource on the real control plane against real git remotes (smart HTTP with basic
auth, file://): sync of a repository layout, safety (broken files, mass deletion,
force-push, unreachable remote, namespace escape), prune by inventory only, Runs from
git (runs/ once, onChange once per version, running the repository's own code), suspend.

Each test has its own namespace and its own repository. Syncs are started by the
`pipesync.io/reconcile-at` annotation (the manual trigger) so no test waits a poll
interval; the annotation's echo in status.lastHandledReconcileAt says the pass ran.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipesync.engine import layout
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.gitserver import GitServer, isolated_git_env
from tests.e2e.fixtures.operator import Operator
from tests.e2e.test_operator_runs import wait_finished

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "repo-layout"
TIMEOUT = 120.0  # generous: the machine running the suite may be shared and busy

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata:
  name: {name}
spec:
  tasks:
    - {{name: a, image: busybox, command: [echo, "{word}"]}}
"""


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"gitsync-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


class Repo:
    """One repository on the git server, pushed from plain dicts of files."""

    def __init__(self, server: GitServer, name: str) -> None:
        self.server = server
        self.name = name
        self.remote = server.create_repo(name)
        self.files: dict[str, str] = {}

    def push(self, message: str = "change", **changes: str | None) -> str:
        """Applies changes and pushes; a keyword names a path with '__' for '/', '_' for
        '-' and a last '_ext' for '.ext' (runs__by_hand_yaml: runs/by-hand.yaml); None
        deletes the file."""
        for key, text in changes.items():
            stem, _, extension = key.rpartition("_")
            path = stem.replace("__", "/").replace("_", "-") + "." + extension
            if text is None:
                self.files.pop(path, None)
            else:
                self.files[path] = textwrap.dedent(text)
        return self.push_tree(self.files, message)

    def push_tree(self, files: dict[str, str], message: str) -> str:
        with tempfile.TemporaryDirectory() as scratch:
            for path, text in files.items():
                target = Path(scratch) / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            return self.server.commit_and_push(self.name, Path(scratch), message)

    def force_push_from(self, base: str, files: dict[str, str], message: str) -> str:
        """A new commit on top of `base`, pushed with --force (history rewritten)."""
        env = isolated_git_env()
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)

            def git(*args: str) -> str:
                done = subprocess.run(
                    ["git", *args], cwd=work, env=env, check=True, capture_output=True, text=True
                )
                return done.stdout.strip()

            git("init", "-q", "-b", "main")
            git("fetch", "-q", self.remote.file_url, "main")
            git("reset", "-q", "--hard", base)
            for path in git("ls-files").splitlines():
                (work / path).unlink()
            for path, text in files.items():
                target = work / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            git("add", "-A")
            git("commit", "-q", "-m", message)
            git("push", "-q", "--force", self.remote.file_url, "HEAD:refs/heads/main")
            self.files = dict(files)
            return git("rev-parse", "HEAD")


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl(
        "get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields", check=False
    )
    if result.returncode != 0:
        return None
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def names(cluster: Cluster, namespace: str, kind: str) -> set[str]:
    out = cluster.kubectl("get", kind, "-n", namespace, "-o", "json").stdout
    return {item["metadata"]["name"] for item in json.loads(out)["items"]}


def condition(source: dict[str, Any], kind: str) -> dict[str, Any]:
    for found in (source.get("status") or {}).get("conditions") or []:
        if found["type"] == kind:
            return dict(found)
    return {}


def create_source(
    cluster: Cluster, namespace: str, url: str, name: str = "repo", **spec: Any
) -> None:
    body = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"url": url, "ref": {"branch": "main"}, "interval": "10m", **spec},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def wait_source(
    cluster: Cluster,
    namespace: str,
    check: Callable[[dict[str, Any]], bool],
    operator: Operator,
    name: str = "repo",
) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    source: dict[str, Any] = {}
    while time.monotonic() < deadline:
        source = get(cluster, namespace, "gitsource", name) or {}
        if source and check(source):
            return source
        time.sleep(0.3)
    raise AssertionError(
        f"GitSource {namespace}/{name} never matched: "
        f"{json.dumps(source.get('status'), indent=1)}\n{operator.log()}"
    )


def sync_now(
    cluster: Cluster, namespace: str, operator: Operator, name: str = "repo"
) -> dict[str, Any]:
    """Sets the manual trigger and waits until status says it was handled."""
    stamp = f"{time.time():.6f}"
    cluster.kubectl(
        "annotate", "gitsource", name, "-n", namespace,
        f"pipesync.io/reconcile-at={stamp}", "--overwrite",
    )  # fmt: skip
    return wait_source(
        cluster,
        namespace,
        lambda s: (
            s.get("status", {}).get("lastHandledReconcileAt") == stamp
            and condition(s, "Reconciling").get("status") == "False"
        ),
        operator,
        name,
    )


def applied(sha: str) -> Callable[[dict[str, Any]], bool]:
    return lambda s: s.get("status", {}).get("lastAppliedRevision") == f"main@sha1:{sha}"


def basic_auth_secret(cluster: Cluster, namespace: str, username: str, password: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "git-credentials", "namespace": namespace},
        "data": {
            "username": base64.b64encode(username.encode()).decode(),
            "password": base64.b64encode(password.encode()).decode(),
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(secret))


def example_files() -> dict[str, str]:
    files = {}
    for path in sorted(EXAMPLES.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            files[str(path.relative_to(EXAMPLES))] = path.read_text()
    return files


# --- tests ---------------------------------------------------------------------------------


def test_the_example_repository_syncs_over_https_with_credentials(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str, s3: Any
) -> None:
    repo = Repo(git_server, f"{namespace}-examples")
    files = example_files()
    sha = repo.push_tree(files, "the example repository")
    basic_auth_secret(cluster, namespace, git_server.username, git_server.password)
    create_source(
        cluster,
        namespace,
        repo.remote.http_url,
        secretRef={"name": "git-credentials"},
        prune=True,
    )
    source = wait_source(cluster, namespace, applied(sha), operator)
    status = source["status"]
    assert condition(source, "Ready")["status"] == "True", status
    assert condition(source, "Ready")["reason"] == "Succeeded"
    assert status["lastAttemptedRevision"] == f"main@sha1:{sha}"
    assert status["webhookPath"] == f"/hooks/{namespace}/repo"
    assert status["observedGeneration"] == source["metadata"]["generation"]
    assert status.get("errors", []) == []
    # The daemon's finalizer, under pipesync's own name (docs/install.md: uninstalling).
    assert source["metadata"].get("finalizers") == ["pipesync.io/operator"]
    expected = {
        ("Pipeline", "digits"), ("Pipeline", "gpu-train"), ("Pipeline", "sweep"),
        ("Experiment", "digits-tuning"), ("RecurringRun", "nightly-digits"),
        ("Run", "digits-manual-1"),
    }  # fmt: skip
    assert {(e["kind"], e["name"]) for e in status["inventory"]} == expected
    digits = get(cluster, namespace, "pipeline", "digits")
    assert digits is not None
    metadata = digits["metadata"]
    assert metadata["labels"]["pipesync.io/source"] == "repo"
    assert metadata["annotations"]["pipesync.io/commit"] == sha
    assert metadata["annotations"]["pipesync.io/path"] == "pipelines/digits.yaml"
    assert metadata["annotations"]["pipesync.io/source-path"] == "."
    managers = {m["manager"] for m in metadata["managedFields"]}
    assert "pipesync" in managers
    for kind, name in expected:
        found = get(cluster, namespace, kind.lower(), name)
        assert found is not None, (kind, name)
        assert found["metadata"]["labels"]["pipesync.io/source"] == "repo"
    # The repository tree for task pods, at the commit.
    key = layout.source_archive_key(namespace, "repo", sha)
    assert s3.client().head_object(Bucket=s3.bucket, Key=key)["ContentLength"] > 0
    # digits has trigger.onChange: its first version started one Run named from the commit.
    assert f"digits-{sha[:10]}" in names(cluster, namespace, "runs")
    # kubectl get shows the printer columns.
    table = cluster.kubectl("get", "gitsource", "repo", "-n", namespace).stdout
    assert "REVISION" in table and f"main@sha1:{sha}" in table


def test_wrong_credentials_give_a_clear_condition(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    repo = Repo(git_server, f"{namespace}-private")
    repo.push(pipelines__a_yaml=PIPELINE.format(name="a", word="x"))
    basic_auth_secret(cluster, namespace, git_server.username, "not-the-password-123")
    create_source(cluster, namespace, repo.remote.http_url, secretRef={"name": "git-credentials"})
    source = wait_source(
        cluster, namespace, lambda s: condition(s, "Ready").get("status") == "False", operator
    )
    ready = condition(source, "Ready")
    assert ready["reason"] == "AuthenticationFailed", ready
    assert "not-the-password-123" not in json.dumps(source)
    assert get(cluster, namespace, "pipeline", "a") is None


def test_a_broken_file_keeps_its_last_good_object_and_is_located(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    repo = Repo(git_server, f"{namespace}-broken")
    first = repo.push(
        pipelines__a_yaml=PIPELINE.format(name="a", word="v1"),
        pipelines__b_yaml=PIPELINE.format(name="b", word="v1"),
    )
    create_source(cluster, namespace, repo.remote.file_url, prune=True)
    wait_source(cluster, namespace, applied(first), operator)
    broken = (
        "apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\nmetadata: {name: a}\nspec:\n  tasks: [\n"
    )
    second = repo.push(
        pipelines__a_yaml=broken, pipelines__b_yaml=PIPELINE.format(name="b", word="v2")
    )
    source = sync_now(cluster, namespace, operator)
    status = source["status"]
    assert status["lastAttemptedRevision"] == f"main@sha1:{second}"
    errors = [e for e in status.get("errors", []) if e.get("severity") == "error"]
    assert len(errors) == 1, status
    (error,) = errors
    assert error["file"] == "pipelines/a.yaml" and error["line"] >= 5, error
    ready = condition(source, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidFiles"
    assert "pipelines/a.yaml:" in ready["message"]
    b = get(cluster, namespace, "pipeline", "b")
    assert b is not None and b["spec"]["tasks"][0]["command"] == ["echo", "v2"]
    a = get(cluster, namespace, "pipeline", "a")
    assert a is not None and a["spec"]["tasks"][0]["command"] == ["echo", "v1"]
    assert {e["name"] for e in status["inventory"]} == {"a", "b"}


def test_mass_deletion_is_refused_then_allowed_by_the_commit(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    repo = Repo(git_server, f"{namespace}-mass")
    first = repo.push(
        **{f"pipelines__p{i}_yaml": PIPELINE.format(name=f"p{i}", word="x") for i in range(4)},
        runs__r_yaml="""\
            apiVersion: pipesync.io/v1alpha1
            kind: Run
            metadata: {name: r}
            spec: {pipelineRef: {name: p0}}
            """,
    )
    # Not this source's: pruning must never touch it.
    cluster.kubectl(
        "apply", "-n", namespace, "-f", "-", input=PIPELINE.format(name="handmade", word="x")
    )
    create_source(cluster, namespace, repo.remote.file_url, prune=True)
    wait_source(cluster, namespace, applied(first), operator)
    second = repo.push(
        "drop most", pipelines__p1_yaml=None, pipelines__p2_yaml=None, pipelines__p3_yaml=None
    )
    source = sync_now(cluster, namespace, operator)
    stalled = condition(source, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "MassDeletionRefused", stalled
    assert "3 of the 4" in condition(source, "Ready")["message"]
    assert source["status"]["lastAppliedRevision"] == f"main@sha1:{first}"
    assert source["status"]["lastAttemptedRevision"] == f"main@sha1:{second}"
    assert {"p0", "p1", "p2", "p3", "handmade"} <= names(cluster, namespace, "pipelines")
    third = repo.push("retire p1-p3\n\npipesync: allow-mass-deletion\n", runs__r_yaml=None)
    source = sync_now(cluster, namespace, operator)
    assert applied(third)(source), source["status"]
    assert names(cluster, namespace, "pipelines") == {"p0", "handmade"}
    assert "r" in names(cluster, namespace, "runs")  # Runs are never pruned


def test_force_push_and_an_unreachable_remote_keep_the_last_good_state(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    repo = Repo(git_server, f"{namespace}-history")
    base = repo.push(pipelines__a_yaml=PIPELINE.format(name="a", word="base"))
    ahead = repo.push(pipelines__a_yaml=PIPELINE.format(name="a", word="ahead"))
    create_source(cluster, namespace, repo.remote.file_url)
    wait_source(cluster, namespace, applied(ahead), operator)
    rewritten = repo.force_push_from(
        base, {"pipelines/a.yaml": PIPELINE.format(name="a", word="rewritten")}, "rewrite"
    )
    source = sync_now(cluster, namespace, operator)
    assert applied(rewritten)(source), source["status"]
    assert "force-push" in condition(source, "Ready")["message"]
    a = get(cluster, namespace, "pipeline", "a")
    assert a is not None and a["spec"]["tasks"][0]["command"] == ["echo", "rewritten"]

    hidden = repo.remote.path.with_name(repo.remote.path.name + ".away")
    shutil.move(repo.remote.path, hidden)
    try:
        source = sync_now(cluster, namespace, operator)
        ready = condition(source, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "FetchFailed", ready
        assert f"main@sha1:{rewritten}" in ready["message"]  # what stays applied
        assert applied(rewritten)(source)
        assert get(cluster, namespace, "pipeline", "a") is not None
    finally:
        shutil.move(hidden, repo.remote.path)
    source = sync_now(cluster, namespace, operator)
    assert condition(source, "Ready")["status"] == "True", source["status"]


def test_runs_from_git_are_created_once_and_run_the_repository_code(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    repo = Repo(git_server, f"{namespace}-runs")
    on_change = """\
        apiVersion: pipesync.io/v1alpha1
        kind: Pipeline
        metadata: {{name: said}}
        spec:
          trigger: {{onChange: true}}
          tasks:
            - name: say
              command: [sh, steps/say.sh, "{{{{outputs.parameters.said}}}}", "{word}"]
              outputs: {{parameters: [said]}}
        """
    run_file = """\
        apiVersion: pipesync.io/v1alpha1
        kind: Run
        metadata: {{name: by-hand}}
        spec: {{pipelineRef: {{name: said}}, timeout: {hours}h}}
        """
    first = repo.push(
        pipelines__said_yaml=on_change.format(word="one"),
        runs__by_hand_yaml=run_file.format(hours=1),
        steps__say_sh='printf "%s from %s" "$(cat steps/message.txt)" "$2" > "$1"\n',
        steps__message_txt="commit one",
    )
    create_source(cluster, namespace, repo.remote.file_url)
    wait_source(cluster, namespace, applied(first), operator)
    run = wait_finished(cluster, namespace, f"said-{first[:10]}")
    assert run["status"]["phase"] == "Succeeded", (run["status"], operator.log())
    assert run["status"]["tasks"]["say"]["outputs"]["said"] == "commit one from one"
    assert run["status"]["pipeline"]["commit"] == first
    assert "by-hand" in names(cluster, namespace, "runs")

    # Code changes only, and an edited Run file: no new run, a warning for the file.
    second = repo.push(steps__message_txt="commit two", runs__by_hand_yaml=run_file.format(hours=2))
    source = sync_now(cluster, namespace, operator)
    assert applied(second)(source)
    assert names(cluster, namespace, "runs") == {"by-hand", f"said-{first[:10]}"}
    by_hand = get(cluster, namespace, "run", "by-hand")
    assert by_hand is not None and by_hand["spec"]["timeout"] == "1h"
    (warning,) = source["status"]["errors"]
    assert warning["severity"] == "warning" and warning["file"] == "runs/by-hand.yaml"
    assert condition(source, "Ready")["status"] == "True"

    # A spec change: one new run, which runs the code at its own commit.
    third = repo.push(pipelines__said_yaml=on_change.format(word="three"))
    sync_now(cluster, namespace, operator)
    sync_now(cluster, namespace, operator)  # a re-sync starts nothing twice
    assert names(cluster, namespace, "runs") == {
        "by-hand", f"said-{first[:10]}", f"said-{third[:10]}"
    }  # fmt: skip
    run = wait_finished(cluster, namespace, f"said-{third[:10]}")
    assert run["status"]["tasks"]["say"]["outputs"]["said"] == "commit two from three"


def test_suspend_and_namespace_escape(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    repo = Repo(git_server, f"{namespace}-suspend")
    escape = PIPELINE.format(name="escape", word="x").replace(
        "  name: escape", "  name: escape\n  namespace: kube-system"
    )
    first = repo.push(
        pipelines__a_yaml=PIPELINE.format(name="a", word="v1"), pipelines__escape_yaml=escape
    )
    create_source(cluster, namespace, repo.remote.file_url)
    source = wait_source(cluster, namespace, applied(first), operator)
    (error,) = source["status"]["errors"]
    assert error["file"] == "pipelines/escape.yaml" and "kube-system" in error["message"]
    assert "escape" not in names(cluster, "kube-system", "pipelines")
    assert "escape" not in names(cluster, namespace, "pipelines")

    cluster.kubectl(
        "patch", "gitsource", "repo", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"suspend": true}}',
    )  # fmt: skip
    wait_source(
        cluster,
        namespace,
        lambda s: condition(s, "Reconciling").get("reason") == "Suspended",
        operator,
    )
    repo.push(pipelines__a_yaml=PIPELINE.format(name="a", word="v2"))
    source = sync_now(cluster, namespace, operator)
    assert applied(first)(source)
    a = get(cluster, namespace, "pipeline", "a")
    assert a is not None and a["spec"]["tasks"][0]["command"] == ["echo", "v1"]
    cluster.kubectl(
        "patch", "gitsource", "repo", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"suspend": false}}',
    )  # fmt: skip
    wait_source(cluster, namespace, applied(repo_head(git_server, repo)), operator)
    a = get(cluster, namespace, "pipeline", "a")
    assert a is not None and a["spec"]["tasks"][0]["command"] == ["echo", "v2"]


def repo_head(server: GitServer, repo: Repo) -> str:
    head = server.head(repo.name)
    assert head is not None
    return head


def test_interval_polling_picks_up_a_push(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    repo = Repo(git_server, f"{namespace}-poll")
    first = repo.push(pipelines__a_yaml=PIPELINE.format(name="a", word="v1"))
    create_source(cluster, namespace, repo.remote.daemon_url, interval="2s")
    wait_source(cluster, namespace, applied(first), operator)
    second = repo.push(pipelines__a_yaml=PIPELINE.format(name="a", word="v2"))
    # No annotation, no spec change: only the poll can bring the new commit.
    source = wait_source(cluster, namespace, applied(second), operator)
    assert "lastHandledReconcileAt" not in source["status"]
    a = get(cluster, namespace, "pipeline", "a")
    assert a is not None and a["spec"]["tasks"][0]["command"] == ["echo", "v2"]


def test_a_planted_archive_is_replaced_and_its_digest_recorded(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str, s3: Any
) -> None:
    """Another tenant wrote the archive key of a commit before the sync: the operator does
    not trust what is there, uploads the real tree and records its digest on the Pipeline,
    so the run executes the repository's code and not the planted one."""
    repo = Repo(git_server, f"{namespace}-planted")
    commit = repo.push(
        pipelines__said_yaml="""\
            apiVersion: pipesync.io/v1alpha1
            kind: Pipeline
            metadata: {name: said}
            spec:
              trigger: {onChange: true}
              tasks:
                - name: say
                  command: [sh, -c, 'cat steps/message.txt > "$0"', "{{outputs.parameters.said}}"]
                  outputs: {parameters: [said]}
            """,
        steps__message_txt="the repository's code",
    )
    key = layout.source_archive_key(namespace, "repo", commit)
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=b"planted by another tenant")
    create_source(cluster, namespace, repo.remote.file_url)
    wait_source(cluster, namespace, applied(commit), operator)
    stored = s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
    assert stored != b"planted by another tenant"
    pipeline = get(cluster, namespace, "pipeline", "said")
    assert pipeline is not None
    recorded = pipeline["metadata"]["annotations"]["pipesync.io/archive-sha256"]
    assert recorded == hashlib.sha256(stored).hexdigest()
    run = wait_finished(cluster, namespace, f"said-{commit[:10]}")
    assert run["status"]["phase"] == "Succeeded", (run["status"], operator.log())
    assert run["status"]["tasks"]["say"]["outputs"]["said"] == "the repository's code"
    assert run["status"]["pipeline"]["archiveSha256"] == recorded


def test_a_commit_of_one_step_reruns_that_task_and_what_reads_it(
    cluster: Cluster, operator: Operator, git_server: GitServer, namespace: str
) -> None:
    """Caching keyed on the code at the commit: a commit that changes only steps/train.sh
    (declared in train's cache.paths) starts an onChange run of the same version, which
    runs train and evaluate (its model changed) and serves prepare from the cache."""
    repo = Repo(git_server, f"{namespace}-cache")
    pipeline = """\
        apiVersion: pipesync.io/v1alpha1
        kind: Pipeline
        metadata: {name: steps}
        spec:
          trigger: {onChange: true}
          defaults: {cache: {enabled: true}}
          tasks:
            - name: prepare
              command: [sh, steps/prepare.sh, "{{outputs.artifacts.data}}"]
              outputs: {artifacts: [data]}
              cache: {enabled: true, paths: [steps/prepare.sh]}
            - name: train
              command: [sh, steps/train.sh, "{{inputs.artifacts.data}}",
                        "{{outputs.artifacts.model}}"]
              inputs: {artifacts: {data: {from: "{{tasks.prepare.outputs.artifacts.data}}"}}}
              outputs: {artifacts: [model]}
              cache: {enabled: true, paths: [steps/train.sh]}
            - name: evaluate
              command: [sh, -c, 'cat "$0" > "$1"', "{{inputs.artifacts.model}}",
                        "{{outputs.parameters.score}}"]
              inputs: {artifacts: {model: {from: "{{tasks.train.outputs.artifacts.model}}"}}}
              outputs: {parameters: [score]}
              cache: {enabled: true, paths: []}
        """
    first = repo.push(
        pipelines__steps_yaml=pipeline,
        steps__prepare_sh='echo rows > "$1"\n',
        steps__train_sh='{ cat "$1"; echo "model v1"; } > "$2"\n',
    )
    create_source(cluster, namespace, repo.remote.file_url)
    wait_source(cluster, namespace, applied(first), operator)
    run = wait_finished(cluster, namespace, f"steps-{first[:10]}")
    assert run["status"]["phase"] == "Succeeded", (run["status"], operator.log())

    second = repo.push(steps__train_sh='{ cat "$1"; echo "model v2"; } > "$2"\n')
    assert applied(second)(sync_now(cluster, namespace, operator))
    run = wait_finished(cluster, namespace, f"steps-{second[:10]}")
    status = run["status"]
    assert status["phase"] == "Succeeded", (status, operator.log())
    assert status["pipeline"]["commit"] == second
    phases = {name: task["phase"] for name, task in status["tasks"].items()}
    assert phases == {"prepare": "Cached", "train": "Succeeded", "evaluate": "Succeeded"}
    assert status["tasks"]["evaluate"]["outputs"]["score"] == "rows\nmodel v2\n"
    assert status["tasks"]["prepare"]["cachedFrom"]["run"] == f"steps-{first[:10]}"

    # A file no cached task declares (the whole-tree default is not used here): no run.
    third = repo.push(notes_txt="nothing a task reads\n")
    assert applied(third)(sync_now(cluster, namespace, operator))
    assert f"steps-{third[:10]}" not in names(cluster, namespace, "runs")
