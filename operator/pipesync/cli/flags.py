"""What several commands declare alike: the subcommand itself, the environment-backed
flags (their variable named once, for the default and the help alike), and the flags
more than one command takes with the same meaning (`-n/--namespace` as a repeatable
list, `-p/--param`).

One definition each, so a flag cannot read one variable while its help names another,
and every command is wired to its function the same way (`options.command`, see main).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, TypeAlias

#: The `add_subparsers()` result each command module adds itself to (a string: the class
#: is generic to type checkers only, not at run time).
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
#: A command's body: the parsed flags in, the exit code out.
Command = Callable[[argparse.Namespace], int]


def add_command(
    subparsers: Subcommands, name: str, command: Command, *, help: str, description: str
) -> argparse.ArgumentParser:
    """The parser of subcommand `name`, wired so that main calls `command` with its flags."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(command=command)
    return parser


def add_env_argument(
    parser: argparse.ArgumentParser,
    flag: str,
    variable: str,
    *,
    help: str = "",
    default: str | None = None,
    **settings: Any,
) -> None:
    """A flag whose default is the environment variable `variable` (else `default`), for
    charts and containers; the help ends with the variable in brackets."""
    parser.add_argument(
        flag,
        default=os.environ.get(variable, default),
        help=f"{help} [{variable}]" if help else f"[{variable}]",
        **settings,
    )


def add_env_switch(parser: argparse.ArgumentParser, flag: str, variable: str, *, help: str) -> None:
    """An off-by-default switch that the environment variable turns on with 1 or true."""
    parser.add_argument(
        flag,
        action="store_true",
        default=os.environ.get(variable, "") in ("1", "true"),
        help=f"{help} [{variable}]",
    )


def add_namespaces_argument(parser: argparse.ArgumentParser, *, help: str) -> None:
    """`-n/--namespace NS`, repeatable, into a list (empty: the command's every namespace)."""
    parser.add_argument("-n", "--namespace", action="append", default=[], metavar="NS", help=help)


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    """`-p/--param NAME=VALUE`, repeatable, parsed later by the parameter's declared type
    (cli.pipelinefile.given_params): `pipesync run` and `pipesync submit` alike."""
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter value (lists and objects as JSON); repeat for more",
    )
