"""Mount points and working directories that bwrap needs but the host lacks.

The sandbox's root is the host's root, so a mount target such as
/work/shared-dir must exist on the host for bwrap to mount over it. This module
creates those paths before a container starts and removes them again once no
running pod needs them (reference counted, deepest first, only if still empty),
so tests leave the host as they found it.

Several agents may share one host (pytest-xdist workers, a benchmark beside a test run):
every agent also leaves a claim file per path it uses in a shared directory, and a path
is removed only when no live process still claims it. Otherwise one agent's clean-up
would pull a mount point from under another agent's running sandbox.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)

CLAIMS = Path(tempfile.gettempdir()) / "pipesync-nodeagent-claims"


def _claim_stem(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:24]


def _claim(path: Path) -> None:
    CLAIMS.mkdir(parents=True, exist_ok=True)
    (CLAIMS / f"{_claim_stem(path)}-{os.getpid()}").touch()


def _unclaim(path: Path) -> None:
    (CLAIMS / f"{_claim_stem(path)}-{os.getpid()}").unlink(missing_ok=True)


def _mark_created(path: Path) -> None:
    """Remember that an agent, not the host, made `path`: only such paths are removed."""
    CLAIMS.mkdir(parents=True, exist_ok=True)
    (CLAIMS / f"{_claim_stem(path)}.created").touch()


def _was_created(path: Path) -> bool:
    return (CLAIMS / f"{_claim_stem(path)}.created").exists()


def _claimed_elsewhere(path: Path) -> bool:
    """Whether another live process still uses `path` (stale claims are cleared)."""
    for claim in CLAIMS.glob(f"{_claim_stem(path)}-*"):
        pid = int(claim.name.rsplit("-", 1)[1])
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            claim.unlink(missing_ok=True)  # its agent died without cleaning up
            continue
        except PermissionError:
            pass
        return True
    return False


class HostPaths:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: Counter[Path] = Counter()

    def ensure(self, path: Path, *, is_file: bool = False) -> list[Path]:
        """Create `path` (and missing parents); return the claims to release later."""
        with self._lock:
            missing: list[Path] = []
            probe = path
            while not os.path.lexists(probe) and probe != probe.parent:
                missing.append(probe)
                probe = probe.parent
            for created in reversed(missing):
                if created == path and is_file:
                    created.touch()
                else:
                    created.mkdir(exist_ok=True)  # another agent may race us here
                _mark_created(created)
            # Paths another running pod created are shared: claim them too, so they
            # are not removed while this pod still uses them.
            shared = {p for p in self._users if p == path or p in path.parents}
            claims = sorted(set(missing) | shared | {path})
            for p in claims:
                if self._users[p] == 0:
                    _claim(p)
                self._users[p] += 1
            return claims

    def release(self, claims: list[Path]) -> None:
        with self._lock:
            for p in claims:
                self._users[p] -= 1
            unused = [p for p in claims if self._users[p] <= 0]
            # Deepest first, so parents are empty when their turn comes.
            for p in sorted(unused, key=lambda q: len(q.parts), reverse=True):
                del self._users[p]
                _unclaim(p)
                if not _was_created(p) or _claimed_elsewhere(p):
                    continue  # the host had it, or another agent's pod still needs it
                (CLAIMS / f"{_claim_stem(p)}.created").unlink(missing_ok=True)
                try:
                    if p.is_dir() and not p.is_symlink():
                        p.rmdir()
                    elif p.is_file() and p.stat().st_size == 0:
                        p.unlink()
                except OSError as err:  # not empty any more: someone else's files
                    log.warning("leaving %s on the host: %s", p, err)

    def __len__(self) -> int:
        return len(self._users)
