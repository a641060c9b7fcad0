"""Semantic checks the schemas cannot express: DAG shape, placeholders, references
between documents, parameter types, schedules. Every problem is located in its file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pipesync.api import diagnostics, model
from pipesync.api.diagnostics import Diagnostic, Severity
from pipesync.api.documents import Resource
from pipesync.engine import compiler, limits, params, recurring
from pipesync.engine.compiler import CompiledPipeline, Matrix

#: Where fire times are counted from when the caller gives no clock (the engine has none).
_REFERENCE = datetime(2026, 1, 1, tzinfo=UTC)


#: One Pipeline document's own checks: its spec when it compiled, and its problems.
Checked = tuple[model.PipelineSpec | None, list[Diagnostic]]


def check(
    resources: Sequence[Resource],
    now: datetime | None = None,
    *,
    checked: Mapping[int, Checked] | None = None,
) -> list[Diagnostic]:
    """Problems across one set of documents (a repository, or the files given); `now`
    is where the fire times a warning shows start (a fixed reference when not given).
    `checked` holds what `check_pipelines` already found for these resources (by
    position), e.g. in worker processes, so each pipeline is compiled once."""
    problems: list[Diagnostic] = []
    problems.extend(_duplicates(resources))
    pipelines = {r.name: r for r in resources if r.kind is model.Kind.PIPELINE}
    experiments = {r.name for r in resources if r.kind is model.Kind.EXPERIMENT}
    own = check_pipelines(resources) if checked is None else checked
    specs: dict[str, model.PipelineSpec] = {}
    for position, (spec, found) in sorted(own.items()):
        problems.extend(found)
        if spec is not None:
            specs[resources[position].name] = spec
    for resource in resources:
        if resource.kind in (model.Kind.RUN, model.Kind.RECURRING_RUN):
            problems.extend(
                _guarded(resource, lambda r: _run_problems(r, pipelines, specs, experiments))
            )
        if resource.kind is model.Kind.RECURRING_RUN:
            problems.extend(_guarded(resource, lambda r: _schedule_problems(r, now or _REFERENCE)))
    return problems


def check_pipelines(resources: Sequence[Resource]) -> dict[int, Checked]:
    """Each Pipeline's own checks, by its position in `resources`: they need no other
    document, so they may run apart (in parallel) from `check`'s cross-document ones."""
    return {
        position: _pipeline_guarded(resource)
        for position, resource in enumerate(resources)
        if resource.kind is model.Kind.PIPELINE
    }


def _guarded(
    resource: Resource, check_one: Callable[[Resource], list[Diagnostic]]
) -> list[Diagnostic]:
    """One document's checks; an exception in them (a bug) becomes that document's
    problem instead of ending the checks of every other document."""
    try:
        return check_one(resource)
    except Exception as error:  # contained to this document
        start = resource.source.start
        problem = diagnostics.internal_error(resource.source.file, error)
        return [dataclasses.replace(problem, line=start.line, column=start.column)]


def _pipeline_guarded(resource: Resource) -> Checked:
    found: list[model.PipelineSpec | None] = [None]

    def check_one(r: Resource) -> list[Diagnostic]:
        found[0], problems = pipeline_problems(r, r.spec, ("spec",))
        return problems

    problems = _guarded(resource, check_one)
    return found[0], problems


def pipeline_problems(
    resource: Resource, spec_data: Mapping[str, Any], prefix: tuple[str, ...]
) -> tuple[model.PipelineSpec | None, list[Diagnostic]]:
    """The pipeline spec, when it compiles; otherwise the located problems."""
    spec = model.pipeline_spec_from_spec(spec_data)
    compiled, problems = compiler.compile_pipeline(spec)
    if compiled is not None:
        problems = size_problems(compiled)
    return (None if problems else spec), [
        resource.diagnostic((*prefix, *problem.path), problem.message) for problem in problems
    ]


