"""P6 (local executor): `pipesync run` of 200 trivial tasks versus a shell script running
the same commands, as a 200-task chain and as 200 independent tasks.

Every task is `/bin/true` (an external program, so the shell forks and execs it just like
pipesync does; the shell builtin `true` would not be a fair baseline). The chain's script
runs the 200 commands one after another; the wide case's script is `xargs -P N` with the
same N as `--parallelism`. pipesync runs as a subprocess, so its interpreter start-up
(measured alone as `pipesync --version`) is reported separately and also subtracted.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from bench.figures import Figure, Section, Timing, hotspots, timed
from pipesync.engine import layout

TARGET_RATIO = 1.2
PARALLELISM = 4
TRUE = "/bin/true"


def pipeline_file(folder: Path, name: str, count: int, *, chain: bool) -> Path:
    tasks = []
    for number in range(count):
        task: dict[str, object] = {"name": f"t{number}", "command": [TRUE]}
        if chain and number:
            task["dependsOn"] = [f"t{number - 1}"]
        tasks.append(task)
    document = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {
            "description": f"{count} trivial tasks for the executor benchmark.",
            "tasks": tasks,
        },
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def shell_script(folder: Path, name: str, count: int, *, chain: bool) -> Path:
    path = folder / f"{name}.sh"
    if chain:
        body = "".join(f"{TRUE} || exit 1\n" for _ in range(count))
    else:
        items = folder / f"{name}.items"
        items.write_text("".join(f"{n}\n" for n in range(count)))
        body = f"xargs -P {PARALLELISM} -n 1 {TRUE} < {items}\n"
    path.write_text("#!/bin/sh\nset -e\n" + body)
    return path


def _pipesync() -> str:
    return str(Path(sys.executable).parent / "pipesync")


class _Runs:
    """Repeated `pipesync run`s of one file, each checked to have run every task."""

    def __init__(self, file: Path, workdir: Path, count: int) -> None:
        self.file, self.workdir, self.count = file, workdir, count
        self.number = 0

    def argv(self) -> list[str]:
        self.number += 1
        return [
            "run",
            str(self.file),
            "--plain",
            "--parallelism",
            str(PARALLELISM),
            "--workdir",
            str(self.workdir),
            "--run-name",
            f"{self.file.stem}-{self.number}",
        ]

    def check(self, code: int, output: str) -> None:
        run = f"{self.file.stem}-{self.number}"
        record = self.workdir / layout.record_key("local", run)
        if code != 0 or not record.is_file():
            raise RuntimeError(f"pipesync run failed ({code}): {output[-2000:]}")
        tasks = json.loads(record.read_text())["tasks"]
        succeeded = sum(1 for row in tasks if row["phase"] == "Succeeded")
        if succeeded != self.count:
            raise RuntimeError(f"{run}: {succeeded} of {self.count} tasks succeeded")

    def subprocess(self) -> None:
        done = subprocess.run(
            [_pipesync(), *self.argv()], capture_output=True, text=True, check=False
        )
        self.check(done.returncode, done.stdout + done.stderr)

    def in_process(self) -> None:
        from pipesync.cli.main import main  # noqa: PLC0415 - imported once, cached after

        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = main(self.argv())
        self.check(code, out.getvalue())


def _sh(script: Path) -> None:
    subprocess.run(["/bin/sh", str(script)], check=True)


def _popen_loop(count: int) -> None:
    """The same commands started from Python one at a time: the cost of Python's own
    fork/exec, which any Python executor pays."""
    for _ in range(count):
        subprocess.Popen([TRUE], stdin=subprocess.DEVNULL).wait()


def measure(quick: bool, log: Callable[[str], None]) -> Section:
    section = Section("local executor (P6)")
    figures = section.figures
    count = 20 if quick else 200
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="pipesync-bench-executor-") as temp:
        folder = Path(temp)
        startup = timed(
            lambda: subprocess.run([_pipesync(), "--version"], capture_output=True, check=True),
            repeats + 2,
        )
        log(f"`pipesync --version` (interpreter start-up and imports): {startup.describe()}")
        figures.append(
            Figure(
                "executor",
                "`pipesync --version` start-up",
                startup.best * 1000,
                "ms",
                note=startup.describe(),
            )
        )
        popen = timed(lambda: _popen_loop(count), repeats)
        log(f"{count}x Popen('{TRUE}').wait() from Python: {popen.describe()}")
        figures.append(
            Figure(
                "executor",
                f"context: {count}x subprocess.Popen({TRUE}).wait() in Python, sequential",
                popen.best * 1000,
                "ms",
                note=popen.describe(),
            )
        )
        for shape, chain in (("chain", True), ("wide", False)):
            name = f"{shape}-{count}"
            file = pipeline_file(folder, name, count, chain=chain)
            script = shell_script(folder, name, count, chain=chain)
            runs = _Runs(file, folder / "work", count)
            runs.in_process()  # warm-up: first-use costs (schema compilation, lazy imports)
            shell = timed(lambda script=script: _sh(script), repeats + 2)
            ours = timed(runs.subprocess, repeats)
            inproc = timed(runs.in_process, repeats)
            _report(
                figures,
                log,
                shape=shape,
                count=count,
                shell=shell,
                ours=ours,
                inproc=inproc,
                startup=startup,
            )
            raw = (ours.best - startup.best) / shell.best
            if raw > TARGET_RATIO and not quick:
                section.profiles[
                    f"in-process `pipesync run` of the {count}-task {shape} "
                    "(cProfile, main thread only)"
                ] = hotspots(runs.in_process, only="pipesync/")
    return section


def _report(
    figures: list[Figure],
    log: Callable[[str], None],
    *,
    shape: str,
    count: int,
    shell: Timing,
    ours: Timing,
    inproc: Timing,
    startup: Timing,
) -> None:
    what = (
        f"{count} sequential {TRUE} in sh"
        if shape == "chain"
        else f"xargs -P {PARALLELISM} -n 1 {TRUE}, {count} items"
    )
    log(f"{shape}: shell ({what}) {shell.describe()}")
    log(f"{shape}: `pipesync run --plain --parallelism {PARALLELISM}` subprocess {ours.describe()}")
    log(f"{shape}: main(['run', ...]) in-process {inproc.describe()}")
    raw = ours.best / shell.best
    net = (ours.best - startup.best) / shell.best
    per_task = (ours.best - startup.best - shell.best) / count
    figures.append(
        Figure(
            "executor",
            f"{shape} of {count}: shell script ({what})",
            shell.best * 1000,
            "ms",
            note=shell.describe(),
        )
    )
    figures.append(
        Figure(
            "executor",
            f"{shape} of {count}: `pipesync run` subprocess",
            ours.best * 1000,
            "ms",
            note=ours.describe(),
        )
    )
    figures.append(
        Figure(
            "executor",
            f"{shape} of {count}: ratio pipesync / shell, raw",
            raw,
            "x",
            target=f"P6: <= {TARGET_RATIO}",
            met=raw <= TARGET_RATIO,
            margin=f"{raw / TARGET_RATIO:.1f}x the allowed ratio",
        )
    )
    figures.append(
        Figure(
            "executor",
            f"{shape} of {count}: ratio pipesync / shell, start-up excluded",
            net,
            "x",
            target=f"P6: <= {TARGET_RATIO}",
            met=net <= TARGET_RATIO,
            margin=f"{net / TARGET_RATIO:.1f}x the allowed ratio",
            note=f"overhead per task beyond the shell: {per_task * 1000:.2f} ms",
        )
    )
    figures.append(
        Figure(
            "executor",
            f"{shape} of {count}: in-process run / shell",
            inproc.best / shell.best,
            "x",
            note=f"main(['run', ...]) in this process: {inproc.best * 1000:.0f} ms "
            f"({inproc.best / count * 1000:.2f} ms/task)",
        )
    )
