"""The cluster loop from the CLI (`get runs`, `wait`, `logs`, `submit`, `retry`, `--watch`):
each command against the in-memory `ClusterKube`, and the pure parts (rows from a status,
the exit code from a phase, where a log is read) on their own. No cluster, no network."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions

from pipesync.api import runstatus
from pipesync.cli import cluster, get, logs, retry, s3options, submit, watching
from pipesync.engine import retryrun
from pipesync.engine.state import NodeState, Phase
from pipesync.kube import client
from pipesync.kube.client import ApiException
from pipesync.runtime import podstate, storage
from tests.unit.conftest import Cli, WriteYaml
from tests.unit.kubefakes import ClusterKube

NS = "ml"
UID = "uid-1"


def a_run(name: str, phase: str = "Running", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {
            "name": name,
            "uid": UID,
            "resourceVersion": "10",
            "creationTimestamp": "2026-05-01T10:00:00Z",
        },
        "spec": {"pipelineRef": {"name": "digits"}, "params": {"lr": 0.1}},
        "status": {"phase": phase, **status},
    }


def modified(run: dict[str, Any], version: str, phase: str, **status: Any) -> dict[str, Any]:
    body = json.loads(json.dumps(run))
    body["metadata"]["resourceVersion"] = version
    body["status"] = {**body.get("status", {}), "phase": phase, **status}
    return {"type": "MODIFIED", "object": body}


def a_pod(name: str, task: str, attempt: int, *, uid: str = UID, instance: int | None = None):  # type: ignore[no-untyped-def]
    labels = {
        "pipesync.io/run": "r1",
        "pipesync.io/task": task,
        "pipesync.io/attempt": str(attempt),
        "app.kubernetes.io/managed-by": "pipesync",
    }
    if instance is not None:
        labels["pipesync.io/instance"] = str(instance)
    owner = {"kind": "Run", "apiVersion": "pipesync.io/v1alpha1", "uid": uid, "controller": True}
    return {"metadata": {"name": name, "labels": labels, "ownerReferences": [owner]}}


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> ClusterKube:
    """The fake every command connects to, in namespace `ml` by default."""
    fake = ClusterKube()
    monkeypatch.setattr(cluster, "connect", lambda: fake)
    monkeypatch.setattr(cluster, "default_namespace", lambda: NS)
    return fake


# --- exit codes and one-line failures ---------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "code"),
    [("Succeeded", 0), ("Failed", 1), ("Cancelled", 1), ("Running", None), ("Cancelling", None)],
)
def test_a_finished_phase_gives_the_exit_code_of_pipesync_run(phase: str, code: int | None) -> None:
    assert cluster.exit_code(phase) == code


def test_forbidden_says_which_permission_to_check_in_one_line() -> None:
    doing = cluster.Doing("list", cluster.RUNS_RESOURCE, NS)
    message = cluster.api_message(403, "Forbidden", "runs is forbidden", doing)
    assert "\n" not in message
    assert "kubectl auth can-i list runs.pipesync.io -n ml" in message


def test_a_listing_answered_404_says_the_crds_are_missing() -> None:
    doing = cluster.Doing("list", cluster.RUNS_RESOURCE, NS)
    assert "CRDs are not installed" in cluster.api_message(404, "Not Found", "", doing)


def test_a_403_from_the_api_server_is_one_line_and_exit_2(cli: Cli, kube: ClusterKube) -> None:
    kube.failure = ApiException(status=403, reason="Forbidden")
    result = cli("get", "runs")
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "forbidden by your RBAC" in result.err
    assert "Traceback" not in result.text


def test_a_cluster_that_refuses_connections_is_one_line(cli: Cli, kube: ClusterKube) -> None:
    kube.failure = urllib3.exceptions.MaxRetryError(None, "/apis", "Connection refused")  # type: ignore[arg-type]
    result = cli("wait", "r1")
    assert result.code == 2
    assert result.err.startswith("pipesync wait: cannot reach Kubernetes at https://fake.invalid")
    assert result.err.count("\n") == 1


def test_no_kubeconfig_is_one_line_saying_where_it_was_looked_for(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(connections: int = 16) -> Any:
        raise client.ConfigException("Invalid kube-config file. No configuration found.")

    monkeypatch.setattr(client, "connect", missing)
    result = cli("get", "runs", "-n", NS)
    assert result.code == 2
    assert "no Kubernetes credentials" in result.err
    assert "KUBECONFIG" in result.err
    assert result.err.count("\n") == 1


# --- get runs ----------------------------------------------------------------------------------


def test_a_rows_duration_counts_while_the_run_runs_and_is_the_status_once_done() -> None:
    running = a_run("r1", startedAt="2026-05-01T10:00:00Z", progress="1/3")
    running["status"]["pipeline"] = {"name": "digits", "version": "abc123def456"}
    done = a_run("r0", "Succeeded", startedAt="2026-05-01T09:00:00Z", duration="5m00s")
    now = 1777629600.0 + 90  # 2026-05-01T10:01:30Z
    rows = get.run_rows([done, running], now)
    assert [row["name"] for row in rows] == ["r1", "r0"]  # newest first
    assert rows[0]["duration"] == "1m30s"
    assert rows[0]["version"] == "abc123def456"
    assert rows[0]["progress"] == "1/3"
    assert rows[1]["duration"] == "5m00s"


def test_an_inline_run_shows_as_inline_in_the_table() -> None:
    inline = a_run("r1")
    inline["spec"] = {"pipelineSpec": {"tasks": []}}
    text = get.text(get.run_rows([inline], 0.0), all_namespaces=True, now=0.0)
    header, line = text.splitlines()
    assert header.split()[:3] == ["NAMESPACE", "NAME", "PIPELINE"]
    assert "(inline)" in line


def test_get_runs_lists_the_namespace_as_a_table_or_json(cli: Cli, kube: ClusterKube) -> None:
    kube.add_run(NS, a_run("r1", "Failed", progress="2/3"))
    kube.add_run("other", a_run("r9"))
    table = cli("get", "runs")
    assert table.code == 0
    assert re.search(r"r1\s+digits\s+Failed\s+2/3", table.out)
    assert "r9" not in table.out
    listed = json.loads(cli("get", "runs", "-A", "-o", "json").out)
    assert sorted(row["name"] for row in listed) == ["r1", "r9"]


# --- wait --------------------------------------------------------------------------------------


def test_wait_watches_the_one_run_and_exits_0_when_it_succeeds(cli: Cli, kube: ClusterKube) -> None:
    run = a_run("r1")
    kube.add_run(NS, run)
    kube.watches = [[modified(run, "11", "Running")], [modified(run, "12", "Succeeded")]]
    result = cli("wait", "r1")
    assert result.code == 0
    assert "run r1 Succeeded" in result.err
    # Two open watches, each from the version last seen, selecting the one Run: no polling.
    assert [(w[1], w[3]) for w in kube.watched] == [
        ("10", "metadata.name=r1"),
        ("11", "metadata.name=r1"),
    ]


def test_wait_exits_1_for_a_failed_run_already_finished(cli: Cli, kube: ClusterKube) -> None:
    kube.add_run(NS, a_run("r1", "Failed", message="task train failed"))
    result = cli("wait", "r1")
    assert result.code == 1
    assert "task train failed" in result.err
    assert kube.watched == []


def test_wait_for_a_run_that_does_not_exist_is_exit_2(cli: Cli, kube: ClusterKube) -> None:
    result = cli("wait", "nope")
    assert result.code == 2
    assert "run nope not found in namespace ml" in result.err


def test_wait_for_a_run_deleted_meanwhile_is_exit_2(cli: Cli, kube: ClusterKube) -> None:
    run = a_run("r1")
    kube.add_run(NS, run)
    kube.watches = [[{"type": "DELETED", "object": run}]]
    result = cli("wait", "r1")
    assert result.code == 2
    assert "was deleted" in result.err


def test_wait_gives_up_after_its_timeout_with_exit_3(cli: Cli, kube: ClusterKube) -> None:
    kube.add_run(NS, a_run("r1"))
    result = cli("wait", "r1", "--timeout", "1ms")
    assert result.code == cluster.EXIT_TIMEOUT
    assert "still Running" in result.err


def test_wait_with_a_bad_timeout_is_a_usage_error(cli: Cli, kube: ClusterKube) -> None:
    result = cli("wait", "r1", "--timeout", "soon")
    assert result.code == 2
    assert "--timeout soon" in result.err


# --- logs --------------------------------------------------------------------------------------


def test_the_log_source_is_the_newest_attempts_own_pod_else_the_archive() -> None:
    pods = [
        podstate.read_pod(a_pod("p1", "train", 1)),
        podstate.read_pod(a_pod("p2", "train", 2)),
        podstate.read_pod(a_pod("p3", "train", 3, uid="an-earlier-run")),
    ]
    assert logs.choose_source(pods, UID, logs.Node("train")) == logs.Source("p2", 2)
    assert logs.choose_source(pods, UID, logs.Node("train", 0)) == logs.Source()
    assert logs.choose_source([], UID, logs.Node("train")) == logs.Source()


def test_the_archived_log_is_the_highest_attempt_by_number() -> None:
    keys = [f"ml/runs/r1/train/logs/attempt-{n}.log" for n in (9, 10, 2)]
    assert logs.latest_log_key(keys) == "ml/runs/r1/train/logs/attempt-10.log"
    assert logs.latest_log_key(["ml/runs/r1/train/outputs/parameters/x"]) is None


@pytest.mark.parametrize(("text", "node"), [("train", ("train", None)), ("sweep[3]", ("sweep", 3))])
def test_a_task_or_an_instance_is_named_on_the_command_line(
    text: str, node: tuple[str, int | None]
) -> None:
    assert logs.parse_node(text) == logs.Node(*node)


def test_a_forEach_task_without_an_instance_is_refused_with_an_example() -> None:
    status = runstatus.RunStatus.from_json(
        {"tasks": {"sweep": {"phase": "Running", "instances": {"total": 4}}}}
    )
    with pytest.raises(cluster.Failure, match=r"give one, e.g. sweep\[0\]"):
        logs.nodes_to_show(status, logs.Node("sweep"), "r1")
    with pytest.raises(cluster.Failure, match="has no task nope"):
        logs.nodes_to_show(status, logs.Node("nope"), "r1")


def test_logs_read_the_pod_while_it_exists(cli: Cli, kube: ClusterKube) -> None:
    kube.add_run(NS, a_run("r1", tasks={"train": {"phase": "Running", "attempts": 1}}))
    kube.pods = [a_pod("r1-train-1-abc", "train", 1)]
    kube.logs = {"r1-train-1-abc": b"epoch 1\n"}
    result = cli("logs", "r1", "train")
    assert result.code == 0
    assert result.out == "epoch 1\n"


def test_logs_come_from_s3_once_the_pod_is_gone(
    cli: Cli, kube: ClusterKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.add_run(NS, a_run("r1", "Failed", tasks={"train": {"phase": "Failed", "attempts": 2}}))
    archive = storage.LocalStore(tmp_path)
    archive.put_bytes("ml/runs/r1/train/logs/attempt-1.log", b"first\n")
    archive.put_bytes("ml/runs/r1/train/logs/attempt-2.log", b"second\n")
    monkeypatch.setattr(s3options, "store", lambda options, **_: archive)
    result = cli("logs", "r1", "train")
    assert result.code == 0
    assert result.out == "second\n"


def test_logs_follow_streams_the_running_container(cli: Cli, kube: ClusterKube) -> None:
    kube.add_run(NS, a_run("r1", tasks={"train": {"phase": "Running", "attempts": 1}}))
    kube.pods = [a_pod("r1-train-1-abc", "train", 1)]
    kube.logs = {"r1-train-1-abc": b"line one\nline two\n"}
    result = cli("logs", "r1", "train", "-f")
    assert result.code == 0
    assert result.out == "line one\nline two\n"


def test_logs_of_every_started_task_are_headed_by_their_name(cli: Cli, kube: ClusterKube) -> None:
    tasks = {
        "prepare": {"phase": "Succeeded", "attempts": 1},
        "train": {"phase": "Running", "attempts": 1},
        "publish": {"phase": "Pending", "attempts": 0},
    }
    kube.add_run(NS, a_run("r1", tasks=tasks))
    kube.pods = [a_pod("p-prepare", "prepare", 1), a_pod("p-train", "train", 1)]
    kube.logs = {"p-prepare": b"prepared\n", "p-train": b"training\n"}
    result = cli("logs", "r1")
    assert result.out == "==> prepare <==\nprepared\n==> train <==\ntraining\n"


# --- submit ------------------------------------------------------------------------------------

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata:
  name: tiny
spec:
  params:
    - {name: n, type: integer, default: 1}
    - {name: rates, type: list, default: []}
  tasks:
    - name: hello
      command: [echo, "{{params.n}}"]
"""


