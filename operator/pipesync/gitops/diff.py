"""What merging one revision into another would change: two Snapshots -> a change set.

Why a structured change set (and not text): the same facts feed three renderings (text
for terminals, Markdown for pull-request comments, JSON for scripts), and tests assert on
facts, not on layout. Everything here is pure given the two snapshots, `now` (used for
the next fire times of schedules) and what changed in the tasks' code (for the cache
forecast, gitops.cacheforecast); reading git is gitops.snapshot's and gitops.codeids' job.

Comparisons are by identity (kind and name), so moving a document to another file is no
change. A pipeline's tasks are compared as they will run: with the pipeline's `defaults`
filled in, so changing `defaults.image` shows on every task that inherits it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pipesync.api import model, schemas
from pipesync.api.documents import Resource
from pipesync.engine import compiler, recurring
from pipesync.gitops import cacheforecast
from pipesync.gitops.snapshot import FileProblem, Snapshot

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
#: The new revision's document is invalid: the cluster keeps the last good version.
INVALID = "invalid"
FIRE_TIMES = 3

#: What `pipesync diff` compares, field by field: every field the schema declares (the
#: name identifies the task; the tasks and onExit are compared one task at a time).
TASK_FIELDS = schemas.properties("task", leaving_out=("name",))
PIPELINE_FIELDS = schemas.properties("pipelineSpec", leaving_out=("tasks", "onExit"))


@dataclasses.dataclass(frozen=True)
class FieldChange:
    field: str  # dotted, e.g. "image", "spec.schedule"
    before: Any  # None when absent
    after: Any  # None when absent


@dataclasses.dataclass(frozen=True)
class TaskChange:
    name: str
    change: str  # added | removed | changed
    fields: tuple[FieldChange, ...] = ()
    on_exit: bool = False


@dataclasses.dataclass(frozen=True)
class DagNode:
    name: str
    depends_on: tuple[str, ...]
    mark: str  # "", added, changed, removed
    on_exit: bool = False


@dataclasses.dataclass(frozen=True)
class PipelineChange:
    name: str
    change: str  # added | removed | changed | invalid
    file: str
    fields: tuple[FieldChange, ...] = ()
    tasks: tuple[TaskChange, ...] = ()
    dag: tuple[DagNode, ...] = ()  # the new revision's DAG with marks (removed tasks too)
    on_change: bool = False  # trigger.onChange in the new revision


@dataclasses.dataclass(frozen=True)
class ResourceChange:
    """An Experiment (or any kind compared field by field)."""

    name: str
    change: str
    file: str
    fields: tuple[FieldChange, ...] = ()


@dataclasses.dataclass(frozen=True)
class ScheduleView:
    schedule: str  # "cron 0 2 * * * (Europe/Berlin)" or "every 6h"
    timezone: str
    next: tuple[str, ...]  # ISO 8601 in the schedule's zone
    note: str = ""  # why there are no or approximate times


@dataclasses.dataclass(frozen=True)
class ScheduleChange:
    name: str
    change: str
    file: str
    pipeline: str
    fields: tuple[FieldChange, ...] = ()
    before: ScheduleView | None = None
    after: ScheduleView | None = None


@dataclasses.dataclass(frozen=True)
class RunChange:
    name: str
    change: str  # added (a merge creates it) | changed (reported, not re-run) | removed
    file: str
    pipeline: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fields: tuple[FieldChange, ...] = ()


@dataclasses.dataclass(frozen=True)
class Start:
    """A run a merge would start."""

    reason: str  # "runs/" (a new Run file) | "trigger.onChange"
    pipeline: str
    run: str | None  # its name when known (Run files); onChange names come from the commit
    file: str
    #: Which tasks run and which the cache serves (onChange runs, when `compare` was
    #: told what changed in the code); None otherwise.
    forecast: cacheforecast.Forecast | None = None


@dataclasses.dataclass(frozen=True)
class Revision:
    ref: str
    commit: str


@dataclasses.dataclass(frozen=True)
class ChangeSet:
    base: Revision
    head: Revision
    pipelines: tuple[PipelineChange, ...]
    schedules: tuple[ScheduleChange, ...]
    experiments: tuple[ResourceChange, ...]
    runs: tuple[RunChange, ...]
    starts: tuple[Start, ...]
    problems: tuple[FileProblem, ...]  # every problem of the new revision
    new_problems: tuple[FileProblem, ...]  # of those, the ones the old revision lacks
    fixed_problems: int  # problems of the old revision gone in the new one

    @property
    def changed(self) -> bool:
        return bool(
            self.pipelines
            or self.schedules
            or self.experiments
            or self.runs
            or self.starts  # a code-only change can start a run
            or self.new_problems
            or self.fixed_problems
        )


def compare(
    old: Snapshot,
    new: Snapshot,
    *,
    base_ref: str = "",
    head_ref: str = "",
    now: datetime.datetime | None = None,
    code: cacheforecast.CodeChanges | None = None,
) -> ChangeSet:
    """The change set from `old` to `new`; `now` anchors schedules' next fire times;
    `code` says what changed in the tasks' code between the two commits
    (gitops.codeids.CommitChanges), for the cache forecast of each onChange run (None:
    no forecast)."""
    moment = now or datetime.datetime.now(datetime.UTC)
    before, after = _index(old), _index(new)
    broken = {p.file for p in new.problems}
    pipelines = tuple(
        _pipeline(name, before.get(key), after.get(key), broken)
        for key, name in _keys(before, after, model.Kind.PIPELINE)
        if _differs(before.get(key), after.get(key))
    )
    schedules = tuple(
        _schedule(before.get(key), after.get(key), broken, moment)
        for key, _ in _keys(before, after, model.Kind.RECURRING_RUN)
        if _differs(before.get(key), after.get(key))
    )
    experiments = tuple(
        _generic(before.get(key), after.get(key), broken)
        for key, _ in _keys(before, after, model.Kind.EXPERIMENT)
        if _differs(before.get(key), after.get(key))
    )
    runs = tuple(
        _run(before.get(key), after.get(key), broken)
        for key, _ in _keys(before, after, model.Kind.RUN)
        if _differs(before.get(key), after.get(key))
    )
    starts = [
        Start("runs/", run.pipeline, run.name, run.file) for run in runs if run.change == ADDED
    ]
    starts.extend(
        Start(
            "trigger.onChange",
            change.name,
            None,
            change.file,
            None if code is None else _forecast(before, after, change.name, code),
        )
        for change in pipelines
        if change.on_change and change.change in (ADDED, CHANGED)
    )
    if code is not None:
        # Same spec, new code under a cached task's paths: gitops.sync starts a run too.
        starts.extend(
            Start("trigger.onChange", name, None, after[key].source.file, forecast)
            for key, name in _keys(before, after, model.Kind.PIPELINE)
            if key in before and key in after and not _differs(before[key], after[key])
            for forecast in (_code_forecast(before, after, name, code),)
            if forecast is not None
        )
    old_problems = {(p.file, p.message) for p in old.problems}
    new_problems = {(p.file, p.message) for p in new.problems}
    return ChangeSet(
        base=Revision(base_ref or old.commit, old.commit),
        head=Revision(head_ref or new.commit, new.commit),
        pipelines=pipelines,
        schedules=schedules,
        experiments=experiments,
        runs=runs,
        starts=tuple(starts),
        problems=new.problems,
        new_problems=tuple(p for p in new.problems if (p.file, p.message) not in old_problems),
        fixed_problems=len(old_problems - new_problems),
    )


# --- identity and equality -------------------------------------------------------------


def _index(snapshot: Snapshot) -> dict[tuple[str, str], Resource]:
    return {(r.kind.value, r.name): r for r in snapshot.resources}


def _keys(
    before: Mapping[tuple[str, str], Resource],
    after: Mapping[tuple[str, str], Resource],
    kind: model.Kind,
) -> list[tuple[tuple[str, str], str]]:
    keys = {k for k in (*before, *after) if k[0] == kind.value}
    return [(key, key[1]) for key in sorted(keys)]


def _content(resource: Resource) -> dict[str, Any]:
    """What a change of means a change of the object: spec, labels and annotations
    (comments, formatting, key order and the file it lives in do not count)."""
    metadata = resource.body.get("metadata") or {}
    return {
        "spec": resource.body.get("spec"),
        "labels": metadata.get("labels") or {},
        "annotations": metadata.get("annotations") or {},
    }


def _differs(old: Resource | None, new: Resource | None) -> bool:
    if old is None or new is None:
        return old is not new
    return _content(old) != _content(new)


def _change(old: Resource | None, new: Resource | None, broken: set[str]) -> tuple[str, str]:
    """(change, file): a resource missing from the new revision whose old file now has
    a problem is `invalid` (kept in the cluster), not removed."""
    if old is None:
        return ADDED, _either(old, new).source.file
    if new is None:
        return (INVALID if old.source.file in broken else REMOVED), old.source.file
    return CHANGED, new.source.file


def _either(old: Resource | None, new: Resource | None) -> Resource:
    """The new version, else the old one (a change always has at least one)."""
    current = new or old
    if current is None:
        raise ValueError("a change needs an old or a new version")
    return current


def _fields(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, order: Sequence[str] = ()
) -> tuple[FieldChange, ...]:
    """The differing keys; where both sides are mappings, their differing sub-keys
    (`resources.memory`, `forEach.parallelism`), so a reviewer sees what moved."""
    old, new = old or {}, new or {}
    keys = [k for k in order if k in old or k in new]
    keys += sorted(k for k in {*old, *new} if k not in order)
    found: list[FieldChange] = []
    for key in keys:
        was, now = old.get(key), new.get(key)
        if was == now:
            continue
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            found.extend(
                dataclasses.replace(inner, field=f"{key}.{inner.field}")
                for inner in _fields(was, now)
            )
        else:
            found.append(FieldChange(str(key), was, now))
    return tuple(found)


def _generic(old: Resource | None, new: Resource | None, broken: set[str]) -> ResourceChange:
    change, file = _change(old, new, broken)
    name = _either(old, new).name
    return ResourceChange(name, change, file, _content_fields(old, new))


def _content_fields(old: Resource | None, new: Resource | None) -> tuple[FieldChange, ...]:
    if old is None or new is None:
        return ()
    before, after = _content(old), _content(new)
    fields = [
        dataclasses.replace(f, field=f"spec.{f.field}")
        for f in _fields(before["spec"] or {}, after["spec"] or {})
    ]
    for part in ("labels", "annotations"):
        if before[part] != after[part]:
            fields.append(FieldChange(f"metadata.{part}", before[part], after[part]))
    return tuple(fields)


# --- pipelines -------------------------------------------------------------------------


def effective_tasks(spec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each task (and onExit, under its own name) as it will run: defaults filled in, env
    and nodeSelector merged (api.model.with_defaults, as the model reads them)."""
    defaults = spec.get("defaults") or {}
    tasks = [dict(t) for t in spec.get("tasks") or () if isinstance(t, Mapping)]
    on_exit = spec.get("onExit")
    if isinstance(on_exit, Mapping):
        tasks.append({**on_exit, "onExit": True})
    return {str(task.get("name")): model.with_defaults(task, defaults) for task in tasks}


