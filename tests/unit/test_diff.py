"""`pipesync diff` and gitops.diff: what a merge would change, from real git commits.

The contract: exit 0 when nothing changes, 1 when something does, 2 on errors; Markdown
with fixed sections for pull-request comments; JSON with stable keys.
"""

from __future__ import annotations

import datetime
import json
import subprocess
from pathlib import Path

import pytest

from pipesync.cli import diff as cli_diff
from pipesync.gitops import diff
from pipesync.gitops.snapshot import read_snapshot
from tests.unit.conftest import CONSOLE_SCRIPT, Cli
from tests.unit.gitrepos import GitRepo

NOW = datetime.datetime(2026, 3, 27, 12, 0, tzinfo=datetime.UTC)  # Friday before DST

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {{name: train}}
spec:
  defaults: {{image: "py:{version}", pool: cpu}}
  trigger: {{onChange: true}}
  tasks:
    - {{name: prepare, command: [python, prep.py]}}
    - name: fit
      dependsOn: [prepare]
      resources: {{cpu: "1", memory: {memory}}}
      command: [python, fit.py]
{extra}"""

OTHER = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: other}
spec:
  tasks:
    - {name: only, image: busybox, command: [echo]}
"""

SCHEDULE = """\
apiVersion: pipesync.io/v1alpha1
kind: RecurringRun
metadata: {{name: nightly}}
spec:
  pipelineRef: {{name: train}}
  schedule: {{cron: "{cron}", timezone: Europe/Berlin}}
"""

EXPERIMENT = """\
apiVersion: pipesync.io/v1alpha1
kind: Experiment
metadata: {{name: tuning}}
spec: {{description: {text}}}
"""

RUN = """\
apiVersion: pipesync.io/v1alpha1
kind: Run
metadata: {{name: {name}}}
spec:
  pipelineRef: {{name: train}}
  params: {{}}
"""


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


def base(repo: GitRepo) -> str:
    repo.write("pipelines/train.yaml", PIPELINE.format(version="3.11", memory="1Gi", extra=""))
    repo.write("pipelines/other.yaml", OTHER)
    repo.write("recurring-runs/nightly.yaml", SCHEDULE.format(cron="0 2 * * *"))
    repo.write("experiments/tuning.yaml", EXPERIMENT.format(text="first"))
    repo.write("runs/once.yaml", RUN.format(name="once"))
    return repo.commit("base")


def head(repo: GitRepo) -> str:
    """Image via defaults, a resource, a new task, a schedule, an experiment, a new Run
    file, an edited Run file, one broken file, and a removed pipeline."""
    extra = "    - {name: report, dependsOn: [fit], command: [python, report.py]}\n"
    repo.write("pipelines/train.yaml", PIPELINE.format(version="3.12", memory="2Gi", extra=extra))
    repo.remove("pipelines/other.yaml")
    repo.write("recurring-runs/nightly.yaml", SCHEDULE.format(cron="30 2 * * *"))
    repo.write("experiments/tuning.yaml", EXPERIMENT.format(text="second"))
    repo.write("runs/once.yaml", RUN.format(name="once") + "  timeout: 2h\n")
    repo.write("runs/again.yaml", RUN.format(name="again"))
    repo.write("experiments/broken.yaml", "apiVersion: pipesync.io/v1alpha1\nkind: Experiment\n")
    return repo.commit("head")


def changes_between(repo: GitRepo, old: str, new: str) -> diff.ChangeSet:
    return diff.compare(
        read_snapshot(repo.repo, old),
        read_snapshot(repo.repo, new),
        base_ref="main",
        head_ref="pr",
        now=NOW,
    )


