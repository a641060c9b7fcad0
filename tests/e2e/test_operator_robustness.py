"""The operator's robustness on the real control plane: SIGKILL at any moment of a run (R1),
forEach parallelism as a hard cap, cancel, and the run timeout.

Every test drives its runs with its own operator (fixtures/killable_operator.py) in a
`solo-*` namespace the session operator ignores. A pod watch started before each run
records every pod event in the order the API server committed them, so "no pod was created
twice" and "never more than N pods at once" are checked on the exact history, not on
samples.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.killable_operator import KillableOperator

RUN = "pipesync.io/run"
TASK = "pipesync.io/task"
INSTANCE = "pipesync.io/instance"
ATTEMPT = "pipesync.io/attempt"
FINISHED = ("Succeeded", "Failed", "Cancelled")

# --------------------------------------------------------------------------- pipelines

#: prepare -> fan (6 items, 2 at a time) -> collect, then onExit: every kind of step a
#: kill can land in (pinning, single task, half-done forEach, aggregation, onExit).
STURDY = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: sturdy}
spec:
  tasks:
    - name: prepare
      command: [sh, -c, 'sleep 1; echo "dataset v1" > "$0"; printf 6 > "$1"',
                "{{outputs.artifacts.data}}", "{{outputs.parameters.count}}"]
      outputs: {artifacts: [data], parameters: [count]}
    - name: fan
      dependsOn: [prepare]
      forEach: {items: [1, 2, 3, 4, 5, 6], parallelism: 2}
      command: [sh, -c, 'sleep 1; expr "$0" \\* 10 > "$1"', "{{item}}",
                "{{outputs.parameters.v}}"]
      outputs: {parameters: [v]}
    - name: collect
      inputs: {artifacts: {data: {from: "{{tasks.prepare.outputs.artifacts.data}}"}}}
      command: [sh, -c, 'sleep 1; cat "$0"; echo "values $1"; printf %s "$1" > "$2"',
                "{{inputs.artifacts.data}}", "{{tasks.fan.outputs.parameters.v}}",
                "{{outputs.parameters.seen}}"]
      outputs: {parameters: [seen]}
  onExit:
    name: finish
    command: [sh, -c, 'echo "finished $0"', "{{run.status}}"]
"""
STURDY_VALUES = "[10,20,30,40,50,60]"
STURDY_PODS = 1 + 6 + 1 + 1

#: 50 instances, 5 at a time; each reports its item and its own start and end clocks.
WIDE = (
    """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: wide}
spec:
  params:
    - {name: items, type: list, default: ITEMS}
  tasks:
    - name: wide
      forEach: {items: "{{params.items}}", parallelism: 5}
      command: [sh, -c, 's=$(date +%s%N); sleep 0.3; echo "$0 $s $(date +%s%N)" > "$1"',
                "{{item}}", "{{outputs.parameters.span}}"]
      outputs: {parameters: [span]}
    - name: gather
      command: [sh, -c, 'printf %s "$0" > "$1"', "{{tasks.wide.outputs.parameters.span}}",
                "{{outputs.parameters.all}}"]
      outputs: {parameters: [all]}
"""
).replace("ITEMS", json.dumps(list(range(50))))

#: A task that sleeps until stopped (its sleep argument is a unique token, so the test can
#: tell whether the process is still alive), a task after it, and an onExit.
LONG = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: long}
spec:
  params:
    - {name: token, type: string}
  tasks:
    - name: long
      command: [sh, -c, 'echo started; sleep "$0"', "{{params.token}}"]
    - name: after
      dependsOn: [long]
      command: [sh, -c, "echo never"]
  onExit:
    name: farewell
    command: [sh, -c, 'echo "farewell $0"', "{{run.status}}"]
