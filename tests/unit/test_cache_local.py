"""`pipesync run` with the task cache: the digits example run twice runs nothing the
second time, an edit of a step's code re-runs that step and what reads its changed
results, and --no-cache, --refresh, a lost artifact and a changed one behave."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import PROJECT, Cli
from tests.unit.localrecords import task_rows

EXAMPLE = PROJECT / "examples" / "repo-layout"
TASKS = ("prepare", "train", "evaluate", "publish")
LAST_OUTPUT = [""]  # what the latest `run_digits` printed


@pytest.fixture(autouse=True)
def _no_bytecode_in_the_example_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the example repository (its steps may be edited)."""
    target = tmp_path / "repo"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", ".pipesync"))
    return target


def run_digits(cli: Cli, repo: Path, name: str, *flags: str) -> dict[str, Any]:
    result = cli(
        "run",
        repo / "pipelines" / "digits.yaml",
        "--workdir",
        repo.parent / "work",
        "--run-name",
        name,
        "--plain",
        *flags,
    )
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    LAST_OUTPUT[0] = result.text
    record = json.loads((repo.parent / "work" / "local" / "runs" / name / "run.json").read_text())
    assert record["status"]["phase"] == "Succeeded"
    return record


def phases(record: dict[str, Any]) -> dict[str, str]:
    return {name: row["phase"] for name, row in task_rows(record).items()}


def artifact(repo: Path, run: str, task: str, name: str) -> bytes:
    path = repo.parent / "work" / "local" / "runs" / run / task / "outputs" / "artifacts" / name
    return path.read_bytes()


def entries(repo: Path) -> dict[str, dict[str, Any]]:
    folder = repo.parent / "work" / "local" / "cache"
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("*.json")}


def test_the_second_run_of_digits_runs_nothing_and_reads_as_cached(cli: Cli, repo: Path) -> None:
    first = run_digits(cli, repo, "first")
    assert phases(first) == dict.fromkeys(TASKS, "Succeeded") | {"notify": "Succeeded"}
    assert len(entries(repo)) == len(TASKS)
    second = run_digits(cli, repo, "second")
    # onExit is never cached: it reports on this run
    assert phases(second) == dict.fromkeys(TASKS, "Cached") | {"notify": "Succeeded"}
    # a task the cache serves is never shown Running: nothing runs
    lines = LAST_OUTPUT[0].splitlines()
    assert not [line for line in lines if "Running" in line and "notify" not in line]
    assert any("prepare Cached: from run first, task prepare" in line for line in lines)
    rows = task_rows(second)
    for task in TASKS:
        assert rows[task]["cachedFrom"] == {"run": "first", "task": task}
        assert rows[task]["attempts"] == 0 and not rows[task]["log"]
        assert second["status"]["tasks"][task]["cachedFrom"] == {"run": "first", "task": task}
    assert second["status"]["taskCounts"]["succeeded"] == len(TASKS)
    assert second["status"]["taskCounts"]["cached"] == len(TASKS)
    assert second["status"]["progress"] == f"{len(TASKS)}/{len(TASKS)}"
    assert rows["train"]["outputs"] == task_rows(first)["train"]["outputs"]
    # the cached run has its own copies of the artifacts, with the same content
    assert artifact(repo, "second", "train", "model") == artifact(repo, "first", "train", "model")
    manifest = json.loads(artifact(repo, "second", "publish", "manifest"))
    assert manifest["run"] == "first"  # who published it


def test_an_edit_of_train_py_reruns_train_and_what_reads_its_changed_results(
    cli: Cli, repo: Path
) -> None:
    run_digits(cli, repo, "first")
    train = repo / "steps" / "train.py"
    # a real change: the model trains one epoch fewer than asked
    source = train.read_text()
    assert "max_iter=epochs," in source
    train.write_text(source.replace("max_iter=epochs,", "max_iter=max(epochs - 1, 1),", 1))
    after = phases(run_digits(cli, repo, "after-edit"))
    assert after["prepare"] == "Cached"  # its code (steps/prepare.py) did not change
    assert after["train"] == "Succeeded"
    model_changed = artifact(repo, "after-edit", "train", "model") != artifact(
        repo, "first", "train", "model"
    )
    # downstream runs again exactly when its input changed (content, not commit)
    expected = "Succeeded" if model_changed else "Cached"
    assert model_changed
    assert after["evaluate"] == expected and after["publish"] == expected


