"""Proof that the e2e service fixtures are real servers that tests can break and repair.

S3 (moto's server), the git remote (git daemon and smart HTTP with basic auth)
and Prometheus are exercised only through their network protocols, with the
clients the product uses (boto3, git/GitPython, the Prometheus HTTP API).
"""

from __future__ import annotations

import base64
import http.client
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import git
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from prometheus_client import CollectorRegistry, Counter, start_http_server

from tests.e2e.fixtures.gitserver import GitRepo, GitServer, Transport
from tests.e2e.fixtures.prometheus import PrometheusServer
from tests.e2e.fixtures.s3 import S3Server

NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ---- S3 ---------------------------------------------------------------------


def test_s3_round_trips_an_object(s3: S3Server) -> None:
    client = s3.client()
    key = f"{_unique('runs')}/artifacts/model.bin"
    body = os.urandom(256 * 1024)

    client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == body

    prefix = key.split("/", 1)[0] + "/"
    listed = client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    assert [(o["Key"], o["Size"]) for o in listed["Contents"]] == [(key, len(body))]

    client.delete_object(Bucket=s3.bucket, Key=key)
    assert client.list_objects_v2(Bucket=s3.bucket, Prefix=prefix).get("KeyCount") == 0


def test_s3_env_points_a_subprocess_at_the_server(s3: S3Server) -> None:
    key = _unique("from-subprocess")
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=b"seen by a child process")
    script = (
        "import boto3, sys\n"
        "body = boto3.client('s3').get_object(Bucket=sys.argv[1], Key=sys.argv[2])['Body']\n"
        "sys.stdout.write(body.read().decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env())
    result = subprocess.run(
        [sys.executable, "-c", script, s3.bucket, key],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "seen by a child process"


def test_s3_stop_refuses_connections_and_start_restores_data(s3: S3Server) -> None:
    key = _unique("before-restart")
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=b"durable")
    try:
        s3.stop()
        with pytest.raises(EndpointConnectionError):
            s3.client(NO_RETRIES).head_bucket(Bucket=s3.bucket)
    finally:
        s3.start()
    client = s3.client()
    assert client.get_object(Bucket=s3.bucket, Key=key)["Body"].read() == b"durable"
    client.put_object(Bucket=s3.bucket, Key=key + "-after", Body=b"still writable")
    assert client.head_object(Bucket=s3.bucket, Key=key + "-after")["ContentLength"] == 14


# ---- git --------------------------------------------------------------------


def _write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def _tree_of(checkout: Path) -> dict[str, bytes]:
    return {
        path.relative_to(checkout).as_posix(): path.read_bytes()
        for path in sorted(checkout.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(checkout).parts
    }


@pytest.fixture
def pipeline_files() -> dict[str, bytes]:
    return {
        "pipelines/train.yaml": b"apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\n",
        "README.md": b"# example\n",
        # Larger than git's 1 MiB http.postBuffer, so the push uses a chunked POST.
        "data/blob.bin": os.urandom(3 * 1024 * 1024),
    }


@pytest.mark.parametrize("transport", ["http", "daemon"])
def test_pushed_commit_is_cloned_back_with_gitpython(
    git_server: GitServer, tmp_path: Path, pipeline_files: dict[str, bytes], transport: Transport
) -> None:
    repo = git_server.create_repo(_unique(f"push-{transport}"))
    url = repo.http_url_with_auth if transport == "http" else repo.daemon_url
    source = _write_tree(tmp_path / "source", pipeline_files)

    sha = git_server.commit_and_push(repo.name, source, "add pipeline", via=transport)

    assert git_server.head(repo.name) == sha
    clone = git.Repo.clone_from(url, tmp_path / "clone", env=git_server.git_env())
    assert clone.head.commit.hexsha == sha
    assert clone.active_branch.name == "main"
    assert _tree_of(tmp_path / "clone") == pipeline_files

    # A second push replaces the tree: a file missing from the source is deleted.
    (source / "README.md").unlink()
    (source / "pipelines" / "train.yaml").write_bytes(b"kind: Pipeline # v2\n")
    second = git_server.commit_and_push(repo.name, source, "v2", via=transport)
    clone.remotes.origin.pull(env=git_server.git_env())
    assert clone.head.commit.hexsha == second
    assert [p.hexsha for p in clone.head.commit.parents] == [sha]
    expected = dict(pipeline_files, **{"pipelines/train.yaml": b"kind: Pipeline # v2\n"})
    del expected["README.md"]
    assert _tree_of(tmp_path / "clone") == expected


def _http_get_status(repo: GitRepo, port: int, auth: str | None) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    try:
        connection.request(
            "GET", f"/{repo.name}.git/info/refs?service=git-receive-pack", headers=headers
        )
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("WWW-Authenticate")
    finally:
        connection.close()


def test_smart_http_refuses_wrong_credentials_and_nothing_is_pushed(
    git_server: GitServer, tmp_path: Path
) -> None:
    repo = git_server.create_repo(_unique("auth"))
    first = git_server.commit_and_push(repo.name, _write_tree(tmp_path / "v1", {"a": b"1"}), "v1")

    port = git_server.http_port
    assert _http_get_status(repo, port, None) == (401, 'Basic realm="pipesync-e2e"')
    assert _http_get_status(repo, port, f"{repo.username}:wrong")[0] == 401
    assert _http_get_status(repo, port, f"intruder:{repo.password}")[0] == 401
    assert _http_get_status(repo, port, f"{repo.username}:{repo.password}")[0] == 200

    work = git.Repo.init(tmp_path / "work", initial_branch="main")
    (tmp_path / "work" / "evil.txt").write_text("should never arrive\n")
    work.index.add(["evil.txt"])
    work.index.commit("unauthorised change")
    bad_url = repo.http_url.replace("http://", f"http://{repo.username}:wrong@")
    result = subprocess.run(
        ["git", "push", bad_url, "HEAD:refs/heads/main", "--force"],
        cwd=tmp_path / "work",
        env=git_server.git_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr
    assert git_server.head(repo.name) == first


def test_git_servers_stop_and_start_again(git_server: GitServer, tmp_path: Path) -> None:
    repo = git_server.create_repo(_unique("restart"))
    sha = git_server.commit_and_push(repo.name, _write_tree(tmp_path / "src", {"f": b"x"}), "c")

    def ls_remote(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "ls-remote", url, "refs/heads/main"],
            env=git_server.git_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    try:
        git_server.stop()
        assert ls_remote(repo.daemon_url).returncode != 0
        assert ls_remote(repo.http_url_with_auth).returncode != 0
    finally:
        git_server.start()
    for url in (repo.daemon_url, repo.http_url_with_auth):
        result = ls_remote(url)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [sha, "refs/heads/main"]


# ---- Prometheus -------------------------------------------------------------


class _Exporter:
    """A prometheus_client HTTP endpoint on a loopback port with one counter."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counter = Counter(
            "pipesync_e2e_probe", "Increments made by the test.", registry=self.registry
        )
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.target = f"127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def exporter() -> Iterator[_Exporter]:
    exp = _Exporter()
    try:
        yield exp
    finally:
        exp.close()


def _value(samples: list[dict[str, object]]) -> float:
    assert len(samples) == 1, samples
    value = samples[0]["value"]
    assert isinstance(value, list)
    return float(value[1])


def test_prometheus_scrapes_a_target_and_answers_promql(
    prometheus: PrometheusServer, exporter: _Exporter
) -> None:
    job = _unique("probe")
    exporter.counter.inc(7)
    prometheus.scrape(exporter.target, job=job)
    try:
        query = f'pipesync_e2e_probe_total{{job="{job}"}}'
        samples = prometheus.wait_for(query, timeout=30)
        assert _value(samples) == 7.0
        assert samples[0]["metric"]["instance"] == exporter.target

        exporter.counter.inc(5)
        prometheus.wait_for(query, timeout=30, predicate=lambda s: bool(s) and _value(s) == 12.0)
        assert _value(prometheus.query(f'sum(up{{job="{job}"}})')) == 1.0
    finally:
        prometheus.unscrape(job)


def test_prometheus_stop_and_start_keeps_jobs_and_data(
    prometheus: PrometheusServer, exporter: _Exporter
) -> None:
    job = _unique("restart")
    exporter.counter.inc(3)
    prometheus.scrape(exporter.target, job=job)
    try:
        query = f'pipesync_e2e_probe_total{{job="{job}"}}'
        prometheus.wait_for(query, timeout=30)
        try:
            prometheus.stop()
            with pytest.raises(OSError):
                prometheus.query("up")
        finally:
            prometheus.start()
        # Stored samples come back from the TSDB, and the job is scraped again.
        history = prometheus.query(f"max_over_time({query}[10m])")
        assert _value(history) == 3.0
        exporter.counter.inc(1)
        prometheus.wait_for(query, timeout=30, predicate=lambda s: bool(s) and _value(s) == 4.0)
    finally:
        prometheus.unscrape(job)
