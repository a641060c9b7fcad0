"""The in-pod agent (fetch inputs, upload outputs) and the store retry layer, on a LocalStore
with a fake clock: no S3, no sleeping."""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from pipesync.cli.main import main
from pipesync.runtime import agent
from pipesync.runtime.digests import content_digest
from pipesync.runtime.storage import (
    AccessDenied,
    Backoff,
    LocalStore,
    NotFound,
    Retry,
    RetryingStore,
    StoreError,
    TransientStoreError,
)

NODE = "ns/runs/r1/train"


class FakeClock:
    """time.monotonic and time.sleep for tests: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def paths(tmp_path: Path) -> agent.Layout:
    return agent.Layout(tmp_path / "pod")


# --------------------------------------------------------------------------- LocalStore


def test_local_store_round_trip_list_and_delete(store: LocalStore, tmp_path: Path) -> None:
    store.put_bytes("a/b/one", b"1")
    source = tmp_path / "f"
    source.write_bytes(b"two")
    store.put_file("a/b/two", source)
    store.put_bytes("a/bc", b"3")
    assert store.exists("a/b/one") and not store.exists("a/b")
    assert store.list_prefix("a/b/") == ["a/b/one", "a/b/two"]
    assert store.list_prefix("a/b") == ["a/b/one", "a/b/two", "a/bc"]
    assert store.get_bytes("a/b/two") == b"two"
    store.get_file("a/b/one", tmp_path / "out" / "x")
    assert (tmp_path / "out" / "x").read_bytes() == b"1"
    assert store.delete_prefix("a/b/") == 2
    assert store.list_prefix("") == ["a/bc"]
    with pytest.raises(NotFound):
        store.get_file("a/b/one", tmp_path / "y")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a", "a/.", "..", "a\\b"])
def test_store_refuses_keys_that_escape(store: LocalStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")


# --------------------------------------------------------------------------- fetch


def test_fetch_a_file_and_a_prefix(store: LocalStore, paths: agent.Layout) -> None:
    store.put_bytes("ns/runs/r1/prep/outputs/artifacts/model", b"weights")
    store.put_bytes("ns/runs/r1/prep/outputs/artifacts/data/train.csv", b"a,b")
    store.put_bytes("ns/runs/r1/prep/outputs/artifacts/data/sub/test.csv", b"c,d")
    store.put_bytes("ns/runs/r1/prep/outputs/artifacts/database", b"not part of data/")
    gets = [
        agent.parse_get(f"ns/runs/r1/prep/outputs/artifacts/model={paths.inputs}/model", paths),
        agent.parse_get(f"ns/runs/r1/prep/outputs/artifacts/data={paths.inputs}/data", paths),
    ]
    result = agent.fetch(store, gets, [])
    assert result.files == 3
    assert (paths.inputs / "model").read_bytes() == b"weights"
    assert (paths.inputs / "data" / "train.csv").read_bytes() == b"a,b"
    assert (paths.inputs / "data" / "sub" / "test.csv").read_bytes() == b"c,d"
    assert sorted(p.name for p in (paths.inputs / "data").iterdir()) == ["sub", "train.csv"]


def test_fetch_missing_input_fails_unless_optional(store: LocalStore, paths: agent.Layout) -> None:
    get = agent.parse_get(f"ns/runs/r1/x/outputs/artifacts/none={paths.inputs}/none", paths)
    with pytest.raises(agent.AgentError, match="outputs/artifacts/none"):
        agent.fetch(store, [get], [])
    result = agent.fetch(store, [get], [get.key])
    assert result.skipped == [get.key]
    assert not (paths.inputs / "none").exists()


@pytest.mark.parametrize(
    "spec",
    [
        "k=/etc/x",
        "k={inputs}/../x",
        "k={inputs}/a/../../x",
        "k={inputs}",
        "k=relative/x",
        "k={root}/outputs/x",
        "=/pipesync/inputs/x",
        "k",
        "../k={inputs}/x",
    ],
)
def test_fetch_refuses_paths_outside_inputs(spec: str, paths: agent.Layout) -> None:
    with pytest.raises(agent.AgentError):
        agent.parse_get(spec.format(inputs=paths.inputs, root=paths.root), paths)


def test_prepare_outputs_makes_world_writable_directories(paths: agent.Layout) -> None:
    agent.prepare_outputs(paths)
    for directory in (paths.outputs, paths.parameters, paths.artifacts):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o777


# --------------------------------------------------------------------------- upload


def _outputs(paths: agent.Layout, code: str | None = "0") -> None:
    agent.prepare_outputs(paths)
    (paths.parameters / "accuracy").write_text("0.94")
    (paths.artifacts / "model").write_bytes(b"weights")
    (paths.artifacts / "plots").mkdir()
    (paths.artifacts / "plots" / "a.png").write_bytes(b"png")
    (paths.artifacts / "plots" / "deep").mkdir()
    (paths.artifacts / "plots" / "deep" / "b.png").write_bytes(b"png2")
    if code is not None:
        paths.marker.write_text(code)


def test_upload_after_success(store: LocalStore, paths: agent.Layout) -> None:
    _outputs(paths)
    clock = FakeClock()
    code, report = agent.upload(
        store,
        node_prefix=NODE,
        parameters=["accuracy"],
        artifacts=["model", "plots"],
        paths=paths,
        clock=clock,
        sleep=clock.sleep,
    )
    assert code == agent.UPLOAD_DONE
    artifacts = paths.outputs / "artifacts"
    assert json.loads(report.to_json()) == {
        "exitCode": 0,
        "parameters": {"accuracy": "0.94"},
        "missing": [],
        "uploaded": 4,
        "truncated": False,
        # What it uploaded, digested as the local executor digests the same files: the
        # cache keys a consumer on these whichever executor produced them.
        "digests": {
            "model": content_digest(artifacts / "model"),
            "plots": content_digest(artifacts / "plots"),
        },
    }
    assert store.list_prefix(f"{NODE}/") == [
        f"{NODE}/outputs/artifacts/model",
        f"{NODE}/outputs/artifacts/plots/a.png",
        f"{NODE}/outputs/artifacts/plots/deep/b.png",
        f"{NODE}/outputs/parameters/accuracy",
    ]
    assert store.get_bytes(f"{NODE}/outputs/parameters/accuracy") == b"0.94"


def test_upload_waits_for_the_marker(store: LocalStore, paths: agent.Layout) -> None:
    _outputs(paths, code=None)
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        assert store.list_prefix("") == [], "uploaded before the task ended"
        if len(clock.sleeps) == 5:
            paths.marker.write_text("0\n")

    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy"], artifacts=[], paths=paths,
        clock=clock, sleep=sleep,
    )  # fmt: skip
    assert code == agent.UPLOAD_DONE and report.exit_code == 0
    assert clock.sleeps == [agent.POLL_SECONDS] * 5
    assert store.exists(f"{NODE}/outputs/parameters/accuracy")


def test_upload_gives_up_waiting_after_timeout(store: LocalStore, paths: agent.Layout) -> None:
    _outputs(paths, code=None)
    clock = FakeClock()
    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy"], artifacts=[], paths=paths,
        timeout=2.0, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert code == agent.UPLOAD_NO_MARKER
    assert report.exit_code is None and report.error and "no exit marker" in report.error
    waited = clock.now - 1000.0
    assert 2.0 <= waited < 2.0 + agent.POLL_SECONDS + 1e-9
    assert store.list_prefix("") == []


@pytest.mark.parametrize(
    ("marker", "expected"), [("3", 3), ("garbage", 255), ("-1", 255), ("0" * 40 + "7", 255)]
)
def test_nonzero_exit_uploads_nothing(
    store: LocalStore, paths: agent.Layout, marker: str, expected: int
) -> None:
    _outputs(paths, code=marker)
    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy"], artifacts=["model"], paths=paths
    )
    assert code == agent.UPLOAD_DONE
    assert json.loads(report.to_json())["exitCode"] == expected
    assert report.uploaded == 0 and report.parameters == {}
    assert store.list_prefix("") == []


def test_missing_outputs_are_reported(store: LocalStore, paths: agent.Layout) -> None:
    _outputs(paths)
    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy", "loss"], artifacts=["model", "report"],
        paths=paths,
    )  # fmt: skip
    assert code == agent.UPLOAD_DONE
    assert json.loads(report.to_json())["missing"] == ["parameters/loss", "artifacts/report"]
    assert report.uploaded == 2


def test_stale_directory_files_of_an_earlier_attempt_are_removed(
    store: LocalStore, paths: agent.Layout
) -> None:
    store.put_bytes(f"{NODE}/outputs/artifacts/plots/old.png", b"stale")
    _outputs(paths)
    agent.upload(store, node_prefix=NODE, parameters=[], artifacts=["plots"], paths=paths)
    assert not store.exists(f"{NODE}/outputs/artifacts/plots/old.png")
    assert store.exists(f"{NODE}/outputs/artifacts/plots/a.png")


def test_termination_message_stays_small_and_says_when_truncated() -> None:
    values = {f"p{i}": "v" * 900 for i in range(6)}
    report = agent.UploadReport(exit_code=0, parameters=values, uploaded=6)
    text = report.to_json()
    body = json.loads(text)
    assert len(text.encode()) < agent.PARAMETER_BUDGET
    assert body["truncated"] is True
    assert 0 < len(body["parameters"]) < 6
    assert all(value == "v" * 900 for value in body["parameters"].values())  # never cut

    small = json.loads(agent.UploadReport(exit_code=0, parameters={"a": "1"}).to_json())
    assert small["truncated"] is False and small["parameters"] == {"a": "1"}


def test_termination_message_bounded_with_huge_error_and_missing_list() -> None:
    report = agent.UploadReport(
        exit_code=0,
        missing=[f"artifacts/output_number_{i}" for i in range(2000)],
        error="é" * 5000,
    )
    text = report.to_json()
    assert len(text.encode()) < agent.TERMINATION_LIMIT
    assert json.loads(text)["truncated"] is True


def test_big_parameter_is_uploaded_but_left_out_of_the_message(
    store: LocalStore, paths: agent.Layout
) -> None:
    _outputs(paths)
    (paths.parameters / "big").write_text("x" * 10_000)
    _, report = agent.upload(
        store, node_prefix=NODE, parameters=["big", "accuracy"], artifacts=[], paths=paths
    )
    body = json.loads(report.to_json())
    assert body["parameters"] == {"accuracy": "0.94"} and body["truncated"] is True
    assert store.get_bytes(f"{NODE}/outputs/parameters/big") == b"x" * 10_000


# --------------------------------------------------------------------------- retries


class FlakyStore(LocalStore):
    """A LocalStore whose writes fail `failures` times before they work."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.calls = 0

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            stream.read(10)  # a failed attempt may have consumed part of the stream
            raise TransientStoreError("connection refused")
        super().put_stream(key, stream)


