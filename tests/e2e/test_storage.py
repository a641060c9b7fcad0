"""S3Store and the in-pod agent against a real S3 server (moto over HTTP), including an
outage in the middle of an upload and the `pipesync agent` console script as a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipesync.runtime import agent
from pipesync.runtime.digests import tree_digest
from pipesync.runtime.storage import Backoff, NotFound, Retry, S3Settings, S3Store
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.nodes import Nodes
from tests.e2e.fixtures.s3 import S3Server
from tests.e2e.test_nodeagent import Pods

PIPESYNC = Path(sys.executable).parent / "pipesync"
OUTAGE_SECONDS = 5.0


@pytest.fixture
def credentials(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Only credentials in the environment: the endpoint must come from S3Settings."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    yield


def _store(s3: S3Server, prefix: str = "", retry: Retry | None = None) -> S3Store:
    settings = S3Settings(bucket=s3.bucket, endpoint_url=s3.endpoint_url, prefix=prefix)
    return S3Store(settings, retry or Retry(Backoff(patience=30)))


def _unique() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def test_s3_store_round_trips(s3: S3Server, credentials: None, tmp_path: Path) -> None:
    prefix = _unique()
    store = _store(s3, prefix=prefix)
    store.put_bytes("ns/runs/r/run.json", b'{"phase": "Running"}')
    source = tmp_path / "model.bin"
    source.write_bytes(os.urandom(300_000))
    store.put_file("ns/runs/r/train/outputs/artifacts/model", source)

    # The prefix is really in front of the keys, as another S3 client sees them.
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=f"{prefix}/")
    assert sorted(item["Key"] for item in listed["Contents"]) == [
        f"{prefix}/ns/runs/r/run.json",
        f"{prefix}/ns/runs/r/train/outputs/artifacts/model",
    ]
    assert store.get_bytes("ns/runs/r/run.json") == b'{"phase": "Running"}'
    store.get_file("ns/runs/r/train/outputs/artifacts/model", tmp_path / "back" / "m")
    assert (tmp_path / "back" / "m").read_bytes() == source.read_bytes()
    assert store.exists("ns/runs/r/run.json")
    assert not store.exists("ns/runs/r")
    assert store.list_prefix("ns/runs/r/") == [
        "ns/runs/r/run.json",
        "ns/runs/r/train/outputs/artifacts/model",
    ]
    with pytest.raises(NotFound):
        store.get_bytes("ns/runs/r/nothing")
    assert store.delete_prefix("ns/runs/r/") == 2
    assert store.list_prefix("") == []


def test_directory_artifact_round_trip_through_the_agent(
    s3: S3Server, credentials: None, tmp_path: Path
) -> None:
    store = _store(s3)
    node = f"{_unique()}/runs/r/prepare"
    task = agent.Layout(tmp_path / "task")
    agent.prepare_outputs(task)
    dataset = task.artifacts / "dataset"
    (dataset / "split").mkdir(parents=True)
    (dataset / "train.csv").write_text("x,y\n1,2\n")
    (dataset / "split" / "test.csv").write_text("x,y\n3,4\n")
    task.marker.write_text("0")
    code, report = agent.upload(
        store, node_prefix=node, parameters=[], artifacts=["dataset"], paths=task
    )
    assert (code, report.uploaded, report.missing) == (0, 2, [])

    consumer = agent.Layout(tmp_path / "consumer")
    key = f"{node}/outputs/artifacts/dataset"
    result = agent.fetch(store, [agent.Get(key, consumer.inputs / "dataset")], [])
    assert result.files == 2
    assert (consumer.inputs / "dataset" / "train.csv").read_text() == "x,y\n1,2\n"
    assert (consumer.inputs / "dataset" / "split" / "test.csv").read_text() == "x,y\n3,4\n"


class _PauseAfter:
    """Holds the upload after its `after`-th object, until the S3 server has been stopped."""

    def __init__(self, store: S3Store, after: int) -> None:
        self.after = after
        self.puts = 0
        self.reached = threading.Event()
        self.stopped = threading.Event()
        original = store.client.put_object

        def put_object(**kwargs: object) -> object:
            result = original(**kwargs)
            self.puts += 1
            if self.puts == self.after:
                self.reached.set()
                self.stopped.wait(60)
            return result

        store.client.put_object = put_object


def test_upload_survives_s3_stopped_mid_upload(
    s3: S3Server, credentials: None, tmp_path: Path
) -> None:
    """The upload runs in a thread and the server is stopped and restarted from the main
    thread: S3Server.start() uses `setpriv --pdeathsig`, which is tied to the *thread* that
    starts the server, so a server started from a short-lived thread dies with it."""
    retries: list[str] = []
    store = _store(
        s3, retry=Retry(Backoff(patience=120), on_retry=lambda what, _e, _p: retries.append(what))
    )
    node = f"{_unique()}/runs/r/train"
    task = agent.Layout(tmp_path / "task")
    agent.prepare_outputs(task)
    (task.parameters / "accuracy").write_text("0.97")
    files = task.artifacts / "checkpoints"
    files.mkdir()
    for i in range(20):
        (files / f"epoch-{i:02}.pt").write_bytes(f"checkpoint {i}".encode())
    task.marker.write_text("0")
    pause = _PauseAfter(store, after=5)
    results: list[tuple[int, agent.UploadReport]] = []

    def upload() -> None:
        results.append(
            agent.upload(
                store,
                node_prefix=node,
                parameters=["accuracy"],
                artifacts=["checkpoints"],
                paths=task,
            )
        )

    worker = threading.Thread(target=upload, daemon=True)
    worker.start()
    try:
        assert pause.reached.wait(60), "the upload never got going"
        s3.stop()
        pause.stopped.set()
        worker.join(OUTAGE_SECONDS)  # the outage
        assert worker.is_alive(), "the upload finished while S3 was down"
    finally:
        pause.stopped.set()
        s3.start()
    worker.join(150)
    assert results, "the upload did not finish within its patience"
    code, report = results[0]
    assert retries, "no request met the stopped server"
    assert code == agent.UPLOAD_DONE, report.error
    assert report.uploaded == 21 and report.parameters == {"accuracy": "0.97"}
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=f"{node}/")
    keys = sorted(item["Key"] for item in listed["Contents"])
    assert keys == sorted(
        [f"{node}/outputs/parameters/accuracy"]
        + [f"{node}/outputs/artifacts/checkpoints/epoch-{i:02}.pt" for i in range(20)]
    )
    body = s3.client().get_object(
        Bucket=s3.bucket, Key=f"{node}/outputs/artifacts/checkpoints/epoch-19.pt"
    )["Body"]
    assert body.read() == b"checkpoint 19"


def _agent_env(s3: S3Server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PIPESYNC_"))}
    env.update(
        {
            "PIPESYNC_S3_ENDPOINT": s3.endpoint_url,
            "PIPESYNC_S3_BUCKET": s3.bucket,
            "PIPESYNC_S3_REGION": s3.region,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        }
    )
    return env


def test_agent_console_script_fetch_and_upload(s3: S3Server, tmp_path: Path) -> None:
    env = _agent_env(s3)
    run = _unique()
    producer = f"ns-{run}/runs/r/prepare/outputs/artifacts"
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key=f"{producer}/model", Body=b"weights")
    client.put_object(Bucket=s3.bucket, Key=f"{producer}/data/a.csv", Body=b"1")
    client.put_object(Bucket=s3.bucket, Key=f"{producer}/data/b/c.csv", Body=b"2")
    root = tmp_path / "pod"
    inputs = root / "inputs"

    fetch = subprocess.run(
        [str(PIPESYNC), "agent", "fetch", "--root", str(root),
         "--get", f"{producer}/model={inputs}/model",
         "--get", f"{producer}/data={inputs}/data",
         "--get", f"{producer}/absent={inputs}/absent", "--optional", f"{producer}/absent"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert fetch.returncode == 0, fetch.stderr
    assert (inputs / "model").read_bytes() == b"weights"
    assert (inputs / "data" / "b" / "c.csv").read_bytes() == b"2"
    assert (root / "outputs" / "artifacts").is_dir()

    missing = subprocess.run(
        [str(PIPESYNC), "agent", "fetch", "--root", str(root),
         "--get", f"{producer}/absent={inputs}/absent"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and f"{producer}/absent" in missing.stderr

    escape = subprocess.run(
        [str(PIPESYNC), "agent", "fetch", "--root", str(root), "--get", f"{producer}/model=/etc/x"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert escape.returncode == 2 and "must be under" in escape.stderr

    node = f"ns-{run}/runs/r/train"
    log = tmp_path / "termination-log"
    upload = subprocess.Popen(
        [str(PIPESYNC), "agent", "upload", "--root", str(root), "--wait", str(root / ".exit"),
         "--node-prefix", node, "--parameter", "accuracy", "--artifact", "model",
         "--artifact", "report", "--timeout", "60", "--termination-log", str(log)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # The "user's program": writes outputs, then the wrapper's exit marker.
    (root / "outputs" / "parameters" / "accuracy").write_text("0.93")
    (root / "outputs" / "artifacts" / "model").write_bytes(b"trained")
    (root / ".exit.tmp").write_text("0")
    (root / ".exit.tmp").rename(root / ".exit")
    out, err = upload.communicate(timeout=60)
    assert upload.returncode == 0, err
    message = json.loads(log.read_text())
    assert message == {
        "exitCode": 0,
        "parameters": {"accuracy": "0.93"},
        "missing": ["artifacts/report"],
        "uploaded": 2,
        "truncated": False,
        "digests": {"model": hashlib.sha256(b"trained").hexdigest()},  # for the task cache
    }
    assert json.loads(out) == message
    assert (
        client.get_object(Bucket=s3.bucket, Key=f"{node}/outputs/parameters/accuracy")[
            "Body"
        ].read()
        == b"0.93"
    )
    assert (
        client.get_object(Bucket=s3.bucket, Key=f"{node}/outputs/artifacts/model")["Body"].read()
        == b"trained"
    )


# --------------------------------------------------------------------------- in a real pod


@pytest.fixture
def pods(cluster: Cluster, nodes: Nodes) -> Iterator[Pods]:
    namespace = f"storage-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    pods = Pods(cluster, namespace)
    yield pods
    pods.delete_all()
    cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_pod_shaped_as_the_contract_moves_data_through_s3(s3: S3Server, pods: Pods) -> None:
    """init `agent fetch` -> main (sh wrapper writes /pipesync/.exit) -> sidecar
    `agent upload`, sharing an emptyDir at /pipesync, as the pod builder will make them."""
    run = _unique()
    source = f"ns-{run}/runs/r/prepare/outputs/artifacts/dataset"
    node = f"ns-{run}/runs/r/train"
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key=f"{source}/part-0.csv", Body=b"1,2\n")
    client.put_object(Bucket=s3.bucket, Key=f"{source}/part-1.csv", Body=b"3,4\n")
    env = [{"name": k, "value": v} for k, v in sorted(_agent_env(s3).items()) if k != "PATH"]
    mount = [{"name": "pipesync", "mountPath": "/pipesync"}]
    wrapper = '"$@"; code=$?; printf %s "$code" > /pipesync/.exit.tmp && mv /pipesync/.exit.tmp /pipesync/.exit; exit "$code"'  # noqa: E501
    user = (
        "cat /pipesync/inputs/dataset/*.csv | wc -l > /pipesync/outputs/parameters/rows; "
        "mkdir /pipesync/outputs/artifacts/model; "
        "echo weights > /pipesync/outputs/artifacts/model/w.bin"
    )
    name = pods.create(
        "agent",
        {
            "restartPolicy": "Never",
            "nodeSelector": {"pipesync.io/pool": "cpu"},
            "volumes": [{"name": "pipesync", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "pipesync-inputs",
                    "image": "ignored.invalid/operator",
                    "command": [str(PIPESYNC), "agent", "fetch",
                                "--get", f"{source}=/pipesync/inputs/dataset"],
                    "env": env,
                    "volumeMounts": mount,
                }
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "ignored.invalid/user",
                    "command": ["/bin/sh", "-c", wrapper, "pipesync-wrapper", "sh", "-c", user],
                    "volumeMounts": mount,
                },
                {
                    "name": "pipesync-outputs",
                    "image": "ignored.invalid/operator",
                    "command": [str(PIPESYNC), "agent", "upload", "--wait", "/pipesync/.exit",
                                "--node-prefix", node, "--parameter", "rows",
                                "--artifact", "model", "--timeout", "120"],
                    "env": env,
                    "volumeMounts": mount,
                },
            ],
        },
    )  # fmt: skip
    pod = pods.wait_phase(name, "Succeeded", "Failed", timeout=120)
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    statuses = {s["name"]: s for s in pod["status"]["containerStatuses"]}
    message = json.loads(statuses["pipesync-outputs"]["state"]["terminated"]["message"])
    assert message == {
        "exitCode": 0,
        "parameters": {"rows": "2\n"},
        "missing": [],
        "uploaded": 2,
        "truncated": False,
        # a folder artifact: its files' paths and digests (runtime.digests.tree_digest)
        "digests": {"model": tree_digest([("w.bin", hashlib.sha256(b"weights\n").hexdigest())])},
    }
    body = client.get_object(Bucket=s3.bucket, Key=f"{node}/outputs/artifacts/model/w.bin")
    assert body["Body"].read() == b"weights\n"
