"""`pipesync diff --repo DIR --from REF --to REF`: what merging REF would change.

Reads git objects only (gitops.snapshot): no checkout, no cluster, and nothing from the
revisions is executed, so CI can run it on untrusted pull requests. Renders one
gitops.diff.ChangeSet as text, Markdown (a pull-request comment with a Mermaid DAG of
each changed pipeline) or JSON (docs/diff.md documents its keys).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable

import git

from pipesync.cli import flags
from pipesync.gitops import cacheforecast, codeids, diff
from pipesync.gitops.diff import (
    ChangeSet,
    FieldChange,
    PipelineChange,
    ResourceChange,
    RunChange,
    ScheduleChange,
    ScheduleView,
)
from pipesync.gitops.snapshot import Snapshot, SnapshotError, normalise_path, read_snapshot

EXIT_SAME, EXIT_CHANGED, EXIT_ERROR, EXIT_INTERNAL = 0, 1, 2, 3
#: Longer values are cut in text and Markdown (JSON has them whole).
MAX_VALUE = 160


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "diff",
        run,
        help="what merging one revision into another would change (pipelines, schedules, ...)",
        description="Compare the pipesync resources of two revisions of a repository: "
        "pipelines (task by task), schedules with their next fire times, experiments, "
        "runs a merge would start, and validation errors of the new revision. Reads git "
        "only. Exit 0 when nothing changes, 1 when something does, 2 on errors.",
    )
    parser.add_argument("--repo", required=True, metavar="DIR", help="the git repository")
    parser.add_argument(
        "--from", dest="base", required=True, metavar="REF", help="base revision, e.g. main"
    )
    parser.add_argument(
        "--to", dest="head", required=True, metavar="REF", help="new revision, e.g. HEAD"
    )
    parser.add_argument(
        "--path",
        default=".",
        help="folder holding pipelines/, experiments/, ... (a GitSource's spec.path)",
    )
    parser.add_argument(
        "--format", choices=("text", "markdown", "json"), default="text", help="output format"
    )


def run(options: argparse.Namespace) -> int:
    try:
        repo = git.Repo(options.repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        print(f"pipesync diff: {options.repo}: not a git repository", file=sys.stderr)
        return EXIT_ERROR
    try:
        with repo:
            old = read_snapshot(repo, options.base, options.path)
            new = read_snapshot(repo, options.head, options.path)
            # The tasks' cache.paths are relative to the folder they run in, --path.
            code = codeids.CommitChanges(
                repo, old.commit, new.commit, root=normalise_path(options.path)
            )
            changes = _compare(old, new, options, code)
    except SnapshotError as error:
        print(f"pipesync diff: {error}", file=sys.stderr)
        return EXIT_ERROR
    except git.GitError as error:
        print(f"pipesync diff: cannot read {options.repo}: {error}", file=sys.stderr)
        return EXIT_ERROR
    except _InternalError as error:
        print(
            f"pipesync diff: internal error (a bug in pipesync; please report it): {error}",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    if options.format == "json":
        print(json.dumps(diff.to_json(changes), indent=2, sort_keys=False, default=str))
    elif options.format == "markdown":
        print(markdown(changes))
    else:
        print(text(changes))
    return EXIT_CHANGED if changes.changed else EXIT_SAME


class _InternalError(Exception):
    """A bug in pipesync, as one line: its type and message."""


def _compare(
    old: Snapshot, new: Snapshot, options: argparse.Namespace, code: codeids.CommitChanges
) -> ChangeSet:
    """diff.compare; git errors (reading the code) pass, anything else is a bug."""
    try:
        return diff.compare(old, new, base_ref=options.base, head_ref=options.head, code=code)
    except git.GitError:
        raise
    except Exception as error:  # a bug: one line and its own exit code
        detail = " ".join(str(error).split())[:200]
        raise _InternalError(f"{type(error).__name__}: {detail}") from error


# --- shared wording --------------------------------------------------------------------


def _short(commit: str) -> str:
    return commit[:10]


def _value(value: object) -> str:
    shown = diff.shown(value)
    return shown if len(shown) <= MAX_VALUE else shown[: MAX_VALUE - 3] + "..."


def _summary(changes: ChangeSet) -> str:
    parts = [
        f"{len(changes.pipelines)} pipeline(s)",
        f"{len(changes.schedules)} schedule(s)",
        f"{len(changes.experiments)} experiment(s)",
        f"{len(changes.runs)} run file(s)",
    ]
    line = ", ".join(parts) + " changed"
    line += f"; {len(changes.starts)} run(s) would start"
    line += f"; {len(changes.problems)} validation error(s) in the new revision"
    return line


def _view(view: ScheduleView | None) -> str:
    if view is None:
        return "(none)"
    times = ", ".join(view.next)
    note = f" ({view.note})" if view.note else ""
    return f"{view.schedule}: next {times or 'none'}{note}"


# --- text ------------------------------------------------------------------------------


#: The changed resources of a ChangeSet (separate dataclasses with the same name, change,
#: file and fields), each headed the same way in the text format.
_FileChange = PipelineChange | ScheduleChange | ResourceChange | RunChange


def text(changes: ChangeSet) -> str:
    lines = [
        f"pipesync diff {changes.base.ref} ({_short(changes.base.commit)}) -> "
        f"{changes.head.ref} ({_short(changes.head.commit)})"
    ]
    if not changes.changed:
        lines.append("no changes")
        return "\n".join(lines)
    lines.append(_summary(changes))

    def fields(items: Iterable[FieldChange], indent: str) -> None:
        for f in items:
            lines.append(f"{indent}{f.field}: {_value(f.before)} -> {_value(f.after)}")

    def resource(kind: str, item: _FileChange, after: str = "") -> None:
        lines.append(f"{kind} {item.name} {item.change} ({item.file}){after}")
        fields(item.fields, "  ")

    for p in changes.pipelines:
        resource("pipeline", p)
        for t in p.tasks:
            lines.append(f"  task {t.name}{' (onExit)' if t.on_exit else ''} {t.change}")
            fields(t.fields, "    ")
    for s in changes.schedules:
        resource("schedule", s, f", pipeline {s.pipeline}")
        if s.before is not None:
            lines.append(f"  before: {_view(s.before)}")
        if s.after is not None:
            lines.append(f"  after:  {_view(s.after)}")
    for e in changes.experiments:
        resource("experiment", e)
    for r in changes.runs:
        resource("run", r, f", pipeline {r.pipeline}")
    for start in changes.starts:
        lines.append(f"would start: {_start(start)}")
        if start.forecast is not None:
            lines.append(f"  {_forecast_header(start.forecast)}")
            lines += [f"    {_task_forecast(t)}" for t in start.forecast.tasks]
    for problem in changes.problems:
        lines.append(problem.format())
    # Names and values come from the pushed branch: a control character (an ANSI escape,
    # a carriage return, a line break in a file name) could rewrite what a reviewer's
    # terminal or CI log shows, so each line shows them as escapes.
    return "\n".join(_visible(line) for line in lines)


def _start(start: diff.Start) -> str:
    if start.run is not None:
        return f"run {start.run} of pipeline {start.pipeline} ({start.file})"
    return f"a run of pipeline {start.pipeline} (trigger.onChange, {start.file})"


def _forecast_header(forecast: cacheforecast.Forecast) -> str:
    runs = len(forecast.tasks) - forecast.cached
    return (
        f"cache forecast, {cacheforecast.ASSUMPTION}: {runs} task(s) run, {forecast.cached} cached"
    )


def _task_forecast(task: cacheforecast.TaskForecast) -> str:
    """`train: runs (steps/train.py changed)`, `prepare: cached`."""
    shown = task.name + (" (onExit)" if task.on_exit else "")
    if not task.reasons:
        return f"{shown}: {task.outcome}"
    return f"{shown}: {task.outcome} ({'; '.join(r.text for r in task.reasons)})"


# --- Markdown --------------------------------------------------------------------------

_MARKS = {diff.ADDED: "added", diff.CHANGED: "changed", diff.REMOVED: "removed"}


def _cell(value: object) -> str:
    """A table cell holding a value, as code."""
    return _code(_value(value))


# Every string here may come from the pull request (file names, names, field keys,
# values, messages) and is rendered for reviewers: it must not start an HTML comment that
# hides the rest of the comment, break a table row or a list item with a line break, close
# a code fence, or turn into a link or image. Control characters are shown as escapes;
# Markdown and HTML punctuation becomes numeric character references, which CommonMark
# renders as the literal character and never as structure.
_ESCAPED = frozenset("\\`*_[]<>&!|~#")
#: What a code span cannot hold: its delimiter, a table's cell separator (split before
#: code spans are parsed), and `<` (so no `<!--` appears in the comment's source at all).
_CODE_UNSAFE = frozenset("`|<")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(text: str) -> str:
    """Control characters (line breaks included) as visible escapes: one line always."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
        return named.get(char) or f"\\u{ord(char):04x}"

    return _CONTROL.sub(escape, text)


