"""Container log files: written with per-line timestamps, read like a kubelet.

Each run (attempt) of a container gets its own file, so `previous=true` can
serve the run before the current one. Lines are stored as
``<RFC3339Nano timestamp> <F|P> <text>`` (F: the line ended with a newline,
P: a partial line at the end of the output), which keeps `timestamps=true`,
`sinceSeconds` and `tailLines` exact without a second index file.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

FOLLOW_POLL_SECONDS = 0.1


def _timestamp() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def _parse_timestamp(stamp: str) -> float:
    # Python parses at most microseconds: drop the nanosecond digits we padded.
    return (
        datetime.datetime.strptime(stamp[:26], "%Y-%m-%dT%H:%M:%S.%f")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


@dataclass
class ContainerLog:
    """The log files of one container of one pod, one per run."""

    directory: Path
    container: str
    pod_uid: str
    runs: list[Path] = field(default_factory=list)
    # Set when the newest run's process ended and its output is fully written.
    finished: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_run(self) -> Path:
        with self.lock:
            path = self.directory / f"{self.container}.{len(self.runs)}.log"
            path.touch()
            self.runs.append(path)
            self.finished.clear()
            return path

    def run_path(self, previous: bool) -> Path | None:
        with self.lock:
            index = len(self.runs) - (2 if previous else 1)
            return self.runs[index] if index >= 0 else None


def pump(source: IO[bytes], target: Path) -> None:
    """Copy a process's output into a log file, stamping each line as it arrives."""
    with target.open("ab", buffering=0) as out:
        for line in iter(source.readline, b""):
            complete = line.endswith(b"\n")
            text = line[:-1] if complete else line
            out.write(f"{_timestamp()} {'F' if complete else 'P'} ".encode() + text + b"\n")


@dataclass(frozen=True)
class LogQuery:
    follow: bool = False
    tail_lines: int | None = None
    timestamps: bool = False
    previous: bool = False
    limit_bytes: int | None = None
    since_seconds: int | None = None


def _render(record: bytes, timestamps: bool) -> tuple[float, bytes]:
    stamp, _, rest = record.rstrip(b"\n").partition(b" ")
    kind, _, text = rest.partition(b" ")
    body = text + (b"\n" if kind == b"F" else b"")
    if timestamps:
        body = stamp + b" " + body
    return _parse_timestamp(stamp.decode()), body


def read(path: Path, query: LogQuery, finished: threading.Event | None) -> Iterator[bytes]:
    """Yield the log's content as a kubelet would answer it; follow until `finished`."""
    since = time.time() - query.since_seconds if query.since_seconds is not None else None
    budget = query.limit_bytes
    with path.open("rb") as handle:
        records = handle.readlines()
        pending = b""
        if records and not records[-1].endswith(b"\n"):
            pending = records.pop()  # a record being written right now
        if query.tail_lines is not None:
            records = records[-query.tail_lines :] if query.tail_lines > 0 else []
        while True:
            for record in records:
                stamp, body = _render(record, query.timestamps)
                if since is not None and stamp < since:
                    continue
                if budget is not None:
                    body = body[:budget]
                    budget -= len(body)
                yield body
                if budget is not None and budget <= 0:
                    return
            if not query.follow or finished is None:
                return
            done = finished.is_set()  # read the flag before the file: no lost tail
            chunk = handle.read()
            if not chunk and not pending and done:
                return
            if not chunk:
                time.sleep(FOLLOW_POLL_SECONDS)
                records = []
                continue
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            records = [line + b"\n" for line in lines]


@dataclass
class LogRegistry:
    """All container logs of the pods on one agent, by (namespace, pod, container)."""

    _logs: dict[tuple[str, str, str], ContainerLog] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, namespace: str, pod: str, log: ContainerLog) -> None:
        with self._lock:
            self._logs[(namespace, pod, log.container)] = log

    def find(self, namespace: str, pod: str, container: str) -> ContainerLog | None:
        with self._lock:
            return self._logs.get((namespace, pod, container))

    def drop_pod(self, namespace: str, pod: str, uid: str) -> None:
        """Forget a pod's logs; a newer pod of the same name keeps its own."""
        with self._lock:
            for key in [
                k for k, v in self._logs.items() if k[:2] == (namespace, pod) and v.pod_uid == uid
            ]:
                del self._logs[key]