def test_backoff_sequence_until_the_store_answers(tmp_path: Path, paths: agent.Layout) -> None:
    clock = FakeClock()
    flaky = FlakyStore(tmp_path / "s", failures=7)
    store = RetryingStore(flaky, Retry(Backoff(patience=600), clock=clock, sleep=clock.sleep))
    _outputs(paths)
    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy"], artifacts=[], paths=paths
    )
    assert code == agent.UPLOAD_DONE and report.uploaded == 1
    assert clock.sleeps == [0.5, 1, 2, 4, 8, 10, 10]
    assert flaky.calls == 8


def test_store_failing_beyond_patience_fails_the_agent(tmp_path: Path, paths: agent.Layout) -> None:
    clock = FakeClock()
    flaky = FlakyStore(tmp_path / "s", failures=10**9)
    store = RetryingStore(flaky, Retry(Backoff(patience=20), clock=clock, sleep=clock.sleep))
    _outputs(paths)
    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy"], artifacts=[], paths=paths
    )
    assert code == agent.UPLOAD_STORE_FAILED
    assert clock.sleeps == [0.5, 1, 2, 4, 8, 4.5]  # the last pause ends at the patience
    assert report.error is not None and "gave up after 20s" in report.error
    assert "connection refused" in json.loads(report.to_json())["error"]


