"""The operator's task cache, pass by pass, against an in-memory cluster and a store on
disk: entries stored from succeeded pods, a second run served without pods, and every
way an entry must not serve (gone or changed artifacts, maxAge, another namespace's
keys, Disabled, Refresh, a task whose code changed)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import conventions, runstatus
from pipesync.controllers import runcache, runs
from pipesync.engine import layout
from pipesync.runtime import cachestore, pods
from pipesync.runtime.storage import LocalStore
from tests.unit.test_run_status_schema import ClusterOfOneRun, _terminated

T = 1_800_000_000.0

SPEC: dict[str, Any] = {
    "defaults": {"cache": {"enabled": True}},
    "tasks": [
        {
            "name": "prepare",
            "image": "python:3.12",
            "command": ["python", "steps/prepare.py"],
            "outputs": {"artifacts": ["data"]},
            "cache": {"enabled": True, "paths": ["steps/prepare.py"]},
        },
        {
            "name": "train",
            "image": "python:3.12",
            "command": ["python", "steps/train.py", "{{inputs.artifacts.data}}"],
            "inputs": {"artifacts": {"data": {"from": "{{tasks.prepare.outputs.artifacts.data}}"}}},
            "outputs": {"artifacts": ["model"]},
            "resources": {"gpu": 2},
            "cache": {"enabled": True, "paths": ["steps/train.py"]},
        },
        {
            "name": "evaluate",
            "image": "python:3.12",
            "command": ["python", "steps/evaluate.py", "{{inputs.artifacts.model}}"],
            "inputs": {"artifacts": {"model": {"from": "{{tasks.train.outputs.artifacts.model}}"}}},
            "outputs": {"parameters": ["accuracy"]},
            "cache": {"enabled": True, "paths": ["steps/evaluate.py"]},
        },
    ],
}

#: What each task writes (the agent uploads it and reports its digest).
PRODUCED = {"prepare": ("data", b"rows"), "train": ("model", b"weights")}


class Cluster(ClusterOfOneRun):
    """One Run and its pods; `finish` plays the kubelet and the pod agent."""

    def __init__(self, run: dict[str, Any], store: LocalStore) -> None:
        super().__init__(run)
        self.store = store
        self.pipeline = {
            "metadata": {"name": "p", "namespace": "ns", "annotations": {}},
            "spec": copy.deepcopy(SPEC),
        }
        self.created: list[str] = []

    def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> None:
        self.created.append(pod["metadata"]["name"])
        super().create_pod(namespace, pod)

    def finish(self, task: str, content: bytes | None = None) -> None:
        """The task's pod succeeds: its artifact uploaded, its digest in the report."""
        for pod in self.pods_of(task):
            if pod["status"]["phase"] not in ("Pending", "Running"):
                continue
            node = pod["metadata"]["annotations"][conventions.ANNOTATION_NODE_PREFIX]
            report: dict[str, Any] = {"exitCode": 0, "parameters": {}}
            if task in PRODUCED:
                name, default = PRODUCED[task]
                data = default if content is None else content
                self.store.put_bytes(layout.output_artifact_key(node, name), data)
                report["digests"] = {name: hashlib.sha256(data).hexdigest()}
            else:
                report["parameters"] = {"accuracy": "0.9"}
            pod["status"] = {
                "phase": "Succeeded",
                "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [
                    _terminated(conventions.MAIN_CONTAINER, 0),
                    _terminated(conventions.OUTPUTS_CONTAINER, 0, json.dumps(report)),
                ],
            }


def new_run(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid", "generation": 1},
        "spec": {"pipelineRef": {"name": "p"}, **spec},
    }


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "s3")


def controller(cluster: Cluster, store: LocalStore) -> runs.RunController:
    settings = pods.PodSettings(image="op", s3=pods.S3Settings(bucket="b"))
    cache = runcache.RunCache(cachestore.ObjectCacheStore(store), settings)
    return runs.RunController(cluster, settings, store=store, cache=cache)  # type: ignore[arg-type]


def first_run(store: LocalStore, name: str = "r1", **spec: Any) -> Cluster:
    """A run of every task, to the end."""
    cluster = Cluster(new_run(name, **spec), store)
    control = controller(cluster, store)
    now = T
    for task in ("prepare", "train", "evaluate"):
        control.reconcile("ns", name, now)
        cluster.finish(task)
        now += 10
    control.reconcile("ns", name, now)
    assert cluster.run["status"]["phase"] == "Succeeded"
    return cluster


