"""`pipesync diff` forecasts the cache of each onChange run: which tasks run, which the
cache serves, and why, from real git commits (gitops.cacheforecast, gitops.codeids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import model
from pipesync.cli import diff as cli_diff
from pipesync.engine import compiler
from pipesync.gitops import cacheforecast, codeids, diff
from pipesync.gitops.snapshot import read_snapshot
from tests.unit.conftest import Cli
from tests.unit.gitrepos import GitRepo
from tests.unit.test_diff import assert_markdown_is_intact

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: digits}}
spec:
  description: {description}
  params:
    - {{name: lr, type: number, default: {lr}}}
  defaults: {{image: "{image}", cache: {{enabled: true, paths: [steps/common.py]}}}}
  trigger: {{onChange: true}}
  tasks:
    - name: prepare
      command: [python, steps/prepare.py, "{{{{outputs.artifacts.data}}}}"]
      outputs: {{artifacts: [data]}}
      cache: {{enabled: true, paths: [steps/prepare.py]}}
    - name: train
      image: "{train_image}"
      command: [python, steps/train.py, "{{{{inputs.artifacts.data}}}}",
                --lr, "{{{{params.lr}}}}", "{{{{outputs.artifacts.model}}}}"]
      inputs: {{artifacts: {{data: {{from: "{{{{tasks.prepare.outputs.artifacts.data}}}}"}}}}}}
      outputs: {{artifacts: [model]}}
      cache: {{enabled: true, paths: [steps/train.py, steps/lib]}}
    - name: evaluate
      command: [python, steps/evaluate.py, "{{{{inputs.artifacts.model}}}}"]
      inputs: {{artifacts: {{model: {{from: "{{{{tasks.train.outputs.artifacts.model}}}}"}}}}}}
    - name: plot
      dependsOn: [train]
      command: [python, steps/plot.py]
      cache: {{enabled: true, paths: [steps/plot.py]}}
    - name: publish
      dependsOn: [evaluate]
      command: [echo, publish]
      cache: {{enabled: false}}
  onExit: {{name: notify, command: [echo, done]}}
"""
BASE = {"description": "first", "lr": "0.1", "image": "py:1", "train_image": "py:1"}


def write(repo: GitRepo, **changes: str) -> str:
    repo.write("pipelines/digits.yaml", PIPELINE.format(**{**BASE, **changes}))
    return repo.commit()


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "repo")
    for step in ("prepare", "train", "evaluate", "plot"):
        repo.write(f"steps/{step}.py", f"print('{step}')\n")
    repo.write("steps/common.py", "X = 1\n")
    repo.write("steps/lib/util.py", "Y = 1\n")
    write(repo)
    return repo


def forecast_of(repo: GitRepo, old: str, new: str) -> dict[str, str]:
    """Each task's line as the text format shows it, by name."""
    changes = diff.compare(
        read_snapshot(repo.repo, old),
        read_snapshot(repo.repo, new),
        code=codeids.CommitChanges(repo.repo, old, new),
    )
    (start,) = [s for s in changes.starts if s.reason == "trigger.onChange"]
    assert start.forecast is not None
    return {t.name: cli_diff._task_forecast(t) for t in start.forecast.tasks}


# --- what runs and what is served --------------------------------------------------------


