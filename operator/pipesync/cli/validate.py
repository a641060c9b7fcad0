"""`pipesync validate PATH...`: every schema and semantic error of every file, in one pass."""

from __future__ import annotations

import argparse
import datetime
import json
import sys

from pipesync.api.diagnostics import Diagnostic, has_errors, has_internal
from pipesync.cli import flags, sources
from pipesync.engine import checks

EXIT_VALID, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "validate",
        run,
        help="check pipeline repository files against the schemas and the engine's rules",
        description="Check files or directories. Each error is printed as "
        "file:line:col: message. Exit 0 when valid, 1 when invalid, 2 on usage errors, "
        "3 on an internal error (a bug in pipesync, reported at the file it happened in).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or directories")
    parser.add_argument(
        "--format",
        choices=("text", "json", "github"),
        default="text",
        help="text (default), json, or github (workflow annotations)",
    )


def run(options: argparse.Namespace) -> int:
    try:
        files = sources.discover(options.paths)
    except sources.UsageError as error:
        print(f"pipesync validate: {error}", file=sys.stderr)
        return EXIT_USAGE
    resources, problems, checked = sources.load_checked(files, sources.directories(options.paths))
    now = datetime.datetime.now(datetime.UTC)
    problems.extend(checks.check(resources, now=now, checked=checked))
    problems.sort()
    _print(problems, options.format)
    errors = sum(1 for problem in problems if problem.severity.value == "error")
    broken = len({problem.file for problem in problems})
    if options.format == "text":
        if has_internal(problems):
            print(
                "pipesync validate: internal error (a bug in pipesync; please report it "
                "with the file): see the lines above",
                file=sys.stderr,
            )
        if errors:
            print(f"{errors} error(s) in {broken} of {len(files)} file(s)", file=sys.stderr)
        else:
            print(f"{len(files)} file(s), {len(resources)} document(s): valid", file=sys.stderr)
    if has_internal(problems):
        return EXIT_INTERNAL
    return EXIT_INVALID if has_errors(problems) else EXIT_VALID


def _print(problems: list[Diagnostic], output: str) -> None:
    if output == "json":
        rows = [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "severity": p.severity.value,
                "message": p.message,
            }
            for p in problems
        ]
        print(json.dumps(rows, indent=2))
        return
    for problem in problems:
        if output == "github":
            message = problem.message.replace("%", "%25").replace("\n", "%0A")
            print(
                f"::{problem.severity.value} file={problem.file},line={problem.line},"
                f"col={problem.column}::{message}"
            )
        else:
            print(problem.format())
