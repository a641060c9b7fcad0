"""Mount points and working directories that bwrap needs but the host lacks.

The sandbox's root is the host's root, so a mount target such as
/work/shared-dir must exist on the host for bwrap to mount over it. This module
creates those paths before a container starts and removes them again once no
running pod needs them (reference counted, deepest first, only if still empty),
so tests leave the host as they found it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from pathlib import Path

log = logging.getLogger(__name__)


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
                    created.mkdir()
            # Paths another running pod created are shared: claim them too, so they
            # are not removed while this pod still uses them.
            shared = {p for p in self._users if p == path or p in path.parents}
            claims = sorted(set(missing) | shared)
            for p in claims:
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
                try:
                    if p.is_dir() and not p.is_symlink():
                        p.rmdir()
                    elif p.is_file() and p.stat().st_size == 0:
                        p.unlink()
                except OSError as err:  # not empty any more: someone else's files
                    log.warning("leaving %s on the host: %s", p, err)

    def __len__(self) -> int:
        return len(self._users)
