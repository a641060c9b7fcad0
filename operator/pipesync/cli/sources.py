"""Finding and reading the files a command is pointed at, refusing oversized ones early."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from pipesync.api import documents, yamlsource
from pipesync.api.diagnostics import Diagnostic
from pipesync.engine import loading

YAML_SUFFIXES = (".yaml", ".yml")
_SKIPPED_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".pipesync"}


class UsageError(Exception):
    """A path that does not exist or cannot be read: the user's command is wrong."""


def discover(paths: Iterable[str]) -> list[Path]:
    """Files named directly, plus every YAML file below named directories (sorted)."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found.extend(sorted(_walk(path)))
        elif path.exists():
            found.append(path)
        else:
            raise UsageError(f"{text}: no such file or directory")
    return list(dict.fromkeys(found))


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in _SKIPPED_DIRS and not d.startswith("."))
        for name in files:
            if name.endswith(YAML_SUFFIXES):
                yield Path(directory) / name


def directories(paths: Iterable[str]) -> list[Path]:
    """The directories among the paths a command was given: the trees files must stay in."""
    return [Path(text) for text in paths if Path(text).is_dir()]


def escaping_link(path: Path, roots: Iterable[Path]) -> str | None:
    """Why `path` (found below one of `roots`) must not be read: a symlink, here or in a
    folder on its way, that points out of that tree; None when it stays inside."""
    for root in roots:
        try:
            path.relative_to(root)
        except ValueError:
            continue
        real_root = root.resolve()
        target = path.resolve()
        if target != real_root and real_root not in target.parents:
            return (
                f"symbolic link to {target}, outside {root}; pipesync does not follow "
                "links out of the tree (replace it with the file itself)"
            )
        return None
    return None


def read(path: Path) -> tuple[bytes | None, list[Diagnostic]]:
    """The bytes of a file, unless it is too large (checked before reading) or not a
    regular file (a FIFO, a device such as /dev/stdin: reading it could block forever)."""
    file = str(path)
    try:
        status = path.stat()
        if not stat.S_ISREG(status.st_mode):
            return None, [
                Diagnostic(file, 1, 1, "not a regular file (a device, FIFO or socket); not read")
            ]
        size = status.st_size
        if size > yamlsource.MAX_FILE_BYTES:
            return None, [
                Diagnostic(
                    file,
                    1,
                    1,
                    f"file is {size} bytes, larger than the {yamlsource.MAX_FILE_BYTES} "
                    "bytes allowed; refusing to read it",
                )
            ]
        with path.open("rb") as stream:
            return stream.read(yamlsource.MAX_FILE_BYTES + 1), []
    except OSError as error:
        return None, [Diagnostic(file, 1, 1, f"cannot read: {error.strerror}")]


def load_all(
    paths: Iterable[Path], roots: Iterable[Path] = ()
) -> tuple[list[documents.Resource], list[Diagnostic]]:
    """Every file's resources and problems; files below `roots` must stay in that tree."""
    resources: list[documents.Resource] = []
    problems: list[Diagnostic] = []
    trees = list(roots)
    for path in paths:
        escape = escaping_link(path, trees)
        if escape is not None:
            problems.append(Diagnostic(str(path), 1, 1, escape))
            continue
        raw, found = read(path)
        problems.extend(found)
        if raw is not None:
            loaded, found = loading.load(raw, str(path))
            resources.extend(loaded)
            problems.extend(found)
    return resources, problems