class RefusingStore(LocalStore):
    def put_stream(self, key: str, stream: BinaryIO) -> None:
        raise AccessDenied("An error occurred (AccessDenied) when calling the PutObject")


def test_refused_credentials_are_their_own_exit_code(tmp_path: Path, paths: agent.Layout) -> None:
    # Not "unreachable": the fix is the namespace's S3 Secret or its policy, and the
    # controller's message says so (runtime/podstate).
    _outputs(paths)
    code, report = agent.upload(
        RefusingStore(tmp_path / "s"),
        node_prefix=NODE,
        parameters=["accuracy"],
        artifacts=[],
        paths=paths,
    )
    assert code == agent.UPLOAD_STORE_REFUSED != agent.UPLOAD_STORE_FAILED
    assert report.error is not None and report.error.startswith("AccessDenied: ")


def test_permanent_errors_are_not_retried(tmp_path: Path) -> None:
    clock = FakeClock()
    calls: list[int] = []

    def denied() -> None:
        calls.append(1)
        raise StoreError("AccessDenied")

    with pytest.raises(StoreError, match="AccessDenied"):
        Retry(clock=clock, sleep=clock.sleep)("put k", denied)
    assert calls == [1] and clock.sleeps == []


# --------------------------------------------------------------------------- CLI