def _text(value: object) -> str:
    """A user-controlled string as inline Markdown text, shown exactly as it is."""
    return "".join(f"&#{ord(char)};" if char in _ESCAPED else char for char in _visible(str(value)))


def _code(value: object) -> str:
    """A user-controlled string as inline code: a code span when it needs no escaping
    (code spans show every character as is, so they cannot hold references), else an
    HTML <code> element with the escaped text (GitHub renders both alike)."""
    text = str(value)
    if _visible(text) == text and not _CODE_UNSAFE.intersection(text):
        return f"`{text}`"
    return f"<code>{_text(text)}</code>"


def markdown(changes: ChangeSet) -> str:
    out = [
        f"## pipesync diff: {_code(changes.base.ref)} ({_short(changes.base.commit)}) → "
        f"{_code(changes.head.ref)} ({_short(changes.head.commit)})",
        "",
    ]
    if not changes.changed:
        out.append("No changes to pipelines, schedules, experiments or runs.")
        return "\n".join(out)
    out += [f"**{_summary(changes)}**", ""]
    if changes.pipelines:
        out += ["### Pipelines", ""]
        for p in changes.pipelines:
            out += _pipeline_section(p)
    if changes.schedules:
        out += ["### Schedules", ""]
        for s in changes.schedules:
            out += [
                f"#### {_code(s.name)} {s.change} ({_code(s.file)}, pipeline {_code(s.pipeline)})",
                "",
            ]
            out += ["| | before | after |", "|---|---|---|"]
            out.append(
                f"| schedule | {_schedule_cell(s.before, 'schedule')} "
                f"| {_schedule_cell(s.after, 'schedule')} |"
            )
            out.append(
                f"| next {diff.FIRE_TIMES} fire times | {_schedule_cell(s.before, 'next')} "
                f"| {_schedule_cell(s.after, 'next')} |"
            )
            for f in s.fields:
                if not f.field.startswith("spec.schedule"):
                    out.append(_field_row(f))
            out.append("")
    if changes.experiments:
        out += ["### Experiments", ""]
        for e in changes.experiments:
            out.append(f"- {_code(e.name)} {e.change} ({_code(e.file)})")
            out += [f"  - {_text(f.field)}: {_cell(f.before)} → {_cell(f.after)}" for f in e.fields]
        out.append("")
    if changes.runs:
        out += ["### Run files", ""]
        for r in changes.runs:
            note = {
                diff.ADDED: "a merge creates it",
                diff.CHANGED: "edited: reported, not run again",
                diff.REMOVED: "removed: the Run object is kept",
                diff.INVALID: "invalid in the new revision",
            }.get(r.change, r.change)
            out.append(
                f"- {_code(r.name)} {r.change} ({_code(r.file)}, "
                f"pipeline {_code(r.pipeline)}): {note}"
            )
        out.append("")
    if changes.starts:
        out += ["### Runs a merge would start", ""]
        for start in changes.starts:
            out.append(f"- {_text(_start(start))}")
            if start.forecast is not None:
                out.append(f"  - {_text(_forecast_header(start.forecast))}")
                out += [f"    - {_markdown_forecast(t)}" for t in start.forecast.tasks]
        out.append("")
    if changes.problems:
        out += ["### Validation errors in the new revision", ""]
        out += [
            f"- {_code(f'{p.file}:{p.line}:{p.column}')}: {_text(p.message)}"
            for p in changes.problems
        ]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _markdown_forecast(task: cacheforecast.TaskForecast) -> str:
    """A task's forecast with its name as code, the reasons as escaped text."""
    name = _code(task.name)
    return name + _text(_task_forecast(task)[len(task.name) :])


