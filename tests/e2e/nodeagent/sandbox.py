"""Builds the bubblewrap command line that runs one container.

The host filesystem is the container's root (the image is ignored); volumes are
bind-mounted at their container paths, /dev is a private minimal /dev (so the
default termination-message path /dev/termination-log exists per container),
and the process dies with its bwrap parent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


@dataclass(frozen=True)
class Mount:
    source: Path  # on the host
    target: str  # absolute path inside the container
    read_only: bool = False


def depth(path: str) -> int:
    return len(PurePosixPath(path).parts)


def ordered(mounts: Sequence[Mount]) -> list[Mount]:
    """Parents before children, so a nested mount lands inside its parent's volume."""
    return sorted(mounts, key=lambda m: depth(m.target))


def bwrap_command(
    argv: Sequence[str],
    mounts: Sequence[Mount],
    workdir: str,
    *,
    termination_file: Path | None = None,
    termination_path: str = "/dev/termination-log",
    bwrap: str = "bwrap",
) -> list[str]:
    """The full argv: setpriv (die when the agent's thread dies) + bwrap + the container command."""
    if not argv:
        raise ValueError("a container needs a command")
    cmd = [
        "setpriv",
        "--pdeathsig",
        "KILL",
        "--",
        bwrap,
        "--dev-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--die-with-parent",
    ]
    for mount in ordered(mounts):
        cmd += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    if termination_file is not None:
        cmd += ["--bind", str(termination_file), termination_path]
    cmd += ["--chdir", workdir, "--", *argv]
    return cmd


def resolve(path: str, mounts: Sequence[Mount]) -> tuple[Path, bool]:
    """Where a container path lives on the host, and whether it is inside a volume.

    The deepest mount containing the path wins, as it would inside the sandbox.
    """
    target = PurePosixPath(path)
    best: Mount | None = None
    for mount in mounts:
        root = PurePosixPath(mount.target)
        if (target == root or root in target.parents) and (
            best is None or depth(mount.target) > depth(best.target)
        ):
            best = mount
    if best is None:
        return Path(path), False
    return best.source / target.relative_to(best.target), True