def test_agent_is_hidden_from_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "validate" in out and "agent" not in out


def test_cli_fetch_refuses_escaping_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIPESYNC_S3_BUCKET", "b")
    code = main(["agent", "fetch", "--root", str(tmp_path), "--get", "k=/etc/x"])
    assert code == 2
    assert "must be under" in capsys.readouterr().err
    assert not (tmp_path / "outputs").exists()


def test_cli_fetch_without_inputs_prepares_outputs(tmp_path: Path) -> None:
    # No --get: no store, so no S3 settings are needed.
    assert main(["agent", "fetch", "--root", str(tmp_path)]) == 0
    assert stat.S_IMODE((tmp_path / "outputs" / "parameters").stat().st_mode) == 0o777


def test_cli_upload_without_bucket_writes_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PIPESYNC_S3_BUCKET", raising=False)
    log = tmp_path / "termination-log"
    code = main(
        ["agent", "upload", "--root", str(tmp_path), "--node-prefix", NODE,
         "--termination-log", str(log)]
    )  # fmt: skip
    assert code == 2
    assert "PIPESYNC_S3_BUCKET" in json.loads(log.read_text())["error"]


def test_standalone_agent_entry_imports_nothing_heavy(tmp_path: Path) -> None:
    """`python -m pipesync.cli.agent` is what pods can run: no kopf, jsonschema or boto3
    before a store is needed."""
    script = (
        "import sys; from pipesync.cli import agent; "
        f"code = agent.main(['fetch', '--root', {str(tmp_path)!r}]); "
        "heavy = sorted({'boto3', 'kopf', 'jsonschema', 'kubernetes', 'yaml'} & set(sys.modules)); "
        "print(code, heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "0 []"
    assert (tmp_path / "outputs" / "artifacts").is_dir()


def test_symlinks_and_fifos_in_outputs_are_never_followed(
    store: LocalStore, paths: agent.Layout, tmp_path: Path
) -> None:
    """The user's container could point outputs at the agent's secrets (its environment
    holds S3 credentials); the agent must not read through links."""
    secret = tmp_path / "secret"
    secret.write_text("AWS_SECRET_ACCESS_KEY=hunter2")
    _outputs(paths)
    (paths.parameters / "leak").symlink_to(secret)
    (paths.artifacts / "leak").symlink_to(secret)
    (paths.artifacts / "plots" / "leak.png").symlink_to(secret)
    (paths.artifacts / "plots" / "linked-dir").symlink_to(tmp_path)
    os.mkfifo(paths.artifacts / "plots" / "pipe")
    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy", "leak"], artifacts=["leak", "plots"],
        paths=paths,
    )  # fmt: skip
    assert code == agent.UPLOAD_DONE
    body = json.loads(report.to_json())
    assert body["refused"] == [
        "parameters/leak",
        "artifacts/leak",
        "artifacts/plots/leak.png",
        "artifacts/plots/linked-dir",
        "artifacts/plots/pipe",
    ]
    assert "leak" not in body["parameters"]
    for key in store.list_prefix(""):
        assert b"hunter2" not in store.get_bytes(key), key
    assert store.exists(f"{NODE}/outputs/artifacts/plots/deep/b.png")