EXPECTED_MARKDOWN = """\
## pipesync diff: `main` ({old}) → `pr` ({new})

{summary}

### Pipelines

#### `other` removed (`pipelines/other.yaml`)

#### `train` changed (`pipelines/train.yaml`)

| field | before | after |
|---|---|---|
| defaults.image | `py:3.11` | `py:3.12` |

| task | change | field | before | after |
|---|---|---|---|---|
| `prepare` | changed | image | `py:3.11` | `py:3.12` |
| `fit` | changed | image | `py:3.11` | `py:3.12` |
| `fit` | changed | resources.memory | `1Gi` | `2Gi` |
| `report` | added | | | |

```mermaid
graph TD
  t0["prepare (changed)"]
  t1["fit (changed)"]
  t2["report (added)"]
  t0 --> t1
  t1 --> t2
  classDef added fill:#d5f5d5,stroke:#2a7d2a
  classDef changed fill:#fff1b8,stroke:#a07800
  classDef removed fill:#f8d4d4,stroke:#a33,stroke-dasharray: 4 2
  class t2 added
  class t0,t1 changed
```

### Schedules

#### `nightly` changed (`recurring-runs/nightly.yaml`, pipeline `train`)

| | before | after |
|---|---|---|
| schedule | `cron 0 2 * * * (Europe/Berlin)` | `cron 30 2 * * * (Europe/Berlin)` |
{times}

### Experiments

- `tuning` changed (`experiments/tuning.yaml`)
  - spec.description: `first` → `second`

### Run files

- `again` added (`runs/again.yaml`, pipeline `train`): a merge creates it
- `once` changed (`runs/once.yaml`, pipeline `train`): edited: reported, not run again

### Runs a merge would start

- run again of pipeline train (runs/again.yaml)
- a run of pipeline train (trigger.onChange, pipelines/train.yaml)

### Validation errors in the new revision

- `experiments/broken.yaml:1:1`: document: 'metadata' is a required field
- `experiments/broken.yaml:1:1`: document: 'spec' is a required field
"""
SUMMARY = (
    "**2 pipeline(s), 1 schedule(s), 1 experiment(s), 2 run file(s) changed; "
    "2 run(s) would start; 2 validation error(s) in the new revision**"
)
# 02:00 on 29 March does not exist in Berlin (clocks jump to 03:00): it does not fire.
TIMES = (
    "| next 3 fire times "
    "| 2026-03-28T02:00:00+01:00<br>2026-03-30T02:00:00+02:00<br>2026-03-31T02:00:00+02:00 "
    "| 2026-03-28T02:30:00+01:00<br>2026-03-30T02:30:00+02:00<br>2026-03-31T02:30:00+02:00 |"
)


def test_crafted_pair_gives_the_expected_markdown(repo: GitRepo) -> None:
    old = base(repo)
    new = head(repo)
    changes = changes_between(repo, old, new)
    expected = EXPECTED_MARKDOWN.format(old=old[:10], new=new[:10], summary=SUMMARY, times=TIMES)
    assert cli_diff.markdown(changes) == expected


def test_cli_exit_codes_and_sections(repo: GitRepo, cli: Cli) -> None:
    old = base(repo)
    head(repo)
    result = cli("diff", "--repo", repo.root, "--from", old, "--to", "HEAD", "--format", "markdown")
    assert result.code == 1, result.text
    for section in (
        "### Pipelines",
        "### Schedules",
        "### Experiments",
        "### Run files",
        "### Runs a merge would start",
        "### Validation errors in the new revision",
        "```mermaid",
    ):
        assert section in result.out
    same = cli("diff", "--repo", repo.root, "--from", "HEAD", "--to", "main")
    assert (same.code, same.out.splitlines()[-1]) == (0, "no changes")
    text = cli("diff", "--repo", repo.root, "--from", "HEAD~1", "--to", "HEAD")
    assert text.code == 1
    assert "  task fit changed" in text.out
    assert "    resources.memory: 1Gi -> 2Gi" in text.out


def test_bad_revision_or_repository_is_exit_2(repo: GitRepo, cli: Cli, tmp_path: Path) -> None:
    base(repo)
    result = cli("diff", "--repo", repo.root, "--from", "nope", "--to", "HEAD")
    assert result.code == 2
    assert "unknown revision 'nope'" in result.err
    assert "Traceback" not in result.text
    result = cli("diff", "--repo", tmp_path / "missing", "--from", "a", "--to", "b")
    assert (result.code, "not a git repository" in result.err) == (2, True)
    result = cli("diff", "--repo", repo.root, "--from", "HEAD", "--to", "HEAD", "--path", "../x")
    assert result.code == 2 and "'..'" in result.err


