"""Runs one run (attempt) of one container as a sandboxed process group.

Prepares host paths the sandbox needs, spawns bwrap, streams output into the
container's log, stops the process gracefully when asked (SIGTERM, then
SIGKILL after the grace period) and reads the termination message.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .hostpaths import HostPaths
from .logstore import ContainerLog, pump
from .procs import ProcessTable, signal_group
from .sandbox import Mount, bwrap_command, ordered, resolve

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048


@dataclass
class StopSignal:
    """Shared by all containers of a pod: set when they must stop, with a grace period."""

    event: threading.Event
    grace: Callable[[], float]


@dataclass(frozen=True)
class Launch:
    argv: Sequence[str]
    env: Mapping[str, str]
    mounts: Sequence[Mount]
    workdir: str
    termination_path: str
    fallback_to_logs: bool


def _prepare_host(launch: Launch, host_paths: HostPaths) -> list[Path]:
    """Create mount targets and workingDir where the sandbox expects them."""
    claims: list[Path] = []
    placed: list[Mount] = []
    for mount in ordered(launch.mounts):
        host, in_volume = resolve(mount.target, placed)
        is_file = mount.source.is_file()
        if in_volume:
            if not host.exists():
                host.parent.mkdir(parents=True, exist_ok=True)
                host.touch() if is_file else host.mkdir()
        elif not mount.target.startswith("/dev/"):
            claims += host_paths.ensure(host, is_file=is_file)
        placed.append(mount)
    host, in_volume = resolve(launch.workdir, launch.mounts)
    if in_volume:
        host.mkdir(parents=True, exist_ok=True)
    else:
        claims += host_paths.ensure(host)
    return claims


def _termination(
    launch: Launch, scratch: Path, host_paths: HostPaths
) -> tuple[Path, Path | None, list[Path]]:
    """(file to read after exit, file to bind or None, host claims)."""
    host, in_volume = resolve(launch.termination_path, launch.mounts)
    if in_volume:
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(b"")
        return host, None, []
    scratch.write_bytes(b"")
    claims = (
        []
        if launch.termination_path.startswith("/dev/")
        else host_paths.ensure(Path(launch.termination_path), is_file=True)
    )
    return scratch, scratch, claims


def _exit_code(returncode: int) -> int:
    # Popen reports death by signal as -N; a runtime reports 128+N.
    return 128 - returncode if returncode < 0 else returncode


def _log_tail(path: Path) -> str:
    lines = []
    for record in path.read_bytes().splitlines()[-FALLBACK_LINES:]:
        parts = record.split(b" ", 2)
        lines.append(parts[2] if len(parts) == 3 else b"")
    return b"\n".join(lines)[-FALLBACK_BYTES:].decode("utf-8", "replace")


def run_once(
    launch: Launch,
    *,
    procs: ProcessTable,
    host_paths: HostPaths,
    container_log: ContainerLog,
    scratch: Path,
    stop: StopSignal,
    on_start: Callable[[str], None],
) -> tuple[int, str]:
    """Run the container to its end; return (exit code, termination message)."""
    log_path = container_log.new_run()
    claims = _prepare_host(launch, host_paths)
    read_from, bind, term_claims = _termination(launch, scratch, host_paths)
    claims += term_claims
    try:
        argv = bwrap_command(
            launch.argv,
            launch.mounts,
            launch.workdir,
            termination_file=bind,
            termination_path=launch.termination_path,
        )
        proc = procs.spawn(argv, launch.env)
        on_start(f"localproc://{uuid.uuid4().hex}")
        assert proc.stdout is not None
        pumper = threading.Thread(
            target=pump, args=(proc.stdout, log_path), name=f"log-{log_path.name}", daemon=True
        )
        pumper.start()
        code = _wait(proc, stop)
        pumper.join(timeout=5)
        procs.forget(proc)
        pumper.join(timeout=5)
        proc.stdout.close()
    finally:
        container_log.finished.set()
        host_paths.release(claims)
    message = read_from.read_bytes()[:MESSAGE_LIMIT].decode("utf-8", "replace")
    if not message and code != 0 and launch.fallback_to_logs:
        message = _log_tail(log_path)
    return code, message


def _wait(proc: subprocess.Popen[bytes], stop: StopSignal) -> int:
    while True:
        try:
            return _exit_code(proc.wait(timeout=0.2))
        except subprocess.TimeoutExpired:
            if stop.event.is_set():
                break
    # Graceful stop: SIGTERM the container, sparing bwrap (see signal_group).
    signal_group(proc.pid, signal.SIGTERM, spare=proc.pid)
    deadline = time.monotonic() + stop.grace()
    while time.monotonic() < deadline:
        try:
            return _exit_code(proc.wait(timeout=0.1))
        except subprocess.TimeoutExpired:
            continue
    signal_group(proc.pid, signal.SIGKILL)
    return _exit_code(proc.wait())
