"""What the in-pod agent does: fetch a task's inputs before it starts, upload its outputs
after it ends (the contract: helper-briefs/operator-data-contract.md, summarised below).

A task runs as one pod around the user's image, which need not contain Python. An init
container runs `pipesync agent fetch` to materialise inputs under /pipesync/inputs; the
user's container writes its exit code to the marker /pipesync/.exit; a sidecar runs
`pipesync agent upload`, waits for that marker and, when the code is 0, uploads the declared
outputs from /pipesync/outputs. Its one-line JSON termination message carries the exit
code and small parameter values into the pod status, so the controller rarely reads S3.

The functions here take a store, paths and a clock, and do no argument parsing, so they
are tested against a `LocalStore` with a fake clock.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import tarfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from pipesync.engine import layout
from pipesync.runtime.digests import file_sha256, stream_sha256, tree_digest
from pipesync.runtime.storage import (
    AccessDenied,
    Clock,
    ObjectStore,
    Sleep,
    StoreError,
    check_key,
)

DEFAULT_ROOT = Path("/pipesync")
TERMINATION_LOG = Path("/dev/termination-log")
#: Kubernetes keeps at most 4096 bytes of a termination message; stay well below.
TERMINATION_LIMIT = 4096
PARAMETER_BUDGET = 3500
POLL_SECONDS = 0.2
_MAX_ERROR_BYTES = 1000

# Exit codes of `pipesync agent upload`: the task's own result travels in the JSON.
#: The upload sidecar's exit codes; the controller tells them apart (runtime/podstate).
UPLOAD_DONE, UPLOAD_NO_MARKER, UPLOAD_STORE_FAILED, UPLOAD_STORE_REFUSED = 0, 1, 2, 3


class AgentError(Exception):
    """A request the agent refuses or cannot serve; the message names the key or path."""


@dataclasses.dataclass(frozen=True)
class Layout:
    """The shared volume's paths (the root is /pipesync in a pod; a temp dir in tests)."""

    root: Path = DEFAULT_ROOT

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def parameters(self) -> Path:
        return self.outputs / "parameters"

    @property
    def artifacts(self) -> Path:
        return self.outputs / "artifacts"

    @property
    def marker(self) -> Path:
        return self.root / ".exit"

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"


# --------------------------------------------------------------------------- fetch


@dataclasses.dataclass(frozen=True)
class Get:
    key: str
    path: Path


def parse_get(spec: str, paths: Layout) -> Get:
    """`KEY=PATH` with PATH under <root>/inputs/, no `..`, and a valid key."""
    key, sep, raw = spec.partition("=")
    if not sep or not key or not raw:
        raise AgentError(f"--get {spec!r}: expected KEY=PATH")
    try:
        check_key(key)
    except ValueError as error:
        raise AgentError(f"--get {spec!r}: {error}") from None
    path = PurePosixPath(raw)
    if ".." in path.parts or not path.is_absolute():
        raise AgentError(f"--get {spec!r}: PATH must be absolute and contain no '..'")
    inputs = PurePosixPath(paths.inputs.as_posix())
    if path == inputs or inputs not in path.parents:
        raise AgentError(f"--get {spec!r}: PATH must be under {inputs}/")
    return Get(key=key, path=Path(path))


@dataclasses.dataclass
class FetchResult:
    files: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)  # optional and absent


def fetch(store: ObjectStore, gets: Sequence[Get], optional: Iterable[str]) -> FetchResult:
    """Materialise each key (an object, or every object under `KEY/`) at its path."""
    optional_keys = set(optional)
    result = FetchResult()
    for get in gets:
        if store.exists(get.key):
            store.get_file(get.key, get.path)
            result.files += 1
            continue
        directory = f"{get.key}/"
        keys = store.list_prefix(directory)
        if not keys:
            if get.key in optional_keys:
                result.skipped.append(get.key)
                continue
            raise AgentError(f"input {get.key!r} not found (neither an object nor a prefix)")
        for key in keys:
            relative = PurePosixPath(key[len(directory) :])
            if not relative.parts or ".." in relative.parts:
                raise AgentError(f"input {get.key!r}: refusing object {key!r}")
            store.get_file(key, get.path.joinpath(*relative.parts))
            result.files += 1
    return result


