"""What a repository declares at one commit, read from git's object store.

The GitSource controller and `pipesync diff` both need the same answer to "which
resources does this commit define, and what is wrong with it?", and neither may check
the commit out: a working tree would follow symlinks, run hooks and race with other
syncs. So this module walks the commit's tree objects, reads blobs by size-checked
streams, and validates them exactly as `pipesync validate` does (api.documents.load,
then engine.checks.check over the whole set).

Decisions (documented in docs/diff.md):
- A file with one bad document still yields its good documents (as `validate` reports
  them): a broken document must not hide its valid neighbours. Its problem names the
  file, line and column. Callers that keep the last good version of broken objects
  should treat every object a file used to define as "kept" while that file has a
  problem, since the broken document's identity may not be readable.
- A semantic problem (engine.checks) makes the document it points into invalid, so it
  is left out of `resources`; problems are attributed to the document whose start is the
  nearest one at or before the problem's position in the same file.
- A document whose kind does not belong in its folder (a Run under pipelines/, any
  GitSource) is a problem and is left out.
- Symlinks are never followed: a symlink (file or folder) is a problem of that path.
  Anywhere in the commit, a symlink that points out of the repository (absolute, or
  with enough '..') is a problem of its path too: task pods unpack the whole tree, and
  their archive check refuses such a link, so every task would fail.
  Submodules are a problem too (their content is not in this repository).
- Files larger than api.yamlsource.MAX_FILE_BYTES are refused before their blob is read.
"""

from __future__ import annotations

import bisect
import dataclasses
import posixpath
from collections.abc import Iterator

import git

from pipesync.api import model, yamlsource
from pipesync.api.diagnostics import Diagnostic, Severity
from pipesync.api.documents import Resource
from pipesync.engine import checks, loading

#: The folders a GitSource reads and the one kind each may hold.
FOLDER_KINDS: dict[str, model.Kind] = {
    "pipelines": model.Kind.PIPELINE,
    "experiments": model.Kind.EXPERIMENT,
    "recurring-runs": model.Kind.RECURRING_RUN,
    "runs": model.Kind.RUN,
}
YAML_SUFFIXES = (".yaml", ".yml")

_BLOB_MODE = 0o100000
_SYMLINK_MODE = 0o120000
_SUBMODULE_MODE = 0o160000
_TREE_MODE = 0o040000


class SnapshotError(Exception):
    """The commit or the path cannot be read at all (unknown revision, path missing or
    not a folder, path escaping the repository). Per-file problems are not errors."""


