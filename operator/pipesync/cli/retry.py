"""`pipesync retry RUN`: retry a finished cluster run from where it failed: a new Run
with `spec.retryOf: {name: RUN}`, whose succeeded tasks the operator reuses from the
original's record.

The new Run also carries the original's pipelineRef or pipelineSpec, params, experiment
and limits, so it is a whole Run by the schema (exactly one of pipelineRef and
pipelineSpec) and reads as what it runs in `kubectl get runs`; which version and commit
it runs is the operator's to pin, from the original.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from pipesync.api import conventions, model
from pipesync.cli import cluster, flags, submit, watching

#: The original's spec fields a retry carries over (not `cancel`: a retry of a cancelled
#: run is meant to run).
_KEPT = (
    "pipelineRef",
    "pipelineSpec",
    "params",
    "experimentRef",
    "timeout",
    "cache",
    "serviceAccountName",
)


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
    """The retry of a finished Run; Failure when it has not finished (nothing to retry
    from yet) or is no Run pipesync could run."""
    metadata, spec = original.get("metadata") or {}, original.get("spec") or {}
    name = str(metadata.get("name") or "")
    phase = cluster.phase_of(dict(original))
    if cluster.exit_code(phase) is None:
        raise cluster.Failure(
            f"run {name} is {phase or 'Pending'}, not finished: wait for it (pipesync wait "
            f"{name}) or cancel it, then retry"
        )
    kept: dict[str, Any] = {key: spec[key] for key in _KEPT if key in spec}
    if ("pipelineRef" in kept) == ("pipelineSpec" in kept):
        raise cluster.Failure(f"run {name} has neither a pipelineRef nor a pipelineSpec to retry")
    kept["retryOf"] = {"name": name}
    return {
        "apiVersion": model.API_VERSION,
        "kind": "Run",
        "metadata": {"name": new_name},
        "spec": kept,
    }
