"""The task cache's figures (issue "Never pay twice"):

- a 200-task pipeline (10 layers of 20 `sh -c true` tasks, each layer after the one before,
  parallelism 20, every task cached) run by the operator on the e2e control plane, then
  run again: wall time of the fully cached run over the first run's (Run created -> a
  watch shows it Succeeded), and the operator's API requests per cached task (every HTTP
  request of its process, counted by bench.countingop from creation until 2 s after);
- the digits example run locally twice by `pipesync run` in one work directory: the
  second run's wall time over the first's;
- the cost of a cache lookup per task (key, entry read, artifact check, on a store on
  disk) against the planner's own cost per task in the same pass.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.figures import Figure, Section, timed
from bench.operator_bench import (
    OPERATOR_NS,
    Cluster,
    describe_counts,
    difference,
    read_counts,
    run_body,
)
from bench.stack import Stack
from pipesync.api import model
from pipesync.engine import compiler, planner
from pipesync.engine import context as runcontext
from pipesync.engine.state import NodeState

SECTION = "cache"
TARGET_CLUSTER_RATIO = 0.05
TARGET_REQUESTS = 1.0
TARGET_LOCAL_RATIO = 0.1
ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "repo-layout" / "pipelines" / "digits.yaml"

Say = Callable[[str], None]


def layered_spec(layers: int, width: int) -> dict[str, Any]:
    """`layers` x `width` cached tasks; each task waits for the whole layer before it."""
    tasks: list[dict[str, Any]] = []
    for layer in range(layers):
        for slot in range(width):
            task: dict[str, Any] = {
                "name": f"l{layer}-t{slot}",
                "command": ["sh", "-c", "true"],
                "cache": {"enabled": True, "paths": []},
            }
            if layer:
                task["dependsOn"] = [f"l{layer - 1}-t{s}" for s in range(width)]
            tasks.append(task)
    return {"parallelism": 20, "tasks": tasks}


def cluster_figures(quick: bool, say: Say, section: Section) -> None:
    layers, width = (2, 5) if quick else (10, 20)
    count = layers * width
    spec = layered_spec(layers, width)
    with Stack() as stack:
        say("starting control plane, node agent, S3 ...")
        stack.start()
        cluster = Cluster(stack)
        cluster.namespace(OPERATOR_NS)
        counts_file = stack.workdir / "operator-requests.json"
        stack.start_operator(OPERATOR_NS, counted_to=counts_file, label="counted")
        first = cluster.run_timed(OPERATOR_NS, run_body("cache-first", spec), 900.0)
        say(f"  first run of {count} tasks: {first:.1f} s")
        time.sleep(2.5)  # its entries are written in the passes that saw its pods succeed
        before = read_counts(counts_file)
        again = cluster.run_timed(OPERATOR_NS, run_body("cache-again", spec), 300.0)
        time.sleep(2.0)
        requests = difference(read_counts(counts_file), before)
        total = sum(requests.values())
        status = cluster.get_run(OPERATOR_NS, "cache-again")["status"]
        cached = int((status.get("taskCounts") or {}).get("cached") or 0)
        say(f"  cached run: {again:.2f} s, {cached} cached, {total} API requests")
    if cached != count:
        raise RuntimeError(f"the second run served {cached} of {count} tasks from the cache")
    ratio = again / first
    section.figures.append(
        Figure(
            SECTION,
            f"{count}-task pipeline run again fully cached (operator): cached / first run",
            ratio,
            "x",
            target=f"<= {TARGET_CLUSTER_RATIO}",
            met=ratio <= TARGET_CLUSTER_RATIO,
            margin=f"{(ratio / TARGET_CLUSTER_RATIO - 1) * 100:+.0f}% vs target",
            note=f"first run {first:.1f} s ({count} pods, 10 layers of 20), cached run "
            f"{again:.2f} s (no pod; Run created -> Succeeded by a watch)",
        )
    )
    per_task = total / count
    section.figures.append(
        Figure(
            SECTION,
            f"{count}-task pipeline run again fully cached: API requests per cached task",
            per_task,
            "requests",
            target=f"<= {TARGET_REQUESTS}",
            met=per_task <= TARGET_REQUESTS,
            margin=f"{(per_task / TARGET_REQUESTS - 1) * 100:+.0f}% vs target",
            note=f"{total} HTTP requests by the operator process for the whole run: "
            f"{describe_counts(requests)}",
        )
    )


def local_figures(quick: bool, say: Say, section: Section) -> None:
    with tempfile.TemporaryDirectory(prefix="pipesync-cache-bench-") as scratch:
        workdir = Path(scratch) / "work"
        argv = [
            sys.executable, "-m", "pipesync.cli.main", "run", str(DIGITS),
            "--plain", "--workdir", str(workdir),
        ]  # fmt: skip

        def once() -> float:
            started = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"pipesync run failed:\n{done.stdout}\n{done.stderr}")
            return elapsed

        first = once()
        again = min(once() for _ in range(1 if quick else 3))
    say(f"  digits locally: first {first:.1f} s, again {again:.2f} s")
    ratio = again / first
    section.figures.append(
        Figure(
            SECTION,
            "digits example run locally again: cached / first run",
            ratio,
            "x",
            target=f"<= {TARGET_LOCAL_RATIO}",
            met=ratio <= TARGET_LOCAL_RATIO,
            margin=f"{(ratio / TARGET_LOCAL_RATIO - 1) * 100:+.0f}% vs target",
            note=f"`pipesync run pipelines/digits.yaml --plain` as a subprocess, one work "
            f"directory: first {first:.1f} s, again {again:.2f} s (best of the repeats; "
            "interpreter start-up included; onExit runs every time)",
        )
    )


def lookup_figures(quick: bool, say: Say, section: Section) -> None:
    """One pass's lookups of 200 launches on an on-disk store, against planning them."""
    from pipesync.controllers import runcache  # noqa: PLC0415 - the bench's own wiring
    from pipesync.runtime import cachestore, pods  # noqa: PLC0415
    from pipesync.runtime.storage import LocalStore  # noqa: PLC0415

    width = 200
    spec = model.pipeline_spec_from_spec({**layered_spec(1, width), "parallelism": width})
    compiled, _ = compiler.compile_pipeline(spec)
    assert compiled is not None
    context = runcontext.run_context(spec, {}, name="bench", namespace="ns", created_at=0.0)
    nodes: dict[tuple[int, int], NodeState] = {}
    decision = planner.plan(compiled, nodes, context, 0.0)
    if len(decision.launches) != width:
        raise RuntimeError(f"{len(decision.launches)} launches planned, not {width}")
    with tempfile.TemporaryDirectory(prefix="pipesync-lookup-bench-") as scratch:
        store = LocalStore(Path(scratch))
        settings = pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b"))
        cache = runcache.RunCache(cachestore.ObjectCacheStore(store), settings)
        run = {"metadata": {"name": "bench", "namespace": "ns", "uid": "u"}}
        repeats = 3 if quick else 20

        def look_up() -> None:
            cache.forget("u")  # every lookup reads its entry again
            cache.look_up(
                run, compiled, decision.launches, nodes,
                code=runcache.NO_CODE, context=context, now=0.0,
            )  # fmt: skip

        lookups = timed(look_up, repeats)
        plans = timed(lambda: planner.plan(compiled, nodes, context, 0.0), repeats)
    per_lookup = lookups.best / width * 1e6
    per_plan = plans.best / width * 1e6
    say(f"  lookup {per_lookup:.1f} us/task, plan {per_plan:.1f} us/task")
    section.figures.append(
        Figure(
            SECTION,
            "cache lookup per task (key, entry read on disk) / planner per task",
            per_lookup / per_plan,
            "x",
            note=f"{width} launches of one pass: lookups {per_lookup:.1f} us per task "
            f"(best of {repeats}; misses: the key and one entry read each), plan() "
            f"{per_plan:.1f} us per task; in S3 an entry read is one GET per launch, "
            "made once per attempt",
        )
    )


def measure(quick: bool, say: Say) -> Section:
    section = Section("Task cache (caching and retries)")
    lookup_figures(quick, say, section)
    local_figures(quick, say, section)
    cluster_figures(quick, say, section)
    return section


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for figure in measure(quick, print).figures:
        print(figure)
