"""Where task cache entries and their artifacts are kept: the work directory for
`pipesync run` (`LocalCacheStore`), S3 for the operator (`ObjectCacheStore`), both laid
out as `<namespace>/cache/<key>.json` (`engine.layout`).

Locally, artifacts an entry serves are kept by their digest (`<namespace>/cache/blobs/
<sha256>`, hard links where the file system allows), so an entry outlives the run that made it (a
Run file run again under its own name starts clean) and two runs storing the same key
or the same content at once write the same bytes under the same names. Every write goes
to a unique temporary name first and is renamed into place: a reader sees a whole entry
or none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from pipesync.api import conventions
from pipesync.engine import layout
from pipesync.engine.cache import CacheEntry, StoredArtifact
from pipesync.runtime.digests import content_digest
from pipesync.runtime.storage import NotFound, ObjectStore


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


#: An entry is a few KiB; anything bigger under a cache key was not written by pipesync
#: (whoever can write the namespace's prefix can put anything there): read as a miss.
MAX_ENTRY_BYTES = 1 << 20


class ObjectCacheStore:
    """The operator's task cache in S3: entries at `<prefix>/<namespace>/cache/<key>.json`,
    artifacts where their source run's tasks wrote them, checked by the store's content
    tags (no download) and copied server-side into the run they serve."""

    def __init__(self, store: ObjectStore, prefix: str = "") -> None:
        self.store = store
        self.prefix = prefix.strip("/")

    def full(self, key: str) -> str:
        """A layout key (engine.layout) as the store holds it: under the operator's prefix."""
        return f"{self.prefix}/{key}" if self.prefix else key

    def get(self, namespace: str, key: str) -> CacheEntry | None:
        """The entry of `key`; None when there is none or it is not pipesync's (too big,
        not JSON, another format). Store failures other than NotFound propagate."""
        data = bytearray()
        try:
            for chunk in self.store.get_chunks(self.full(layout.cache_entry_key(namespace, key))):
                data += chunk
                if len(data) > MAX_ENTRY_BYTES:
                    return None
        except NotFound:
            return None
        try:
            return CacheEntry.from_json(json.loads(bytes(data)))
        except ValueError:
            return None

    def put(self, namespace: str, entry: CacheEntry) -> None:
        """One object written whole: two runs storing the same key at once leave one
        complete entry or the other, never a mix."""
        body = json.dumps(entry.to_json(), sort_keys=True).encode()
        self.store.put_bytes(self.full(layout.cache_entry_key(namespace, entry.key)), body)

    def stored(self, key: str, sha256: str) -> StoredArtifact:
        """An artifact a succeeded task wrote at `key`, as an entry keeps it."""
        return StoredArtifact(key, sha256, tags_digest(self.store.content_tags(key)))

    def intact(self, namespace: str, stored: StoredArtifact) -> Mapping[str, str] | None:
        """An artifact an entry names, if it may serve this namespace: it lies in the
        namespace's own runs (an entry is data anyone with write access to the prefix
        could forge, and the operator can read every namespace's keys) and its objects
        are all still there, unchanged since it was stored. Its objects' tags (what
        `copy` copies, so the listing is made once); None when it may not serve."""
        runs = self.full(f"{namespace}/runs/")
        if not stored.key.startswith(runs) or not stored.tags:
            return None
        tags = self.store.content_tags(stored.key)
        return tags if tags and tags_digest(tags) == stored.tags else None

    def copy(self, key: str, objects: Iterable[str], target: str) -> None:
        """Copies an artifact's objects (paths below `key`, as `content_tags` lists them)
        to `target`, the serving run's own key, so the run keeps its results whatever
        happens to the source run's."""
        for below in sorted(objects):
            suffix = f"/{below}" if below else ""
            self.store.copy(f"{key}{suffix}", f"{target}{suffix}")


def tags_digest(tags: Mapping[str, str]) -> str:
    """One digest for an artifact's objects and their content tags; "" for none."""
    if not tags:
        return ""
    return hashlib.sha256(conventions.canonical_json(sorted(tags.items()))).hexdigest()
