"""Entry point of the `pipesync` console script."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pipesync import __version__
from pipesync.cli import agent, diff, get, history, logs, retry, submit, ui, validate, wait
from pipesync.cli import operator as operator_command
from pipesync.cli import run as run_command

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipesync",
        description="Machine-learning pipelines on Kubernetes, declared in git.",
    )
    parser.add_argument("--version", action="version", version=f"pipesync {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    validate.add_parser(subparsers)
    run_command.add_parser(subparsers)
    operator_command.add_parser(subparsers)
    agent.add_parser(subparsers)
    history.add_parser(subparsers)
    diff.add_parser(subparsers)
    ui.add_parser(subparsers)
    submit.add_parser(subparsers)
    retry.add_parser(subparsers)
    get.add_parser(subparsers)
    wait.add_parser(subparsers)
    logs.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    options = parser.parse_args(argv)
    if not hasattr(options, "command"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        code: int = options.command(options)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