def _field_row(f: FieldChange) -> str:
    """`| field | before | after |` (field keys come from the document too)."""
    return f"| {_text(f.field)} | {_cell(f.before)} | {_cell(f.after)} |"


def _schedule_cell(view: ScheduleView | None, part: str) -> str:
    if view is None:
        return "(none)"
    if part == "schedule":
        return _cell(view.schedule)
    cells = "<br>".join(view.next) or "none"
    return cells + (f" ({_text(view.note)})" if view.note else "")


def _pipeline_section(p: PipelineChange) -> list[str]:
    out = [f"#### {_code(p.name)} {p.change} ({_code(p.file)})", ""]
    if p.change == diff.INVALID:
        out += [
            "The new revision's document is invalid (see the validation errors below); "
            "the cluster keeps its last good version.",
            "",
        ]
    if p.fields:
        out += ["| field | before | after |", "|---|---|---|"]
        out += [_field_row(f) for f in p.fields]
        out.append("")
    if p.tasks:
        out += ["| task | change | field | before | after |", "|---|---|---|---|---|"]
        for t in p.tasks:
            name = _code(t.name) + (" (onExit)" if t.on_exit else "")
            if not t.fields:
                out.append(f"| {name} | {t.change} | | | |")
            for f in t.fields:
                out.append(f"| {name} | {t.change} {_field_row(f)}")
        out.append("")
    if p.dag:
        out += ["```mermaid", *mermaid(p), "```", ""]
    return out


