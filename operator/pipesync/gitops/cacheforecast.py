"""Which tasks of the run a merge starts will run, which the cache will serve, and why:
the forecast `pipesync diff` shows under each onChange run, so a reviewer sees the saving
(or its loss) before merging.

It assumes the previous commit's run filled the cache (its entries are there and young
enough for `maxAge`), and it forecasts by task, not by forEach instance. A task is served
when engine.cache would look it up (`cache.looks_up`: its cache is on, it is not onExit,
the run does not disable or refresh the cache), its previous version was cached too, the
parts of its key its definition decides are unchanged (`cache.definition`), so are the
parameter defaults and forEach items it renders and its code (`cache.paths` at both
commits), and every task whose outputs go into its key (`cache.keyed_upstream`) is served
itself. An upstream task that runs again may produce the same bytes, and then its
consumers hit after all: the forecast says they run, the cautious answer.

Pure: the git side (what changed in the code between the two commits) is the `CodeChanges`
callable the caller passes in (gitops.codeids.CommitChanges).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

from pipesync.api.model import CacheMode
from pipesync.engine import cache
from pipesync.engine.compiler import CompiledPipeline, CompiledTask, Matrix
from pipesync.engine.templating import Ref, RefKind

RUNS, CACHED = "runs", "cached"
ASSUMPTION = "assuming the previous commit's run filled the cache"

#: The files changed between the two commits under a task's `cache.paths` (None: the
#: whole tree), in the paths' own terms; () when its code is the same.
CodeChanges = Callable[[tuple[str, ...] | None], tuple[str, ...]]

#: How many changed files a reason names in text (JSON has them all).
SHOWN_FILES = 3

#: The key parts `cache.definition` returns, as the pipeline's fields are called ("argv"
#: is split into command and args by `_fields`).
_FIELD_NAMES = {"envFrom": "env", "salt": "cache.salt"}


@dataclasses.dataclass(frozen=True)
class Reason:
    """Why a task runs. `kind` is one of: new, cacheOff, wasOff, onExit, mode, field,
    param, forEach, perRun, paths, code, input; `names` what it is about (fields, params,
    placeholders, files, upstream tasks, the run's cache mode)."""

    kind: str
    names: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        names = ", ".join(self.names)
        match self.kind:
            case "new":
                return "new task"
            case "cacheOff":
                return "cache off"
            case "wasOff":
                return "cache was off at the previous commit"
            case "onExit":
                return "onExit: never cached"
            case "mode":
                return f"the run's cache is {names}"
            case "param":
                return f"param {names} changed"
            case "forEach":
                return "forEach items changed"
            case "perRun":
                return f"reads {names}: a new key every run"
            case "paths":
                return "cache.paths changed"
            case "code":
                shown = ", ".join(self.names[:SHOWN_FILES])
                more = len(self.names) - SHOWN_FILES
                return f"{shown}{f' and {more} more' if more > 0 else ''} changed"
            case "input":
                return f"input from {names}"
            case _:  # "field"
                return f"{names} changed"


@dataclasses.dataclass(frozen=True)
class TaskForecast:
    name: str
    reasons: tuple[Reason, ...]  # why it runs; none: the cache serves it
    on_exit: bool = False

    @property
    def outcome(self) -> str:
        return RUNS if self.reasons else CACHED


@dataclasses.dataclass(frozen=True)
class Forecast:
    mode: CacheMode
    tasks: tuple[TaskForecast, ...]  # the new pipeline's tasks in topological order, onExit last

    @property
    def cached(self) -> int:
        return sum(1 for t in self.tasks if t.outcome == CACHED)

    def to_json(self) -> dict[str, Any]:
        return {
            "assumption": ASSUMPTION,
            "mode": self.mode.value,
            "tasks": [
                {
                    "name": t.name,
                    "onExit": t.on_exit,
                    "outcome": t.outcome,
                    "reasons": [
                        {"kind": r.kind, "names": list(r.names), "text": r.text} for r in t.reasons
                    ],
                }
                for t in self.tasks
            ],
        }


def forecast(
    old: CompiledPipeline | None,
    new: CompiledPipeline,
    code: CodeChanges,
    mode: CacheMode = CacheMode.ENABLED,
) -> Forecast:
    """The forecast for a run of `new` after a run of `old` (None: the pipeline is new)."""
    served: set[str] = set()
    tasks = []
    for task in _all(new):
        reasons = tuple(_reasons(old, new, task, code=code, mode=mode, served=served))
        if not reasons:
            served.add(task.name)
        tasks.append(TaskForecast(task.name, reasons, task.is_exit))
    return Forecast(mode, tuple(tasks))


def _all(pipeline: CompiledPipeline) -> tuple[CompiledTask, ...]:
    return (*pipeline.tasks, *((pipeline.on_exit,) if pipeline.on_exit else ()))


def _reasons(
    old: CompiledPipeline | None,
    new: CompiledPipeline,
    task: CompiledTask,
    *,
    code: CodeChanges,
    mode: CacheMode,
    served: set[str],
) -> Iterator[Reason]:
    if not cache.looks_up(task, mode):
        if task.is_exit:
            yield Reason("onExit")
        elif not task.task.cache.enabled:
            yield Reason("cacheOff")
        else:
            yield Reason("mode", (mode.value,))
        return
    previous = None if old is None else _find(old, task.name)
    if previous is None or previous.is_exit:
        yield Reason("new")
        return
    if not cache.looks_up(previous, CacheMode.ENABLED):
        yield Reason("wasOff")  # the previous run wrote no entry for it
        return
    per_run = sorted({str(ref) for ref in _refs(task) if _per_run(ref)})
    if per_run:
        yield Reason("perRun", tuple(per_run))
    fields = _fields(previous, task)
    if fields:
        yield Reason("field", fields)
    params = tuple(p for p in _params_read(task) if _param(old, p) != _param(new, p))
    if params:
        yield Reason("param", params)
    if previous.items != task.items:
        yield Reason("forEach")
    if previous.task.cache.paths != task.task.cache.paths:
        yield Reason("paths")
    else:
        changed = code(task.task.cache.paths)
        if changed:
            yield Reason("code", changed)
    inputs = tuple(name for name in cache.keyed_upstream(new, task) if name not in served)
    if inputs:
        yield Reason("input", inputs)


def _find(pipeline: CompiledPipeline, name: str) -> CompiledTask | None:
    return next((t for t in _all(pipeline) if t.name == name), None)


def _refs(task: CompiledTask) -> Iterator[Ref]:
    """The placeholders the task's argv and env render (what goes into its key)."""
    for template in (*task.argv, *(t for _, t in task.env)):
        yield from template.refs


def _per_run(ref: Ref) -> bool:
    """A placeholder whose value differs in every run ({{run.namespace}} does not)."""
    return ref.kind is RefKind.TASK_UID or (
        ref.kind is RefKind.RUN and ref.name in ("name", "createdAt")
    )


def _fields(previous: CompiledTask, task: CompiledTask) -> tuple[str, ...]:
    """The task fields whose part of the key changed, as the pipeline names them."""
    before, after = cache.definition(previous), cache.definition(task)
    names: list[str] = []
    for part in after:
        if before.get(part) == after[part]:
            continue
        if part == "argv":
            names += [
                field
                for field in ("command", "args")
                if getattr(previous.task, field) != getattr(task.task, field)
            ] or ["command"]
        else:
            names.append(_FIELD_NAMES.get(part, part))
    return tuple(dict.fromkeys(names))


def _params_read(task: CompiledTask) -> tuple[str, ...]:
    """The pipeline parameters whose values the task's key holds: those its argv and env
    render, and its forEach items' when they come from one."""
    refs = [*_refs(task)]
    if isinstance(task.items, Ref):
        refs.append(task.items)
    elif isinstance(task.items, Matrix):
        refs += [axis for _, axis in task.items.axes if isinstance(axis, Ref)]
    return tuple(dict.fromkeys(r.name for r in refs if r.kind is RefKind.PARAM))


def _param(pipeline: CompiledPipeline | None, name: str) -> tuple[Any, ...] | None:
    """What an onChange run's parameter renders from: its type and default (the Run a
    sync starts passes no params)."""
    if pipeline is None:
        return None
    found = next((p for p in pipeline.spec.params if p.name == name), None)
    return None if found is None else (found.type, found.has_default, found.default)
