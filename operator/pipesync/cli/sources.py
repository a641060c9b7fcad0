"""Finding and reading the files a command is pointed at, refusing oversized ones early."""

from __future__ import annotations

import os
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


def read(path: Path) -> tuple[bytes | None, list[Diagnostic]]:
    """The bytes of a file, unless it is too large (checked before reading)."""
    file = str(path)
    try:
        size = path.stat().st_size
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


def load_all(paths: Iterable[Path]) -> tuple[list[documents.Resource], list[Diagnostic]]:
    resources: list[documents.Resource] = []
    problems: list[Diagnostic] = []
    for path in paths:
        raw, found = read(path)
        problems.extend(found)
        if raw is not None:
            loaded, found = loading.load(raw, str(path))
            resources.extend(loaded)
            problems.extend(found)
    return resources, problems