def second_run(
    store: LocalStore, name: str = "r2", now: float = T + 100, **spec: Any
) -> tuple[Cluster, runs.RunController]:
    cluster = Cluster(new_run(name, **spec), store)
    control = controller(cluster, store)
    control.reconcile("ns", name, now)
    return cluster, control


def phases(cluster: Cluster) -> dict[str, str]:
    return {name: task["phase"] for name, task in cluster.run["status"]["tasks"].items()}


def test_a_run_stores_each_succeeded_task_and_keys_its_pods(store: LocalStore) -> None:
    cluster = first_run(store)
    keys = {
        pod["metadata"]["labels"][conventions.LABEL_TASK]: pod["metadata"]["annotations"].get(
            conventions.ANNOTATION_CACHE_KEY
        )
        for pod in cluster.pods.values()
    }
    assert all(keys.values()) and len(set(keys.values())) == 3
    entry = cachestore.ObjectCacheStore(store).get("ns", str(keys["train"]))
    assert entry is not None
    assert (entry.run, entry.task, entry.gpus) == ("r1", "train", 2)
    assert entry.artifacts["model"].sha256 == hashlib.sha256(b"weights").hexdigest()
    assert entry.artifacts["model"].key == "ns/runs/r1/train/outputs/artifacts/model"
    assert entry.duration_seconds > 0


def test_a_second_run_creates_no_pod_and_finishes_in_one_pass(store: LocalStore) -> None:
    first_run(store)
    cluster, _ = second_run(store)
    assert cluster.created == []
    status = cluster.run["status"]
    assert status["phase"] == "Succeeded"
    assert phases(cluster) == {"prepare": "Cached", "train": "Cached", "evaluate": "Cached"}
    assert status["tasks"]["train"]["cachedFrom"] == {"run": "r1", "task": "train"}
    assert status["tasks"]["evaluate"]["outputs"] == {"accuracy": "0.9"}
    assert status["taskCounts"]["cached"] == 3
    assert len(cluster.written) == 1  # one status write for the whole run
    # The results are the run's own: copied, so deleting r1's keeps r2's.
    assert store.get_bytes("ns/runs/r2/train/outputs/artifacts/model") == b"weights"


def test_served_tasks_survive_a_restart_without_pods(store: LocalStore) -> None:
    first_run(store)
    # prepare changes its output so that train runs: prepare is served, train runs.
    cluster = Cluster(new_run("r2"), store)
    cluster.pipeline["spec"]["tasks"][1]["cache"]["salt"] = "v2"
    controller(cluster, store).reconcile("ns", "r2", T + 100)
    assert [p.split("-")[1] for p in cluster.created] == ["train"]
    assert store.exists(layout.cached_nodes_key("ns", "r2"))
    # A new operator process: prepare is still Cached (from cached.json), no pod for it.
    restarted = controller(cluster, store)
    restarted.reconcile("ns", "r2", T + 101)
    assert phases(cluster)["prepare"] == "Cached"
    assert len(cluster.created) == 1


def test_a_deleted_artifact_is_a_miss(store: LocalStore) -> None:
    first_run(store)
    store.delete_prefix("ns/runs/r1/train/outputs/artifacts/model")
    cluster, control = second_run(store)
    assert phases(cluster)["prepare"] == "Cached"
    assert [p.split("-")[1] for p in cluster.created] == ["train"]
    cluster.finish("train")  # the same bytes again: evaluate is served
    control.reconcile("ns", "r2", T + 110)
    assert phases(cluster)["evaluate"] == "Cached"


def test_a_changed_artifact_is_a_miss(store: LocalStore) -> None:
    first_run(store)
    store.put_bytes("ns/runs/r1/train/outputs/artifacts/model", b"tampered")
    cluster, _ = second_run(store)
    assert phases(cluster)["train"] == "Running" or phases(cluster)["train"] == "Pending"


