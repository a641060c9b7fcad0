"""The task cache of `pipesync run`: entries and artifacts in the work directory, laid out
as in S3 (`<namespace>/cache/<key>.json`, `engine.layout`), with content digests.

Artifacts an entry serves are kept by their digest (`<namespace>/cache/blobs/<sha256>`,
hard links where the file system allows), so an entry outlives the run that made it (a
Run file run again under its own name starts clean) and two runs storing the same key
or the same content at once write the same bytes under the same names. Every write goes
to a unique temporary name first and is renamed into place: a reader sees a whole entry
or none.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from pipesync.engine import layout
from pipesync.engine.cache import CacheEntry, StoredArtifact
from pipesync.runtime.digests import content_digest


class LocalCacheStore:
    """Entries and blobs under `root` (the work directory) for one namespace."""

    def __init__(self, root: Path, namespace: str) -> None:
        self.root = root
        self.namespace = namespace

    def get(self, key: str) -> CacheEntry | None:
        path = self.root / layout.cache_entry_key(self.namespace, key)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return CacheEntry.from_json(data)

    def intact(self, stored: StoredArtifact) -> bool:
        """Whether the artifact is still there with the content it was stored with."""
        path = self.path(stored)
        return path is not None and content_digest(path) == stored.sha256

    def path(self, stored: StoredArtifact) -> Path | None:
        """Where a stored artifact is; None for a key outside this store's blobs."""
        blobs = self._blobs()
        path = (self.root / stored.key).resolve()
        return path if path.parent == blobs.resolve() else None

    def keep(self, source: Path, sha: str) -> StoredArtifact:
        """Keep a task's output artifact, whose content digest is `sha`, as a blob; its
        stored form."""
        blobs = self._blobs()
        target = blobs / sha
        if not target.exists():
            blobs.mkdir(parents=True, exist_ok=True)
            temporary = blobs / f".{sha}.{secrets.token_hex(4)}"
            _link_or_copy(source, temporary)
            try:
                temporary.rename(target)
            except OSError:  # another run stored the same content meanwhile
                _remove(temporary)
        return StoredArtifact(target.relative_to(self.root).as_posix(), sha)

    def put(self, entry: CacheEntry) -> None:
        path = self.root / layout.cache_entry_key(self.namespace, entry.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        temporary.write_text(json.dumps(entry.to_json(), indent=1, sort_keys=True))
        temporary.replace(path)

    def _blobs(self) -> Path:
        return self.root / self.namespace / "cache" / "blobs"


def restore(source: Path, target: Path) -> None:
    """Put a stored artifact where a task's output would be (hard links where possible)."""
    _remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _link_or_copy(source, target)


def _link_or_copy(source: Path, target: Path) -> None:
    source = source.resolve()
    if source.is_dir():
        shutil.copytree(source, target, copy_function=_link_file, symlinks=False)
    else:
        _link_file(str(source), str(target))


def _link_file(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class LocalCache:
    """What the local executor caches with: the store, and the digest of a task's code
    (`cache.paths`) in the working tree (gitops.codeids, passed in by the CLI)."""

    store: LocalCacheStore
    code_digest: Callable[[Sequence[str] | None], str]