def test_json_is_stable_and_complete(repo: GitRepo, cli: Cli) -> None:
    old = base(repo)
    head(repo)
    result = cli("diff", "--repo", repo.root, "--from", old, "--to", "HEAD", "--format", "json")
    assert result.code == 1
    data = json.loads(result.out)
    assert list(data) == [
        "version",
        "from",
        "to",
        "changed",
        "pipelines",
        "schedules",
        "experiments",
        "runs",
        "starts",
        "problems",
        "newProblems",
        "fixedProblems",
    ]
    assert data["version"] == 1 and data["changed"] is True
    train = next(p for p in data["pipelines"] if p["name"] == "train")
    fit = next(t for t in train["tasks"] if t["name"] == "fit")
    assert {"field": "resources.memory", "before": "1Gi", "after": "2Gi"} in fit["fields"]
    assert [n["name"] for n in train["dag"]] == ["prepare", "fit", "report"]
    assert data["starts"][0] == {
        "reason": "runs/",
        "pipeline": "train",
        "run": "again",
        "file": "runs/again.yaml",
        "cacheForecast": None,  # a Run file's params and cache are its own: no forecast
    }
    forecast = data["starts"][1]["cacheForecast"]  # the onChange run's
    assert [(t["name"], t["outcome"]) for t in forecast["tasks"]] == [
        ("prepare", "runs"),
        ("fit", "runs"),
        ("report", "runs"),
    ]
    assert data["problems"][0]["file"] == "experiments/broken.yaml"
    (schedule,) = data["schedules"]
    assert len(schedule["after"]["next"]) == 3


def test_moving_a_document_or_editing_comments_is_no_change(repo: GitRepo) -> None:
    old = base(repo)
    repo.git("mv", "pipelines/other.yaml", "pipelines/renamed.yaml")
    text = (repo.root / "experiments/tuning.yaml").read_text()
    (repo.root / "experiments/tuning.yaml").write_text("# a comment\n" + text)
    new = repo.commit()
    changes = changes_between(repo, old, new)
    assert not changes.changed


def test_broken_pipeline_is_invalid_not_removed(repo: GitRepo) -> None:
    old = base(repo)
    repo.write("pipelines/other.yaml", OTHER.replace("image: busybox", "image: [oops"))
    new = repo.commit()
    changes = changes_between(repo, old, new)
    (change,) = changes.pipelines
    assert (change.name, change.change) == ("other", diff.INVALID)
    assert changes.new_problems and changes.new_problems[0].file == "pipelines/other.yaml"
    assert "keeps its last good version" in cli_diff.markdown(changes)


def test_removed_task_is_drawn_as_removed(repo: GitRepo) -> None:
    repo.write("pipelines/train.yaml", PIPELINE.format(version="1", memory="1Gi", extra=""))
    old = repo.commit()
    text = PIPELINE.format(version="1", memory="1Gi", extra="")
    text = text.replace("    - {name: prepare, command: [python, prep.py]}\n", "").replace(
        "      dependsOn: [prepare]\n", ""
    )
    repo.write("pipelines/train.yaml", text)
    new = repo.commit()
    (change,) = changes_between(repo, old, new).pipelines
    assert [(t.name, t.change) for t in change.tasks] == [
        ("fit", "changed"),
        ("prepare", "removed"),
    ]
    fit = change.tasks[0]
    assert [(f.field, f.before, f.after) for f in fit.fields] == [("dependsOn", ["prepare"], None)]
    drawn = "\n".join(cli_diff.mermaid(change))
    assert 't1["prepare (removed)"]' in drawn
    assert "class t1 removed" in drawn
    assert "-->" not in drawn


def test_every_task_field_the_schema_declares_is_compared(repo: GitRepo) -> None:
    # The compared fields were a hand-written list that had missed `volumes` and
    # `ignoreUpstreamFailure`: a change to them showed as no change at all.
    repo.write("pipelines/other.yaml", OTHER)
    old = repo.commit()
    changed = OTHER.replace(
        "command: [echo]}",
        "command: [echo], ignoreUpstreamFailure: true,"
        " volumes: [{name: data, persistentVolumeClaim: {claimName: data}, mountPath: /d}]}",
    )
    repo.write("pipelines/other.yaml", changed)
    new = repo.commit()
    (change,) = changes_between(repo, old, new).pipelines
    (task,) = change.tasks
    assert [f.field for f in task.fields] == ["volumes", "ignoreUpstreamFailure"]


