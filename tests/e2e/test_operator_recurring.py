"""RecurringRuns on the real control plane, with every-few-seconds interval schedules.

Each test has its own operator (fixtures/killable_operator.py) in its own `solo-*`
namespace. A Run watch started before the RecurringRun records every Run event in the
API server's commit order, so "never overlaps" and "never more than N at once" are
checked on the exact history, not on samples.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes
import pytest
import yaml

from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.killable_operator import KillableOperator

FINISHED = ("Succeeded", "Failed", "Cancelled")
LABEL = "pipesync.io/recurring-run"
SCHEDULED = "pipesync.io/scheduled-time"

PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: nap}
spec:
  params:
    - {name: seconds, type: string, default: "2"}
  tasks:
    - name: nap
      image: any
      command: [sh, -c, 'sleep "$0"', "{{params.seconds}}"]
  onExit:
    name: goodbye
    image: any
    command: [sh, -c, 'echo "goodbye $0"', "{{run.status}}"]
"""


class RunWatch:
    """Every Run event of a namespace in commit order, from a list taken at construction."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.namespace = namespace
        self.api = cluster.api_client()
        self.custom = kubernetes.client.CustomObjectsApi(self.api)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        listed = self._list()
        self._version: str = listed["metadata"]["resourceVersion"]
        for item in listed["items"]:
            self.events.append(("ADDED", item))
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _list(self, **kwargs: Any) -> Any:
        return self.custom.list_namespaced_custom_object(
            "pipesync.io", "v1alpha1", self.namespace, "runs", **kwargs
        )

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                watch = kubernetes.watch.Watch()
                for item in watch.stream(
                    self._list, resource_version=self._version, timeout_seconds=2
                ):
                    raw = item["raw_object"]
                    self._version = raw["metadata"]["resourceVersion"]
                    if item["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        with self._lock:
                            self.events.append((item["type"], raw))
                    if self._stopping.is_set():
                        watch.stop()
        except BaseException as error:  # reported by most_at_once()
            self.error = error

    def most_at_once(self) -> int:
        """The most Runs unfinished at the same time (created, not yet finished)."""
        if self.error is not None:
            raise AssertionError(f"the run watch broke: {self.error!r}")
        alive: set[str] = set()
        most = 0
        with self._lock:
            events = list(self.events)
        for kind, run in events:
            name = run["metadata"]["name"]
            if kind == "DELETED" or (run.get("status") or {}).get("phase") in FINISHED:
                alive.discard(name)
            else:
                alive.add(name)
            most = max(most, len(alive))
        return most

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)
        self.api.close()


@pytest.fixture
def run_watch(cluster: Cluster, solo_namespace: str) -> Iterator[RunWatch]:
    watch = RunWatch(cluster, solo_namespace)
    try:
        yield watch
    finally:
        watch.close()


def instant(text: str) -> int:
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def apply(cluster: Cluster, namespace: str, document: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=document)


def setup_pipeline(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, PIPELINE)
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/nap", "-n", namespace, "--timeout=60s"
    )


def recurring_run(cluster: Cluster, namespace: str, name: str, **spec: Any) -> None:
    document = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "RecurringRun",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": "nap"}, **spec},
    }
    apply(cluster, namespace, yaml.safe_dump(document))


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
    )
    return found


def runs_of(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    listed = json.loads(
        cluster.kubectl(
            "get", "runs", "-n", namespace, "-l", f"{LABEL}={name}", "-o", "json"
        ).stdout
    )
    items: list[dict[str, Any]] = listed["items"]
    return sorted(items, key=lambda run: run["metadata"]["annotations"][SCHEDULED])


def wait_for(
    what: str, predicate: Callable[[], bool], operator: KillableOperator, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\noperator log:\n{operator.log()}")


def suspend(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.kubectl(
        "patch",
        "recurringrun",
        name,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"suspend":true}}',
    )


def counts(cluster: Cluster, namespace: str, name: str) -> dict[str, int]:
    found: dict[str, int] = (get(cluster, namespace, "recurringrun", name).get("status") or {}).get(
        "counts"
    ) or {}
    return found


def test_forbid_never_overlaps(
    cluster: Cluster, killable_operator: KillableOperator, solo_namespace: str, run_watch: RunWatch
) -> None:
    namespace, operator = solo_namespace, killable_operator
    setup_pipeline(cluster, namespace)
    recurring_run(
        cluster,
        namespace,
        "forbid",
        schedule={"interval": "2s"},
        params={"seconds": "5"},
        concurrencyPolicy="Forbid",
    )
    wait_for(
        "three runs and skips",
        lambda: (
            len(runs_of(cluster, namespace, "forbid")) >= 3
            and counts(cluster, namespace, "forbid").get("skipped", 0) >= 2
        ),
        operator,
        timeout=90,
    )
    suspend(cluster, namespace, "forbid")
    assert run_watch.most_at_once() == 1
    status = get(cluster, namespace, "recurringrun", "forbid")["status"]
    assert status["lastSkipReason"] == "ConcurrencyForbid"
    assert status["conditions"][0]["type"] == "Ready"


def test_allow_respects_max_concurrency(
    cluster: Cluster, killable_operator: KillableOperator, solo_namespace: str, run_watch: RunWatch
) -> None:
    namespace, operator = solo_namespace, killable_operator
    setup_pipeline(cluster, namespace)
    recurring_run(
        cluster,
        namespace,
        "allow",
        schedule={"interval": "1s"},
        params={"seconds": "6"},
        concurrencyPolicy="Allow",
        maxConcurrency=2,
    )
    wait_for(
        "four runs and a concurrency skip",
        lambda: (
            len(runs_of(cluster, namespace, "allow")) >= 4
            and counts(cluster, namespace, "allow").get("skipped", 0) >= 1
        ),
        operator,
        timeout=90,
    )
    suspend(cluster, namespace, "allow")
    assert run_watch.most_at_once() == 2
    assert get(cluster, namespace, "recurringrun", "allow")["status"]["lastSkipReason"] in (
        "ConcurrencyLimit",
        "Suspended",
    )


def test_replace_cancels_the_running_one_and_its_onexit_runs(
    cluster: Cluster, killable_operator: KillableOperator, solo_namespace: str, run_watch: RunWatch
) -> None:
    namespace, operator = solo_namespace, killable_operator
    setup_pipeline(cluster, namespace)
    recurring_run(
        cluster,
        namespace,
        "replace",
        schedule={"interval": "4s"},
        params={"seconds": "60"},
        concurrencyPolicy="Replace",
    )
    wait_for(
        "a cancelled first run",
        lambda: (
            len(found := runs_of(cluster, namespace, "replace")) >= 2
            and (found[0].get("status") or {}).get("phase") == "Cancelled"
        ),
        operator,
        timeout=90,
    )
    suspend(cluster, namespace, "replace")
    first = runs_of(cluster, namespace, "replace")[0]
    assert first["spec"]["cancel"] is True
    assert first["status"]["tasks"]["nap"]["phase"] == "Cancelled", first["status"]["tasks"]
    name = first["metadata"]["name"]
    exit_pods = json.loads(
        cluster.kubectl(
            "get",
            "pods",
            "-n",
            namespace,
            "-o",
            "json",
            "-l",
            f"pipesync.io/run={name},pipesync.io/task=goodbye",
        ).stdout
    )["items"]
    assert [p["status"]["phase"] for p in exit_pods] == ["Succeeded"], "onExit did not run"


@pytest.mark.parametrize("policy", ["Latest", "All"])
def test_operator_killed_across_two_fire_times(
    cluster: Cluster,
    killable_operator: KillableOperator,
    solo_namespace: str,
    policy: str,
) -> None:
    namespace, operator = solo_namespace, killable_operator
    setup_pipeline(cluster, namespace)
    interval = 5
    recurring_run(
        cluster,
        namespace,
        "nightly",
        schedule={"interval": f"{interval}s"},
        params={"seconds": "0"},
        concurrencyPolicy="Allow",
        # maxRuns well above the times a slow restart can let pass: All starts every one.
        catchup={"policy": policy, "maxRuns": 50},
    )
    wait_for("a first run", lambda: len(runs_of(cluster, namespace, "nightly")) >= 1, operator)
    operator.kill()
    killed_at = time.time()
    time.sleep(2.5 * interval)  # two or three scheduled times pass with nobody watching
    operator.start()
    wait_for(
        "the run after the restart",
        lambda: any(
            instant(r["metadata"]["annotations"][SCHEDULED]) > killed_at + 2.5 * interval
            for r in runs_of(cluster, namespace, "nightly")
        ),
        operator,
    )
    suspend(cluster, namespace, "nightly")
    time.sleep(1)
    body = get(cluster, namespace, "recurringrun", "nightly")
    status = body["status"]
    runs = runs_of(cluster, namespace, "nightly")
    times = [instant(r["metadata"]["annotations"][SCHEDULED]) for r in runs]
    assert len(times) == len(set(times)), "a scheduled time started twice"
    created = instant(body["metadata"]["creationTimestamp"])
    expected = [created + k * interval for k in range(1, 100)]
    cursor = instant(status["lastEvaluatedTime"])
    due = [t for t in expected if t <= cursor]
    during = [t for t in due if killed_at < t < killed_at + 2.5 * interval]
    assert len(during) >= 2
    fired_during = [t for t in times if t in during]
    if policy == "Latest":
        # Only the newest time due at the restart, if it was still the newest then.
        assert len(fired_during) <= 1
        assert status["counts"]["missed"] >= len(during) - 1
    else:
        assert fired_during == during
    # Every scheduled time is counted once: fired, skipped or missed.
    total = status["counts"]["fired"] + status["counts"]["skipped"] + status["counts"]["missed"]
    assert total == len(due), (status, due)
    assert status["counts"]["fired"] == len(times)


def test_history_limits_delete_old_finished_runs_and_keep_records(
    cluster: Cluster, killable_operator: KillableOperator, solo_namespace: str, s3: Any
) -> None:
    namespace, operator = solo_namespace, killable_operator
    setup_pipeline(cluster, namespace)
    recurring_run(
        cluster,
        namespace,
        "tidy",
        schedule={"interval": "2s"},
        params={"seconds": "0"},
        concurrencyPolicy="Allow",
        history={"succeeded": 2, "failed": 1},
    )
    first_record: list[str] = []

    def first_recorded() -> bool:
        found = runs_of(cluster, namespace, "tidy")
        uri = ((found[0].get("status") or {}).get("record") or {}).get("uri") if found else None
        if uri and not first_record:
            first_record.append(uri)
        return bool(first_record)

    wait_for("the first run's S3 record", first_recorded, operator)
    wait_for(
        "seven fired", lambda: counts(cluster, namespace, "tidy").get("fired", 0) >= 7, operator
    )
    suspend(cluster, namespace, "tidy")

    def trimmed() -> bool:
        found = runs_of(cluster, namespace, "tidy")
        done = [r for r in found if (r.get("status") or {}).get("phase") == "Succeeded"]
        return len(done) == 2 and len(found) == len(done)

    wait_for("two succeeded runs left", trimmed, operator)
    bucket, _, key = first_record[0].removeprefix("s3://").partition("/")
    listed = s3.client().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/"))
    assert listed.get("KeyCount", 0) >= 1, first_record


def test_a_missing_pipeline_creates_no_runs_says_so_and_resumes_when_it_appears(
    cluster: Cluster, killable_operator: KillableOperator, solo_namespace: str, run_watch: RunWatch
) -> None:
    namespace, operator = solo_namespace, killable_operator
    recurring_run(cluster, namespace, "orphan", schedule={"interval": "1s"})

    def conditions() -> dict[str, dict[str, Any]]:
        status = get(cluster, namespace, "recurringrun", "orphan").get("status") or {}
        return {c["type"]: c for c in status.get("conditions") or []}

    wait_for(
        "due times skipped for the missing pipeline",
        lambda: counts(cluster, namespace, "orphan").get("skipped", 0) >= 3,
        operator,
    )
    found = conditions()
    assert found["Ready"]["status"] == "False", found
    assert found["Ready"]["reason"] == "PipelineNotFound"
    assert found["Stalled"]["status"] == "True" and found["Stalled"]["reason"] == "PipelineNotFound"
    assert "'nap' does not exist" in found["Stalled"]["message"]
    assert run_watch.events == []  # not one (failed) Run per fire time
    setup_pipeline(cluster, namespace)
    wait_for(
        "a run once the pipeline exists",
        lambda: bool(runs_of(cluster, namespace, "orphan")),
        operator,
    )
    wait_for(
        "Stalled gone",
        lambda: (conditions().get("Stalled") or {}).get("status", "False") == "False",
        operator,
    )
    assert conditions()["Ready"]["status"] == "True"