def test_a_new_model_reruns_its_consumers(store: LocalStore) -> None:
    first_run(store)
    cluster = Cluster(new_run("r2"), store)
    cluster.pipeline["spec"]["tasks"][1]["cache"]["salt"] = "v2"
    control = controller(cluster, store)
    control.reconcile("ns", "r2", T + 100)
    cluster.finish("train", b"other weights")
    control.reconcile("ns", "r2", T + 110)
    assert [p.split("-")[1] for p in cluster.created] == ["train", "evaluate"]


def test_max_age_expires_an_entry(store: LocalStore) -> None:
    first = first_run(store)
    day = 86_400.0
    prepared = next(p for p in first.pods.values() if "prepare" in p["metadata"]["name"])
    entry = cachestore.ObjectCacheStore(store).get(
        "ns", prepared["metadata"]["annotations"][conventions.ANNOTATION_CACHE_KEY]
    )
    assert entry is not None
    stale = Cluster(new_run("r2"), store)
    stale.pipeline["spec"]["tasks"][0]["cache"]["maxAge"] = "1d"
    controller(stale, store).reconcile("ns", "r2", entry.created_at + 2 * day)
    assert [p.split("-")[1] for p in stale.created] == ["prepare"]
    fresh = Cluster(new_run("r3"), store)
    fresh.pipeline["spec"]["tasks"][0]["cache"]["maxAge"] = "1d"
    controller(fresh, store).reconcile("ns", "r3", entry.created_at + day / 2)
    assert fresh.created == []


def test_disabled_runs_everything_and_stores_nothing(store: LocalStore) -> None:
    first_run(store)
    cluster, _ = second_run(store, cache="Disabled")
    assert [p.split("-")[1] for p in cluster.created] == ["prepare"]
    pod = next(iter(cluster.pods.values()))
    assert conventions.ANNOTATION_CACHE_KEY not in pod["metadata"]["annotations"]


def test_refresh_runs_everything_and_rewrites_the_entries(store: LocalStore) -> None:
    first = first_run(store)
    cluster = first_run(store, "r2", cache="Refresh")
    assert len(cluster.created) == 3
    annotations = next(iter(first.pods.values()))["metadata"]["annotations"]
    key = annotations[conventions.ANNOTATION_CACHE_KEY]
    entry = cachestore.ObjectCacheStore(store).get("ns", key)
    assert entry is not None and entry.run == "r2"


def test_an_entry_naming_another_namespaces_artifact_does_not_serve(store: LocalStore) -> None:
    first = first_run(store)
    caches = cachestore.ObjectCacheStore(store)
    store.put_bytes("other/runs/x/train/outputs/artifacts/model", b"their secret")
    for pod in first.pods.values():
        key = pod["metadata"]["annotations"][conventions.ANNOTATION_CACHE_KEY]
        entry = caches.get("ns", key)
        assert entry is not None
        forged = {
            name: caches.stored(f"other/runs/x/{entry.task}/outputs/artifacts/{name}", a.sha256)
            for name, a in entry.artifacts.items()
        }
        caches.put("ns", type(entry)(**{**entry.__dict__, "artifacts": forged}))
    cluster, _ = second_run(store)
    assert [p.split("-")[1] for p in cluster.created] == ["prepare"]
    assert not store.exists("ns/runs/r2/train/outputs/artifacts/model")


def test_a_task_reading_the_tree_caches_only_with_its_code_digest(store: LocalStore) -> None:
    """A pipeline from a GitSource: tasks start in the repository tree, so a task whose
    paths' digest the Pipeline does not carry is never cached; one whose digest changed
    (a new commit of steps/train.py) runs, and the rest is served."""
    git = {
        conventions.ANNOTATION_SOURCE: "repo",
        conventions.ANNOTATION_COMMIT: "c1",
    }
    digests = {
        '["steps/prepare.py"]': "a" * 64,
        '["steps/train.py"]': "b" * 64,
        '["steps/evaluate.py"]': "d" * 64,
    }
    cluster = Cluster(new_run("r1"), store)
    cluster.pipeline["metadata"]["annotations"] = {**git}
    controller(cluster, store).reconcile("ns", "r1", T)
    pod = next(iter(cluster.pods.values()))
    assert conventions.ANNOTATION_CACHE_KEY not in pod["metadata"]["annotations"]

    def run_at(name: str, code: Mapping[str, str]) -> Cluster:
        cluster = Cluster(new_run(name), store)
        cluster.pipeline["metadata"]["annotations"] = {
            **git,
            conventions.ANNOTATION_CODE_DIGESTS: json.dumps(code),
        }
        control = controller(cluster, store)
        now = T + 1000 * len(cluster.created)
        for _ in range(3):
            control.reconcile("ns", name, now)
            for task in ("prepare", "train", "evaluate"):
                cluster.finish(task)
            now += 10
        control.reconcile("ns", name, now)
        return cluster

    run_at("r2", digests)
    changed = run_at("r3", {**digests, '["steps/train.py"]': "c" * 64})
    assert [p.split("-")[1] for p in changed.created] == ["train"]  # same model: evaluate served
    assert phases(changed) == {"prepare": "Cached", "train": "Succeeded", "evaluate": "Cached"}


