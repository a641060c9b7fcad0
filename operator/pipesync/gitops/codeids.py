"""The identity of a task's code for its cache key: git object ids of the paths in
`cache.paths` (or of the whole tree), so a key changes exactly when that code changes.

Both executors use git's own ids: the operator reads them at the run's pinned commit,
`pipesync run` from the working tree as it is (uncommitted edits included, ignored files
not), staged into a throw-away index so the user's own index is never touched. The same
tree gives the same ids, so a clean checkout and the cluster agree. Outside a git
repository the files' contents are hashed instead.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import git

from pipesync.api import conventions, model
from pipesync.engine.cache import code_paths_key

#: What a path that does not exist contributes (a task may declare a file it creates).
MISSING = "missing"


def combine(ids: Sequence[tuple[str, str]]) -> str:
    """One digest of (path, id) pairs, in the order given (`cache.paths` as written)."""
    return hashlib.sha256(conventions.canonical_json([list(pair) for pair in ids])).hexdigest()


def commit_code_digest(
    repo: git.Repo, commit: str, paths: Sequence[str] | None, *, root: str = ""
) -> str:
    """The digest of `paths` (None: the whole tree) at `commit` of `repo`; `paths` are
    relative to `root`, the folder tasks run in ("": the repository's top; a GitSource's
    path, as `pipesync run` takes the folder holding pipelines/); "" for no paths."""
    if paths is not None and not paths:
        return ""
    folder = root.strip("/")
    return _digest(repo, repo.commit(commit).tree.hexsha, "" if folder == "." else folder, paths)


def pipeline_code_digests(
    repo: git.Repo, commit: str, spec: Mapping[str, Any], *, root: str = ""
) -> dict[str, str]:
    """The code digest of each `cache.paths` a pipeline's cached tasks declare, by
    `engine.cache.code_paths_key`: what the GitSource records on the Pipeline for the
    commit, so the operator keys tasks on their code without a checkout of its own."""
    try:
        parsed = model.pipeline_spec_from_spec(spec)
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}  # not a valid pipeline: its runs fail before any task is keyed
    found: dict[str, str] = {}
    for task in (*parsed.tasks, *(() if parsed.on_exit is None else (parsed.on_exit,))):
        paths = task.cache.paths
        if task.cache.enabled and paths != ():
            name = code_paths_key(paths)
            if name not in found:
                found[name] = commit_code_digest(repo, commit, paths, root=root)
    return found


class CommitChanges:
    """What changed in a task's code from one commit to another (what
    gitops.cacheforecast calls `CodeChanges`): () when the digests of its `cache.paths`
    are equal at both, else the changed files under those paths, relative to `root`."""

    def __init__(self, repo: git.Repo, old: str, new: str, *, root: str = "") -> None:
        """`old`, `new`: full commit ids; `root`: as for `commit_code_digest`."""
        self.repo, self.old, self.new, self.root = repo, old, new, root
        self._files: tuple[str, ...] | None = None
        self._answers: dict[tuple[str, ...] | None, tuple[str, ...]] = {}

    def __call__(self, paths: tuple[str, ...] | None) -> tuple[str, ...]:
        if paths is not None and not paths:
            return ()  # no code: the image and the command are all of it
        if paths not in self._answers:
            self._answers[paths] = self._changed(paths)
        return self._answers[paths]

    def _changed(self, paths: tuple[str, ...] | None) -> tuple[str, ...]:
        same = commit_code_digest(self.repo, self.old, paths, root=self.root) == commit_code_digest(
            self.repo, self.new, paths, root=self.root
        )
        if same:
            return ()
        wanted = None if paths is None else [posixpath.normpath(p) for p in paths]
        found = tuple(
            name
            for name in self._changed_files()
            if wanted is None or any(w in (".", name) or name.startswith(w + "/") for w in wanted)
        )
        return found or (paths or (".",))  # the ids differ, yet no file is listed

    def _changed_files(self) -> tuple[str, ...]:
        """Every file that differs between the commits, relative to the root (plumbing:
        no diff drivers or user configuration take part)."""
        if self._files is None:
            out = self.repo.git.diff_tree(
                "-r", "--name-only", "--no-renames", "-z", self.old, self.new
            )
            prefix = f"{self.root}/" if self.root else ""
            self._files = tuple(
                name[len(prefix) :]
                for name in str(out).split("\0")
                if name and name.startswith(prefix)
            )
        return self._files


class WorkingTree:
    """Code digests of a working directory, computed once per set of paths."""

    def __init__(self, root: Path, *, exclude: Sequence[Path] = ()) -> None:
        """`exclude`: folders under the root that are not code (the run's work directory:
        its outputs must not change the next run's keys)."""
        self.root = root.resolve()
        self.exclude = tuple(p.resolve() for p in exclude)
        self._tree: tuple[git.Repo, str, str] | None = None
        self._digests: dict[tuple[str, ...] | None, str] = {}

    def digest(self, paths: Sequence[str] | None) -> str:
        """The digest of `paths` under the root (None: all of it); "" for no paths."""
        if paths is not None and not paths:
            return ""
        wanted = None if paths is None else tuple(paths)
        if wanted not in self._digests:
            self._digests[wanted] = self._compute(wanted)
        return self._digests[wanted]

    def _compute(self, paths: tuple[str, ...] | None) -> str:
        tree = self._staged_tree()
        if tree is None:
            return _files_digest(self.root, paths, self.exclude)
        repo, tree_id, prefix = tree
        return _digest(repo, tree_id, prefix, paths)

    def _staged_tree(self) -> tuple[git.Repo, str, str] | None:
        """The working tree as a git tree (via a copy of the index), with the root's
        path inside the repository; None outside a repository."""
        if self._tree is None:
            try:
                repo = git.Repo(self.root, search_parent_directories=True)
                self._tree = _stage(repo, self.root, self.exclude)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError):
                return None  # not a repository, or git refused (a broken index): hash files
        return self._tree