"""


# --------------------------------------------------------------------------- helpers


@dataclasses.dataclass(frozen=True)
class PodEvent:
    kind: str  # ADDED, MODIFIED, DELETED
    name: str
    uid: str
    labels: dict[str, str]
    phase: str
    deleting: bool
    at: float  # time.time() when the test saw it
    pod: dict[str, Any]


class PodWatch:
    """Every pod event of a namespace, in the API server's order, from a list taken at
    construction on: nothing that happens after __init__ returns can be missed."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.namespace = namespace
        self.api = cluster.api_client()
        self.core = kubernetes.client.CoreV1Api(self.api)
        self.events: list[PodEvent] = []
        self.latest: dict[str, dict[str, Any]] = {}
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        listed = self.core.list_namespaced_pod(namespace)
        for pod in listed.items:
            self._record("ADDED", self.api.sanitize_for_serialization(pod))
        self._version: str = listed.metadata.resource_version
        self._thread = threading.Thread(target=self._loop, name=f"watch-{namespace}", daemon=True)
        self._thread.start()

    def _record(self, kind: str, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        event = PodEvent(
            kind=kind,
            name=metadata["name"],
            uid=metadata["uid"],
            labels=dict(metadata.get("labels") or {}),
            phase=(pod.get("status") or {}).get("phase") or "Pending",
            deleting=bool(metadata.get("deletionTimestamp")),
            at=time.time(),
            pod=pod,
        )
        with self._lock:
            self.events.append(event)
            if kind == "DELETED":
                self.latest.pop(event.name, None)
            else:
                self.latest[event.name] = pod

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                watch = kubernetes.watch.Watch()
                for item in watch.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    resource_version=self._version,
                    timeout_seconds=2,
                    allow_watch_bookmarks=True,
                ):
                    raw = item["raw_object"]
                    self._version = raw["metadata"]["resourceVersion"]
                    if item["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self._record(item["type"], raw)
                    if self._stopping.is_set():
                        watch.stop()
        except BaseException as error:  # reported by check()
            self.error = error

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the pod watch broke: {self.error!r}")

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        self.api.close()

    def of_run(self, run: str) -> list[PodEvent]:
        with self._lock:
            return [e for e in self.events if e.labels.get(RUN) == run]

    def pods(self, run: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for p in self.latest.values() if p["metadata"]["labels"].get(RUN) == run]


@pytest.fixture
def pod_watch(cluster: Cluster, solo_namespace: str) -> Iterator[PodWatch]:
    watch = PodWatch(cluster, solo_namespace)
    try:
        yield watch
    finally:
        watch.close()


def apply(cluster: Cluster, namespace: str, document: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=document)


def apply_pipeline(cluster: Cluster, namespace: str, document: str) -> None:
    apply(cluster, namespace, document)
    name = yaml.safe_load(document)["metadata"]["name"]
    cluster.kubectl(
        "wait", "--for=condition=Ready", f"pipeline/{name}", "-n", namespace, "--timeout=60s"
    )


def create_run(cluster: Cluster, namespace: str, name: str, pipeline: str, **spec: Any) -> None:
    document = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": pipeline}, **spec},
    }
    apply(cluster, namespace, yaml.safe_dump(document))


def get_run(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        cluster.kubectl("get", "run", name, "-n", namespace, "-o", "json").stdout
    )
    return found


