"""Content digests of what tasks read and write: one file (a source archive, an
artifact) or a directory of them. One definition for the pod agent, the operator and
the local executor, so a digest stored by one is checked by another."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (archives can be large)."""
    sha = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def content_digest(path: Path) -> str:
    """sha256 of a file, or of a directory (each file's relative path and digest, in
    order); "" when nothing is there. Links are followed (collected forEach artifacts
    are folders of links)."""
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return ""
    sha = hashlib.sha256(b"dir\0")
    for folder, dirs, files in os.walk(path, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            file = Path(folder, name)
            sha.update(file.relative_to(path).as_posix().encode() + b"\0")
            sha.update(content_digest(file).encode() + b"\0")
    return sha.hexdigest()
