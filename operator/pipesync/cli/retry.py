"""`pipesync retry RUN`: retry a finished cluster run from where it failed: a new Run
with `spec.retryOf: {name: RUN}`, whose succeeded tasks the operator reuses from the
original's record.

The body is engine.retryrun's, which the UI's "Retry from failure" creates too.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from pipesync.api import conventions
from pipesync.cli import cluster, flags, submit, watching
from pipesync.engine import retryrun


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "retry",
        run,
        help="retry a failed run in the cluster from where it failed (spec.retryOf)",
        description="Create a Run with spec.retryOf naming RUN: the original's succeeded "
        "tasks are reused, the rest run. Prints the new Run's name. With --watch: the live "
        "table of a local run, then exit 0 succeeded, 1 failed or cancelled; 2 usage, not "
        "found, not finished yet or the cluster refused.",
    )
    parser.add_argument("name", metavar="RUN", help="the finished Run to retry")
    parser.add_argument(
        "--run-name", metavar="NAME", help="the new Run's name (default: generated)"
    )
    submit.add_cluster_run_arguments(parser)


def run(options: argparse.Namespace) -> int:
    return cluster.guarded("retry", lambda: _retry(options))


def _retry(options: argparse.Namespace) -> int:
    kube = cluster.connect()
    namespace = options.namespace or cluster.default_namespace()
    original = cluster.get_run(kube, namespace, options.name)
    new_name = options.run_name or conventions.retry_name(options.name, time.time())
    body = retry_body(original, new_name)
    cluster.create_run(kube, namespace, body)
    return watching.created(kube, namespace, new_name, watch_it=options.watch, plain=options.plain)


def retry_body(original: Mapping[str, Any], new_name: str) -> dict[str, Any]:
    """The retry of a finished Run (retryrun.retry_body); Failure when it cannot be."""
    try:
        return retryrun.retry_body(original, new_name)
    except retryrun.NotRetryable as error:
        raise cluster.Failure(str(error)) from None