def test_output_directory_replaced_by_a_symlink_is_not_followed(
    store: LocalStore, paths: agent.Layout, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "parameters").mkdir(parents=True)
    (elsewhere / "parameters" / "accuracy").write_text("stolen")
    paths.root.mkdir(parents=True)
    paths.outputs.symlink_to(elsewhere)
    paths.marker.write_text("0")
    _, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy"], artifacts=[], paths=paths
    )
    assert report.missing == ["parameters/accuracy"] and store.list_prefix("") == []


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ""])
def test_output_names_must_be_plain(store: LocalStore, paths: agent.Layout, name: str) -> None:
    with pytest.raises(ValueError, match="invalid output name"):
        agent.upload(store, node_prefix=NODE, parameters=[name], artifacts=[], paths=paths)


def test_marker_that_is_a_symlink_counts_as_failure(
    store: LocalStore, paths: agent.Layout, tmp_path: Path
) -> None:
    (tmp_path / "zero").write_text("0")
    _outputs(paths, code=None)
    paths.marker.symlink_to(tmp_path / "zero")
    code, report = agent.upload(
        store, node_prefix=NODE, parameters=["accuracy"], artifacts=[], paths=paths
    )
    assert (code, report.exit_code) == (agent.UPLOAD_DONE, 255)
    assert store.list_prefix("") == []