def _stage(repo: git.Repo, root: Path, exclude: Sequence[Path]) -> tuple[git.Repo, str, str]:
    """Stages the working tree under `root` into a copy of the index and writes it as a
    tree: (repo, tree id, root's path in the repository, "" at its top)."""
    top = Path(repo.working_tree_dir or root).resolve()
    prefix = root.relative_to(top).as_posix()
    with tempfile.TemporaryDirectory(prefix="pipesync-index-") as temp:
        index = Path(temp) / "index"
        own = Path(repo.git_dir) / "index"
        if own.exists():  # its stat data makes `add` read changed files only
            shutil.copyfile(own, index)
        env = {**os.environ, "GIT_INDEX_FILE": str(index)}
        excluded = [
            f":(exclude,top){p.relative_to(top).as_posix()}"
            for p in exclude
            if p.is_relative_to(top) and p != top
        ]
        target = ":/" if prefix == "." else f":(top){prefix}"
        repo.git.execute(["git", "add", "--all", "--", target, *excluded], env=env)
        tree_id = str(repo.git.execute(["git", "write-tree"], env=env)).strip()
    return repo, tree_id, "" if prefix == "." else prefix


def _digest(repo: git.Repo, tree_id: str, prefix: str, paths: Sequence[str] | None) -> str:
    base = f"{prefix}/" if prefix else ""
    if paths is None:
        return combine([(".", _object_id(repo, f"{tree_id}:{prefix}"))])
    return combine([(path, _object_id(repo, f"{tree_id}:{base}{path}")) for path in paths])


def _object_id(repo: git.Repo, spec: str) -> str:
    """The id of `<tree>:<path>` (the tree itself for an empty path); MISSING if absent."""
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", spec)).strip() or MISSING
    except git.GitCommandError:
        return MISSING


def _files_digest(root: Path, paths: Sequence[str] | None, exclude: Sequence[Path]) -> str:
    ids = []
    for path in ["."] if paths is None else paths:
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.exists():
            ids.append((path, MISSING))
            continue
        digest = hashlib.sha256()
        for file in _files(target, exclude):
            digest.update(file.relative_to(target).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        ids.append((path, digest.hexdigest()))
    return combine(ids)


def _files(target: Path, exclude: Sequence[Path]) -> Iterator[Path]:
    if target.is_file():
        yield target
        return
    for folder, dirs, files in os.walk(target):
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in conventions.NOT_SOURCE_DIRS and Path(folder, d) not in exclude
        )
        for name in sorted(files):
            yield Path(folder) / name