@dataclasses.dataclass(frozen=True)
class FileProblem:
    """One problem in one file, at a 1-based line and column (1:1 for whole-file ones)."""

    file: str  # repo-relative, '/'-separated
    line: int
    column: int
    message: str

    def format(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    commit: str  # full hex sha
    # every valid document, each knowing its file (repo-relative) and position, sorted
    # by file then position
    resources: tuple[Resource, ...]
    problems: tuple[FileProblem, ...]  # every invalid file/document, located, sorted
    # every YAML file read (repo-relative) -> "Kind/name" of the valid documents it
    # defines; a file with only broken documents maps to ()
    files: dict[str, tuple[str, ...]]


def resource_key(resource: Resource) -> str:
    """ "Kind/name", the identity used in `Snapshot.files` and in diffs."""
    return f"{resource.kind.value}/{resource.name}"


def normalise_path(path: str) -> str:
    """A GitSource `path` as a repo-relative prefix ('' for the root); refuses absolute
    paths and any '..' so nothing can be read outside the repository's tree."""
    text = path.strip().replace("\\", "/")
    if text.startswith("/"):
        raise SnapshotError(f"path {path!r} must be relative to the repository root")
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise SnapshotError(f"path {path!r} must not contain '..'")
    return "/".join(parts)


def resolve(repo: git.Repo, rev: str) -> git.Commit:
    """A branch, tag, SHA or expression such as HEAD~1 as a commit; a clear error if not.

    GitPython's rev_parse works in-process (no `git` command line), so a revision that
    looks like an option cannot become one."""
    try:
        commit = repo.commit(rev)
        commit.tree  # noqa: B018 -- objects load lazily: a missing one fails here, not later
        return commit
    except (git.BadName, git.BadObject, ValueError, IndexError, TypeError) as error:
        raise SnapshotError(f"unknown revision {rev!r}: {error}") from None


def read_snapshot(repo: git.Repo, commit: str, path: str = ".") -> Snapshot:
    """Every resource and every problem of the repository layout under `path` at `commit`."""
    resolved = resolve(repo, commit)
    prefix = normalise_path(path)
    root = _subtree(resolved.tree, prefix, path)
    problems: list[Diagnostic] = []
    loaded: list[Resource] = []
    files: dict[str, tuple[str, ...]] = {}
    for folder, kind in FOLDER_KINDS.items():
        entry = _child(root, folder)
        where = posixpath.join(prefix, folder) if prefix else folder
        if entry is None:
            continue
        if entry.mode != _TREE_MODE:
            problems.append(_whole(where, _not_a_folder(entry.mode)))
            continue
        for file, item in _walk(entry.obj, where):
            files[file] = ()
            if item.mode == _SYMLINK_MODE:
                problems.append(_whole(file, "symbolic link; pipesync does not follow links"))
                continue
            if item.mode == _SUBMODULE_MODE:
                problems.append(_whole(file, "git submodule; its content is not in this commit"))
                continue
            blob = item.obj
            if blob.size > yamlsource.MAX_FILE_BYTES:
                problems.append(
                    _whole(
                        file,
                        f"file is {blob.size} bytes, larger than the "
                        f"{yamlsource.MAX_FILE_BYTES} bytes allowed; refusing to read it",
                    )
                )
                continue
            raw = blob.data_stream.read(yamlsource.MAX_FILE_BYTES + 1)
            resources, found = loading.load(raw, file)
            problems.extend(found)
            for resource in resources:
                if resource.kind is kind:
                    loaded.append(resource)
                else:
                    problems.append(
                        resource.diagnostic(
                            ("kind",),
                            f"a {resource.kind.value} does not belong in {folder}/ "
                            f"(it holds {kind.value} documents only)",
                        )
                    )
    problems.extend(_outward_links(resolved.tree, {*files, *(p.file for p in problems)}))
    semantic = checks.check(loaded)
    problems.extend(semantic)
    invalid = _documents_with_errors(loaded, semantic)
    valid = [r for r in loaded if id(r) not in invalid]
    valid.sort(key=lambda r: (r.source.file, r.source.start, r.source.index))
    for resource in valid:
        files[resource.source.file] = (*files[resource.source.file], resource_key(resource))
    located = sorted(
        {
            FileProblem(p.file, p.line, p.column, p.message)
            for p in problems
            if p.severity is Severity.ERROR
        },
        key=lambda p: (p.file, p.line, p.column, p.message),
    )
    return Snapshot(resolved.hexsha, tuple(valid), tuple(located), dict(sorted(files.items())))


def _outward_links(tree: git.Tree, reported: set[str]) -> list[Diagnostic]:
    """Symlinks anywhere in the commit whose target leaves the repository's tree."""
    problems: list[Diagnostic] = []
    for item in tree.traverse():
        if not isinstance(item, git.Blob) or item.mode != _SYMLINK_MODE:
            continue
        path = str(item.path)
        if path in reported:
            continue
        target = item.data_stream.read(4096).decode("utf-8", "replace")
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if target.startswith("/") or joined == ".." or joined.startswith("../"):
            problems.append(
                _whole(
                    path,
                    f"symbolic link to {target!r}, outside the repository; task pods refuse "
                    "to unpack a tree with it, so every task would fail: replace it with the "
                    "file itself or a link inside the repository",
                )
            )
    return problems


def _subtree(tree: git.Tree, prefix: str, shown: str) -> git.Tree:
    current = tree
    walked = ""
    for part in prefix.split("/") if prefix else []:
        walked = posixpath.join(walked, part) if walked else part
        entry = _child(current, part)
        if entry is None:
            raise SnapshotError(f"path {shown!r}: {walked!r} does not exist at this commit")
        if entry.mode != _TREE_MODE:
            raise SnapshotError(f"path {shown!r}: {walked!r} is {_not_a_folder(entry.mode)}")
        current = entry.obj
    return current


@dataclasses.dataclass(frozen=True)
class _Entry:
    mode: int
    obj: git.Tree | git.Blob | git.Submodule


def _child(tree: git.Tree, name: str) -> _Entry | None:
    for item in tree:
        if item.name == name:
            return _Entry(item.mode, item)
    return None


def _walk(tree: git.Tree, where: str) -> Iterator[tuple[str, _Entry]]:
    """YAML files below a folder, sorted, hidden ones skipped (as `validate` does), plus
    every symlink and submodule, which the caller reports instead of following."""
    for item in sorted(tree, key=lambda i: i.name):
        name = item.name
        file = f"{where}/{name}"
        if item.mode == _TREE_MODE:
            if not name.startswith("."):
                yield from _walk(item, file)
        elif item.mode in (_SYMLINK_MODE, _SUBMODULE_MODE):
            yield file, _Entry(item.mode, item)  # whatever its name: it may hide a folder
        elif name.endswith(YAML_SUFFIXES) and not name.startswith("."):
            yield file, _Entry(item.mode, item)


def _not_a_folder(mode: int) -> str:
    if mode == _SYMLINK_MODE:
        return "a symbolic link; pipesync does not follow links"
    if mode == _SUBMODULE_MODE:
        return "a git submodule; its content is not in this commit"
    return "a file, not a folder"


def _whole(file: str, message: str) -> Diagnostic:
    return Diagnostic(file, 1, 1, message)


def _documents_with_errors(resources: list[Resource], problems: list[Diagnostic]) -> set[int]:
    """ids of the resources that an error points into: the document of the same file whose
    start is the last one at or before the error's position."""
    starts: dict[str, list[tuple[tuple[int, int], Resource]]] = {}
    for resource in resources:
        start = resource.source.start
        starts.setdefault(resource.source.file, []).append(((start.line, start.column), resource))
    for entries in starts.values():
        entries.sort(key=lambda e: e[0])
    invalid: set[int] = set()
    for problem in problems:
        if problem.severity is not Severity.ERROR:
            continue
        entries = starts.get(problem.file, [])
        index = bisect.bisect_right([e[0] for e in entries], (problem.line, problem.column)) - 1
        if entries:
            invalid.add(id(entries[max(index, 0)][1]))
    return invalid