def test_the_code_digests_a_gitsource_records_match_the_working_tree(tmp_path: Path) -> None:
    """What the operator keys on at a commit is what `pipesync run` keys on in a clean
    checkout of it (paths relative to the GitSource's path, like the local root), and
    a commit that changes steps/train.py changes exactly train's digest."""
    from pipesync.gitops import codeids  # noqa: PLC0415 - gitops only here
    from tests.unit.gitrepos import GitRepo  # noqa: PLC0415

    repo = GitRepo(tmp_path / "repo")
    for step in ("prepare", "train", "evaluate"):
        repo.write(f"ml/steps/{step}.py", f"print('{step}')\n")
    first = repo.commit()
    at_first = codeids.pipeline_code_digests(repo.repo, first, SPEC, root="ml")
    assert set(at_first) == {'["steps/prepare.py"]', '["steps/train.py"]', '["steps/evaluate.py"]'}
    local = codeids.WorkingTree(repo.root / "ml")
    assert at_first['["steps/train.py"]'] == local.digest(["steps/train.py"])
    repo.write("ml/steps/train.py", "print('train v2')\n")
    second = repo.commit()
    at_second = codeids.pipeline_code_digests(repo.repo, second, SPEC, root="ml")
    changed = {paths for paths in at_first if at_first[paths] != at_second[paths]}
    assert changed == {'["steps/train.py"]'}


class Retrying(Cluster):
    """The original run and its retry in one namespace."""

    def __init__(self, original: Cluster, run: dict[str, Any]) -> None:
        super().__init__(run, original.store)
        self.original = original
        self.config_maps = original.config_maps  # the original's pin is there
        self.pipeline = original.pipeline

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if name == self.original.run["metadata"]["name"]:
            return copy.deepcopy(self.original.run)
        return super().get_object(plural, namespace, name)


def failed_in_train(store: LocalStore) -> Cluster:
    """r1: prepare succeeds, train fails for good, evaluate is omitted; its record in S3."""
    cluster = Cluster(new_run("r1", params={}), store)
    control = controller(cluster, store)
    control.reconcile("ns", "r1", T)
    cluster.finish("prepare", b"r1 rows")
    control.reconcile("ns", "r1", T + 10)
    for pod in cluster.pods_of("train"):
        pod["status"] = {
            "phase": "Failed",
            "containerStatuses": [
                _terminated(conventions.MAIN_CONTAINER, 1),
                _terminated(conventions.OUTPUTS_CONTAINER, 0, json.dumps({"exitCode": 1})),
            ],
        }
    control.reconcile("ns", "r1", T + 20)
    status = cluster.run["status"]
    assert status["phase"] == "Failed", status
    record = runstatus.RunRecord(
        metadata={"name": "r1", "namespace": "ns"},
        spec=cluster.run["spec"],
        status=runstatus.RunStatus.from_json(status),
        tasks={
            name: runstatus.NodeDetail(phase=task["phase"], outputs=task.get("outputs") or {})
            for name, task in status["tasks"].items()
        },
    )
    store.put_bytes(layout.record_key("ns", "r1"), json.dumps(record.to_json()).encode())
    return cluster