def _pipeline(
    name: str, old: Resource | None, new: Resource | None, broken: set[str]
) -> PipelineChange:
    change, file = _change(old, new, broken)
    old_spec = old.spec if old is not None else {}
    new_spec = new.spec if new is not None else {}
    before, after = effective_tasks(old_spec), effective_tasks(new_spec)
    tasks: list[TaskChange] = []
    for task in [*after, *(t for t in before if t not in after)]:
        was, now = before.get(task), after.get(task)
        on_exit = bool((now or was or {}).get("onExit"))
        if was is None:
            tasks.append(TaskChange(task, ADDED, on_exit=on_exit))
        elif now is None:
            tasks.append(TaskChange(task, REMOVED, on_exit=on_exit))
        else:
            differences = _fields(
                {k: v for k, v in was.items() if k not in ("name", "onExit")},
                {k: v for k, v in now.items() if k not in ("name", "onExit")},
                TASK_FIELDS,
            )
            if differences:
                tasks.append(TaskChange(task, CHANGED, differences, on_exit))
    fields: list[FieldChange] = list(
        _fields(
            {k: old_spec.get(k) for k in PIPELINE_FIELDS if k in old_spec},
            {k: new_spec.get(k) for k in PIPELINE_FIELDS if k in new_spec},
            PIPELINE_FIELDS,
        )
    )
    if old is not None and new is not None:
        fields.extend(f for f in _content_fields(old, new) if f.field.startswith("metadata."))
    marks = {t.name: t.change for t in tasks}
    shown = after if new is not None else before
    edges = upstream_names(new_spec if new is not None else old_spec)
    dag = [
        DagNode(task, edges.get(task, ()), marks.get(task, ""), bool(data.get("onExit")))
        for task, data in shown.items()
    ]
    if new is not None:
        dag.extend(
            DagNode(t, (), REMOVED, bool(before[t].get("onExit"))) for t in before if t not in after
        )
    trigger = new_spec.get("trigger") or {}
    return PipelineChange(
        name,
        change,
        file,
        # An invalid new document has no fields to compare (it is not in the snapshot):
        # listing the old ones as `-> (unset)` would read as a deletion.
        tuple(fields) if change != INVALID else (),
        tuple(tasks) if change == CHANGED else (),
        tuple(dag) if change in (ADDED, CHANGED) else (),
        bool(trigger.get("onChange")),
    )


