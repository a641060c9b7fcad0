"""P10 (KFP pipelines): the same 20-lightweight-component KFP pipeline run by
`pipesync run` and by kfp.local's SubprocessRunner, in the same benchmark run.

The pipeline is a chain (each task adds 1 to its upstream's output), so neither runner
gains from running tasks side by side: the figure compares per-task overhead. Both run
as subprocesses of this benchmark so neither warms the other's imports. pipesync's time
is its whole process (interpreter start-up, reading the YAML, 20 tasks); kfp.local's is
measured inside its process around the pipeline call only (its import excluded), which
favours kfp.local. Ratio = pipesync / kfp.local; target <= 0.25.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from bench.figures import Figure, Section

TARGET_RATIO = 0.25
TASKS = 20

#: The pipeline and both ways of running it, as one script (runs with this venv's python).
SCRIPT = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    from kfp import compiler, dsl, local

    @dsl.component(base_image="python:3.11")
    def step(x: int) -> int:
        return x + 1

    @dsl.pipeline(name="kfp-bench-chain")
    def chain(start: int = 0) -> int:
        task = step(x=start)
        for _ in range(TASKS - 1):
            task = step(x=task.output)
        return task.output

    mode, target = sys.argv[1], sys.argv[2]
    if mode == "compile":
        compiler.Compiler().compile(chain, target)
    else:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=target)
        began = time.perf_counter()
        result = chain(start=0)
        elapsed = time.perf_counter() - began
        print(json.dumps({"seconds": elapsed, "output": result.output}))
    """
).replace("TASKS", str(TASKS))


def measure(quick: bool, say: Callable[[str], None]) -> Section:
    section = Section("P10: KFP pipelines, pipesync run versus kfp.local")
    with tempfile.TemporaryDirectory(prefix="pipesync-kfp-bench-") as temporary:
        folder = Path(temporary)
        script = folder / "bench_pipeline.py"
        script.write_text(SCRIPT)
        compiled = folder / "chain.yaml"
        subprocess.run([sys.executable, str(script), "compile", str(compiled)], check=True)
        rounds = 1 if quick else 3
        ours: list[float] = []
        theirs: list[float] = []
        for round_ in range(rounds):
            began = time.perf_counter()
            done = subprocess.run(
                [
                    str(Path(sys.executable).with_name("pipesync")),
                    "run",
                    str(compiled),
                    "--plain",
                    "--workdir",
                    str(folder / "work"),
                    "--run-name",
                    f"bench-{round_}",
                ],
                capture_output=True,
                text=True,
                check=False,
                cwd=folder,
            )
            ours.append(time.perf_counter() - began)
            if done.returncode != 0:
                raise RuntimeError(f"pipesync run failed:\n{done.stdout}\n{done.stderr}")
            record = folder / "work" / "local" / "runs" / f"bench-{round_}" / "run.json"
            last = json.loads(record.read_text())["tasks"]
            outputs = [row["outputs"].get("Output") for row in last]
            if str(TASKS) not in outputs:
                raise RuntimeError(f"pipesync's chain did not reach {TASKS}: {outputs}")
            local_run = subprocess.run(
                [sys.executable, str(script), "local", str(folder / f"kfp-root-{round_}")],
                capture_output=True,
                text=True,
                check=False,
                cwd=folder,
            )
            if local_run.returncode != 0:
                raise RuntimeError(f"kfp.local failed:\n{local_run.stderr[-2000:]}")
            result = json.loads(local_run.stdout.strip().splitlines()[-1])
            if result["output"] != TASKS:
                raise RuntimeError(f"kfp.local's chain gave {result['output']}, not {TASKS}")
            theirs.append(float(result["seconds"]))
            say(f"  round {round_ + 1}: pipesync {ours[-1]:.2f} s, kfp.local {theirs[-1]:.2f} s")
    best_ours, best_theirs = min(ours), min(theirs)
    ratio = best_ours / best_theirs
    section.figures += [
        Figure(section.title, f"pipesync run, {TASKS}-task chain (whole process)", best_ours, "s"),
        Figure(
            section.title, "kfp.local SubprocessRunner, same pipeline (run only)", best_theirs, "s"
        ),
        Figure(
            section.title,
            f"per task: pipesync {best_ours / TASKS * 1000:.0f} ms, "
            f"kfp.local {best_theirs / TASKS * 1000:.0f} ms",
            best_ours / TASKS * 1000,
            "ms/task (pipesync)",
        ),
        Figure(
            section.title,
            "wall-time ratio pipesync / kfp.local",
            ratio,
            "x",
            target=f"P10: <= {TARGET_RATIO}",
            met=ratio <= TARGET_RATIO,
            margin=f"{ratio / TARGET_RATIO:.2f} of the allowed ratio",
        ),
    ]
    return section
