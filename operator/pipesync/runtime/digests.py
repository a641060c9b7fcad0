"""Content digests of what tasks read and write: one file (a source archive, an
artifact) or a directory of them. One definition for the pod agent, the operator and
the local executor, so a digest stored by one is checked by another."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks (archives can be large)."""
    with path.open("rb") as stream:
        return stream_sha256(stream)


def tree_digest(files: Iterable[tuple[str, str]]) -> str:
    """sha256 of a directory from its files: (relative POSIX path, file digest) pairs, in
    any order. The local executor walks a folder, the pod agent lists what it uploaded;
    both come to the same digest for the same files."""
    sha = hashlib.sha256(b"dir\0")
    for relative, digest in sorted(files):
        sha.update(relative.encode() + b"\0" + digest.encode() + b"\0")
    return sha.hexdigest()


def content_digest(path: Path) -> str:
    """sha256 of a file, or of a directory (`tree_digest` of its files); "" when nothing
    is there. Links are followed (collected forEach artifacts are folders of links)."""
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return ""
    files = []
    for folder, _dirs, names in os.walk(path, followlinks=True):
        for name in names:
            file = Path(folder, name)
            files.append((file.relative_to(path).as_posix(), file_sha256(file)))
    return tree_digest(files)


def stream_sha256(stream: BinaryIO) -> str:
    """The hex sha256 of what is left in an open file, which is then rewound to where it
    was (the pod agent digests an output, then uploads the same descriptor)."""
    start = stream.tell()
    sha = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        sha.update(chunk)
    stream.seek(start)
    return sha.hexdigest()
