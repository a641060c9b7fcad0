"""`pipesync wait RUN`: block until a Run in the cluster finishes, and end as `pipesync run`
ends (0 succeeded, 1 failed or cancelled), for scripts and CI jobs.

Why a watch (cluster.follow) and not polling: a pipeline runs for hours, and a CI job
waiting on it should cost the API server one open request, not one every few seconds.
"""

from __future__ import annotations

import argparse
import collections
import sys
from typing import Any

from pipesync.api import durations
from pipesync.cli import cluster, flags


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "wait",
        run,
        help="wait until a run in the cluster finishes; exit 0 succeeded, 1 failed",
        description="Wait (a watch, not polling) until the Run's phase is Succeeded, Failed "
        "or Cancelled. Exit 0 succeeded, 1 failed or cancelled, 2 usage, not found or the "
        "cluster refused, 3 still running when --timeout passed.",
    )
    parser.add_argument("name", metavar="RUN", help="the Run's name")
    parser.add_argument(
        "-n", "--namespace", help="namespace (default: the kubeconfig context's namespace)"
    )
    parser.add_argument(
        "--timeout", metavar="DURATION", help="give up after this long, e.g. 30m (exit 3)"
    )


def run(options: argparse.Namespace) -> int:
    return cluster.guarded("wait", lambda: _wait(options))


def timeout_seconds(text: str | None) -> float | None:
    """--timeout as seconds; Failure (usage) when it is not a duration."""
    if text is None:
        return None
    try:
        return durations.parse(text)
    except ValueError as error:
        raise cluster.Failure(f"--timeout {text}: {error}") from None


def _wait(options: argparse.Namespace) -> int:
    timeout = timeout_seconds(options.timeout)
    kube = cluster.connect()
    namespace = options.namespace or cluster.default_namespace()
    # The last version follow yields is the finished one (or it raises).
    last: dict[str, Any] = collections.deque(
        cluster.follow(kube, namespace, options.name, timeout=timeout), maxlen=1
    )[0]
    phase = cluster.phase_of(last)
    code = cluster.exit_code(phase)
    assert code is not None  # noqa: S101 - follow ends only on a finished phase
    message = str((last.get("status") or {}).get("message") or "")
    print(f"run {options.name} {phase}" + (f": {message}" if message else ""), file=sys.stderr)
    return code