def size_problems(
    compiled: CompiledPipeline, bounds: limits.Limits = limits.DEFAULT
) -> list[compiler.Problem]:
    """forEach lists and matrices given literally that exceed the limits (engine.limits):
    the planner would fail the task at run time, so say so now, where it is written. Items
    from a parameter or a task's output are only counted when the run has them."""
    where = {task.name: index for index, task in enumerate(compiled.spec.tasks)}
    problems: list[compiler.Problem] = []
    for task in compiled.tasks:
        declared = task.task.for_each
        if declared is None or declared.source is None or task.name not in where:
            continue  # a group member taking another's items is reported at that one
        path: compiler.SpecPath = ("tasks", where[task.name], "forEach")
        if isinstance(task.items, tuple):
            problem = limits.items_problem(len(task.items), bounds)
            if problem is not None:
                problems.append(compiler.Problem((*path, "items"), problem))
        if isinstance(task.items, Matrix):
            literal = [(axis, v) for axis, v in task.items.axes if isinstance(v, tuple)]
            for axis, values in literal:
                problem = limits.items_problem(len(values), bounds, f"forEach matrix axis {axis!r}")
                if problem is not None:
                    problems.append(compiler.Problem((*path, "matrix", axis), problem))
            problem = limits.instances_problem([len(v) for _, v in literal], bounds)
            if problem is not None:
                problems.append(compiler.Problem((*path, "matrix"), problem))
    return problems


def _duplicates(resources: Iterable[Resource]) -> list[Diagnostic]:
    seen: dict[tuple[str, str | None, str], Resource] = {}
    problems = []
    for resource in resources:
        key = (resource.kind.value, resource.metadata.namespace, resource.name)
        first = seen.setdefault(key, resource)
        if first is not resource:
            where = first.source.mark(("metadata", "name"))
            problems.append(
                resource.diagnostic(
                    ("metadata", "name"),
                    f"duplicate {resource.kind.value} {resource.name!r} "
                    f"(also defined at {first.source.file}:{where.line}:{where.column})",
                )
            )
    return problems


def _run_problems(
    resource: Resource,
    pipelines: Mapping[str, Resource],
    specs: Mapping[str, model.PipelineSpec],
    experiments: set[str],
) -> list[Diagnostic]:
    spec = resource.spec
    problems: list[Diagnostic] = []
    pipeline: model.PipelineSpec | None = None
    if "pipelineSpec" in spec:
        pipeline, found = pipeline_problems(
            resource, spec["pipelineSpec"], ("spec", "pipelineSpec")
        )
        problems.extend(found)
    elif "pipelineRef" in spec:
        name = spec["pipelineRef"]["name"]
        if name in specs:
            pipeline = specs[name]
        elif pipelines and name not in pipelines:
            known = ", ".join(sorted(pipelines))
            problems.append(
                resource.diagnostic(
                    ("spec", "pipelineRef", "name"),
                    f"unknown pipeline {name!r} (pipelines here: {known})",
                )
            )
    experiment = spec.get("experimentRef", {}).get("name")
    if experiment is not None and experiments and experiment not in experiments:
        known = ", ".join(sorted(experiments))
        problems.append(
            resource.diagnostic(
                ("spec", "experimentRef", "name"),
                f"unknown experiment {experiment!r} (experiments here: {known})",
            )
        )
    if pipeline is not None:
        given = spec.get("params", {})
        _, found_params = params.resolve(pipeline.params, given)
        for message in found_params:
            problems.append(resource.diagnostic(("spec", "params"), message))
    return problems


def _schedule_problems(resource: Resource, now: datetime) -> list[Diagnostic]:
    """recurring.spec_problems, located; and a warning for a six-field cron."""
    spec = resource.spec
    schedule = spec.get("schedule", {})
    found = recurring.spec_problems(spec)
    problems = [resource.diagnostic(problem.path, problem.message) for problem in found]
    if "cron" in schedule and recurring.cron_is_valid(found):
        note = recurring.seconds_first_warning(
            str(schedule["cron"]).strip(), str(schedule.get("timezone", "UTC")), now
        )
        if note:
            diagnostic = resource.diagnostic(("spec", "schedule", "cron"), note)
            problems.append(dataclasses.replace(diagnostic, severity=Severity.WARNING))
    return problems
