"""gitops.snapshot: what a commit declares, read from git objects (no checkout), validated
like `pipesync validate`, with every problem located and nothing read outside `path`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pipesync.api import documents, yamlsource
from pipesync.gitops.snapshot import (
    FileProblem,
    Snapshot,
    SnapshotError,
    normalise_path,
    read_snapshot,
    resource_key,
)
from tests.unit.conftest import PROJECT
from tests.unit.gitrepos import GitRepo

EXAMPLES = PROJECT / "examples" / "repo-layout"

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: {name}}}
spec:
  tasks:
    - {{name: a, image: busybox, command: [echo, a]}}
"""

EXPERIMENT = """\
apiVersion: pipesync.io/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec: {{description: d}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


def keys(snapshot: Snapshot) -> list[str]:
    return [resource_key(r) for r in snapshot.resources]


def test_example_repository_reads_whole_and_valid(repo: GitRepo) -> None:
    for folder in ("pipelines", "experiments", "recurring-runs", "runs", "steps"):
        shutil.copytree(
            EXAMPLES / folder, repo.root / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    sha = repo.commit("example")
    snapshot = read_snapshot(repo.repo, sha)
    assert snapshot.commit == sha
    assert snapshot.problems == ()
    assert sorted(keys(snapshot)) == [
        "Experiment/digits-tuning",
        "Pipeline/digits",
        "Pipeline/gpu-train",
        "Pipeline/sweep",
        "RecurringRun/nightly-digits",
        "Run/digits-manual-1",
    ]
    assert snapshot.files["pipelines/digits.yaml"] == ("Pipeline/digits",)
    assert snapshot.files["runs/digits-manual-1.yaml"] == ("Run/digits-manual-1",)
    assert not any(f.startswith("steps/") for f in snapshot.files)
    digits = next(r for r in snapshot.resources if r.name == "digits")
    assert digits.source.file == "pipelines/digits.yaml"
    assert digits.source.start.line >= 1


def test_reads_the_commit_not_the_working_tree(repo: GitRepo) -> None:
    repo.write("pipelines/p.yaml", PIPELINE.format(name="first"))
    old = repo.commit()
    repo.write("pipelines/p.yaml", PIPELINE.format(name="second"))
    new = repo.commit()
    repo.write("pipelines/p.yaml", "not: [valid")  # uncommitted edit: must not be seen
    assert keys(read_snapshot(repo.repo, old)) == ["Pipeline/first"]
    assert keys(read_snapshot(repo.repo, new)) == ["Pipeline/second"]
    assert keys(read_snapshot(repo.repo, "HEAD~1")) == ["Pipeline/first"]
    assert read_snapshot(repo.repo, "main").commit == new
    assert read_snapshot(repo.repo, new[:10]).commit == new
    repo.git("tag", "-a", "v1", "-m", "release", old)
    assert read_snapshot(repo.repo, "v1").commit == old


def test_unknown_revision_is_a_clear_error(repo: GitRepo) -> None:
    repo.write("pipelines/p.yaml", PIPELINE.format(name="p"))
    repo.commit()
    for rev in ("no-such-branch", "--output=/tmp/x", "0" * 40, "HEAD~5"):
        with pytest.raises(SnapshotError, match="unknown revision"):
            read_snapshot(repo.repo, rev)


def test_one_bad_document_keeps_its_neighbours_and_is_located(repo: GitRepo) -> None:
    repo.write(
        "pipelines/many.yaml",
        PIPELINE.format(name="good-one")
        + "---\n"
        + PIPELINE.format(name="bad").replace("image: busybox", "image: 3, colour: red")
        + "---\n"
        + PIPELINE.format(name="good-two"),
    )
    repo.write("experiments/broken.yaml", "kind: [unclosed\n")
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert keys(snapshot) == ["Pipeline/good-one", "Pipeline/good-two"]
    assert snapshot.files == {
        "experiments/broken.yaml": (),
        "pipelines/many.yaml": ("Pipeline/good-one", "Pipeline/good-two"),
    }
    files = {(p.file, p.line) for p in snapshot.problems}
    assert ("pipelines/many.yaml", 13) in files  # the task of the second document
    syntax = [p for p in snapshot.problems if p.file == "experiments/broken.yaml"]
    assert syntax and "YAML syntax error" in syntax[0].message
    assert all(
        isinstance(p, FileProblem) and p.line >= 1 and p.column >= 1 for p in snapshot.problems
    )


def test_semantic_error_invalidates_only_its_document(repo: GitRepo) -> None:
    broken = PIPELINE.format(name="cyclic").replace(
        "    - {name: a, image: busybox, command: [echo, a]}",
        "    - {name: a, image: busybox, command: [echo, a], dependsOn: [ghost]}",
    )
    repo.write("pipelines/two.yaml", PIPELINE.format(name="fine") + "---\n" + broken)
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert keys(snapshot) == ["Pipeline/fine"]
    (problem,) = snapshot.problems
    assert problem.file == "pipelines/two.yaml"
    assert problem.line == 13
    assert "ghost" in problem.message


def test_duplicate_names_keep_the_first(repo: GitRepo) -> None:
    repo.write("pipelines/a.yaml", PIPELINE.format(name="same"))
    repo.write("pipelines/b.yaml", PIPELINE.format(name="same"))
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert [r.source.file for r in snapshot.resources] == ["pipelines/a.yaml"]
    assert [p.file for p in snapshot.problems] == ["pipelines/b.yaml"]
    assert "duplicate Pipeline 'same'" in snapshot.problems[0].message


def test_kind_in_the_wrong_folder_is_a_problem(repo: GitRepo) -> None:
    repo.write("runs/oops.yaml", PIPELINE.format(name="misplaced"))
    repo.write("experiments/e.yaml", EXPERIMENT.format(name="e"))
    repo.write(
        "pipelines/source.yaml",
        """\
        apiVersion: pipesync.io/v1alpha1
        kind: GitSource
        metadata: {name: s}
        spec: {url: "https://example.invalid/r.git", ref: {branch: main}}
        """,
    )
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert keys(snapshot) == ["Experiment/e"]
    messages = {p.file: (p.line, p.message) for p in snapshot.problems}
    assert messages["runs/oops.yaml"] == (
        2,
        "a Pipeline does not belong in runs/ (it holds Run documents only)",
    )
    assert "GitSource does not belong in pipelines/" in messages["pipelines/source.yaml"][1]


def test_symlinks_are_problems_never_followed(repo: GitRepo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(PIPELINE.format(name="stolen"))
    repo.write("pipelines/real.yaml", PIPELINE.format(name="real"))
    os.symlink(outside, repo.root / "pipelines" / "link.yaml")
    os.symlink(tmp_path, repo.root / "pipelines" / "dir")
    os.symlink(repo.root / "pipelines", repo.root / "runs")
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert keys(snapshot) == ["Pipeline/real"]
    problems = {p.file: p.message for p in snapshot.problems}
    assert "symbolic link" in problems["pipelines/link.yaml"]
    assert "symbolic link" in problems["pipelines/dir"]
    assert "symbolic link" in problems["runs"]


def test_oversized_and_binary_files_are_refused(repo: GitRepo) -> None:
    big = repo.root / "pipelines" / "big.yaml"
    big.parent.mkdir(parents=True)
    big.write_text("# " + "x" * yamlsource.MAX_FILE_BYTES + "\n")
    (repo.root / "experiments").mkdir()
    (repo.root / "experiments" / "bin.yaml").write_bytes(b"kind: \x00\x01\x02")
    snapshot = read_snapshot(repo.repo, repo.commit())
    problems = {p.file: p.message for p in snapshot.problems}
    assert "larger than" in problems["pipelines/big.yaml"]
    assert "binary file" in problems["experiments/bin.yaml"]
    assert snapshot.resources == ()


def test_path_selects_a_subfolder_and_never_escapes(repo: GitRepo) -> None:
    repo.write("pipelines/top.yaml", PIPELINE.format(name="top"))
    repo.write("ml/pipelines/inner.yaml", PIPELINE.format(name="inner"))
    repo.write("ml/notes.txt", "x")
    sha = repo.commit()
    assert keys(read_snapshot(repo.repo, sha, "ml")) == ["Pipeline/inner"]
    assert keys(read_snapshot(repo.repo, sha, "./ml/")) == ["Pipeline/inner"]
    assert read_snapshot(repo.repo, sha, "ml").files == {
        "ml/pipelines/inner.yaml": ("Pipeline/inner",)
    }
    assert keys(read_snapshot(repo.repo, sha, "./")) == ["Pipeline/top"]
    for bad, message in (
        ("../x", "'..'"),
        ("ml/../..", "'..'"),
        ("/etc", "relative"),
        ("missing", "does not exist"),
        ("ml/notes.txt", "a file, not a folder"),
    ):
        with pytest.raises(SnapshotError, match=message):
            read_snapshot(repo.repo, sha, bad)


def test_normalise_path() -> None:
    assert normalise_path(".") == ""
    assert normalise_path("./a//b/") == "a/b"
    with pytest.raises(SnapshotError):
        normalise_path("a/../b")


def test_hidden_and_other_files_are_ignored(repo: GitRepo) -> None:
    repo.write("pipelines/.hidden.yaml", "not: [valid")
    repo.write("pipelines/.drafts/x.yaml", "not: [valid")
    repo.write("pipelines/README.md", "# notes")
    repo.write("pipelines/nested/deep.yml", PIPELINE.format(name="deep"))
    repo.write("other/x.yaml", "not: [valid")
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert snapshot.problems == ()
    assert snapshot.files == {"pipelines/nested/deep.yml": ("Pipeline/deep",)}


def test_reading_never_changes_what_the_files_say(repo: GitRepo) -> None:
    """Past the first dozen documents of a kind the compiled schema check serves: it must
    not fill the schemas' defaults in (digests and diffs would change with file count)."""
    for number in range(30):
        repo.write(
            f"recurring-runs/r{number}.yaml",
            f"""\
            apiVersion: pipesync.io/v1alpha1
            kind: RecurringRun
            metadata: {{name: r{number}}}
            spec:
              pipelineRef: {{name: p}}
              schedule: {{cron: "0 2 * * *"}}
            """,
        )
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert len(snapshot.resources) == 30
    for resource in snapshot.resources:
        assert dict(resource.spec) == {
            "pipelineRef": {"name": "p"},
            "schedule": {"cron": "0 2 * * *"},
        }