def test_schedule_views() -> None:
    now = NOW
    interval = diff.schedule_view(
        {"schedule": {"interval": "6h"}, "startTime": "2026-03-27T00:00:00Z"}, now
    )
    assert interval.next == (
        "2026-03-27T18:00:00+00:00",
        "2026-03-28T00:00:00+00:00",
        "2026-03-28T06:00:00+00:00",
    )
    floating = diff.schedule_view({"schedule": {"interval": "1h"}}, now)
    assert floating.next[0] == "2026-03-27T13:00:00+00:00"
    assert "creation" in floating.note
    suspended = diff.schedule_view({"schedule": {"cron": "@daily"}, "suspend": True}, now)
    assert suspended.next == () and "suspended" in suspended.note
    ending = diff.schedule_view(
        {"schedule": {"cron": "0 * * * *"}, "endTime": "2026-03-27T13:30:00Z"}, now
    )
    assert ending.next == ("2026-03-27T13:00:00+00:00",) and "endTime" in ending.note
    seconds = diff.schedule_view({"schedule": {"cron": "*/20 * * * * *"}}, now)
    assert seconds.next[:2] == ("2026-03-27T12:00:20+00:00", "2026-03-27T12:00:40+00:00")


def test_console_script_on_identical_and_changed_revisions(repo: GitRepo) -> None:
    """The installed `pipesync` entry point, as CI calls it."""
    old = base(repo)
    head(repo)
    argv = [str(CONSOLE_SCRIPT), "diff", "--repo", str(repo.root), "--from", old]
    same = subprocess.run([*argv, "--to", old], capture_output=True, text=True, check=False)
    assert (same.returncode, same.stdout.strip().splitlines()[-1]) == (0, "no changes")
    changed = subprocess.run(
        [*argv, "--to", "HEAD", "--format", "markdown"], capture_output=True, text=True, check=False
    )
    assert changed.returncode == 1, changed.stderr
    assert "### Runs a merge would start" in changed.stdout


# --- hostile input in the Markdown comment -----------------------------------------------

HIDE = "\n\n<!-- the rest is hidden\n```\n| x |"
HOSTILE_PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: sneaky}
spec:
  description: "one\\n\\n<!-- hidden\\n```"
  tasks:
    - name: only
      image: busybox
      command: ["echo", "a|b`c\\n<!--"]
      nodeSelector: {"pool\\n<!--`|": "x\\n\\n<!--"}
"""


def assert_markdown_is_intact(markdown: str) -> None:
    """No HTML comment can start, every table row is one line with its columns, and code
    fences pair up."""
    assert "<!--" not in markdown
    lines = markdown.splitlines()
    fences = [line for line in lines if line.lstrip().startswith("```")]
    assert fences == ["```mermaid", "```"] * (len(fences) // 2) and len(fences) % 2 == 0
    columns, previous = 0, ""
    for line in lines:
        if line.startswith("|"):
            if not previous.startswith("|"):
                columns = line.count("|")  # a table's header row
            assert line.endswith("|") and line.count("|") == columns, line
        else:
            allowed = ("#", "**", "- ", "  - ", "  ", "```", "graph TD", "The new revision")
            assert not line or line.startswith(allowed), line
        previous = line


def test_hostile_file_names_and_values_cannot_break_the_markdown_comment(repo: GitRepo) -> None:
    repo.write("pipelines/keep.yaml", OTHER)
    old = repo.commit()
    repo.write(f"pipelines/x{HIDE}.yaml", HOSTILE_PIPELINE)
    repo.write(f"experiments/y{HIDE}.yaml", "kind: [unclosed\n")
    repo.write(f"runs/z{HIDE}.yaml", RUN.format(name="again").replace("train", "other"))
    repo.write("pipelines/keep.yaml", OTHER.replace("busybox", "busybox:1\\n<!--"))
    new = repo.commit()
    changes = diff.compare(
        read_snapshot(repo.repo, old),
        read_snapshot(repo.repo, new),
        base_ref="main\n<!--",
        head_ref="pr",
        now=NOW,
    )
    assert len(changes.pipelines) == 2 and changes.runs and changes.problems
    markdown = cli_diff.markdown(changes)
    assert_markdown_is_intact(markdown)
    # Still readable: the hostile name is shown, escaped, not dropped.
    shown = "pipelines/x&#92;n&#92;n&#60;&#33;-- the rest is hidden&#92;n&#96;&#96;&#96;"
    assert f"<code>{shown}" in markdown
    assert "### Validation errors in the new revision" in markdown


def test_hostile_names_and_values_show_as_escapes_in_the_text_format(repo: GitRepo) -> None:
    repo.write("pipelines/keep.yaml", OTHER)
    old = repo.commit()
    # A carriage return and an ANSI sequence could overwrite the line a reviewer reads
    # in a terminal or a CI log; a line break could add a fake one.
    repo.write("pipelines/x\r\x1b[2Kall good\nrun r: no changes.yaml", HOSTILE_PIPELINE)
    new = repo.commit()
    changes = diff.compare(
        read_snapshot(repo.repo, old), read_snapshot(repo.repo, new), head_ref="pr", now=NOW
    )
    shown = cli_diff.text(changes)
    assert not any(char in shown for char in "\r\x1b"), repr(shown)
    assert "x\\r\\u001b[2Kall good\\nrun r: no changes.yaml" in shown
    assert all(not line.startswith("run r:") for line in shown.splitlines())
    # A value with a line break stays on its field's line.
    assert "description: (unset) -> one\\n\\n<!-- hidden\\n```" in shown


# --- the DAG's edges are the planner's ---------------------------------------------------

DATAFLOW = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: flow}
spec:
  defaults: {image: busybox}
  tasks:
    - name: prepare
      command: [sh, -c, "echo > $0", "{{outputs.artifacts.data}}"]
      outputs: {artifacts: [data]}
    - name: train
      command: [sh, -c, "cat $0; echo 1 > $1", "{{inputs.artifacts.data}}",
                "{{outputs.parameters.score}}"]
      inputs: {artifacts: {data: {from: "{{tasks.prepare.outputs.artifacts.data}}"}}}
      outputs: {parameters: [score]}
    - name: report
      command: [echo, "{{tasks.train.outputs.parameters.score}}"]
"""


