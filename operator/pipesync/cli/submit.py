"""`pipesync submit FILE`: run a pipeline from the working tree in the cluster, without
committing it: a Run with the pipeline inline (`spec.pipelineSpec`).

Why inline: the cluster's Pipelines come from git (GitSource); trying a change first
should not need a commit, nor touch the Pipeline others run. The file is read and
checked as `pipesync run` reads it (cli.pipelinefile), so a file that would fail
locally fails here too, before anything is sent, with `file:line:col: message` lines.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from pipesync.api import conventions, model
from pipesync.api.diagnostics import has_errors
from pipesync.cli import cluster, flags, pipelinefile, watching
from pipesync.engine import loading

#: What a Run file may say beyond its pipeline and params that a submitted Run keeps.
_KEPT = ("experimentRef", "timeout", "cache", "serviceAccountName")


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "submit",
        run,
        help="run a pipeline file from your working tree in the cluster (inline, no commit)",
        description="Create a Run whose pipelineSpec is the pipeline in FILE (a Pipeline, or "
        "a Run whose pipelineRef is looked up in the repository's pipelines/ folder), "
        "checked first as `pipesync validate` checks it. Prints the Run's name. With "
        "--watch: the live table of a local run, then exit 0 succeeded, 1 failed or "
        "cancelled; 2 usage, invalid file or the cluster refused.",
    )
    parser.add_argument("file", metavar="FILE", help="a file with a Pipeline (or a Run)")
    flags.add_params_argument(parser)
    parser.add_argument("--pipeline", metavar="NAME", help="which pipeline, if FILE holds several")
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="the repository root (where a Run's pipelineRef is looked up in pipelines/)",
    )
    parser.add_argument("--run-name", metavar="NAME", help="the Run's name (default: generated)")
    add_cluster_run_arguments(parser)


def add_cluster_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the commands that create a Run (submit, retry)."""
    parser.add_argument(
        "-n", "--namespace", help="namespace (default: the kubeconfig context's namespace)"
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="show the run as a local run shows, until it ends; exit with its outcome",
    )
    parser.add_argument(
        "--plain", action="store_true", help="with --watch: plain lines even on a terminal"
    )


def run(options: argparse.Namespace) -> int:
    return cluster.guarded("submit", lambda: _submit(options))


def _submit(options: argparse.Namespace) -> int:
    body = prepared(options, time.time())
    kube = cluster.connect()
    namespace = options.namespace or cluster.default_namespace()
    cluster.create_run(kube, namespace, body)
    name = body["metadata"]["name"]
    return watching.created(kube, namespace, name, watch_it=options.watch, plain=options.plain)


def prepared(options: argparse.Namespace, now: float) -> dict[str, Any]:
    """The Run to create, checked; Failure (exit 2) with every problem of the file."""
    path = Path(options.file)
    root = Path(options.root) if options.root else pipelinefile.repository_root(path)
    try:
        loaded = pipelinefile.load(path, options.pipeline, root)
        given = pipelinefile.given_params(loaded.spec, loaded.run, options.param)
        pipelinefile.resolved_params(loaded.spec, given)  # a required one missing, an enum
    except pipelinefile.Usage as error:
        if error.located:
            # As validate prints them: one `file:line:col: message` per line, no prefix.
            print(str(error), file=sys.stderr)
            raise cluster.Failure(f"{options.file} is invalid: nothing was submitted") from None
        raise cluster.Failure(str(error)) from None
    name = options.run_name or conventions.local_run_name(
        loaded.pipeline_name or None, now, secrets.token_hex(2)
    )
    base = dict(loaded.run.spec) if loaded.run is not None else {}
    body = run_body(name, loaded.spec_data, given, base)
    problems = _schema_problems(body, name)
    if problems:
        raise cluster.Failure(problems)
    return body


def run_body(
    name: str, spec_data: dict[str, Any], params: dict[str, Any], base: dict[str, Any]
) -> dict[str, Any]:
    """A Run of the pipeline spec inline. `base`: the Run file's spec, whose experiment,
    timeout, cache mode and service account the submitted Run keeps."""
    spec: dict[str, Any] = {key: base[key] for key in _KEPT if key in base}
    spec["pipelineSpec"] = spec_data
    if params:
        spec["params"] = params
    return {
        "apiVersion": model.API_VERSION,
        "kind": "Run",
        "metadata": {"name": name},
        "spec": spec,
    }


def _schema_problems(body: dict[str, Any], name: str) -> str:
    """Why the Run would be refused by the schema (a name that is no DNS label), or ""."""
    _, problems = loading.load(json.dumps(body).encode(), f"run {name}")
    if not has_errors(problems):
        return ""
    return "; ".join(problem.message for problem in problems[:3])