def test_a_comment_in_train_py_reruns_train_only_when_the_model_is_the_same(
    cli: Cli, repo: Path
) -> None:
    run_digits(cli, repo, "first")
    train = repo / "steps" / "train.py"
    train.write_text(train.read_text() + "\n# a comment changes the code, not the model\n")
    after = phases(run_digits(cli, repo, "after-comment"))
    assert after["train"] == "Succeeded"
    same = artifact(repo, "after-comment", "train", "model") == artifact(
        repo, "first", "train", "model"
    )
    assert after["evaluate"] == ("Cached" if same else "Succeeded")


def test_no_cache_runs_everything_and_writes_nothing(cli: Cli, repo: Path) -> None:
    run_digits(cli, repo, "first")
    before = entries(repo)
    again = run_digits(cli, repo, "uncached", "--no-cache")
    assert phases(again) == dict.fromkeys(TASKS, "Succeeded") | {"notify": "Succeeded"}
    assert entries(repo) == before


def test_refresh_runs_everything_and_rewrites_the_entries(cli: Cli, repo: Path) -> None:
    run_digits(cli, repo, "first")
    refreshed = run_digits(cli, repo, "refreshed", "--refresh")
    assert phases(refreshed) == dict.fromkeys(TASKS, "Succeeded") | {"notify": "Succeeded"}
    assert {entry["run"] for entry in entries(repo).values()} == {"refreshed"}
    then = run_digits(cli, repo, "then")
    assert {row["cachedFrom"]["run"] for row in map(task_rows(then).get, TASKS) if row} == {
        "refreshed"
    }


def test_no_cache_and_refresh_together_are_a_usage_error(cli: Cli, repo: Path) -> None:
    result = cli("run", repo / "pipelines" / "digits.yaml", "--no-cache", "--refresh")
    assert result.code == 2
    assert "not allowed with" in result.err


def test_a_lost_or_changed_artifact_is_a_miss_and_the_task_runs(cli: Cli, repo: Path) -> None:
    run_digits(cli, repo, "first")
    by_task = {entry["task"]: entry for entry in entries(repo).values()}
    work = repo.parent / "work"
    (work / by_task["prepare"]["artifacts"]["dataset"]["key"]).unlink()
    blob = work / by_task["train"]["artifacts"]["model"]["key"]
    blob.unlink()  # a hard link of first's output: write a new file, not into it
    blob.write_bytes(b"not the model")
    again = phases(run_digits(cli, repo, "again"))
    assert again["prepare"] == "Succeeded" and again["train"] == "Succeeded"


def test_a_git_working_tree_is_keyed_by_its_contents_uncommitted_edits_included(
    cli: Cli, repo: Path
) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "first"], check=True)
    index = (repo / ".git" / "index").read_bytes()
    run_digits(cli, repo, "first")
    # an uncommitted edit counts (the working tree, not HEAD)...
    train = repo / "steps" / "train.py"
    train.write_text(train.read_text() + "\n# edited\n")
    after = phases(run_digits(cli, repo, "edited"))
    assert after["prepare"] == "Cached" and after["train"] == "Succeeded"
    # ...and the user's index is never touched
    assert (repo / ".git" / "index").read_bytes() == index


def test_code_digests_follow_the_working_tree_but_not_the_work_directory(tmp_path: Path) -> None:
    from pipesync.gitops import codeids  # noqa: PLC0415 - only this test reads it directly

    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "a.py").write_text("a = 1\n")
    (tmp_path / "b.py").write_text("b = 1\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    work = tmp_path / ".work"

    def digest(paths: list[str] | None) -> str:
        return codeids.WorkingTree(tmp_path, exclude=[work]).digest(paths)

    whole, steps, missing = digest(None), digest(["steps"]), digest(["nope.py"])
    assert digest([]) == "" and len({whole, steps, missing}) == 3
    work.mkdir()
    (work / "output.bin").write_bytes(b"a run's result")
    assert digest(None) == whole  # the work directory is not code
    (tmp_path / "b.py").write_text("b = 2\n")
    assert digest(["steps"]) == steps and digest(None) != whole
    (tmp_path / "steps" / "a.py").write_text("a = 2\n")
    assert digest(["steps"]) != steps
    # outside git the files' contents decide, the same way
    shutil.rmtree(tmp_path / ".git")
    outside = digest(["steps"])
    (tmp_path / "steps" / "a.py").write_text("a = 3\n")
    assert digest(["steps"]) != outside