def wait_finished(
    cluster: Cluster, namespace: str, name: str, operator: KillableOperator, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = get_run(cluster, namespace, name)
        if run.get("status", {}).get("phase") in FINISHED:
            return run
        time.sleep(0.3)
    raise AssertionError(
        f"run {name} did not finish in {timeout:.0f}s: "
        f"{json.dumps(run.get('status'), indent=1)}\noperator log:\n{operator.log()}"
    )


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def main_log(cluster: Cluster, namespace: str, pod: str) -> str:
    return cluster.kubectl("logs", "-n", namespace, pod, "-c", "main").stdout


def task_pods(pods: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    return [p for p in pods if p["metadata"]["labels"].get(TASK) == task]


def process_alive(token: str) -> bool:
    """Whether a local process (the node agent runs pods as processes) names `token`."""
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            return True
    return False


def sleep_token() -> str:
    """A `sleep` argument no other process has: ~1000 s with random decimals."""
    return f"1000.{uuid.uuid4().int % 10**9:09d}"


def main_running(pod: dict[str, Any]) -> bool:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status["name"] == "main" and (status.get("state") or {}).get("running"):
            return True
    return False


# --------------------------------------------------------------------------- R1: SIGKILL


@dataclasses.dataclass(frozen=True)
class Moment:
    name: str
    reached: Callable[[PodWatch, Any, str, str], bool]  # (watch, core api, namespace, run)


def _succeeded(watch: PodWatch, run: str, task: str) -> int:
    return sum(
        1 for p in task_pods(watch.pods(run), task) if p["status"].get("phase") == "Succeeded"
    )


def _pinned(core: Any, namespace: str, run: str) -> bool:
    try:
        core.read_namespaced_config_map(f"{run}-pipeline", namespace)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


MOMENTS = (
    # The Run exists; the operator may not even have seen it yet.
    Moment("run-created", lambda w, c, ns, r: True),
    # The pipeline spec is pinned: the first pass is under way.
    Moment("spec-pinned", lambda w, c, ns, r: _pinned(c, ns, r)),
    # The first pod exists; status may not say so yet.
    Moment("first-pod", lambda w, c, ns, r: bool(w.pods(r))),
    # The forEach is half done: 3 of 6 instances succeeded, others running.
    Moment("foreach-half", lambda w, c, ns, r: _succeeded(w, r, "fan") >= 3),
    # The last task just finished: the onExit pod is due but (likely) not created.
    Moment("before-onexit", lambda w, c, ns, r: _succeeded(w, r, "collect") >= 1),
    # The onExit pod exists; the run's final status is not written yet.
    Moment("onexit-created", lambda w, c, ns, r: bool(task_pods(w.pods(r), "finish"))),
)

#: How many times the loop over the moments runs (raise it to soak: PIPESYNC_R1_ROUNDS=5).
ROUNDS = int(os.environ.get("PIPESYNC_R1_ROUNDS", "1"))


def check_no_duplicate_pods(watch: PodWatch, run: str) -> None:
    events = watch.of_run(run)
    uids: dict[str, set[str]] = {}
    for event in events:
        uids.setdefault(event.name, set()).add(event.uid)
    twice = {name: sorted(found) for name, found in uids.items() if len(found) > 1}
    assert not twice, f"pods created more than once: {twice}"
    deleted = sorted({e.name for e in events if e.kind == "DELETED" or e.deleting})
    assert not deleted, f"pods deleted during a run that needed none stopped: {deleted}"
    identities: dict[tuple[str, str, str], list[str]] = {}
    for pod in watch.pods(run):
        labels = pod["metadata"]["labels"]
        identity = (labels[TASK], labels.get(INSTANCE, "-"), labels[ATTEMPT])
        identities.setdefault(identity, []).append(pod["metadata"]["name"])
    again = {k: v for k, v in identities.items() if len(v) > 1}
    assert not again, f"two pods for one (task, instance, attempt): {again}"
    assert len(identities) == STURDY_PODS, sorted(identities)
    assert {k[2] for k in identities} == {"1"}, "a task was retried although none failed"


def check_results(
    cluster: Cluster, namespace: str, run: str, status: dict[str, Any], s3: Any
) -> None:
    tasks = status["tasks"]
    assert status["progress"] == "3/3"
    assert tasks["prepare"]["outputs"]["count"] == "6"
    assert tasks["fan"]["outputs"]["v"] == STURDY_VALUES
    assert tasks["fan"]["instances"] == {"total": 6, "succeeded": 6, "failed": 0, "running": 0}
    assert tasks["collect"]["outputs"]["seen"] == STURDY_VALUES
    assert all(tasks[t]["attempts"] == 1 for t in ("prepare", "collect"))
    pods = {p["metadata"]["labels"][TASK]: p for p in cluster_pods(cluster, namespace, run)}
    collected = main_log(cluster, namespace, pods["collect"]["metadata"]["name"])
    assert "dataset v1" in collected and f"values {STURDY_VALUES}" in collected
    assert "finished Succeeded" in main_log(cluster, namespace, pods["finish"]["metadata"]["name"])
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=f"{namespace}/runs/{run}/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    base = f"{namespace}/runs/{run}"
    wanted = {
        f"{base}/prepare/outputs/artifacts/data",
        f"{base}/prepare/outputs/parameters/count",
        f"{base}/collect/outputs/parameters/seen",
        *(f"{base}/fan/{i}/outputs/parameters/v" for i in range(6)),
    }
    assert wanted <= keys, f"missing in S3: {sorted(wanted - keys)}; found {sorted(keys)}"


def cluster_pods(cluster: Cluster, namespace: str, run: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"{RUN}={run}", "-o", "json")
    items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
    return items


def test_sigkill_at_every_moment_of_a_run_loses_and_duplicates_nothing(
    cluster: Cluster,
    killable_operator: KillableOperator,
    solo_namespace: str,
    pod_watch: PodWatch,
    s3: Any,
) -> None:
    namespace, operator = solo_namespace, killable_operator
    apply_pipeline(cluster, namespace, STURDY)
    core = kubernetes.client.CoreV1Api(pod_watch.api)
    seen: list[str] = []
    for round_number in range(ROUNDS):
        for moment in MOMENTS:
            run = f"kill-{round_number}-{moment.name}"
            create_run(cluster, namespace, run, "sturdy")
            wait_for(
                f"{run}: {moment.name}",
                lambda m=moment, r=run: m.reached(pod_watch, core, namespace, r),  # type: ignore[misc]
            )
            operator.kill()
            # What the dead operator left behind, for the report if something breaks.
            left = sorted(p["metadata"]["name"] for p in pod_watch.pods(run))
            seen.append(f"{run}: killed with pods {left}")
            time.sleep(0.5)  # pods carry on without an operator for a moment
            operator.start()
            status = wait_finished(cluster, namespace, run, operator)["status"]
            assert status["phase"] == "Succeeded", (
                moment.name,
                json.dumps(status, indent=1),
                operator.log(),
            )
            pod_watch.check()
            check_no_duplicate_pods(pod_watch, run)
            check_results(cluster, namespace, run, status, s3)
    assert operator.kills == ROUNDS * len(MOMENTS)
    print("\n".join(seen))


def test_one_run_survives_a_kill_at_each_moment_in_turn(
    cluster: Cluster,
    killable_operator: KillableOperator,
    solo_namespace: str,
    pod_watch: PodWatch,
    s3: Any,
) -> None:
    """The same run killed again and again: a restarted operator's first passes are
    themselves interrupted."""
    namespace, operator = solo_namespace, killable_operator
    apply_pipeline(cluster, namespace, STURDY)
    core = kubernetes.client.CoreV1Api(pod_watch.api)
    run = "kill-each"
    create_run(cluster, namespace, run, "sturdy")
    for moment in MOMENTS:
        wait_for(f"{moment.name}", lambda m=moment: m.reached(pod_watch, core, namespace, run))  # type: ignore[misc]
        operator.kill()
        operator.start()
    status = wait_finished(cluster, namespace, run, operator)["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    pod_watch.check()
    check_no_duplicate_pods(pod_watch, run)
    check_results(cluster, namespace, run, status, s3)


# --------------------------------------------------------------------------- parallelism


def test_foreach_of_50_never_runs_more_than_5_pods_and_keeps_the_order(
    cluster: Cluster,
    killable_operator: KillableOperator,
    solo_namespace: str,
    pod_watch: PodWatch,
    s3: Any,
) -> None:
    namespace, operator = solo_namespace, killable_operator
    apply_pipeline(cluster, namespace, WIDE)
    create_run(cluster, namespace, "wide-1", "wide")
    status = wait_finished(cluster, namespace, "wide-1", operator, timeout=300)["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    assert status["tasks"]["wide"]["instances"]["succeeded"] == 50
    pod_watch.check()

    # Pods: replay the API server's history; a pod counts from its creation until it is
    # seen terminal. Events of one watch are in commit order, so this is exact.
    alive: set[str] = set()
    most = 0
    names: set[str] = set()
    for event in pod_watch.of_run("wide-1"):
        if event.labels.get(TASK) != "wide":
            continue
        names.add(event.name)
        if event.kind == "DELETED" or event.phase in ("Succeeded", "Failed"):
            alive.discard(event.name)
        else:
            alive.add(event.name)
        most = max(most, len(alive))
    assert len(names) == 50
    assert most == 5, f"at most {most} pods of the forEach at once (parallelism 5)"

    # Processes: each instance reported its own clocks; the output list is in item order.
    key = f"{namespace}/runs/wide-1/gather/outputs/parameters/all"
    gathered = json.loads(s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read())
    assert len(gathered) == 50
    spans = [str(entry).split() for entry in gathered]
    assert [int(item) for item, _, _ in spans] == list(range(50))
    edges = sorted(
        [(int(start), 1) for _, start, _ in spans] + [(int(end), -1) for _, _, end in spans]
    )
    running = peak = 0
    for _, change in edges:  # at equal instants, an end (-1) sorts before a start
        running += change
        peak = max(peak, running)
    assert 1 <= peak <= 5, f"{peak} task processes of the forEach ran at once"


# --------------------------------------------------------------------------- cancel, timeout


def test_cancel_stops_the_running_pod_runs_onExit_and_ends_cancelled(
    cluster: Cluster,
    killable_operator: KillableOperator,
    solo_namespace: str,
    pod_watch: PodWatch,
) -> None:
    namespace, operator = solo_namespace, killable_operator
    apply_pipeline(cluster, namespace, LONG)
    token = sleep_token()
    create_run(cluster, namespace, "cancel-1", "long", params={"token": token})
    wait_for(
        "the long task's process",
        lambda: any(main_running(p) for p in task_pods(pod_watch.pods("cancel-1"), "long")),
    )
    if not cluster.external:
        wait_for("the sleep process", lambda: process_alive(token), timeout=10)
    cluster.kubectl(
        "patch",
        "run",
        "cancel-1",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"cancel":true}}',
    )
    run = wait_finished(cluster, namespace, "cancel-1", operator, timeout=90)
    status = run["status"]
    assert status["phase"] == "Cancelled", (json.dumps(status, indent=1), operator.log())
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "False"
    assert conditions["Succeeded"]["reason"] == "Cancelled"
    assert status["tasks"]["long"]["phase"] == "Cancelled", status["tasks"]
    assert status["tasks"]["after"]["phase"] == "Cancelled", status["tasks"]
    events = pod_watch.of_run("cancel-1")
    assert any(e.deleting or e.kind == "DELETED" for e in events if e.labels[TASK] == "long")
    assert not [e for e in events if e.labels[TASK] == "after"], "a task started after cancel"
    if not cluster.external:
        wait_for("the long task's process to end", lambda: not process_alive(token), timeout=30)
    farewell = task_pods(cluster_pods(cluster, namespace, "cancel-1"), "farewell")
    assert len(farewell) == 1
    assert "farewell Cancelled" in main_log(cluster, namespace, farewell[0]["metadata"]["name"])


def test_run_timeout_stops_the_run_and_fails_it_after_onExit(
    cluster: Cluster,
    killable_operator: KillableOperator,
    solo_namespace: str,
    pod_watch: PodWatch,
) -> None:
    namespace, operator = solo_namespace, killable_operator
    apply_pipeline(cluster, namespace, LONG)
    token = sleep_token()
    create_run(cluster, namespace, "timeout-1", "long", params={"token": token}, timeout="5s")
    run = wait_finished(cluster, namespace, "timeout-1", operator, timeout=120)
    status = run["status"]
    assert status["phase"] == "Failed", (json.dumps(status, indent=1), operator.log())
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "False"
    assert "timeout" in conditions["Succeeded"]["message"], conditions["Succeeded"]
    assert status["tasks"]["long"]["phase"] == "Cancelled", status["tasks"]
    farewell = task_pods(cluster_pods(cluster, namespace, "timeout-1"), "farewell")
    assert len(farewell) == 1
    assert "farewell Failed" in main_log(cluster, namespace, farewell[0]["metadata"]["name"])
    if not cluster.external:
        wait_for("the long task's process to end", lambda: not process_alive(token), timeout=30)
    # The deadline is enforced near 5 s, not at the next periodic look at the run.
    stopped = [
        e.at for e in pod_watch.of_run("timeout-1") if e.labels[TASK] == "long" and e.deleting
    ]
    assert stopped, "the long task's pod was never stopped"
    created = [e.at for e in pod_watch.of_run("timeout-1") if e.labels[TASK] == "long"]
    late = stopped[0] - created[0]
    assert late < 15, f"a 5s run timeout stopped the running pod only after {late:.1f}s"