def test_the_dag_draws_edges_through_input_artifacts_and_placeholders(repo: GitRepo) -> None:
    """No `dependsOn` anywhere, the way the docs teach: the edges come from the data."""
    repo.write("pipelines/keep.yaml", OTHER)
    old = repo.commit()
    repo.write("pipelines/flow.yaml", DATAFLOW)
    new = repo.commit()
    (change,) = changes_between(repo, old, new).pipelines
    assert {n.name: n.depends_on for n in change.dag} == {
        "prepare": (),
        "train": ("prepare",),
        "report": ("train",),
    }
    drawn = cli_diff.mermaid(change)
    assert "  t0 --> t1" in drawn and "  t1 --> t2" in drawn


def test_an_invalid_pipeline_shows_no_fields_as_unset(repo: GitRepo) -> None:
    repo.write("pipelines/flow.yaml", DATAFLOW)
    old = repo.commit()
    repo.write("pipelines/flow.yaml", DATAFLOW.replace("tasks.train.", "tasks.trian."))
    new = repo.commit()
    changes = changes_between(repo, old, new)
    (change,) = changes.pipelines
    assert (change.change, change.fields, change.tasks, change.dag) == (diff.INVALID, (), (), ())
    markdown = cli_diff.markdown(changes)
    assert "(unset)" not in markdown
    assert "trian" in markdown  # the problem is shown instead


def test_a_file_that_crashed_the_reader_is_a_problem_and_an_internal_error_is_exit_3(
    repo: GitRepo, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("pipelines/a.yaml", "apiVersion: pipesync.io/v1alpha1\nkind: Experiment\n")
    repo.commit("first")
    repo.write("pipelines/deep.yaml", "a: " + "[" * 1000 + "]" * 1000 + "\n")
    repo.commit("deep")
    result = cli("diff", "--repo", repo.root, "--from", "HEAD~1", "--to", "HEAD")
    assert "Traceback" not in result.text
    assert result.code == 1, result.text
    assert "pipelines/deep.yaml:1:1003: values nested more than" in result.out

    def broken(*_: object, **__: object) -> None:  # a stand-in for a bug in diff
        raise KeyError("oops")

    monkeypatch.setattr(diff, "compare", broken)
    result = cli("diff", "--repo", repo.root, "--from", "HEAD~1", "--to", "HEAD")
    assert result.code == 3
    assert result.out == ""
    assert result.err.splitlines() == [
        "pipesync diff: internal error (a bug in pipesync; please report it): KeyError: 'oops'"
    ]
