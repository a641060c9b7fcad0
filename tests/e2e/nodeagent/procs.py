"""Process bookkeeping: spawn containers in their own process groups, signal, reap.

Every container runs as a process group led by its bwrap process. The agent is
a child subreaper, so processes a container leaves behind are re-parented to
the agent (not to init) and are reaped here, which makes "the pid is gone" true
as soon as a pod is stopped. A pid file per group in the state directory lets
the test fixture kill stragglers even if the agent itself was killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _stat_fields(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, pgrp) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _own_children() -> list[int]:
    """Our direct children, cheaply when the kernel lists them per thread."""
    found: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            found += [int(p) for p in Path(f"/proc/self/task/{task}/children").read_text().split()]
    except OSError:
        return _pids()  # kernel without CONFIG_PROC_CHILDREN: scan everything
    return found


def group_members(pgid: int) -> list[int]:
    members = []
    for pid in _pids():
        info = _stat_fields(pid)
        if info is not None and info[2] == pgid and info[0] != "Z":
            members.append(pid)
    return members


def signal_group(pgid: int, sig: int, *, spare: int | None = None) -> None:
    """Send `sig` to every live member of a process group, except `spare`.

    Sparing bwrap on SIGTERM matters: bwrap would die at once and take the
    container down with SIGKILL (--die-with-parent), denying it a graceful stop.
    """
    for pid in group_members(pgid):
        if pid != spare:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


class ProcessTable:
    """The container processes this agent started."""

    def __init__(self, pid_dir: Path) -> None:
        self.pid_dir = pid_dir
        pid_dir.mkdir(parents=True, exist_ok=True)
        # Held while spawning and while reaping orphans, so the reaper never
        # collects a child whose Popen has not been registered yet.
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with self._lock:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._children[proc.pid] = proc
            (self.pid_dir / str(proc.pid)).write_text(" ".join(argv))
        return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        """Called once the process was waited for."""
        with self._lock:
            self._children.pop(proc.pid, None)
        # The group may outlive its leader (a daemonized child): kill what is left.
        signal_group(proc.pid, signal.SIGKILL)
        (self.pid_dir / str(proc.pid)).unlink(missing_ok=True)

    def reap_orphans(self) -> None:
        """Collect zombies re-parented to us that no Popen will ever wait for."""
        me = os.getpid()
        with self._lock:
            for pid in _own_children():
                info = _stat_fields(pid)
                if info and info[0] == "Z" and info[1] == me and pid not in self._children:
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)

    def kill_all(self) -> None:
        with self._lock:
            groups = list(self._children)
        for pgid in groups:
            signal_group(pgid, signal.SIGKILL)

    def reaper(self, stop: threading.Event, interval: float = 0.25) -> None:
        while not stop.wait(interval):
            try:
                self.reap_orphans()
            except Exception:
                log.exception("reaping failed")


def kill_recorded_groups(pid_dir: Path) -> list[int]:
    """For the fixture: SIGKILL every process group the agent recorded and did not clean up."""
    killed: list[int] = []
    if not pid_dir.is_dir():
        return killed
    for entry in pid_dir.iterdir():
        if entry.name.isdigit():
            pgid = int(entry.name)
            if group_members(pgid):
                signal_group(pgid, signal.SIGKILL)
                killed.append(pgid)
            entry.unlink(missing_ok=True)
    return killed
