"""Where the UI's runs come from: the RunSource protocol, and the sources asked in order.

A run can be read from more than one place: the cluster holds the Runs that exist now
(`cluster.ClusterRuns`: their objects, pins and pods' logs), an object store holds the
run records, logs and artifacts the operator mirrored (`archived.ArchivedRuns`, which
serves a local directory in the same key layout too, over a LocalStore). A new place is
one module with a class that has the RunSource members, and a line where UiApp is built.

RunSources asks them in their order: the first that knows a run answers for it, so a
run still in the cluster is shown from there, and from its record only once it is gone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from pipesync.ui.auth import Access
from pipesync.ui.responses import HttpError

#: A log is shown from its end: at most this many bytes of it, from either source.
MAX_LOG_BYTES = 2 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class FoundRun:
    """One run as a source knows it."""

    #: The Run object, or one made from its record (views.record_as_run).
    run: dict[str, Any]
    #: Its run record, when this source read one.
    record: dict[str, Any] | None
    #: Known from its record only: the cluster no longer has the Run.
    archived: bool
    #: What the Run was pinned to when it started ({"spec": ..., "pipeline": ...}).
    pinned: dict[str, Any] | None = None
    #: The Run's status does not tell everything (truncated, or finished: its record
    #: holds every task), so its record is read from the archives too.
    wants_record: bool = False


class RunSource(Protocol):
    """One place runs are read from."""

    #: Its runs exist in the cluster now: listed by default, and they may be cancelled.
    #: The runs of the other sources (archives) are listed on request, marked archived.
    @property
    def live(self) -> bool: ...

    #: Says where a log came from (the X-Pipesync-Log-Source header): "pod", "s3".
    @property
    def log_source(self) -> str: ...

    def rows(self, namespace: str) -> list[dict[str, Any]]:
        """A views.run_row for each of the namespace's runs this source holds."""
        ...

    def find(self, namespace: str, name: str) -> FoundRun | None: ...

    def log_access(self, namespace: str) -> Access | None:
        """What a person must be allowed beyond getting the run to read its logs here."""
        ...

    def log(
        self, namespace: str, run: str, task: str, instance: int | None, attempt: int
    ) -> bytes | Iterable[bytes] | None:
        """The last MAX_LOG_BYTES of one attempt's log, or None when not held here."""
        ...

    def artifact(
        self, namespace: str, run: str, task: str, instance: int | None, artifact: str
    ) -> tuple[str, Iterator[bytes]] | None:
        """(its key, its bytes as they come), or None when not held here."""
        ...


class RunSources:
    """The sources in order: what the UI's run endpoints read through."""

    def __init__(self, sources: Sequence[RunSource]) -> None:
        self.sources = list(sources)

    @property
    def archives(self) -> list[RunSource]:
        return [source for source in self.sources if not source.live]

    def live_rows(self, namespace: str) -> list[dict[str, Any]]:
        return [row for source in self.sources if source.live for row in source.rows(namespace)]

    def rows(self, namespace: str, *, archived: bool) -> list[dict[str, Any]]:
        """The live runs; with `archived`, and every archived run not listed before it."""
        rows = self.live_rows(namespace)
        if archived:
            listed = {row["name"] for row in rows}
            for source in self.archives:
                found = [row for row in source.rows(namespace) if row["name"] not in listed]
                rows += found
                listed |= {row["name"] for row in found}
        return rows

    def find(self, namespace: str, name: str) -> FoundRun:
        for source in self.sources:
            found = source.find(namespace, name)
            if found is None:
                continue
            if found.wants_record and found.record is None:
                found = dataclasses.replace(found, record=self._record(namespace, name))
            return found
        raise HttpError(404, f"run {name} not found in namespace {namespace} (nor in S3)")

    def _record(self, namespace: str, name: str) -> dict[str, Any] | None:
        for source in self.archives:
            found = source.find(namespace, name)
            if found is not None and found.record is not None:
                return found.record
        return None

    def log(
        self,
        where: tuple[str, str, str, int | None, int],
        allowed: Callable[[Access], bool],
    ) -> tuple[str, bytes | Iterable[bytes]] | None:
        """`where`: (namespace, run, task, instance, attempt); (log source, its bytes) from
        the first source the person may read logs from that has it."""
        for source in self.sources:
            access = source.log_access(where[0])
            if access is not None and not allowed(access):
                continue
            found = source.log(*where)
            if found is not None:
                return source.log_source, found
        return None

    def artifact(
        self, namespace: str, run: str, task: str, instance: int | None, artifact: str
    ) -> tuple[str, Iterator[bytes]] | None:
        for source in self.sources:
            found = source.artifact(namespace, run, task, instance, artifact)
            if found is not None:
                return found
        return None
