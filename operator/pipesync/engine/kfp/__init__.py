"""Pipelines compiled by the Kubeflow Pipelines SDK (v2 "IR" YAML), read as pipesync
Pipelines so the same compiler, planner, local executor and operator run them.

`load` is the entry point for callers that read files (the CLI, the GitSource sync):
given a file's bytes it returns None when the file is not KFP IR (so the caller reads it
as ordinary pipesync documents), else the translated Pipeline and located problems.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api import documents, model, yamlsource
from pipesync.api.diagnostics import Diagnostic
from pipesync.api.documents import Resource
from pipesync.api.yamlsource import SourceDocument
from pipesync.engine.kfp.reader import SHAPE_ERRORS, Reader

__all__ = ["is_kfp", "load", "translate"]


def is_kfp(data: Any) -> bool:
    """Whether a YAML document is KFP IR: a mapping with pipelineInfo and deploymentSpec."""
    return isinstance(data, Mapping) and "pipelineInfo" in data and "deploymentSpec" in data


def load(raw: bytes, file: str) -> tuple[list[Resource], list[Diagnostic]] | None:
    """The Pipeline a KFP IR file describes, or None when `raw` is not KFP IR."""
    if b"pipelineInfo" not in raw or b"deploymentSpec" not in raw:
        return None  # cheap test first: most files are not KFP and are not parsed twice
    text, problems = yamlsource.decode(raw, file)
    if text is None:
        return None
    parsed, problems = yamlsource.parse(text, file)
    if not parsed or not is_kfp(parsed[0].data):
        return None
    if problems:
        return [], problems
    platforms = parsed[1] if len(parsed) > 1 else None
    if len(parsed) > 2 or (platforms is not None and not _is_platforms(platforms.data)):
        extra = parsed[2] if len(parsed) > 2 else parsed[1]
        return [], [
            extra.diagnostic(
                (), "a KFP pipeline file holds the pipeline and at most one `platforms` document"
            )
        ]
    resource, found = translate(parsed[0], platforms)
    return ([] if resource is None else [resource]), found


def translate(
    main: SourceDocument, platforms: SourceDocument | None = None
) -> tuple[Resource | None, list[Diagnostic]]:
    """The Pipeline resource for one KFP document, or None with every problem found."""
    reader = Reader(main, platforms)
    try:
        body = reader.pipeline()
    except SHAPE_ERRORS as error:
        # A value of the wrong type where the SDK writes another: bad input, located at
        # what was being read, never a traceback.
        where = ".".join(str(part) for part in reader.here) or "the document"
        reader.problem(
            reader.here,
            f"{where}: unexpected value ({type(error).__name__}: {_one_line(error)}); "
            "is this file as the KFP SDK compiled it?",
        )
    if reader.problems:
        return None, sorted(set(reader.problems))
    synthetic = SourceDocument(
        main.file, main.index, body, main.start, dict(reader.marks), dict(reader.marks)
    )
    problems = documents.schema_problems(synthetic, model.Kind.PIPELINE)
    if problems:
        return None, problems
    return Resource(
        model.Kind.PIPELINE, model.metadata_from_spec(body["metadata"]), body, synthetic
    ), []


def _is_platforms(data: Any) -> bool:
    return isinstance(data, Mapping) and set(data) <= {"platforms"}


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:200]
