"""A file's pipesync resources, whatever format it is written in.

`pipesync validate`, `pipesync run` and the GitSource's snapshots all read files through
here, so a pipeline compiled by the Kubeflow Pipelines SDK is accepted wherever a native
one is: it reads as one Pipeline (pipesync.engine.kfp), everything else as pipesync YAML.
"""

from __future__ import annotations

from pipesync.api import documents
from pipesync.api.diagnostics import Diagnostic
from pipesync.engine import kfp


def load(raw: bytes, file: str) -> tuple[list[documents.Resource], list[Diagnostic]]:
    return kfp.load(raw, file) or documents.load(raw, file)
