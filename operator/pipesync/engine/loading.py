"""A file's pipesync resources, whatever format it is written in.

`pipesync validate`, `pipesync run` and the GitSource's snapshots all read files through
here, so a pipeline compiled by the Kubeflow Pipelines SDK is accepted wherever a native
one is: it reads as one Pipeline (pipesync.engine.kfp), everything else as pipesync YAML.
"""

from __future__ import annotations

from pipesync.api import diagnostics, documents
from pipesync.api.diagnostics import Diagnostic
from pipesync.engine import kfp


def load(raw: bytes, file: str) -> tuple[list[documents.Resource], list[Diagnostic]]:
    """The file's resources and located problems. Whatever goes wrong inside stays this
    file's problem (the readers report bad input; an exception here is a bug), so one
    file never stops `validate`, `diff` or a GitSource sync from reading the others."""
    try:
        return kfp.load(raw, file) or documents.load(raw, file)
    except Exception as error:  # the point: contain it to this file
        return [], [diagnostics.internal_error(file, error)]