def upstream_names(spec: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Every task's upstream tasks as the planner waits for them (engine.compiler: through
    `dependsOn`, output placeholders, input artifacts, `when` and `forEach` references).
    Empty when the spec does not compile: no edges rather than made-up ones (its problems
    are reported on their own)."""
    compiled = _compiled(spec)
    if compiled is None:
        return {}
    everything = [*compiled.tasks, *([compiled.on_exit] if compiled.on_exit else [])]
    return {t.name: tuple(compiled.tasks[i].name for i in t.upstream) for t in everything}


def _compiled(spec: Mapping[str, Any]) -> compiler.CompiledPipeline | None:
    """The pipeline as a run compiles it; None when it does not compile."""
    try:
        compiled, _ = compiler.compile_pipeline(model.pipeline_spec_from_spec(spec))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return compiled


def _forecast(
    before: Mapping[tuple[str, str], Resource],
    after: Mapping[tuple[str, str], Resource],
    name: str,
    code: cacheforecast.CodeChanges,
) -> cacheforecast.Forecast | None:
    """The cache forecast of the onChange run of pipeline `name`: the Run a sync starts
    sets no `spec.cache` (gitops.sync), so its mode is Enabled."""
    key = (model.Kind.PIPELINE.value, name)
    new = _compiled(after[key].spec) if key in after else None
    if new is None:
        return None
    old = _compiled(before[key].spec) if key in before else None
    return cacheforecast.forecast(old, new, code, model.CacheMode.ENABLED)


def _code_forecast(
    before: Mapping[tuple[str, str], Resource],
    after: Mapping[tuple[str, str], Resource],
    name: str,
    code: cacheforecast.CodeChanges,
) -> cacheforecast.Forecast | None:
    """The forecast of the run an unchanged onChange pipeline starts because the code of
    one of its cached tasks changed; None when it starts none."""
    trigger = after[(model.Kind.PIPELINE.value, name)].spec.get("trigger") or {}
    compiled = _compiled(after[(model.Kind.PIPELINE.value, name)].spec)
    if not trigger.get("onChange") or compiled is None:
        return None
    cached = [t for t in compiled.tasks if t.task.cache.enabled]
    if not any(code(t.task.cache.paths) for t in cached):
        return None
    return _forecast(before, after, name, code)


# --- schedules -------------------------------------------------------------------------


def _schedule(
    old: Resource | None, new: Resource | None, broken: set[str], now: datetime.datetime
) -> ScheduleChange:
    change, file = _change(old, new, broken)
    current = _either(old, new)
    pipeline = str((current.spec.get("pipelineRef") or {}).get("name") or "(inline)")
    return ScheduleChange(
        current.name,
        change,
        file,
        pipeline,
        _content_fields(old, new),
        None if old is None else schedule_view(old.spec, now),
        None if new is None else schedule_view(new.spec, now),
    )


def schedule_view(spec: Mapping[str, Any], now: datetime.datetime) -> ScheduleView:
    """The schedule in words and its next FIRE_TIMES fire times after `now`, by the
    controller's own rules (engine.recurring: DST, start/end window, interval anchors)."""
    schedule = spec.get("schedule") or {}
    zone_name = str(schedule.get("timezone") or "UTC")
    if "cron" in schedule:
        text = f"cron {schedule['cron']} ({zone_name})"
    else:
        text = f"every {schedule.get('interval')}"
        zone_name = "UTC"  # interval schedules ignore time zones
    seconds = int(now.timestamp())
    note = ""
    if "interval" in schedule and not spec.get("startTime"):
        note = "anchored at the object's creation: times shown as if it were created now"
    try:
        parsed = recurring.parse_spec(spec, created=seconds)
    except recurring.ScheduleError as error:
        return ScheduleView(text, zone_name, (), f"cannot be scheduled: {error}")
    if parsed.suspend:
        return ScheduleView(text, zone_name, (), "suspended: nothing fires")
    zone = zoneinfo.ZoneInfo(zone_name)
    fires = recurring.upcoming(parsed, seconds, FIRE_TIMES)
    if len(fires) < FIRE_TIMES:
        note = note or "the schedule's endTime comes first"
    shown = tuple(datetime.datetime.fromtimestamp(t, zone).isoformat() for t in fires)
    return ScheduleView(text, zone_name, shown, note)


