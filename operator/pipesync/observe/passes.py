"""What observers (metrics, the S3 mirror) read from a run controller pass.

Declared here, where it is used: observe sits beside runtime in the layers and cannot
import the controllers that produce the report, nor pipesync.runtime.podstate that reads
its pods, so it names only what it reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from pipesync.api.reports import CacheReport
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.state import NodeKey, NodeState


class PinnedLike(Protocol):
    @property
    def compiled(self) -> CompiledPipeline: ...
    @property
    def pipeline(self) -> Mapping[str, str]: ...


class ContainerEndLike(Protocol):
    """pipesync.runtime.podstate.ContainerEnd: a container's terminated state."""

    @property
    def exit_code(self) -> int | None: ...
    @property
    def started_at(self) -> str: ...
    @property
    def finished_at(self) -> str: ...


class PodLike(Protocol):
    """The fields of pipesync.runtime.podstate.PodState (the one pod reader) that
    observers read: they never read a pod's JSON themselves."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def uid(self) -> str: ...
    @property
    def task(self) -> str | None: ...
    @property
    def instance(self) -> int | None: ...
    @property
    def attempt(self) -> int: ...
    @property
    def names_a_node(self) -> bool: ...
    @property
    def deleting(self) -> bool: ...
    @property
    def created_at(self) -> float | None: ...
    @property
    def phase(self) -> str: ...
    @property
    def started_at(self) -> float | None: ...
    @property
    def node_name(self) -> str: ...
    @property
    def pool(self) -> str | None: ...
    @property
    def gpus(self) -> float: ...
    @property
    def over(self) -> bool: ...
    @property
    def pending(self) -> bool: ...
    @property
    def last_finished_at(self) -> float | None: ...
    @property
    def logs_final(self) -> bool: ...

    def created_for(self, run_uid: str) -> bool: ...

    def ended(self, name: str) -> ContainerEndLike | None: ...


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
    def pods(self) -> Mapping[NodeKey, PodLike]: ...
    @property
    def cache(self) -> CacheReport: ...


@dataclasses.dataclass(frozen=True)
class ObserverResult:
    """What an observer hands back to the pass that told it, for the Run's status: the
    controller is the status's one writer, so observers report instead of patching."""

    #: Where the run's final record is, once it is written (the S3 mirror).
    record_uri: str = ""
