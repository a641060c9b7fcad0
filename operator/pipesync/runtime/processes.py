"""One task attempt as a local process: started in its own process group, logged to a
file, stopped as a group (one TERM, then KILL after a grace period) on timeout or cancel,
and whatever it leaves running in its group is stopped the same way when it ends."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipesync.engine.retries import FailureKind

GRACE_SECONDS = 5.0
#: How often the end of a stopped group is checked for during the grace period.
_GROUP_POLL_SECONDS = 0.05


@dataclasses.dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None
    failure: FailureKind | None  # None when it exited 0
    message: str
    started_at: float
    finished_at: float


class TaskProcess:
    """A running attempt; `stop()` may be called from any thread."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        timeout: float | None,
    ) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.timeout = timeout
        self._stopped = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        # Set once the group is being stopped: the planner asks again on every pass while
        # a cancel is under way, and a task must get one SIGTERM, not one per pass.
        self._stopping: threading.Thread | None = None

    def run(self) -> ProcessResult:
        """Runs to the end (blocking) and says how it ended."""
        started = time.time()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            try:
                with self._lock:
                    if self._stopped.is_set():
                        return ProcessResult(
                            None, FailureKind.CANCELLED, "stopped", started, time.time()
                        )
                    self._process = subprocess.Popen(
                        self.argv,
                        cwd=self.cwd,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own group, so stop() reaches children
                    )
            except FileNotFoundError:
                return ProcessResult(
                    None,
                    FailureKind.ERROR,
                    f"command not found: {self.argv[0]!r}",
                    started,
                    time.time(),
                )
            except PermissionError:
                return ProcessResult(
                    None,
                    FailureKind.ERROR,
                    f"command is not executable: {self.argv[0]!r}",
                    started,
                    time.time(),
                )
            process = self._process
            try:
                code = process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._stop_group(process)
                return ProcessResult(
                    process.returncode,
                    FailureKind.TIMED_OUT,
                    f"timed out after {self.timeout:g}s",
                    started,
                    time.time(),
                )
            finally:
                # Every way out: children it started (`cmd &`) do not outlive the attempt.
                self._stop_group(process)
        finished = time.time()
        if self._stopped.is_set():
            return ProcessResult(code, FailureKind.CANCELLED, "stopped", started, finished)
        if code == 0:
            return ProcessResult(0, None, "", started, finished)
        if code < 0:
            message = f"killed by signal {signal.Signals(-code).name}"
        else:
            message = f"exited with code {code}"
        return ProcessResult(code, FailureKind.FAILED, message, started, finished)

    def stop(self) -> None:
        """Stop the attempt (TERM, then KILL after the grace period); calling it again
        while it stops changes nothing."""
        with self._lock:
            self._stopped.set()
            process = self._process
        if process is not None and process.poll() is None:
            self._start_stopping(process)

    def kill(self) -> None:
        """KILL the whole group now (pipesync itself is going away)."""
        with self._lock:
            self._stopped.set()
            process = self._process
        if process is not None:
            _signal_group(process.pid, signal.SIGKILL)

    def _start_stopping(self, process: subprocess.Popen[bytes]) -> threading.Thread:
        with self._lock:
            if self._stopping is None:
                self._stopping = threading.Thread(target=_terminate, args=(process,), daemon=True)
                self._stopping.start()
            return self._stopping

    def _stop_group(self, process: subprocess.Popen[bytes]) -> None:
        """Blocks until nothing of the group is left, stopping what still runs."""
        if process.poll() is not None and not _group_alive(process.pid):
            return  # the usual case: it ended and took nothing with it
        self._start_stopping(process).join()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """One SIGTERM to the group; SIGKILL to whatever of it is left after the grace period."""
    _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    # The leader is reaped first (poll), else its zombie would keep the group "alive".
    while (process.poll() is None or _group_alive(process.pid)) and time.monotonic() < deadline:
        time.sleep(_GROUP_POLL_SECONDS)
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
