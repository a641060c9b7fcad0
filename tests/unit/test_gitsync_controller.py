"""controllers.gitsources: one pass of the GitSource controller against a real local git
repository and an in-memory stand-in for the API server (the e2e suite runs the same
passes against a real one): the order of writes, the status it reports, and no writes at
all when nothing changed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import conventions, reports
from pipesync.controllers import driver, errors, gitsources
from pipesync.kube.protocol import GIT_SOURCES
from pipesync.runtime.storage import LocalStore
from tests.unit.gitrepos import GitRepo
from tests.unit.kubefakes import MemoryKube

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  trigger: {{onChange: {on_change}}}
  tasks:
    - {{name: a, image: busybox, command: [echo, {word}]}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "origin")


@pytest.fixture
def kube() -> MemoryKube:
    return MemoryKube()


def make_controller(
    kube: MemoryKube, tmp_path: Path
) -> tuple[gitsources.GitSourceController, LocalStore]:
    store = LocalStore(tmp_path / "store")
    controller = gitsources.GitSourceController(
        kube,
        store,
        None,
        cache=tmp_path / "cache",
    )
    return controller, store


def add_source(kube: MemoryKube, repo: GitRepo, generation: int = 1, **spec: Any) -> None:
    kube.objects[(GIT_SOURCES, "ns", "src")] = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": "src", "namespace": "ns", "generation": generation},
        "spec": {"url": repo.root.as_uri(), "ref": {"branch": "main"}, "prune": True, **spec},
    }


def status(kube: MemoryKube) -> dict[str, Any]:
    found: dict[str, Any] = kube.objects[(GIT_SOURCES, "ns", "src")].get("status") or {}
    return found


def condition(kube: MemoryKube, kind: str) -> dict[str, Any]:
    return next(c for c in status(kube)["conditions"] if c["type"] == kind)


def test_a_sync_then_nothing_when_nothing_changed(
    repo: GitRepo, kube: MemoryKube, tmp_path: Path
) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="true", word="x"))
    repo.write("steps/run.py", "print(1)\n")
    sha = repo.commit()
    add_source(kube, repo)
    controller, store = make_controller(kube, tmp_path)
    result = controller.reconcile("ns", "src")
    assert result.wait_seconds == 60.0
    kinds = [w[0] for w in kube.writes]
    # Announced, applied, the onChange run created, the final status.
    assert kinds == ["status", "apply", "create", "status"]
    assert status(kube)["lastAppliedRevision"] == f"main@sha1:{sha}"
    assert status(kube)["webhookPath"] == "/hooks/ns/src"
    assert status(kube)["observedGeneration"] == 1
    assert condition(kube, "Ready")["reason"] == "Succeeded"
    assert condition(kube, "Reconciling")["status"] == "False"
    assert store.exists(f"ns/sources/src/{sha}.tar.gz")
    assert ("runs", "ns", f"a-{sha[:10]}") in kube.objects

    kube.writes.clear()
    for _ in range(3):
        controller.reconcile("ns", "src")
    assert kube.writes == []


def test_a_new_generation_or_a_manual_request_syncs_again(
    repo: GitRepo, kube: MemoryKube, tmp_path: Path
) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="false", word="x"))
    repo.commit()
    add_source(kube, repo)
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    kube.writes.clear()
    source = kube.objects[(GIT_SOURCES, "ns", "src")]
    source["metadata"]["annotations"] = {conventions.ANNOTATION_RECONCILE_AT: "now"}
    controller.reconcile("ns", "src")
    assert ("apply", "pipelines", "a") in kube.writes  # forced re-apply
    assert status(kube)["lastHandledReconcileAt"] == "now"
    kube.writes.clear()
    controller.reconcile("ns", "src")
    assert kube.writes == []
    source["metadata"]["generation"] = 2
    controller.reconcile("ns", "src")
    assert status(kube)["observedGeneration"] == 2
    assert ("apply", "pipelines", "a") not in kube.writes  # unchanged content


def test_a_rejected_object_is_its_files_error_and_the_rest_applies(
    repo: GitRepo, kube: MemoryKube, tmp_path: Path
) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="false", word="x"))
    repo.write("pipelines/b.yaml", PIPELINE.format(name="b", on_change="false", word="x"))
    repo.commit()
    add_source(kube, repo)
    kube.reject.add("b")
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    (error,) = status(kube)["errors"]
    assert error["file"] == "pipelines/b.yaml" and "rejected by the API server" in error["message"]
    assert [e["name"] for e in status(kube)["inventory"]] == ["a"]
    assert condition(kube, "Ready")["reason"] == "InvalidFiles"


def test_an_unreachable_remote_keeps_everything_and_says_why(
    repo: GitRepo, kube: MemoryKube, tmp_path: Path
) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="false", word="x"))
    sha = repo.commit()
    add_source(kube, repo)
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    inventory = status(kube)["inventory"]
    moved = repo.root.with_name("moved")
    repo.root.rename(moved)
    result = controller.reconcile("ns", "src")
    # A transient failure: the driver retries it soon (its first backoff), not at the interval.
    assert isinstance(result.failure, errors.Transient) and result.failure.reason == "FetchFailed"
    assert driver.next_wait(
        driver.Next(after=result.wait_seconds, failure=result.failure), 1, 60.0, driver.RETRY
    ) == (driver.RETRY.first, driver.Trigger.RETRY)
    ready = condition(kube, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "FetchFailed"
    assert f"main@sha1:{sha}" in ready["message"]
    assert status(kube)["inventory"] == inventory
    assert ("pipelines", "ns", "a") in kube.objects
    kube.writes.clear()
    controller.reconcile("ns", "src")
    assert kube.writes == []  # the same failure is not written again
    moved.rename(repo.root)
    controller.reconcile("ns", "src")
    assert condition(kube, "Ready")["reason"] == "Succeeded"


def test_missing_secret_and_suspend(repo: GitRepo, kube: MemoryKube, tmp_path: Path) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="false", word="x"))
    repo.commit()
    add_source(kube, repo, secretRef={"name": "creds"})
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    assert condition(kube, "Ready")["reason"] == "SecretNotFound"
    assert "'creds'" in condition(kube, "Ready")["message"]
    add_source(kube, repo, generation=2, suspend=True)
    controller.reconcile("ns", "src")
    assert condition(kube, "Reconciling")["reason"] == "Suspended"
    assert ("pipelines", "ns", "a") not in kube.objects


def test_a_missing_path_is_stalled(repo: GitRepo, kube: MemoryKube, tmp_path: Path) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="false", word="x"))
    repo.commit()
    add_source(kube, repo, path="nowhere")
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    assert condition(kube, "Stalled")["reason"] == "InvalidPath"
    assert "'nowhere'" in condition(kube, "Ready")["message"]


def test_a_mass_deletion_trailer_in_any_new_commit_counts(
    repo: GitRepo, kube: MemoryKube, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        repo.write(
            f"pipelines/{name}.yaml", PIPELINE.format(name=name, on_change="false", word="x")
        )
    repo.commit()
    add_source(kube, repo)
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    repo.remove("pipelines/b.yaml")
    repo.remove("pipelines/c.yaml")
    repo.commit("retire b and c\n\npipesync: allow-mass-deletion")
    repo.write("steps/x.py", "pass\n")
    head = repo.commit("unrelated")
    controller.reconcile("ns", "src")
    assert status(kube)["lastAppliedRevision"] == f"main@sha1:{head}"
    assert ("pipelines", "ns", "b") not in kube.objects
    assert [e["name"] for e in status(kube)["inventory"]] == ["a"]


def test_without_the_trailer_the_commit_is_refused(
    repo: GitRepo, kube: MemoryKube, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        repo.write(
            f"pipelines/{name}.yaml", PIPELINE.format(name=name, on_change="false", word="x")
        )
    first = repo.commit()
    add_source(kube, repo)
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    repo.remove("pipelines/b.yaml")
    repo.remove("pipelines/c.yaml")
    repo.commit("oops")
    kube.writes.clear()
    controller.reconcile("ns", "src")
    assert [w[0] for w in kube.writes] == ["status"]  # only the refusal is written
    assert status(kube)["lastAppliedRevision"] == f"main@sha1:{first}"
    assert condition(kube, "Stalled")["reason"] == "MassDeletionRefused"
    assert ("pipelines", "ns", "b") in kube.objects


def test_each_attempt_reports_what_it_did(repo: GitRepo, kube: MemoryKube, tmp_path: Path) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="true", word="x"))
    repo.write("pipelines/b.yaml", "kind: [\n")
    sha = repo.commit()
    add_source(kube, repo)
    controller, _ = make_controller(kube, tmp_path)
    report = controller.reconcile("ns", "src").report
    assert report is not None and report.committed_at is not None
    assert report == reports.SyncReport(
        "InvalidFiles", f"main@sha1:{sha}", 1, 1, 0, 1, report.committed_at
    )
    assert abs(report.committed_at - time.time()) < 3600
    assert controller.reconcile("ns", "src").report is None  # nothing to do, nothing to say


def test_a_file_that_used_to_crash_the_pass_is_its_own_error_and_the_rest_applies(
    repo: GitRepo, kube: MemoryKube, tmp_path: Path
) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="a", on_change="false", word="x"))
    repo.write("pipelines/deep.yaml", "a: " + "[" * 1000 + "]" * 1000 + "\n")
    (repo.root / "steps").mkdir()
    (repo.root / "steps" / "secrets").symlink_to("/etc/passwd")
    repo.commit()
    add_source(kube, repo)
    controller, _ = make_controller(kube, tmp_path)
    controller.reconcile("ns", "src")
    errors = {e["file"]: e for e in status(kube)["errors"]}
    assert sorted(errors) == ["pipelines/deep.yaml", "steps/secrets"]
    assert "nested more than" in errors["pipelines/deep.yaml"]["message"]
    assert "outside the repository" in errors["steps/secrets"]["message"]
    assert [e["name"] for e in status(kube)["inventory"]] == ["a"]
    assert ("apply", "pipelines", "a") in kube.writes
    assert condition(kube, "Ready")["reason"] == "InvalidFiles"
