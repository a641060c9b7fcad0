"""A pipeline file as the commands that run one read it: `pipesync run` on this machine,
`pipesync submit` in the cluster.

One reader for both, so a file `run` accepts is one `submit` accepts, with the same
`file:line:col: message` errors, the same choice among several pipelines (or a Run, whose
pipelineRef is looked up in the repository's pipelines/ folder) and the same `-p`
parsing by each parameter's declared type.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pipesync.api import model
from pipesync.api.diagnostics import has_errors
from pipesync.api.documents import Resource
from pipesync.cli import sources
from pipesync.engine import checks, compiler, params

_LAYOUT_DIRS = ("pipelines", "runs", "experiments", "recurring-runs")


class Usage(Exception):
    """What is wrong with the command or its files, as the lines to print (exit 2).
    `located`: the lines are `file:line:col: message` diagnostics, as validate prints."""

    def __init__(self, message: str, *, located: bool = False) -> None:
        super().__init__(message)
        self.located = located


@dataclasses.dataclass(frozen=True)
class PipelineFile:
    """The pipeline a file names, checked and compiled."""

    pipeline: Resource | None  # the Pipeline document, unless a Run holds the spec inline
    run: Resource | None  # the Run document, when the file holds a Run
    spec_data: dict[str, Any]  # the spec as written (what a Run's pipelineSpec carries)
    spec: model.PipelineSpec
    compiled: compiler.CompiledPipeline

    @property
    def pipeline_name(self) -> str:
        return self.pipeline.name if self.pipeline is not None else ""


def load(path: Path, wanted: str | None, root: Path) -> PipelineFile:
    """The file's pipeline (`wanted` chooses among several), checked as `pipesync
    validate` checks it; Usage with every problem as `file:line:col: message`."""
    if path.is_dir():
        raise Usage(f"{path} is a directory; give the file that holds the pipeline")
    if not path.is_file():
        raise Usage(f"{path}: no such file")
    resources, problems = sources.load_all([path])
    problems.extend(checks.check(resources))
    if has_errors(problems):
        raise Usage("\n".join(p.format() for p in sorted(problems)), located=True)
    pipeline_resource, run_resource = _select(resources, wanted, root)
    holder, spec_data, prefix = _pipeline_spec(pipeline_resource, run_resource)
    spec, found = checks.pipeline_problems(holder, spec_data, prefix)
    if spec is None:
        raise Usage("\n".join(p.format() for p in found), located=True)
    compiled, _ = compiler.compile_pipeline(spec)
    assert compiled is not None  # noqa: S101 - pipeline_problems compiled it already
    return PipelineFile(pipeline_resource, run_resource, dict(spec_data), spec, compiled)


def repository_root(file: Path) -> Path:
    """Where tasks run: the folder holding pipelines/ (the repository layout), else the
    git top level, else the file's own folder."""
    folder = file.resolve().parent
    for candidate in (folder, *folder.parents):
        if candidate.name in _LAYOUT_DIRS:
            return candidate.parent
        if (candidate / ".git").exists():
            return candidate
    return folder


def _select(
    resources: list[Resource], wanted: str | None, root: Path
) -> tuple[Resource | None, Resource | None]:
    pipelines = [r for r in resources if r.kind is model.Kind.PIPELINE]
    runs = [r for r in resources if r.kind is model.Kind.RUN]
    if wanted is not None:
        chosen = [r for r in pipelines if r.name == wanted]
        if not chosen:
            names = ", ".join(r.name for r in pipelines) or "none"
            raise Usage(f"no pipeline {wanted!r} in the file (pipelines: {names})")
        return chosen[0], None
    if len(pipelines) == 1:
        return pipelines[0], None
    if len(pipelines) > 1:
        names = ", ".join(r.name for r in pipelines)
        raise Usage(f"the file holds several pipelines ({names}); choose one with --pipeline")
    if len(runs) == 1:
        run_resource = runs[0]
        if "pipelineSpec" in run_resource.spec:
            return None, run_resource
        return _referenced_pipeline(run_resource, root), run_resource
    raise Usage("the file holds no Pipeline (and not exactly one Run) to run")


def _referenced_pipeline(run_resource: Resource, root: Path) -> Resource:
    """A Run's pipelineRef, looked up in the repository's pipelines/ folder."""
    name = run_resource.spec["pipelineRef"]["name"]
    folder = root / "pipelines"
    found, _ = sources.load_all(sources.discover([str(folder)]) if folder.is_dir() else [])
    for resource in found:
        if resource.kind is model.Kind.PIPELINE and resource.name == name:
            return resource
    raise Usage(f"pipeline {name!r} (the Run's pipelineRef) is not in {folder}")


def _pipeline_spec(
    pipeline_resource: Resource | None, run_resource: Resource | None
) -> tuple[Resource, Any, tuple[str, ...]]:
    """The document holding the pipeline spec, the spec, and its path in that document."""
    if pipeline_resource is not None:
        return pipeline_resource, pipeline_resource.spec, ("spec",)
    if run_resource is None:
        raise Usage("nothing to run")
    return run_resource, run_resource.spec["pipelineSpec"], ("spec", "pipelineSpec")


def given_params(
    spec: model.PipelineSpec, run_resource: Resource | None, given: list[str]
) -> dict[str, Any]:
    """The values set explicitly: the Run document's `params`, overridden by each `-p
    NAME=VALUE` parsed by the parameter's declared type (defaults not filled in)."""
    typed: dict[str, Any] = dict(run_resource.spec.get("params", {})) if run_resource else {}
    declared = {param.name: param for param in spec.params}
    for text in given:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise Usage(f"-p {text!r}: expected NAME=VALUE")
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise Usage(f"-p {name}: the pipeline declares no such parameter (declared: {known})")
        try:
            typed[name] = params.coerce_text(value, declared[name].type)
        except params.ParamError as error:
            raise Usage(f"-p {name}: {error}") from None
    return typed


def resolved_params(spec: model.PipelineSpec, given: dict[str, Any]) -> dict[str, Any]:
    """Every parameter's final value (defaults filled in); Usage when one is missing or
    wrong (a value outside its enum, a required one not given)."""
    values, problems = params.resolve(spec.params, given)
    if problems:
        raise Usage("; ".join(problems))
    return values