def test_a_file_that_crashes_a_reader_is_its_own_problem_and_the_others_still_load(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = documents.check_document

    def buggy(document: yamlsource.SourceDocument) -> object:  # a stand-in for a bug
        if document.file.endswith("bad.yaml"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(document)

    monkeypatch.setattr(documents, "check_document", buggy)
    repo.write("pipelines/bad.yaml", PIPELINE.format(name="bad"))
    repo.write("pipelines/good.yaml", PIPELINE.format(name="good"))
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert keys(snapshot) == ["Pipeline/good"]
    [problem] = snapshot.problems
    assert (problem.file, problem.line, problem.column) == ("pipelines/bad.yaml", 1, 1)
    assert problem.message.startswith("internal error in pipesync")


def test_a_symlink_out_of_the_repository_anywhere_is_a_problem_of_its_path(
    repo: GitRepo,
) -> None:
    repo.write("pipelines/real.yaml", PIPELINE.format(name="real"))
    repo.write("steps/train.py", "print('hi')\n")
    os.symlink("/etc/passwd", repo.root / "steps" / "secrets.txt")
    os.symlink("../../outside", repo.root / "steps" / "up")
    os.symlink("train.py", repo.root / "steps" / "inside.py")  # stays in the tree: fine
    snapshot = read_snapshot(repo.repo, repo.commit())
    assert keys(snapshot) == ["Pipeline/real"]
    problems = {p.file: p for p in snapshot.problems}
    assert sorted(problems) == ["steps/secrets.txt", "steps/up"]
    assert (problems["steps/up"].line, problems["steps/up"].column) == (1, 1)
    assert "outside the repository" in problems["steps/secrets.txt"].message
