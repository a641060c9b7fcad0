"""Finding and reading the files a command is pointed at, refusing oversized ones early."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pipesync.api import conventions, documents, yamlsource
from pipesync.api.diagnostics import Diagnostic
from pipesync.engine import checks, loading

YAML_SUFFIXES = (".yaml", ".yml")


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
        subdirs[:] = sorted(
            d for d in subdirs if d not in conventions.NOT_SOURCE_DIRS and not d.startswith(".")
        )
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


#: Below this many files one process is faster than starting workers and sending
#: their results back.
PARALLEL_FROM_FILES = 200
#: Files per task sent to a worker: large enough that pickling the results is cheap
#: next to parsing, small enough to spread a repository over the workers.
_CHUNK_FILES = 50

Checked = tuple[list[documents.Resource], list[Diagnostic], dict[int, checks.Checked]]


def load_checked(paths: Sequence[Path], roots: Iterable[Path] = ()) -> Checked:
    """`load_all`, plus each Pipeline's own checks (`checks.check_pipelines`), in
    worker processes when there are many files: parsing and compiling are per file and
    CPU-bound, so a 2-core machine validates a large repository in about half the time.
    The result is the same, in the same order, as one process would give."""
    trees = list(roots)
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) < PARALLEL_FROM_FILES or workers < 2 or "fork" not in _START_METHODS:
        return _load_chunk((list(paths), trees))
    chunks = [
        (list(paths[i : i + _CHUNK_FILES]), trees) for i in range(0, len(paths), _CHUNK_FILES)
    ]
    resources: list[documents.Resource] = []
    problems: list[Diagnostic] = []
    checked: dict[int, checks.Checked] = {}
    # fork: the workers start with pipesync already imported (a spawn costs ~0.2 s each)
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        for loaded, found, own in pool.map(_load_chunk, chunks):
            offset = len(resources)
            checked.update({offset + position: result for position, result in own.items()})
            resources.extend(loaded)
            problems.extend(found)
    return resources, problems, checked


_START_METHODS = multiprocessing.get_all_start_methods()


#: How deep a checked Pipeline's positions stay when sent back from a worker: its
#: cross-document checks only locate its name (`metadata.name`).
_SENT_DEPTH = 2


def _load_chunk(chunk: tuple[list[Path], list[Path]]) -> Checked:
    paths, roots = chunk
    resources, problems = load_all(paths, roots)
    checked = checks.check_pipelines(resources)
    # A Pipeline's own problems are located above; the rest of its positions would only
    # make the results several times larger to send and read back in the parent.
    sent = [
        dataclasses.replace(r, source=r.source.shallow(_SENT_DEPTH)) if i in checked else r
        for i, r in enumerate(resources)
    ]
    return sent, problems, checked