def unpack_workspace(store: ObjectStore, key: str, paths: Layout, sha256: str = "") -> int:
    """The repository archive at `key` unpacked into <root>/workspace; returns the number
    of members. tarfile's "data" filter refuses absolute names, `..`, links that point
    outside, devices and set-uid bits, so an archive cannot write outside the workspace.
    `sha256` is the digest the operator recorded when it uploaded the archive: anyone else
    who can write the key (another tenant on shared keys) could replace the code this task
    runs, so a different archive is refused before anything of it is unpacked."""
    archive = paths.root / ".workspace.tar.gz"
    if not store.exists(key):
        raise AgentError(f"repository archive {key!r} not found")
    store.get_file(key, archive)
    try:
        if sha256 and file_sha256(archive) != sha256:
            raise AgentError(
                f"repository archive {key} does not match the digest the operator "
                "recorded: refusing to run it"
            )
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            tar.extractall(paths.workspace, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise AgentError(f"repository archive {key!r}: {error}") from None
    finally:
        archive.unlink(missing_ok=True)
    # The user's container may run as another uid; the volume belongs to this pod alone.
    for directory, _subdirectories, _files in os.walk(paths.workspace):
        os.chmod(directory, 0o777)  # noqa: S103 - a pod-private emptyDir
    return len(members)


def prepare_outputs(paths: Layout) -> None:
    """Create the output directories; the user's container may run as any uid, so anyone
    may write there (the volume belongs to this pod alone)."""
    for directory in (paths.parameters, paths.artifacts):
        directory.mkdir(parents=True, exist_ok=True)
    for directory in (paths.outputs, paths.parameters, paths.artifacts):
        os.chmod(directory, 0o777)  # noqa: S103 - deliberate, see above


# --------------------------------------------------------------------------- upload


@dataclasses.dataclass
class UploadReport:
    """What the termination message says (one JSON line, under TERMINATION_LIMIT bytes)."""

    exit_code: int | None
    parameters: dict[str, str] = dataclasses.field(default_factory=dict)
    missing: list[str] = dataclasses.field(default_factory=list)
    #: outputs that were symlinks, FIFOs or devices: never followed, never uploaded
    refused: list[str] = dataclasses.field(default_factory=list)
    uploaded: int = 0
    truncated: bool = False
    error: str | None = None
    #: each uploaded artifact's content digest (runtime.digests), by name: the task cache
    #: keys its consumers on them
    digests: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return termination_message(self)


def termination_message(report: UploadReport) -> str:
    """The report as JSON that fits a termination message: parameter values are kept in
    declared order while the whole stays under PARAMETER_BUDGET bytes; a value is never
    cut, only left out (then `truncated` is true and the controller reads it from S3).
    Artifact digests come before parameters; if even they do not fit (dozens of
    artifacts), all are left out, and the task's consumers are not cached."""

    def render(parameters: dict[str, str], missing: list[str], error: str | None) -> str:
        body: dict[str, Any] = {
            "exitCode": report.exit_code,
            "parameters": parameters,
            "missing": missing,
            "uploaded": report.uploaded,
            "truncated": truncated,
        }
        if digests:
            body["digests"] = digests
        if refused:
            body["refused"] = refused
        if error is not None:
            body["error"] = error
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    error = None
    if report.error is not None:  # bounded in bytes: UTF-8 may take 4 per character
        error = report.error.encode()[:_MAX_ERROR_BYTES].decode("utf-8", errors="ignore")
    truncated = report.truncated
    missing = list(report.missing)
    refused = list(report.refused)
    digests = dict(report.digests)
    if len(render({}, missing, error).encode()) >= PARAMETER_BUDGET:
        digests = {}
    kept: dict[str, str] = {}
    for name, value in report.parameters.items():
        candidate = {**kept, name: value}
        if len(render(candidate, missing, error).encode()) < PARAMETER_BUDGET:
            kept = candidate
        else:
            truncated = True
    text = render(kept, missing, error)
    while len(text.encode()) >= PARAMETER_BUDGET and (missing or refused):
        # Thousands of names: that there are some matters more than the full list.
        missing = missing[: len(missing) // 2]
        refused = refused[: len(refused) // 2]
        truncated = True
        text = render(kept, missing, error)
    return text


def wait_for_marker(
    marker: Path, timeout: float | None, clock: Clock, sleep: Sleep, poll: float = POLL_SECONDS
) -> int | None:
    """The exit code in the marker file, or None when `timeout` seconds pass without it.

    A marker that is not a regular file holding a decimal number (a symlink, a FIFO,
    garbage) counts as exit code 255, a failure; at most 32 bytes of it are read."""
    started = clock()
    while True:
        try:
            fd = os.open(marker, _FILE_FLAGS)
        except FileNotFoundError:
            if timeout is not None and clock() - started >= timeout:
                return None
            sleep(poll)
            continue
        except OSError:  # ELOOP: a symlink
            return 255
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return 255
            data = os.read(fd, 33)
            if len(data) > 32:
                return 255
            text = data.decode("ascii", errors="replace").strip()
        finally:
            os.close(fd)
        try:
            code = int(text)
        except ValueError:
            return 255
        return code if 0 <= code <= 255 else 255


def upload(
    store: ObjectStore,
    *,
    node_prefix: str,
    parameters: Sequence[str],
    artifacts: Sequence[str],
    paths: Layout,
    marker: Path | None = None,
    timeout: float | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> tuple[int, UploadReport]:
    """Wait for the task to end and, if it succeeded, upload its declared outputs.

    Returns the agent's exit code and the report for its termination message."""
    check_key(node_prefix)
    for name in (*parameters, *artifacts):
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"invalid output name {name!r}")
    code = wait_for_marker(marker or paths.marker, timeout, clock, sleep)
    if code is None:
        report = UploadReport(
            exit_code=None, error=f"no exit marker at {marker or paths.marker} after {timeout}s"
        )
        return UPLOAD_NO_MARKER, report
    report = UploadReport(exit_code=code)
    if code != 0:
        return UPLOAD_DONE, report  # a failed attempt's outputs are never published
    try:
        _upload_parameters(store, node_prefix, parameters, paths, report)
        _upload_artifacts(store, node_prefix, artifacts, paths, report)
    except (StoreError, OSError) as error:
        report.error = f"{type(error).__name__}: {error}"
        refused = isinstance(error, AccessDenied)
        return (UPLOAD_STORE_REFUSED if refused else UPLOAD_STORE_FAILED), report
    return UPLOAD_DONE, report


# The user's container shares the volume and may plant symlinks (to /proc/self/environ,
# to a service-account token) that this container, which holds S3 credentials, would
# otherwise follow and publish. So outputs are opened relative to directory descriptors
# with O_NOFOLLOW, only regular files are read, and anything else is refused.
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _open_directory(name: str | Path, dir_fd: int | None = None) -> int | None:
    try:
        return os.open(name, _DIRECTORY_FLAGS, dir_fd=dir_fd)
    except OSError:  # absent, a symlink (ELOOP) or not a directory
        return None


def _open_inside(root: Path, *parts: str) -> int | None:
    """A directory under `root` (the volume's mount point, trusted), with no symlink on the
    way: each component is opened relative to the previous one."""
    current = _open_directory(root)
    for part in parts:
        if current is None:
            return None
        parent, current = current, _open_directory(part, current)
        os.close(parent)
    return current


def _open_regular(name: str, dir_fd: int) -> BinaryIO | None:
    """The file, if `name` is a regular file and not a symlink (a FIFO would block us)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def _kind(name: str, dir_fd: int | None) -> str:
    """ "missing", "file", "directory" or "other" (symlinks and devices are "other")."""
    if dir_fd is None:
        return "missing"
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return "missing"
    if stat.S_ISREG(mode):
        return "file"
    return "directory" if stat.S_ISDIR(mode) else "other"


def _upload_parameters(
    store: ObjectStore,
    node_prefix: str,
    names: Sequence[str],
    paths: Layout,
    report: UploadReport,
) -> None:
    directory = _open_inside(paths.root, "outputs", "parameters")
    try:
        for name in names:
            stream = _open_regular(name, directory) if directory is not None else None
            if stream is None:
                (report.refused if _kind(name, directory) == "other" else report.missing).append(
                    f"parameters/{name}"
                )
                continue
            with stream:
                data = stream.read(PARAMETER_BUDGET)
                stream.seek(0)
                store.put_stream(layout.output_parameter_key(node_prefix, name), stream)
                size = os.fstat(stream.fileno()).st_size
            report.uploaded += 1
            if size < PARAMETER_BUDGET:
                report.parameters[name] = data.decode("utf-8", errors="replace")
            else:
                report.truncated = True
    finally:
        if directory is not None:
            os.close(directory)


def _upload_artifacts(
    store: ObjectStore,
    node_prefix: str,
    names: Sequence[str],
    paths: Layout,
    report: UploadReport,
) -> None:
    directory = _open_inside(paths.root, "outputs", "artifacts")
    try:
        for name in names:
            key = layout.output_artifact_key(node_prefix, name)
            kind = _kind(name, directory)
            if kind in ("missing", "other") or directory is None:
                (report.refused if kind == "other" else report.missing).append(f"artifacts/{name}")
                continue
            # A retried attempt must not inherit files an earlier attempt left behind.
            store.delete_prefix(f"{key}/")
            if kind == "file":
                stream = _open_regular(name, directory)
                if stream is None:  # swapped for something else since _kind looked
                    report.refused.append(f"artifacts/{name}")
                    continue
                with stream:
                    report.digests[name] = stream_sha256(stream)
                    store.put_stream(key, stream)
                report.uploaded += 1
                continue
            subdirectory = _open_directory(name, directory)
            if subdirectory is None:
                report.refused.append(f"artifacts/{name}")
                continue
            files: list[tuple[str, str]] = []
            try:
                _upload_tree(store, key, f"artifacts/{name}", subdirectory, report, files=files)
            finally:
                os.close(subdirectory)
            report.digests[name] = tree_digest(files)
    finally:
        if directory is not None:
            os.close(directory)


def _upload_tree(
    store: ObjectStore,
    key: str,
    shown: str,
    directory: int,
    report: UploadReport,
    *,
    files: list[tuple[str, str]],
    relative: str = "",
) -> None:
    """Uploads a directory artifact; `files` collects (path inside it, digest) of each
    file uploaded, for its digest."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        child_key, child_shown = f"{key}/{entry.name}", f"{shown}/{entry.name}"
        try:
            check_key(child_key)
        except ValueError:
            report.refused.append(child_shown)
            continue
        if entry.is_dir(follow_symlinks=False):
            subdirectory = _open_directory(entry.name, directory)
            if subdirectory is None:
                report.refused.append(child_shown)
                continue
            try:
                _upload_tree(
                    store,
                    child_key,
                    child_shown,
                    subdirectory,
                    report,
                    files=files,
                    relative=f"{relative}{entry.name}/",
                )
            finally:
                os.close(subdirectory)
            continue
        stream = _open_regular(entry.name, directory)
        if stream is None:  # a symlink, FIFO, socket or device
            report.refused.append(child_shown)
            continue
        with stream:
            files.append((f"{relative}{entry.name}", stream_sha256(stream)))
            store.put_stream(child_key, stream)
        report.uploaded += 1


def write_termination(text: str, path: Path = TERMINATION_LOG) -> str | None:
    """Write the message; return why not (outside Kubernetes there may be no such file)."""
    try:
        with path.open("w", encoding="utf-8") as out:
            out.write(text + "\n")
    except OSError as error:
        return str(error)
    return None