def _catches_sigterm(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_sigterm_while_waiting_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    env = {**os.environ, "PIPESYNC_S3_BUCKET": "b", "PIPESYNC_S3_ENDPOINT": "http://127.0.0.1:9"}
    process = subprocess.Popen(
        [sys.executable, "-m", "pipesync.cli.agent", "upload", "--root", str(tmp_path),
         "--node-prefix", NODE, "--termination-log", str(log)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _catches_sigterm(process.pid):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert json.loads(log.read_text()) == {
        "exitCode": None,
        "parameters": {},
        "missing": [],
        "uploaded": 0,
        "truncated": False,
        "error": "terminated by SIGTERM",
    }


# --------------------------------------------------------------------- the workspace


def _archive(tmp_path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """A tar.gz of (name, file content or None for a directory, symlink target or None)."""
    path = tmp_path / "tree.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, content, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return path


def test_the_repository_tree_is_unpacked_as_the_workspace(
    store: LocalStore, tmp_path: Path
) -> None:
    archive = _archive(
        tmp_path,
        [
            ("steps", None, None),
            ("steps/train.py", b"print('hi')\n", None),
            ("pipelines/digits.yaml", b"kind: Pipeline\n", None),
            ("steps/latest.py", None, "train.py"),  # a link inside the tree is fine
        ],
    )
    store.put_file("ns/sources/repo/abc.tar.gz", archive)
    paths = agent.Layout(tmp_path / "pod")
    assert agent.unpack_workspace(store, "ns/sources/repo/abc.tar.gz", paths) == 4
    assert (paths.workspace / "steps/train.py").read_bytes() == b"print('hi')\n"
    assert (paths.workspace / "steps/latest.py").read_bytes() == b"print('hi')\n"
    # Another uid (the user's container) can write where it works.
    assert stat.S_IMODE((paths.workspace / "steps").stat().st_mode) == 0o777
    assert not (paths.root / ".workspace.tar.gz").exists()


@pytest.mark.parametrize(
    "member",
    [
        ("../escaped.txt", b"x", None),
        ("steps/out", None, "../../../etc/passwd"),
        ("steps/abs", None, "/etc/passwd"),
    ],
)
def test_an_archive_cannot_write_outside_the_workspace(
    store: LocalStore, tmp_path: Path, member: tuple[str, bytes | None, str | None]
) -> None:
    store.put_file("k.tar.gz", _archive(tmp_path, [member]))
    paths = agent.Layout(tmp_path / "pod")
    with pytest.raises(agent.AgentError, match=r"k\.tar\.gz"):
        agent.unpack_workspace(store, "k.tar.gz", paths)
    assert not (tmp_path / "escaped.txt").exists()


def test_absolute_names_land_inside_the_workspace(store: LocalStore, tmp_path: Path) -> None:
    store.put_file("k.tar.gz", _archive(tmp_path, [("/absolute-pipesync-test.txt", b"x", None)]))
    paths = agent.Layout(tmp_path / "pod")
    agent.unpack_workspace(store, "k.tar.gz", paths)
    assert (paths.workspace / "absolute-pipesync-test.txt").read_bytes() == b"x"
    assert not Path("/absolute-pipesync-test.txt").exists()


def test_a_missing_archive_is_named(store: LocalStore, tmp_path: Path) -> None:
    with pytest.raises(agent.AgentError, match=r"'ns/sources/r/c\.tar\.gz' not found"):
        agent.unpack_workspace(store, "ns/sources/r/c.tar.gz", agent.Layout(tmp_path))


def test_an_archive_that_is_not_the_one_the_operator_recorded_is_refused(
    store: LocalStore, tmp_path: Path
) -> None:
    """Another tenant who can write the key replaces the archive: the task must not run it."""
    recorded = agent.file_sha256(_archive(tmp_path, [("steps/train.py", b"print('ok')\n", None)]))
    tampered = _archive(tmp_path, [("steps/train.py", b"import os; os.system('evil')\n", None)])
    store.put_file("ns/sources/repo/abc.tar.gz", tampered)
    paths = agent.Layout(tmp_path / "pod")
    with pytest.raises(
        agent.AgentError,
        match=r"^repository archive ns/sources/repo/abc\.tar\.gz does not match the digest "
        r"the operator recorded: refusing to run it$",
    ):
        agent.unpack_workspace(store, "ns/sources/repo/abc.tar.gz", paths, recorded)
    assert not (paths.workspace / "steps/train.py").exists()
    assert not (paths.root / ".workspace.tar.gz").exists()


def test_the_archive_the_operator_recorded_is_unpacked(store: LocalStore, tmp_path: Path) -> None:
    archive = _archive(tmp_path, [("steps/train.py", b"print('ok')\n", None)])
    store.put_file("k.tar.gz", archive)
    paths = agent.Layout(tmp_path / "pod")
    assert agent.unpack_workspace(store, "k.tar.gz", paths, agent.file_sha256(archive)) == 1
    assert (paths.workspace / "steps/train.py").read_bytes() == b"print('ok')\n"


def test_the_termination_message_drops_digests_before_it_overflows() -> None:
    """Hundreds of artifacts: the digests cannot all fit the 4 KiB message, so none are
    sent (a consumer without its input's digest is not cached) and the message stays
    readable JSON under the limit."""
    many = {f"artifact-{i}": "a" * 64 for i in range(200)}
    text = agent.UploadReport(exit_code=0, uploaded=200, digests=many).to_json()
    assert len(text.encode()) < agent.TERMINATION_LIMIT
    assert "digests" not in json.loads(text)
    few = agent.UploadReport(exit_code=0, uploaded=2, digests={"m": "b" * 64})
    assert json.loads(few.to_json())["digests"] == {"m": "b" * 64}