def test_a_changed_step_runs_that_task_and_what_reads_its_outputs(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    repo.write("steps/train.py", "print('train, better')\n")
    new = write(repo, description="second")  # a pipeline edit starts the onChange run
    assert forecast_of(repo, old, new) == {
        "prepare": "prepare: cached",
        "train": "train: runs (steps/train.py changed)",
        "evaluate": "evaluate: runs (input from train)",
        "plot": "plot: cached",  # it only waits for train: its key holds nothing of it
        "publish": "publish: runs (cache off)",
        "notify": "notify (onExit): runs (onExit: never cached)",
    }


def test_a_file_in_a_cached_folder_names_the_file(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    repo.write("steps/lib/util.py", "Y = 2\n")
    repo.write("steps/evaluate.py", "print('evaluate, unrelated')\n")
    new = write(repo, description="second")
    shown = forecast_of(repo, old, new)
    assert shown["train"] == "train: runs (steps/lib/util.py changed)"
    # evaluate inherits paths [steps/common.py] from defaults: its own file is not its code
    assert shown["evaluate"] == "evaluate: runs (input from train)"
    assert shown["prepare"] == "prepare: cached"


def test_a_changed_image_runs_that_task_and_its_downstream(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    new = write(repo, train_image="py:2")
    shown = forecast_of(repo, old, new)
    assert shown["train"] == "train: runs (image changed)"
    assert shown["evaluate"] == "evaluate: runs (input from train)"
    assert (shown["prepare"], shown["plot"]) == ("prepare: cached", "plot: cached")


def test_an_image_from_defaults_changes_every_task_that_inherits_it(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    new = write(repo, image="py:2")
    shown = forecast_of(repo, old, new)
    assert shown["prepare"] == "prepare: runs (image changed)"
    assert shown["train"] == "train: runs (input from prepare)"  # its own image is pinned
    assert shown["plot"] == "plot: runs (image changed)"


def test_a_parameter_default_the_task_renders_runs_it(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    new = write(repo, lr="0.2")
    shown = forecast_of(repo, old, new)
    assert shown["train"] == "train: runs (param lr changed)"
    assert shown["prepare"] == "prepare: cached"


def test_common_code_in_defaults_paths_reruns_the_tasks_that_inherit_them(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    repo.write("steps/common.py", "X = 2\n")
    new = write(repo, description="second")
    shown = forecast_of(repo, old, new)
    assert shown["evaluate"] == "evaluate: runs (steps/common.py changed)"
    assert shown["train"] == "train: cached"  # its own paths leave common.py out


def test_a_task_whose_cache_is_turned_off_runs(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    text = PIPELINE.format(**BASE).replace(
        "cache: {enabled: true, paths: [steps/prepare.py]}", "cache: {enabled: false}"
    )
    repo.write("pipelines/digits.yaml", text)
    new = repo.commit()
    shown = forecast_of(repo, old, new)
    assert shown["prepare"] == "prepare: runs (cache off)"
    assert shown["train"] == "train: runs (input from prepare)"


def test_a_new_pipeline_runs_every_task(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "fresh")
    repo.write("README", "empty\n")
    old = repo.commit()
    new = write(repo)
    shown = forecast_of(repo, old, new)
    assert shown["prepare"] == "prepare: runs (new task)"
    assert shown["publish"] == "publish: runs (cache off)"


# --- the forecast alone (pure) -----------------------------------------------------------


def compiled(spec: dict[str, Any]) -> compiler.CompiledPipeline:
    pipeline, problems = compiler.compile_pipeline(model.pipeline_spec_from_spec(spec))
    assert pipeline is not None, problems
    return pipeline


def test_definition_fields_are_named_as_the_pipeline_names_them() -> None:
    task = {"name": "t", "image": "a", "command": ["x"], "cache": {"enabled": True}}
    old = compiled({"tasks": [task]})
    new = compiled(
        {
            "tasks": [
                {
                    **task,
                    "args": ["--fast"],
                    "env": [{"name": "E", "value": "1"}],
                    "cache": {"enabled": True, "salt": "2"},
                }
            ]
        }
    )
    (only,) = cacheforecast.forecast(old, new, lambda _: ()).tasks
    assert only.reasons == (cacheforecast.Reason("field", ("args", "env", "cache.salt")),)
    assert only.reasons[0].text == "args, env, cache.salt changed"


def test_how_a_task_runs_is_no_reason_and_a_run_name_always_is() -> None:
    task = {"name": "t", "image": "a", "command": ["x"], "cache": {"enabled": True}}
    old = compiled({"tasks": [task]})
    moved = compiled({"tasks": [{**task, "resources": {"cpu": "2"}, "retry": {"limit": 3}}]})
    assert cacheforecast.forecast(old, moved, lambda _: ()).tasks[0].reasons == ()
    named = {**task, "command": ["x", "{{run.name}}"]}
    (only,) = cacheforecast.forecast(
        compiled({"tasks": [named]}), compiled({"tasks": [named]}), lambda _: ()
    ).tasks
    assert [r.text for r in only.reasons] == ["reads {{run.name}}: a new key every run"]


def test_a_run_that_disables_or_refreshes_the_cache_runs_everything() -> None:
    task = {"name": "t", "image": "a", "command": ["x"], "cache": {"enabled": True}}
    same = compiled({"tasks": [task]})
    for mode in (model.CacheMode.DISABLED, model.CacheMode.REFRESH):
        (only,) = cacheforecast.forecast(same, same, lambda _: (), mode).tasks
        assert only.reasons[0].text == f"the run's cache is {mode.value}"
    (served,) = cacheforecast.forecast(same, same, lambda _: ()).tasks
    assert served.outcome == cacheforecast.CACHED


def test_a_task_whose_cache_was_off_before_runs_once() -> None:
    task = {"name": "t", "image": "a", "command": ["x"]}
    old = compiled({"tasks": [task]})
    new = compiled({"tasks": [{**task, "cache": {"enabled": True}}]})
    (only,) = cacheforecast.forecast(old, new, lambda _: ()).tasks
    assert only.reasons == (cacheforecast.Reason("wasOff"),)


# --- output --------------------------------------------------------------------------------


def test_text_markdown_and_json_show_the_forecast(repo: GitRepo, cli: Cli) -> None:
    old = repo.git("rev-parse", "HEAD")
    repo.write("steps/train.py", "print('train, better')\n")
    write(repo, description="second")
    text = cli("diff", "--repo", repo.root, "--from", old, "--to", "HEAD")
    assert text.code == 1, text.text
    lines = text.out.splitlines()
    at = lines.index(
        "would start: a run of pipeline digits (trigger.onChange, pipelines/digits.yaml)"
    )
    assert lines[at + 1] == (
        "  cache forecast, assuming the previous commit's run filled the cache: "
        "4 task(s) run, 2 cached"
    )
    assert "    train: runs (steps/train.py changed)" in lines
    markdown = cli(
        "diff", "--repo", repo.root, "--from", old, "--to", "HEAD", "--format", "markdown"
    )
    assert "    - `train`: runs (steps/train.py changed)" in markdown.out
    assert "  - cache forecast, assuming the previous commit's run filled the cache" in markdown.out
    result = cli("diff", "--repo", repo.root, "--from", old, "--to", "HEAD", "--format", "json")
    (start,) = json.loads(result.out)["starts"]
    forecast = start["cacheForecast"]
    assert forecast["assumption"] == cacheforecast.ASSUMPTION
    assert forecast["mode"] == "Enabled"
    train = next(t for t in forecast["tasks"] if t["name"] == "train")
    assert train == {
        "name": "train",
        "onExit": False,
        "outcome": "runs",
        "reasons": [
            {"kind": "code", "names": ["steps/train.py"], "text": "steps/train.py changed"}
        ],
    }
    prepare = next(t for t in forecast["tasks"] if t["name"] == "prepare")
    assert (prepare["outcome"], prepare["reasons"]) == ("cached", [])


def test_a_layout_in_a_subfolder_reads_paths_from_there(tmp_path: Path, cli: Cli) -> None:
    repo = GitRepo(tmp_path / "mono")
    repo.write("ml/steps/train.py", "print(1)\n")
    for step in ("prepare", "evaluate", "plot", "common"):
        repo.write(f"ml/steps/{step}.py", "print(1)\n")
    repo.write("ml/pipelines/digits.yaml", PIPELINE.format(**BASE))
    old = repo.commit()
    repo.write("ml/steps/train.py", "print(2)\n")
    repo.write("ml/pipelines/digits.yaml", PIPELINE.format(**{**BASE, "description": "x"}))
    repo.commit()
    result = cli("diff", "--repo", repo.root, "--from", old, "--to", "HEAD", "--path", "ml")
    assert "    train: runs (steps/train.py changed)" in result.out, result.text
    assert "    prepare: cached" in result.out


def test_a_code_only_change_starts_a_run_with_its_forecast(repo: GitRepo, cli: Cli) -> None:
    """gitops.sync starts an onChange run when the code under a cached task's paths
    changes, the spec unchanged: diff says so, with the forecast; a file no cached task
    declares starts none."""
    repo.write("steps/train.py", "print('train, better')\n")
    repo.commit()
    result = cli("diff", "--repo", repo.root, "--from", "HEAD~1", "--to", "HEAD")
    assert result.code == 1 and "cache forecast" in result.out, result.out  # 1: changes
    assert "train: runs (steps/train.py changed)" in result.out
    repo.write("notes.txt", "nothing a task reads\n")
    repo.commit()
    quiet = cli("diff", "--repo", repo.root, "--from", "HEAD~1", "--to", "HEAD")
    assert "cache forecast" not in quiet.out


def test_a_hostile_changed_file_name_cannot_break_the_markdown_comment(repo: GitRepo) -> None:
    old = repo.git("rev-parse", "HEAD")
    repo.write("steps/lib/x\n\n<!-- hidden\n```|.py", "Z = 1\n")
    new = write(repo, description="second")
    changes = diff.compare(
        read_snapshot(repo.repo, old),
        read_snapshot(repo.repo, new),
        code=codeids.CommitChanges(repo.repo, old, new),
    )
    markdown = cli_diff.markdown(changes)
    assert_markdown_is_intact(markdown)
    assert "steps/lib/x&#92;n&#92;n&#60;&#33;-- hidden&#92;n&#96;&#96;&#96;&#124;.py changed" in (
        markdown
    )
    assert "steps/lib/x\\n\\n<!-- hidden\\n```|.py changed" in cli_diff.text(changes)
