"""A file's pipesync resources, whatever format it is written in.

`pipesync validate`, `pipesync run` and the GitSource's snapshots all read files through
here, so a pipeline compiled by the Kubeflow Pipelines SDK is accepted wherever a native
one is: it reads as one Pipeline (pipesync.engine.kfp), everything else as pipesync YAML.
"""

from __future__ import annotations

from pipesync.api import diagnostics, documents, model, yamlsource
from pipesync.api.diagnostics import Diagnostic
from pipesync.engine import checks, kfp


def load(raw: bytes, file: str) -> tuple[list[documents.Resource], list[Diagnostic]]:
    """The file's resources and located problems. Whatever goes wrong inside stays this
    file's problem (the readers report bad input; an exception here is a bug), so one
    file never stops `validate`, `diff` or a GitSource sync from reading the others."""
    try:
        loaded = kfp.load(raw, file)
        if loaded is not None:
            return loaded
        resources, problems = documents.load(raw, file)
        if problems:
            problems += _semantic_despite_schema(raw, file, problems)
        return resources, problems
    except Exception as error:  # contain it to this file
        return [], [diagnostics.internal_error(file, error)]


def _semantic_despite_schema(raw: bytes, file: str, known: list[Diagnostic]) -> list[Diagnostic]:
    """The DAG checks (unknown tasks, placeholders, cycles) of Pipelines that also have
    schema errors, so one pass shows all of them; best effort: what cannot be compiled
    from a malformed document is left to its schema errors."""
    text, _ = yamlsource.decode(raw, file)
    if text is None:
        return []
    parsed, _ = yamlsource.parse(text, file)
    seen = {(p.line, p.column) for p in known}
    found: list[Diagnostic] = []
    for document in parsed:
        data = document.data
        if not isinstance(data, dict) or data.get("kind") != model.Kind.PIPELINE.value:
            continue
        if not documents.schema_problems(document, model.Kind.PIPELINE):
            continue  # valid: its checks run with the others in engine.checks
        problems: list[Diagnostic] = []
        try:
            metadata = model.metadata_from_spec(data.get("metadata") or {})
            resource = documents.Resource(model.Kind.PIPELINE, metadata, data, document)
            _, problems = checks.pipeline_problems(resource, resource.spec, ("spec",))
        except Exception:  # noqa: S112 -- a malformed shape its schema errors already report
            continue
        found.extend(p for p in problems if (p.line, p.column) not in seen)
    return found
