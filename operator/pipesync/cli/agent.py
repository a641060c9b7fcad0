"""`pipesync agent fetch|upload`: the in-pod helper the pod builder puts around user images.

Hidden from `pipesync --help`: users never call it; pods do (see pipesync.runtime.agent).
S3 settings come from PIPESYNC_S3_* and AWS_* environment variables. Everything that
is not parsing lives in pipesync.runtime.agent, so this module stays thin and cheap to
import (boto3 is loaded only when a store is actually built).

`python -m pipesync.cli.agent fetch|upload ...` does the same as `pipesync agent ...` without
importing the other commands (kopf, jsonschema, ...): it starts in about a third of the time,
which every pod pays twice.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from pipesync.runtime import agent
from pipesync.runtime.storage import (
    Backoff,
    ObjectStore,
    Retry,
    S3Settings,
    S3Store,
    StoreError,
    check_key,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_TERMINATED = 128 + signal.SIGTERM


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "agent",
        # No `help=`: argparse then leaves it out of `pipesync --help` (help=SUPPRESS would
        # print "==SUPPRESS==" on Python 3.11). `pipesync agent --help` still works.
        description="In-pod helper: fetch a task's inputs, upload its outputs (internal).",
    )
    commands = parser.add_subparsers(title="agent commands", metavar="ACTION")

    fetch = commands.add_parser("fetch", description="Download inputs before the task starts.")
    fetch.add_argument("--get", action="append", default=[], metavar="KEY=PATH")
    fetch.add_argument("--optional", action="append", default=[], metavar="KEY")
    fetch.add_argument("--workspace", default=None, metavar="KEY", help="repository tar.gz")
    fetch.add_argument(
        "--workspace-sha256", default="", metavar="HEX", help="the digest the operator recorded"
    )
    _common(fetch)
    fetch.set_defaults(command=run_fetch)

    upload = commands.add_parser("upload", description="Upload outputs after the task ends.")
    upload.add_argument("--wait", type=Path, default=None, metavar="MARKER")
    upload.add_argument("--node-prefix", required=True, metavar="KEY")
    upload.add_argument("--parameter", action="append", default=[], metavar="NAME")
    upload.add_argument("--artifact", action="append", default=[], metavar="NAME")
    upload.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    upload.add_argument(
        "--termination-log", type=Path, default=agent.TERMINATION_LOG, help=argparse.SUPPRESS
    )
    _common(upload)
    upload.set_defaults(command=run_upload)
    parser.set_defaults(command=lambda _options: _usage(parser))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-patience", type=float, default=600.0, metavar="SECONDS")
    # The shared volume; only tests move it away from /pipesync.
    parser.add_argument("--root", type=Path, default=agent.DEFAULT_ROOT, help=argparse.SUPPRESS)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    return EXIT_USAGE


def _log_retry(what: str, error: Exception, pause: float) -> None:
    print(f"pipesync agent: {what}: {error}; retrying in {pause:g}s", file=sys.stderr, flush=True)


def _store(options: argparse.Namespace) -> ObjectStore:
    retry = Retry(Backoff(patience=options.s3_patience), on_retry=_log_retry)
    return S3Store(S3Settings.from_env(), retry)


def run_fetch(options: argparse.Namespace) -> int:
    paths = agent.Layout(options.root)
    try:
        gets = [agent.parse_get(spec, paths) for spec in options.get]
        unknown = set(options.optional) - {get.key for get in gets}
        if unknown:
            raise agent.AgentError(f"--optional names keys no --get asks for: {sorted(unknown)}")
        if options.workspace is not None:
            check_key(options.workspace)
        store = _store(options) if gets or options.workspace else None
    except (agent.AgentError, ValueError) as error:
        print(f"pipesync agent fetch: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if store is not None and options.workspace is not None:
            members = agent.unpack_workspace(
                store, options.workspace, paths, options.workspace_sha256
            )
            print(f"pipesync agent fetch: workspace of {members} entries", file=sys.stderr)
        result = agent.fetch(store, gets, options.optional) if store else agent.FetchResult()
        agent.prepare_outputs(paths)
    except (agent.AgentError, StoreError, OSError) as error:
        print(f"pipesync agent fetch: {error}", file=sys.stderr)
        return EXIT_FAILED
    skipped = f", {len(result.skipped)} optional input(s) absent" if result.skipped else ""
    print(f"pipesync agent fetch: {result.files} file(s){skipped}", file=sys.stderr)
    return EXIT_OK


def run_upload(options: argparse.Namespace) -> int:
    paths = agent.Layout(options.root)
    try:
        store = _store(options)
    except ValueError as error:
        report = agent.UploadReport(exit_code=None, error=str(error))
        _finish(report.to_json(), options.termination_log)
        print(f"pipesync agent upload: {error}", file=sys.stderr)
        return EXIT_USAGE
    # Deletion or activeDeadlineSeconds: say so in the termination message, then go.
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        code, report = agent.upload(
            store,
            node_prefix=options.node_prefix,
            parameters=options.parameter,
            artifacts=options.artifact,
            paths=paths,
            marker=options.wait,
            timeout=options.timeout,
        )
    except ValueError as error:  # an invalid node prefix or output name
        print(f"pipesync agent upload: {error}", file=sys.stderr)
        return EXIT_USAGE
    except _Terminated:
        report = agent.UploadReport(exit_code=None, error="terminated by SIGTERM")
        code = EXIT_TERMINATED
    except Exception as error:  # anything unforeseen still reaches the pod status
        report = agent.UploadReport(exit_code=None, error=f"{type(error).__name__}: {error}")
        _finish(report.to_json(), options.termination_log)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    _finish(report.to_json(), options.termination_log)
    return code


class _Terminated(Exception):
    pass


def _raise_terminated(_signum: int, _frame: object) -> None:
    raise _Terminated


def _finish(message: str, termination_log: Path) -> None:
    print(message, flush=True)  # also in the container log, for people
    problem = agent.write_termination(message, termination_log)
    if problem is not None:
        print(f"pipesync agent: no termination message: {problem}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pipesync.cli.agent ACTION ...`: the agent alone, nothing else imported."""
    parser = argparse.ArgumentParser(prog="pipesync")
    add_parser(parser.add_subparsers())
    options = parser.parse_args(["agent", *(sys.argv[1:] if argv is None else argv)])
    code: int = options.command(options)
    return code


if __name__ == "__main__":
    sys.exit(main())