def test_a_retry_reuses_the_succeeded_tasks_and_runs_the_rest(store: LocalStore) -> None:
    original = failed_in_train(store)
    retry = Retrying(original, new_run("r2", retryOf={"name": "r1"}, cache="Disabled"))
    control = controller(retry, store)
    control.reconcile("ns", "r2", T + 100)
    # prepare is reused whatever the cache settings, with the original's bytes; train runs
    assert phases(retry)["prepare"] == "Cached"
    assert retry.run["status"]["tasks"]["prepare"]["cachedFrom"] == {"run": "r1", "task": "prepare"}
    assert [p.split("-")[1] for p in retry.created] == ["train"]
    assert store.get_bytes("ns/runs/r2/prepare/outputs/artifacts/data") == b"r1 rows"
    retry.finish("train")
    control.reconcile("ns", "r2", T + 110)
    retry.finish("evaluate")
    control.reconcile("ns", "r2", T + 120)
    assert retry.run["status"]["phase"] == "Succeeded"
    assert [p.split("-")[1] for p in retry.created] == ["train", "evaluate"]


def test_a_retry_waits_for_the_record_and_refuses_a_running_original(store: LocalStore) -> None:
    original = failed_in_train(store)
    store.delete_prefix(layout.record_key("ns", "r1"))
    retry = Retrying(original, new_run("r2", retryOf={"name": "r1"}))
    result = controller(retry, store).reconcile("ns", "r2", T + 100)
    assert not result.finished and result.wake_at is not None and retry.created == []
    original.run["status"]["phase"] = "Running"
    running = Retrying(original, new_run("r3", retryOf={"name": "r1"}))
    controller(running, store).reconcile("ns", "r3", T + 100)
    assert running.run["status"]["phase"] == "Failed"
    (done,) = [c for c in running.run["status"]["conditions"] if c["type"] == "Succeeded"]
    assert done["reason"] == "RetryOfNotFinished" and "has not finished" in done["message"]
    missing = Cluster(new_run("r4", retryOf={"name": "nope"}), store)
    controller(missing, store).reconcile("ns", "r4", T + 100)
    assert missing.run["status"]["phase"] == "Failed"


class Versioned(Cluster):
    """Counts Run reads; each status write answers the Run with a new resourceVersion,
    as the API server does."""

    def __init__(self, run: dict[str, Any], store: LocalStore) -> None:
        super().__init__(run, store)
        self.run["metadata"]["resourceVersion"] = "1"
        self.reads = 0

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        if name == self.run["metadata"]["name"]:
            self.reads += 1
        return super().get_object(plural, namespace, name)

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        super().patch_status(plural, namespace, name, status)
        version = int(self.run["metadata"]["resourceVersion"]) + 1
        self.run["metadata"]["resourceVersion"] = str(version)
        return copy.deepcopy(self.run)


def test_a_pass_after_a_watch_event_reads_no_run_and_never_a_stale_one(
    store: LocalStore,
) -> None:
    """Given the watch's view of the Run, a pass makes no GET; a view older than the
    controller's own last write (the watch has not reported it yet) loses to it, so the
    pass sees the status it wrote (here: startedAt is not moved)."""
    cluster = Versioned(new_run("r1"), store)
    control = controller(cluster, store)
    stale = copy.deepcopy(cluster.run)  # what the watch reported before the first write
    control.reconcile("ns", "r1", T)  # no view: read once
    assert cluster.reads == 1
    started = cluster.run["status"]["startedAt"]
    cluster.finish("prepare")
    control.reconcile("ns", "r1", T + 30, known_run=stale)
    assert cluster.reads == 1  # the view stood in for the GET
    assert cluster.run["status"]["startedAt"] == started
    assert phases(cluster)["prepare"] == "Succeeded"


def test_a_run_that_caches_nothing_never_asks_s3_for_served_tasks(tmp_path: Path) -> None:
    """An S3 outage must not hold back runs that do not cache: their passes read no
    cached.json (the status says nothing was served), and a Disabled run stores nothing."""

    class Watched(LocalStore):
        def __init__(self, root: Path) -> None:
            super().__init__(root)
            self.reads: list[str] = []

        def get_bytes(self, key: str) -> bytes:
            self.reads.append(key)
            return super().get_bytes(key)

        def get_chunks(self, key: str, *, last: int | None = None) -> Any:
            self.reads.append(key)
            return super().get_chunks(key, last=last)

    store = Watched(tmp_path / "s3")
    cluster, _ = second_run(store, "r1", cache="Disabled")
    assert cluster.created and store.reads == []