def test_submit_creates_a_run_with_the_pipeline_inline_and_typed_params(
    cli: Cli, kube: ClusterKube, write_yaml: WriteYaml
) -> None:
    file = write_yaml("repo/pipelines/tiny.yaml", PIPELINE)
    result = cli("submit", file, "-p", "n=3", "-p", "rates=[0.1, 0.5]")
    assert result.code == 0, result.err
    ((namespace, body),) = kube.created
    assert namespace == NS
    assert re.fullmatch(r"tiny-\d{8}-\d{6}-[0-9a-f]{4}", body["metadata"]["name"])
    assert body["spec"]["params"] == {"n": 3, "rates": [0.1, 0.5]}
    assert body["spec"]["pipelineSpec"]["tasks"][0]["name"] == "hello"
    assert "pipelineRef" not in body["spec"]
    assert result.out.strip() == body["metadata"]["name"]  # for scripts


def test_submit_of_an_invalid_file_prints_located_errors_and_sends_nothing(
    cli: Cli, write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_cluster() -> Any:
        raise AssertionError("an invalid file must not reach the cluster")

    monkeypatch.setattr(cluster, "connect", no_cluster)
    file = write_yaml("repo/bad.yaml", PIPELINE.replace("command:", "comand:"))
    result = cli("submit", file)
    assert result.code == 2
    assert re.search(rf"{re.escape(str(file))}:\d+:\d+: ", result.err)
    assert "nothing was submitted" in result.err


def test_submit_refuses_a_param_the_pipeline_does_not_declare(
    cli: Cli, kube: ClusterKube, write_yaml: WriteYaml
) -> None:
    file = write_yaml("repo/tiny.yaml", PIPELINE)
    result = cli("submit", file, "-p", "m=1")
    assert result.code == 2
    assert "-p m: the pipeline declares no such parameter" in result.err
    assert kube.created == []


def test_submit_of_a_run_file_inlines_its_referenced_pipeline_and_keeps_its_settings(
    write_yaml: WriteYaml,
) -> None:
    write_yaml("repo/pipelines/tiny.yaml", PIPELINE)
    run_file = write_yaml(
        "repo/runs/r.yaml",
        """\
        apiVersion: pipesync.io/v1alpha1
        kind: Run
        metadata: {name: manual}
        spec:
          pipelineRef: {name: tiny}
          params: {n: 5}
          timeout: 1h
        """,
    )
    options = submit_options(run_file)
    body = submit.prepared(options, 0.0)
    assert body["spec"]["params"] == {"n": 5}
    assert body["spec"]["timeout"] == "1h"
    assert "pipelineSpec" in body["spec"]
    assert "pipelineRef" not in body["spec"]


def submit_options(file: Path) -> Any:
    from pipesync.cli.main import build_parser  # noqa: PLC0415

    return build_parser().parse_args(["submit", str(file)])


def test_submit_watch_shows_the_tasks_and_exits_with_the_runs_outcome(
    cli: Cli, kube: ClusterKube, write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = write_yaml("repo/tiny.yaml", PIPELINE)
    monkeypatch.setattr(submit.secrets, "token_hex", lambda n: "beef")
    original_create = kube.create_object

    def create_then_script(plural: str, namespace: str, body: Any) -> bool:
        created = original_create(plural, namespace, body)
        run = kube.runs[(namespace, body["metadata"]["name"])]
        run["metadata"]["resourceVersion"] = "1"
        running = {"hello": {"phase": "Running", "attempts": 1}}
        failed = {"hello": {"phase": "Failed", "attempts": 1, "message": "exit code 2"}}
        kube.watches = [
            [
                modified(run, "2", "Running", tasks=running),
                modified(run, "3", "Failed", tasks=failed, duration="12s"),
            ]
        ]
        return created

    monkeypatch.setattr(kube, "create_object", create_then_script)
    result = cli("submit", file, "--watch")
    assert result.code == 1
    assert re.search(r"hello Running", result.out)
    assert re.search(r"hello\s+Failed\s+1", result.out)  # the summary table
    assert "hello failed: exit code 2" in result.out
    assert "pipesync logs" in result.out
    assert result.out.rstrip().endswith("Failed in 12s")


# --- retry -------------------------------------------------------------------------------------


def test_a_retry_names_the_original_and_carries_its_pipeline_and_params() -> None:
    original = a_run("r1", "Failed")
    original["spec"]["cancel"] = True
    body = retry.retry_body(original, "r1-retry-1")
    assert body["metadata"]["name"] == "r1-retry-1"
    assert body["spec"] == {
        "pipelineRef": {"name": "digits"},
        "params": {"lr": 0.1},
        "retryOf": {"name": "r1"},
    }


def test_a_run_still_running_is_not_retried() -> None:
    with pytest.raises(cluster.Failure, match="not finished"):
        retry.retry_body(a_run("r1", "Running"), "r1-retry-1")


def test_the_retry_body_is_the_one_the_ui_creates_too() -> None:
    # engine.retryrun is shared by `pipesync retry` and the UI's Retry from failure
    original = a_run("r2", "Cancelled", pipeline={"name": "digits", "version": "abc123def456"})
    original["spec"].update(
        cache="Refresh", serviceAccountName="trainer", timeout="2h", retryOf={"name": "r1"}
    )
    body = retry.retry_body(original, "r2-retry-1")
    assert body == retryrun.retry_body(original, "r2-retry-1")
    assert body["spec"] == {
        "pipelineRef": {"name": "digits", "version": "abc123def456"},  # the version it ran
        "params": {"lr": 0.1},
        "cache": "Refresh",
        "serviceAccountName": "trainer",
        "timeout": "2h",
        "retryOf": {"name": "r2"},  # a retry of a retry retries the retry
    }
    inline = a_run("r3", "Failed", pipeline={"name": "", "version": "0123456789ab"})
    inline["spec"] = {"pipelineSpec": {"tasks": []}}
    assert retryrun.retry_body(inline, "x")["spec"] == {
        "pipelineSpec": {"tasks": []},
        "retryOf": {"name": "r3"},
    }
    inline["spec"] = {}
    with pytest.raises(retryrun.NotRetryable, match="neither a pipelineRef nor a pipelineSpec"):
        retryrun.retry_body(inline, "x")


def test_retry_creates_the_new_run_in_the_originals_namespace(cli: Cli, kube: ClusterKube) -> None:
    kube.add_run("team", a_run("r1", "Failed"))
    result = cli("retry", "r1", "-n", "team")
    assert result.code == 0, result.err
    ((namespace, body),) = kube.created
    assert namespace == "team"
    assert re.fullmatch(r"r1-retry-\d{14}", body["metadata"]["name"])
    assert body["spec"]["retryOf"] == {"name": "r1"}


def test_retry_of_an_unknown_run_is_exit_2(cli: Cli, kube: ClusterKube) -> None:
    result = cli("retry", "nope")
    assert result.code == 2
    assert "not found" in result.err


# --- the watch's rows --------------------------------------------------------------------------


def test_a_running_task_counts_from_its_start_and_others_from_their_change() -> None:
    status = runstatus.RunStatus.from_json(
        {
            "tasks": {
                "train": {"phase": "Running", "startedAt": "2026-05-01T10:00:00Z"},
                "prepare": {"phase": "Succeeded"},
            }
        }
    )
    previous = {"prepare": ("prepare", NodeState(phase=Phase.SUCCEEDED), 5.0)}
    rows = watching.live_rows(status, previous, now=100.0)
    assert rows["train"][2] == 1777629600.0
    assert rows["prepare"][2] == 5.0


def test_plain_watch_lines_name_only_what_changed() -> None:
    status = runstatus.RunStatus.from_json({"tasks": {"a": {"phase": "Running", "attempts": 1}}})
    first = watching.live_rows(status, {}, now=1.0)
    assert [line.split(" ", 1)[1] for line in watching.change_lines({}, first)] == ["a Running"]
    assert watching.change_lines(first, watching.live_rows(status, first, now=2.0)) == []


def test_summary_rows_from_a_status_have_the_local_summarys_shape() -> None:
    status = runstatus.RunStatus.from_json(
        {
            "tasks": {
                "sweep": {
                    "phase": "Succeeded",
                    "attempts": 0,
                    "startedAt": "2026-05-01T10:00:00Z",
                    "finishedAt": "2026-05-01T10:00:30Z",
                    "instances": {"total": 3, "succeeded": 3},
                }
            }
        }
    )
    (row,) = watching.summary_rows(status)
    assert row["finishedAt"] - row["startedAt"] == 30.0
    assert row["message"] == "3/3 instances done"
