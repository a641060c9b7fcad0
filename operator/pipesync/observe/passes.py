"""What observers (metrics, the S3 mirror) read from a run controller pass.

Declared here, where it is used: observe sits beside runtime in the layers and cannot
import the controllers that produce the report, so it names only what it reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.state import NodeKey, NodeState


class PinnedLike(Protocol):
    @property
    def compiled(self) -> CompiledPipeline: ...
    @property
    def pipeline(self) -> Mapping[str, str]: ...


class PassReportLike(Protocol):
    """The fields of pipesync.controllers.runs.PassReport that observers read."""

    @property
    def run(self) -> Mapping[str, Any]: ...
    @property
    def previous(self) -> Mapping[str, Any]: ...
    @property
    def status(self) -> Mapping[str, Any]: ...
    @property
    def pinned(self) -> PinnedLike | None: ...
    @property
    def nodes(self) -> Mapping[NodeKey, NodeState]: ...
    @property
    def pods(self) -> Mapping[NodeKey, Mapping[str, Any]]: ...


@dataclasses.dataclass(frozen=True)
class ObserverResult:
    """What an observer hands back to the pass that told it, for the Run's status: the
    controller is the status's one writer, so observers report instead of patching."""

    #: Where the run's final record is, once it is written (the S3 mirror).
    record_uri: str = ""
