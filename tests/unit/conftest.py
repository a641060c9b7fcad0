"""Shared fixtures for the CLI tests: call `pipesync` in-process, write small YAML files.

In-process calls of `pipesync.cli.main.main` are fast (no interpreter start-up), so most
CLI tests use them; a few tests start the real console script to prove the entry point.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pipesync.cli.main import main

PROJECT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = PROJECT / ".venv" / "bin" / "pipesync"


@dataclasses.dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


Cli = Callable[..., CliResult]
WriteYaml = Callable[[str, str], Path]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli("validate", path)`: runs the command in-process; exit code and captured output."""

    def invoke(*args: str | Path) -> CliResult:
        capsys.readouterr()  # drop whatever earlier calls printed
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse usage errors
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def write_yaml(tmp_path: Path) -> WriteYaml:
    """`write_yaml("name.yaml", text)`: the dedented text as a file under tmp_path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write
