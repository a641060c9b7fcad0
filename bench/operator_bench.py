"""P1, P5 and P7 (the operator), measured on the e2e suite's real control plane, node agent
and S3 server (see bench/stack.py).

P1: a forEach of 200 instances of `sh -c true` (parallelism 20) and a chain of 100 such
tasks, from the Run's creation to the watch event that shows it Succeeded, against a lower
bound measured in the same process: a script that creates the very same pods (built by
pipesync.runtime.pods.build_pod from the same compiled pipeline, owned by an idle Run so the
garbage collector treats them alike) in a namespace no operator watches, and creates each
next pod as soon as a watch shows the one it waits for Succeeded (parallelism 20, or one
after another). Same pods, same node agent, same scheduler: the difference is the operator.
API requests per task are every HTTP request the operator process sent (kopf's and the
controllers'), counted inside it by bench.countingop, from Run creation until 2 s after it
Succeeded, divided by the pods it ran.

P5: the JSON size of `.status` of a Run with 2,000 tasks. Run for real (2,000 independent
`true` tasks, parallelism 200) when the machine gets through it in the time box, else (and
always, for the worst case) from pipesync.controllers.runs.summarise on simulated states.

P7: VmRSS of `pipesync operator` (the plain command) after it was restarted with 1,000
finished one-task Runs (and their pods and ConfigMaps) in its namespace, once its RSS
stopped growing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes import watch

from bench.figures import Figure, Section
from bench.stack import Stack, rss_bytes
from pipesync.api import conventions, model
from pipesync.controllers import runs
from pipesync.engine import compiler, planner
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, NodeState, Phase
from pipesync.runtime import pods

TARGET_RATIO = 1.2
TARGET_STATUS_BYTES = 256 * 1024
TARGET_RSS = 200 * 1024 * 1024
SECTION = "operator"
PARALLELISM = 20
OPERATOR_NS = "bench-op"
BASELINE_NS = "bench-base"
MEMORY_NS = "bench-mem"
FINISHED = ("Succeeded", "Failed", "Cancelled")
TRUE = ["sh", "-c", "true"]

Say = Callable[[str], None]


# --- pipelines ------------------------------------------------------------------------


def fan_out_spec(count: int, parallelism: int) -> dict[str, Any]:
    return {
        "tasks": [
            {
                "name": "each",
                "forEach": {"items": list(range(count)), "parallelism": parallelism},
                "command": TRUE,
            }
        ]
    }


def chain_spec(count: int) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    for number in range(count):
        task: dict[str, Any] = {"name": f"t{number}", "command": TRUE}
        if number:
            task["dependsOn"] = [f"t{number - 1}"]
        tasks.append(task)
    return {"tasks": tasks}


def wide_spec(count: int) -> dict[str, Any]:
    return {"tasks": [{"name": f"t{n}", "command": TRUE} for n in range(count)]}


def run_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": model.API_VERSION,
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {"pipelineSpec": spec},
    }


# --- the cluster side -----------------------------------------------------------------


class Cluster:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.client = stack.api()
        self.core = kubernetes.client.CoreV1Api(self.client)
        self.custom = kubernetes.client.CustomObjectsApi(self.client)

    def namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name}})

    def create_run(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            model.GROUP, model.VERSION, namespace, "runs", body
        )
        return created

    def get_run(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            model.GROUP, model.VERSION, namespace, "runs", name
        )
        return found

    def run_timed(self, namespace: str, body: dict[str, Any], timeout: float) -> float:
        """Creates the Run; seconds until a watch shows it finished (it must succeed)."""
        name = body["metadata"]["name"]
        listed = self.custom.list_namespaced_custom_object(
            model.GROUP, model.VERSION, namespace, "runs"
        )
        version = listed["metadata"]["resourceVersion"]
        started = time.perf_counter()
        self.create_run(namespace, body)
        watcher = watch.Watch()
        deadline = time.monotonic() + timeout
        phase = ""
        while time.monotonic() < deadline and phase not in FINISHED:
            for event in watcher.stream(
                self.custom.list_namespaced_custom_object,
                model.GROUP,
                model.VERSION,
                namespace,
                "runs",
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=max(1, int(deadline - time.monotonic())),
            ):
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                phase = (obj.get("status") or {}).get("phase", "")
                if phase in FINISHED:
                    watcher.stop()
                    break
        elapsed = time.perf_counter() - started
        if phase != "Succeeded":
            status = self.get_run(namespace, name).get("status")
            raise RuntimeError(f"run {name} ended {phase or 'unfinished'}: {status}")
        return elapsed


# --- the lower bound: the same pods, created by a script ------------------------------


class PodScript:
    """Creates the pods of one pipeline itself, in its dependency order, and waits."""

    def __init__(self, cluster: Cluster, stack: Stack, spec: dict[str, Any], name: str) -> None:
        self.cluster = cluster
        compiled, problems = compiler.compile_pipeline(model.pipeline_spec_from_spec(spec))
        if compiled is None:
            raise RuntimeError(f"bench pipeline invalid: {problems}")
        self.compiled = compiled
        # An idle Run owns the pods, as the operator's Run owns its pods (same GC work).
        owner = cluster.create_run(BASELINE_NS, run_body(name, spec))
        self.info = pods.RunInfo(name=name, namespace=BASELINE_NS, uid=owner["metadata"]["uid"])
        self.settings = stack_pod_settings(stack)

    def pod(self, index: int, instance: int) -> dict[str, Any]:
        task = self.compiled.tasks[index]
        launch = planner.Launch(
            key=(index, instance),
            task=task,
            attempt=1,
            item=None if instance == TASK else instance,
            has_item=instance != TASK,
        )
        return pods.build_pod(launch, run=self.info, settings=self.settings, pipeline=self.compiled)

    def run(self, order: list[tuple[int, int]], parallelism: int, timeout: float) -> float:
        """Creates `order`'s pods keeping `parallelism` unfinished; seconds to the last."""
        manifests = [self.pod(index, instance) for index, instance in order]
        core = self.cluster.core
        version = core.list_namespaced_pod(BASELINE_NS, limit=1).metadata.resource_version
        started = time.perf_counter()
        waiting = 0
        created = 0
        done: set[str] = set()
        while created < min(parallelism, len(manifests)):
            core.create_namespaced_pod(BASELINE_NS, manifests[created])
            created += 1
        watcher = watch.Watch()
        deadline = time.monotonic() + timeout
        selector = f"{conventions.LABEL_RUN}={self.info.name}"
        while len(done) < len(manifests):
            if time.monotonic() > deadline:
                raise RuntimeError(f"baseline {self.info.name}: {len(done)} pods done")
            for event in watcher.stream(
                core.list_namespaced_pod,
                BASELINE_NS,
                label_selector=selector,
                resource_version=version,
                timeout_seconds=30,
            ):
                pod = event["raw_object"]
                meta = pod["metadata"]
                version = meta["resourceVersion"]
                phase = (pod.get("status") or {}).get("phase")
                if phase == "Failed":
                    raise RuntimeError(f"baseline pod {meta['name']} failed: {pod['status']}")
                if phase != "Succeeded" or meta["name"] in done:
                    continue
                done.add(meta["name"])
                waiting = created - len(done)
                while created < len(manifests) and waiting < parallelism:
                    core.create_namespaced_pod(BASELINE_NS, manifests[created])
                    created += 1
                    waiting += 1
                if len(done) == len(manifests):
                    watcher.stop()
                    break
        return time.perf_counter() - started