def mermaid(p: PipelineChange) -> list[str]:
    """The pipeline's DAG, tasks marked added / changed / removed by class and label."""
    ids = {node.name: f"t{index}" for index, node in enumerate(p.dag)}
    lines = ["graph TD"]
    for node in p.dag:
        label = node.name + (" (onExit)" if node.on_exit else "")
        if node.mark:
            label += f" ({node.mark})"
        lines.append(f'  {ids[node.name]}["{_label(label)}"]')
    for node in p.dag:
        for dependency in node.depends_on:
            if dependency in ids:
                lines.append(f"  {ids[dependency]} --> {ids[node.name]}")
    lines += [
        "  classDef added fill:#d5f5d5,stroke:#2a7d2a",
        "  classDef changed fill:#fff1b8,stroke:#a07800",
        "  classDef removed fill:#f8d4d4,stroke:#a33,stroke-dasharray: 4 2",
    ]
    for mark in _MARKS:
        marked = [ids[n.name] for n in p.dag if n.mark == mark]
        if marked:
            lines.append(f"  class {','.join(marked)} {mark}")
    return lines


#: Mermaid entity codes (`#name;` / `#35;`) for what would end a quoted label or be read
#: as markup or an entity inside it.
_LABEL_ESCAPES = {'"': "#quot;", "#": "#35;", "<": "#lt;", ">": "#gt;", "`": "#96;"}


def _label(text: str) -> str:
    """A node label: one line (a line break could end the code fence), quotes escaped."""
    return "".join(_LABEL_ESCAPES.get(char, char) for char in _visible(text))
