"""gitops.sync: the pure plan of a GitSource sync, from real commits' snapshots.

Each test commits files to a throwaway repository, reads the snapshot the controller
would read, and checks what the plan applies, creates, prunes, keeps and reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipesync.api import conventions
from pipesync.gitops import sync
from pipesync.gitops.snapshot import read_snapshot
from tests.unit.gitrepos import GitRepo

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  tasks:
    - {{name: a, image: busybox, command: [echo, {word}]}}
"""
ON_CHANGE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  trigger: {{onChange: true}}
  tasks:
    - {{name: a, image: busybox, command: [echo, {word}]}}
"""
EXPERIMENT = """\
apiVersion: pipesync.io/v1alpha1
kind: Experiment
metadata: {{name: {name}{namespace}}}
spec: {{description: {word}}}
"""
RUN = """\
apiVersion: pipesync.io/v1alpha1
kind: Run
metadata: {{name: {name}}}
spec:
  pipelineRef: {{name: p0}}
  timeout: {word}h
"""


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


class Syncer:
    """Commits, then plans against the inventory the previous plan produced."""

    def __init__(self, repo: GitRepo, **options: object) -> None:
        self.repo = repo
        self.options = options
        self.inventory: tuple[sync.InventoryEntry, ...] = ()

    def sync(self, message: str = "change", *, force: bool = False) -> sync.Plan:
        commit = self.repo.commit(message)
        snapshot = read_snapshot(self.repo.repo, commit, str(self.options.get("path", ".")))
        source = sync.Source(
            namespace="team",
            name="ml-repo",
            path=str(self.options.get("path", "")),
            commit=commit,
            message=self.repo.git("log", "-1", "--format=%B"),
            prune=bool(self.options.get("prune", True)),
            max_delete_percent=int(str(self.options.get("max_delete_percent", 50))),
            allow_mass_deletion=bool(self.options.get("allow", False)),
            ignore=tuple(self.options.get("ignore", ())),  # type: ignore[arg-type]
        )
        plan = sync.plan(source, snapshot, self.inventory, force=force)
        if plan.refused is None:
            self.inventory = plan.inventory
        return plan


def names(items: tuple[sync.Desired, ...] | tuple[sync.InventoryEntry, ...]) -> list[str]:
    return sorted(f"{i.kind}/{i.name}" for i in items)


def write_pipelines(repo: GitRepo, count: int, word: str = "hi") -> None:
    for index in range(count):
        repo.write(f"pipelines/p{index}.yaml", PIPELINE.format(name=f"p{index}", word=word))


def test_first_sync_applies_everything_labelled_and_annotated(repo: GitRepo) -> None:
    write_pipelines(repo, 1)
    repo.write("experiments/e.yaml", EXPERIMENT.format(name="e", namespace="", word="d"))
    plan = Syncer(repo).sync()
    assert names(plan.apply) == ["Experiment/e", "Pipeline/p0"]
    assert [d.kind for d in plan.apply] == ["Experiment", "Pipeline"]  # referenced first
    pipeline = next(d for d in plan.apply if d.kind == "Pipeline")
    metadata = pipeline.body["metadata"]
    assert metadata["namespace"] == "team"
    assert metadata["labels"] == {conventions.LABEL_SOURCE: "ml-repo"}
    assert metadata["annotations"][conventions.ANNOTATION_FILE] == "pipelines/p0.yaml"
    assert metadata["annotations"][conventions.ANNOTATION_COMMIT] == repo.git("rev-parse", "HEAD")
    assert metadata["annotations"][conventions.ANNOTATION_SOURCE_PATH] == "."
    assert "status" not in pipeline.body
    assert pipeline.digest == conventions.spec_digest(pipeline.body["spec"])
    assert names(plan.inventory) == ["Experiment/e", "Pipeline/p0"]
    assert plan.issues == () and plan.prune == () and plan.refused is None


def test_same_content_at_a_new_commit_reapplies_only_pipelines(repo: GitRepo) -> None:
    write_pipelines(repo, 1)
    repo.write("experiments/e.yaml", EXPERIMENT.format(name="e", namespace="", word="d"))
    syncer = Syncer(repo)
    syncer.sync()
    repo.write("steps/train.py", "print('new code')\n")
    plan = syncer.sync()
    # The Pipeline carries the commit its runs pin (its tree has new steps/ code); the
    # Experiment is unchanged and costs no write.
    assert names(plan.apply) == ["Pipeline/p0"]
    assert plan.create == ()


def test_forced_sync_reapplies_unchanged_objects(repo: GitRepo) -> None:
    repo.write("experiments/e.yaml", EXPERIMENT.format(name="e", namespace="", word="d"))
    syncer = Syncer(repo)
    syncer.sync()
    assert syncer.sync().apply == ()
    assert names(syncer.sync(force=True).apply) == ["Experiment/e"]


def test_a_broken_file_keeps_its_last_good_object_and_is_located(repo: GitRepo) -> None:
    write_pipelines(repo, 3)
    syncer = Syncer(repo)
    syncer.sync()
    repo.write("pipelines/p1.yaml", "apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\n  bad: [\n")
    repo.write("pipelines/p2.yaml", PIPELINE.format(name="p2", word="changed"))
    plan = syncer.sync()
    assert "Pipeline/p2" in names(plan.apply)  # valid changes still go through
    assert "Pipeline/p1" not in names(plan.apply)
    assert names(plan.kept) == ["Pipeline/p1"]
    assert plan.prune == ()  # never deleted while its file is broken
    assert "Pipeline/p1" in names(plan.inventory)
    (error,) = plan.errors
    assert error.file == "pipelines/p1.yaml" and error.line >= 1 and error.column >= 1


def test_prune_deletes_only_inventory_objects_and_never_runs(repo: GitRepo) -> None:
    write_pipelines(repo, 4)
    repo.write("runs/r.yaml", RUN.format(name="r", word="1"))
    syncer = Syncer(repo)
    first = syncer.sync()
    assert names(first.create) == ["Run/r"]
    repo.remove("pipelines/p3.yaml")
    repo.remove("runs/r.yaml")
    plan = syncer.sync()
    assert names(plan.prune) == ["Pipeline/p3"]  # 1 of 4: under the guard
    assert "Run/r" not in names(plan.inventory)  # forgotten, not deleted


def test_prune_off_deletes_nothing(repo: GitRepo) -> None:
    write_pipelines(repo, 2)
    syncer = Syncer(repo, prune=False)
    syncer.sync()
    repo.remove("pipelines/p1.yaml")
    plan = syncer.sync()
    assert plan.prune == () and plan.refused is None
    assert names(plan.inventory) == ["Pipeline/p0"]


def test_mass_deletion_is_refused_as_a_whole(repo: GitRepo) -> None:
    write_pipelines(repo, 4)
    syncer = Syncer(repo)
    syncer.sync()
    before = syncer.inventory
    for index in (1, 2, 3):
        repo.remove(f"pipelines/p{index}.yaml")
    repo.write("pipelines/p0.yaml", PIPELINE.format(name="p0", word="changed"))
    plan = syncer.sync()
    assert plan.refused is not None
    assert "3 of the 4" in plan.refused and "allow-mass-deletion" in plan.refused
    assert plan.prune == ()
    assert syncer.inventory == before


def test_a_commit_emptying_the_source_is_refused(repo: GitRepo) -> None:
    write_pipelines(repo, 1)
    syncer = Syncer(repo)
    syncer.sync()
    repo.remove("pipelines")
    assert syncer.sync().refused is not None


def test_exactly_the_share_is_allowed(repo: GitRepo) -> None:
    write_pipelines(repo, 4)
    syncer = Syncer(repo)
    syncer.sync()
    repo.remove("pipelines/p2.yaml")
    repo.remove("pipelines/p3.yaml")
    plan = syncer.sync()
    assert plan.refused is None and names(plan.prune) == ["Pipeline/p2", "Pipeline/p3"]


def test_the_commit_trailer_allows_mass_deletion(repo: GitRepo) -> None:
    write_pipelines(repo, 4)
    syncer = Syncer(repo)
    syncer.sync()
    for index in (1, 2, 3):
        repo.remove(f"pipelines/p{index}.yaml")
    plan = syncer.sync("retire old pipelines\n\npipesync: allow-mass-deletion\n")
    assert plan.refused is None and len(plan.prune) == 3


def test_the_spec_allows_mass_deletion_and_sets_the_share(repo: GitRepo) -> None:
    write_pipelines(repo, 4)
    allowed = Syncer(repo, allow=True)
    allowed.sync()
    for index in (1, 2, 3):
        repo.remove(f"pipelines/p{index}.yaml")
    assert allowed.sync().refused is None


def test_a_lower_share_refuses_smaller_deletions(repo: GitRepo) -> None:
    write_pipelines(repo, 4)
    strict = Syncer(repo, max_delete_percent=20)
    strict.sync()
    repo.remove("pipelines/p3.yaml")
    assert strict.sync().refused is not None


@pytest.mark.parametrize(
    ("message", "allowed"),
    [
        ("x\n\npipesync: allow-mass-deletion", True),
        ("x\n\nPipeSync:  Allow-Mass-Deletion  \nSigned-off-by: a", True),
        ("mentions pipesync: allow-mass-deletion inline", False),
        ("x\n\npipesync: allow-mass-deletions", False),
    ],
)
def test_trailer_parsing(message: str, allowed: bool) -> None:
    assert sync.allows_mass_deletion(message) is allowed


def test_another_namespace_is_a_file_error_and_keeps_the_old_object(repo: GitRepo) -> None:
    repo.write("experiments/e.yaml", EXPERIMENT.format(name="e", namespace="", word="d"))
    syncer = Syncer(repo)
    syncer.sync()
    repo.write(
        "experiments/e.yaml",
        EXPERIMENT.format(name="e", namespace=", namespace: kube-system", word="d"),
    )
    plan = syncer.sync()
    assert plan.apply == ()
    (error,) = plan.errors
    assert error.file == "experiments/e.yaml" and "kube-system" in error.message
    assert names(plan.kept) == ["Experiment/e"]


def test_run_files_create_once_and_edits_are_warnings(repo: GitRepo) -> None:
    repo.write("runs/r.yaml", RUN.format(name="r", word="1"))
    syncer = Syncer(repo)
    first = syncer.sync()
    assert names(first.create) == ["Run/r"] and first.apply == ()
    again = syncer.sync()
    assert again.create == () and again.issues == ()
    repo.write("runs/r.yaml", RUN.format(name="r", word="2"))
    edited = syncer.sync()
    assert edited.create == () and edited.apply == ()
    (warning,) = edited.issues
    assert warning.severity == sync.WARNING and warning.file == "runs/r.yaml"
    assert edited.errors == ()
    assert "created once" in warning.message


def test_on_change_starts_one_run_per_new_version(repo: GitRepo) -> None:
    repo.write("pipelines/t.yaml", ON_CHANGE.format(name="t", word="v1"))
    write_pipelines(repo, 1)
    syncer = Syncer(repo)
    first = syncer.sync()
    commit = repo.git("rev-parse", "HEAD")
    (run,) = first.create
    assert run.name == f"t-{commit[:10]}"
    assert run.body["spec"]["pipelineRef"] == {
        "name": "t",
        "version": next(d for d in first.apply if d.name == "t").digest[7:19],
    }
    assert run.body["metadata"]["annotations"][conventions.ANNOTATION_COMMIT] == commit
    assert "Run/" + run.name not in names(first.inventory)  # never pruned, never tracked
    repo.write("steps/x.py", "pass\n")  # a new commit without a spec change
    assert syncer.sync().create == ()
    repo.write("pipelines/t.yaml", ON_CHANGE.format(name="t", word="v2"))
    changed = syncer.sync()
    assert [r.name for r in changed.create] == [f"t-{repo.git('rev-parse', 'HEAD')[:10]}"]


def test_source_path_and_ignore(repo: GitRepo) -> None:
    repo.write("project/pipelines/a.yaml", PIPELINE.format(name="a", word="x"))
    repo.write("project/pipelines/drafts/b.yaml", PIPELINE.format(name="b", word="x"))
    repo.write("project/pipelines/c.tmpl.yaml", "not: [valid\n")
    repo.write("pipelines/outside.yaml", PIPELINE.format(name="outside", word="x"))
    plan = Syncer(repo, path="project", ignore=("drafts/", "*.tmpl.yaml")).sync()
    assert names(plan.apply) == ["Pipeline/a"]
    assert plan.issues == ()
    assert (
        plan.apply[0].body["metadata"]["annotations"][conventions.ANNOTATION_SOURCE_PATH]
        == "project"
    )


def test_inventory_round_trips_through_status() -> None:
    entry = sync.InventoryEntry("Pipeline", "p", "pipelines/p.yaml", "sha256:a", "sha256:b")
    assert sync.InventoryEntry.from_status(entry.to_status()) == entry


def test_on_change_starts_a_run_when_the_code_of_its_cached_tasks_changes(
    repo: GitRepo,
) -> None:
    """Code under a cached task's `cache.paths` changed, the YAML did not: what the last
    version's run computed is not what this commit computes, so onChange starts a run
    (same version), and the Pipeline carries the new digests for its cache keys."""
    repo.write("pipelines/t.yaml", ON_CHANGE.format(name="t", word="v1"))
    syncer = Syncer(repo)

    def sync_with(code: dict[str, str]) -> sync.Plan:
        commit = repo.commit()
        snapshot = read_snapshot(repo.repo, commit, ".")
        source = sync.Source(
            namespace="team", name="ml-repo", path="", commit=commit, message="", code={"t": code}
        )
        plan = sync.plan(source, snapshot, syncer.inventory)
        syncer.inventory = plan.inventory
        return plan

    first = sync_with({"*": "a" * 64})
    assert len(first.create) == 1  # a new pipeline
    annotations = first.apply[0].body["metadata"]["annotations"]
    assert json.loads(annotations[conventions.ANNOTATION_CODE_DIGESTS]) == {"*": "a" * 64}
    assert sync_with({"*": "a" * 64}).create == ()  # same code, same version
    changed = sync_with({"*": "b" * 64})
    (run,) = changed.create
    assert (
        run.body["spec"]["pipelineRef"]["version"]
        == first.create[0].body["spec"]["pipelineRef"]["version"]
    )
    restored = sync.InventoryEntry.from_status(syncer.inventory[0].to_status())
    assert restored.code_digest == syncer.inventory[0].code_digest != ""