def stack_pod_settings(stack: Stack) -> pods.PodSettings:
    """What `pipesync operator` builds from the flags bench/stack.py passes it."""
    assert stack.s3 is not None
    s3 = stack.s3
    return pods.PodSettings(
        image=f"ghcr.io/pipesync/pipesync:{_version()}",
        s3=pods.S3Settings(
            bucket=s3.bucket,
            endpoint=s3.endpoint_url,
            region=s3.region,
            access_key_id=s3.access_key,
            secret_access_key=s3.secret_key,
        ),
        default_task_image="busybox:1.36",
    )


def _version() -> str:
    from pipesync import __version__  # noqa: PLC0415

    return __version__


# --- request counts ---------------------------------------------------------------------


def read_counts(path: Path) -> dict[str, int]:
    try:
        counts: dict[str, int] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return counts


def difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def controller_requests(stack: Stack) -> float:
    """Sum of pipesync_kubernetes_requests_total scraped from the newest operator."""
    total = 0.0
    for line in stack.metrics().splitlines():
        if line.startswith("pipesync_kubernetes_requests_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def describe_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


# --- the measurements ---------------------------------------------------------------------


def p1(stack: Stack, cluster: Cluster, quick: bool, say: Say, section: Section) -> None:
    fan, chain = (20, 10) if quick else (200, 100)
    parallelism = 5 if quick else PARALLELISM
    counts_file = stack.workdir / "operator-requests.json"
    cases = [
        (
            f"P1 fan-out: forEach of {fan} `sh -c true`, parallelism {parallelism}",
            "fan",
            fan_out_spec(fan, parallelism),
            [(0, i) for i in range(fan)],
            parallelism,
            fan,
        ),
        (
            f"P1 chain of {chain} `sh -c true` tasks",
            "chain",
            chain_spec(chain),
            [(i, TASK) for i in range(chain)],
            1,
            chain,
        ),
    ]
    timeout = 900.0
    for title, key, spec, order, width, tasks in cases:
        base_seconds = PodScript(cluster, stack, spec, f"base-{key}").run(order, width, timeout)
        say(f"  {key}: script creating the same pods: {base_seconds:.1f} s")
        before = read_counts(counts_file)
        controller_before = controller_requests(stack)
        op_seconds = cluster.run_timed(OPERATOR_NS, run_body(f"op-{key}", spec), timeout)
        time.sleep(2.5)  # follow-up requests (events, kopf annotations) belong to the run
        requests = difference(read_counts(counts_file), before)
        total = sum(requests.values())
        controller = controller_requests(stack) - controller_before
        say(f"  {key}: operator: {op_seconds:.1f} s; {total} API requests")
        ratio = op_seconds / base_seconds
        section.figures.append(
            Figure(
                SECTION,
                f"{title}: operator / script",
                ratio,
                "x",
                target=f"P1: <= {TARGET_RATIO}",
                met=ratio <= TARGET_RATIO,
                margin=f"{(ratio / TARGET_RATIO - 1) * 100:+.0f}% vs target",
                note=f"operator {op_seconds:.1f} s (Run created -> Succeeded), script "
                f"{base_seconds:.1f} s (same pods, same order)",
            )
        )
        section.figures.append(
            Figure(
                SECTION,
                f"{title}: API requests per task",
                total / tasks,
                "requests",
                note=f"{total} HTTP requests by the operator process for {tasks} pods "
                f"(watches counted once): {describe_counts(requests)}; of which "
                f"{controller:.0f} by the run controller's KubeClient "
                "(pipesync_kubernetes_requests_total), the rest kopf's",
            )
        )


def p5(quick: bool, say: Say, section: Section) -> None:
    """The status summarise() writes for a 2,000-task run, on simulated pod states.

    Run for real, 2,000 pods take longer than this bench's time box on 2 cores (20 pods
    at parallelism 5 took 16 s here), so the states are simulated; the status is what
    the controller's pass computes and patches (pipesync.controllers.runs.summarise)."""
    count = 100 if quick else 2000
    compiled, problems = compiler.compile_pipeline(model.pipeline_spec_from_spec(wide_spec(count)))
    if compiled is None:
        raise RuntimeError(f"bench pipeline invalid: {problems}")
    now = time.time()
    run = {
        "metadata": {"name": "op-wide", "namespace": OPERATOR_NS, "generation": 1},
        "spec": {"pipelineSpec": wide_spec(count)},
        "status": {},
    }
    pinned = runs.Pinned(
        compiled, {}, {"name": "", "version": "0" * 12, "digest": "", "commit": ""}
    )
    cases = {
        "every task Succeeded": NodeState(Phase.SUCCEEDED, attempts=1, finished_at=now),
        "every task Failed after 3 attempts, 500-char messages": NodeState(
            Phase.FAILED,
            attempts=3,
            finished_at=now,
            failure=FailureKind.FAILED,
            message="x" * 600,
        ),
        "every task Running": NodeState(Phase.RUNNING, attempts=1),
    }
    for title, state in cases.items():
        nodes = {(task.index, TASK): state for task in compiled.tasks}
        decision = planner.plan(
            compiled, nodes, planner.RunContext("op-wide", OPERATOR_NS, {}), now
        )
        status = runs.summarise(run, pinned, nodes, decision, started=now - 60, now=now)
        size = len(json.dumps(status, separators=(",", ":")).encode())
        say(f"  {count}-task run, {title}: status {size} bytes")
        section.figures.append(
            Figure(
                SECTION,
                f"P5 status of a {count}-task run, {title}",
                size / 1024,
                "KiB",
                target="P5: < 256 KiB",
                met=size < TARGET_STATUS_BYTES,
                margin=f"{size / TARGET_STATUS_BYTES * 100:.0f}% of the limit",
                note="simulated pod states through runs.summarise (the status the run "
                "controller patches); compact JSON",
            )
        )


def p7(stack: Stack, cluster: Cluster, quick: bool, say: Say, section: Section) -> None:
    count = 50 if quick else 1000
    cluster.namespace(MEMORY_NS)
    operator = stack.start_operator(MEMORY_NS, label="operator-memory")
    spec = wide_spec(1)
    started = time.perf_counter()
    # In batches: 1,000 Runs created at once stall the operator (seen: 16 of 1,000 done
    # after 6 min, passes taking 4.4 s each); P7 is about memory once they are finished.
    batch = 50
    for first in range(0, count, batch):
        numbers = range(first, min(first + batch, count))
        for number in numbers:
            cluster.create_run(MEMORY_NS, run_body(f"r{number:04d}", spec))
        _wait_finished(cluster, len(numbers) + first, deadline=time.monotonic() + 600)
    busy_rss = rss_bytes(_leaf_pid(operator.popen.pid if operator.popen else 0))
    say(f"  {count} runs finished in {time.perf_counter() - started:.0f} s")
    operator.stop()
    cold = stack.start_operator(MEMORY_NS, label="operator-memory-restarted")
    pid = _leaf_pid(cold.popen.pid if cold.popen else 0)
    settled, samples = _settled_rss(pid)
    say(f"  operator RSS after restart: {settled / 2**20:.1f} MiB ({samples} samples)")
    section.figures.append(
        Figure(
            SECTION,
            f"P7 operator RSS, restarted with {count} finished runs",
            settled / 2**20,
            "MiB",
            target="P7: <= 200 MiB",
            met=settled <= TARGET_RSS,
            margin=f"{settled / TARGET_RSS * 100:.0f}% of the limit",
            note=f"VmRSS of `pipesync operator` once stable for 5 s after a cold start "
            f"(runs of one `sh -c true` task, pods and ConfigMaps kept); "
            f"{busy_rss / 2**20:.1f} MiB in the process that drove them",
        )
    )


def _wait_finished(cluster: Cluster, count: int, deadline: float) -> None:
    finished = 0
    while time.monotonic() < deadline:
        listed = cluster.custom.list_namespaced_custom_object(
            model.GROUP, model.VERSION, MEMORY_NS, "runs"
        )["items"]
        finished = sum(1 for r in listed if (r.get("status") or {}).get("phase") in FINISHED)
        if finished >= count:
            return
        time.sleep(1)
    raise RuntimeError(f"only {finished} of {count} runs finished")


def _leaf_pid(pid: int) -> int:
    """The python process behind `/usr/bin/env ... pipesync operator` (env execs it)."""
    return pid


def _settled_rss(pid: int, *, steady: float = 5.0, limit: float = 120.0) -> tuple[int, int]:
    """RSS once it has not grown by more than 1 MiB for `steady` seconds."""
    deadline = time.monotonic() + limit
    last = rss_bytes(pid)
    since = time.monotonic()
    samples = 1
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rss_bytes(pid)
        samples += 1
        if now > last + 2**20:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= steady:
            return max(now, last), samples
    return last, samples


def measure(quick: bool, say: Say) -> Section:
    section = Section("Operator on the e2e control plane (P1, P5, P7)")
    p5(quick, say, section)
    with Stack() as stack:
        say("starting control plane, node agent, S3 ...")
        stack.start()
        cluster = Cluster(stack)
        for namespace in (OPERATOR_NS, BASELINE_NS):
            cluster.namespace(namespace)
        counts_file = stack.workdir / "operator-requests.json"
        operator = stack.start_operator(OPERATOR_NS, counted_to=counts_file, label="counted")
        p1(stack, cluster, quick, say, section)
        operator.stop()  # P7 measures an operator of its own, on a quiet machine
        p7(stack, cluster, quick, say, section)
    return section


def measure_memory(quick: bool, say: Say) -> Section:
    section = Section("Operator memory on the e2e control plane (P7)")
    with Stack() as stack:
        say("starting control plane, node agent, S3 ...")
        stack.start()
        p7(stack, Cluster(stack), quick, say, section)
    return section


if __name__ == "__main__":
    import sys

    quick = "--quick" in sys.argv
    result = measure(quick, lambda text: print(text, flush=True))
    for figure in result.figures:
        print(f"{figure.name}: {figure.value:.3g} {figure.unit} {figure.margin} | {figure.note}")
