"""cli/flags: the shared declarations of the commands' flags.

An environment-backed flag takes its default from the variable its help names, a switch
turns on with 1 or true only, and a command is wired to the function main calls.
"""

from __future__ import annotations

import argparse

import pytest

from pipesync.cli import flags


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="test")


def test_env_argument_defaults_to_its_variable_and_names_it_in_the_help(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIPESYNC_TEST_FLAG", "from-env")
    parser = _parser()
    flags.add_env_argument(parser, "--thing", "PIPESYNC_TEST_FLAG", default="d", help="a thing")
    assert parser.parse_args([]).thing == "from-env"
    assert parser.parse_args(["--thing", "x"]).thing == "x"
    assert "a thing [PIPESYNC_TEST_FLAG]" in parser.format_help()


def test_env_argument_without_its_variable_uses_the_default_and_bare_help(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PIPESYNC_TEST_FLAG", raising=False)
    parser = _parser()
    flags.add_env_argument(parser, "--thing", "PIPESYNC_TEST_FLAG", default="d", type=str.upper)
    assert parser.parse_args([]).thing == "D"  # argparse converts a string default too
    assert " [PIPESYNC_TEST_FLAG]" in parser.format_help()


@pytest.mark.parametrize(
    ("value", "on"), [("1", True), ("true", True), ("yes", False), ("", False)]
)
def test_env_switch_turns_on_with_1_or_true_only(
    monkeypatch: pytest.MonkeyPatch, value: str, on: bool
) -> None:
    monkeypatch.setenv("PIPESYNC_TEST_SWITCH", value)
    parser = _parser()
    flags.add_env_switch(parser, "--switch", "PIPESYNC_TEST_SWITCH", help="a switch")
    assert parser.parse_args([]).switch is on
    assert parser.parse_args(["--switch"]).switch is True
    assert "a switch [PIPESYNC_TEST_SWITCH]" in parser.format_help()


def test_namespaces_repeat_into_a_list() -> None:
    parser = _parser()
    flags.add_namespaces_argument(parser, help="some namespaces")
    assert parser.parse_args([]).namespace == []
    assert parser.parse_args(["-n", "a", "--namespace", "b"]).namespace == ["a", "b"]


def test_a_command_is_wired_to_its_function() -> None:
    def command(options: argparse.Namespace) -> int:
        return 7

    parser = _parser()
    subparsers = parser.add_subparsers()
    flags.add_command(subparsers, "go", command, help="go somewhere", description="Go.")
    options = parser.parse_args(["go"])
    assert options.command(options) == 7
    assert "go somewhere" in parser.format_help()