# --- runs ------------------------------------------------------------------------------


def _run(old: Resource | None, new: Resource | None, broken: set[str]) -> RunChange:
    change, file = _change(old, new, broken)
    current = _either(old, new)
    spec = current.spec
    pipeline = str((spec.get("pipelineRef") or {}).get("name") or "(inline)")
    return RunChange(
        current.name,
        change,
        file,
        pipeline,
        dict(spec.get("params") or {}),
        _content_fields(old, new),
    )


# --- JSON ------------------------------------------------------------------------------

JSON_VERSION = 1


def to_json(changes: ChangeSet) -> dict[str, Any]:
    """The documented, stable JSON form (docs/diff.md): keys in camelCase, lists sorted by
    name, absent values as null."""

    def fields(items: Iterable[FieldChange]) -> list[dict[str, Any]]:
        return [{"field": f.field, "before": f.before, "after": f.after} for f in items]

    def view(v: ScheduleView | None) -> dict[str, Any] | None:
        if v is None:
            return None
        return {
            "schedule": v.schedule,
            "timezone": v.timezone,
            "next": list(v.next),
            "note": v.note,
        }

    return {
        "version": JSON_VERSION,
        "from": {"ref": changes.base.ref, "commit": changes.base.commit},
        "to": {"ref": changes.head.ref, "commit": changes.head.commit},
        "changed": changes.changed,
        "pipelines": [
            {
                "name": p.name,
                "change": p.change,
                "file": p.file,
                "fields": fields(p.fields),
                "tasks": [
                    {
                        "name": t.name,
                        "change": t.change,
                        "onExit": t.on_exit,
                        "fields": fields(t.fields),
                    }
                    for t in p.tasks
                ],
                "dag": [
                    {
                        "name": n.name,
                        "dependsOn": list(n.depends_on),
                        "mark": n.mark,
                        "onExit": n.on_exit,
                    }
                    for n in p.dag
                ],
                "onChange": p.on_change,
            }
            for p in changes.pipelines
        ],
        "schedules": [
            {
                "name": s.name,
                "change": s.change,
                "file": s.file,
                "pipeline": s.pipeline,
                "fields": fields(s.fields),
                "before": view(s.before),
                "after": view(s.after),
            }
            for s in changes.schedules
        ],
        "experiments": [
            {"name": e.name, "change": e.change, "file": e.file, "fields": fields(e.fields)}
            for e in changes.experiments
        ],
        "runs": [
            {
                "name": r.name,
                "change": r.change,
                "file": r.file,
                "pipeline": r.pipeline,
                "params": dict(r.params),
                "fields": fields(r.fields),
            }
            for r in changes.runs
        ],
        "starts": [
            {
                "reason": s.reason,
                "pipeline": s.pipeline,
                "run": s.run,
                "file": s.file,
                "cacheForecast": None if s.forecast is None else s.forecast.to_json(),
            }
            for s in changes.starts
        ],
        "problems": [
            {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
            for p in changes.problems
        ],
        "newProblems": len(changes.new_problems),
        "fixedProblems": changes.fixed_problems,
    }


def shown(value: Any) -> str:
    """A value in one line: strings as they are, the rest as compact JSON."""
    if value is None:
        return "(unset)"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), default=str)
