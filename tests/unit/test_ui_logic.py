"""The web UI's pure logic: DAG layout, views of objects, artifact viewers, access checks."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import conventions
from pipesync.engine import planner
from pipesync.runtime import storage
from pipesync.runtime.local import LocalRun
from pipesync.ui import artifacts, graph, views
from pipesync.ui.archived import ArchivedRuns
from pipesync.ui.auth import Access, Authenticator
from tests.unit.pipelines import compile_yaml

# --- graph ------------------------------------------------------------------------------


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def _check(layout: dict[str, Any], ids: list[str]) -> None:
    boxes = layout["nodes"]
    assert [b["id"] for b in boxes] == ids
    places = sorted(boxes, key=lambda b: (b["y"], b["x"]))
    for left, right in itertools.pairwise(places):
        if left["y"] == right["y"]:
            assert not _overlap(left, right)
    assert len({(b["x"], b["y"]) for b in boxes}) == len(boxes)
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["width"] <= layout["width"]
        assert box["y"] >= 0 and box["y"] + box["height"] <= layout["height"]


def test_edges_point_downwards_and_layers_follow_the_longest_path() -> None:
    nodes = [{"id": n} for n in ("a", "b", "c", "d")]
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "d")]
    layout = graph.layout(nodes, edges)
    _check(layout, ["a", "b", "c", "d"])
    y = {box["id"]: box["y"] for box in layout["nodes"]}
    assert y["a"] < y["b"] < y["c"] < y["d"]  # c sits below b, not beside it
    for edge in layout["edges"]:
        (_, y1), (_, y2) = edge["points"]
        assert y1 < y2


def test_a_2000_task_dag_is_laid_out_without_overlaps_and_wide_layers_wrap() -> None:
    ids = ["start", *(f"t{i}" for i in range(1998)), "end"]
    edges = [("start", f"t{i}") for i in range(1998)] + [(f"t{i}", "end") for i in range(1998)]
    layout = graph.layout([{"id": i} for i in ids], edges)
    _check(layout, ids)
    assert layout["width"] < 30 * (graph.BOX_WIDTH + graph.GAP_X)  # wrapped, not 2,000 wide
    assert len(layout["edges"]) == len(edges)


def test_a_long_chain_and_a_cycle_still_place_every_node() -> None:
    ids = [f"n{i}" for i in range(2000)]
    chain = [(ids[i], ids[i + 1]) for i in range(1999)]
    assert graph.layers(ids, chain)["n1999"] == 1999
    cyclic = graph.layers(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "b")])
    assert set(cyclic) == {"a", "b", "c"} and cyclic["b"] > cyclic["a"]


def test_barycenter_ordering_keeps_children_under_their_parents() -> None:
    nodes = [{"id": n} for n in ("p1", "p2", "c2", "c1")]
    layout = graph.layout(nodes, [("p1", "c1"), ("p2", "c2")])
    x = {box["id"]: box["x"] for box in layout["nodes"]}
    assert (x["c1"] < x["c2"]) == (x["p1"] < x["p2"])


# --- views ------------------------------------------------------------------------------


def _run(name: str, created: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
        "spec": {"pipelineRef": {"name": "digits"}, "params": {"learning_rate": 0.1}},
        "status": status,
    }


def test_run_rows_filter_and_sort_newest_first() -> None:
    rows = [
        views.run_row(_run("a", "2026-01-01T00:00:00Z", phase="Succeeded")),
        views.run_row(_run("b", "2026-01-02T00:00:00Z", phase="Failed")),
        views.run_row(
            _run("c", "2026-01-03T00:00:00Z", phase="Failed", pipeline={"commit": "abc123"})
        ),
    ]
    assert [r["name"] for r in views.filter_rows(rows)] == ["c", "b", "a"]
    assert [r["name"] for r in views.filter_rows(rows, phase="Failed")] == ["c", "b"]
    assert [r["name"] for r in views.filter_rows(rows, commit="abc")] == ["c"]
    assert views.filter_rows(rows, pipeline="other") == []
    assert rows[0]["params"] == {"learning_rate": "0.1"}


def test_run_detail_draws_tasks_with_phases_foreach_counts_and_retries() -> None:
    spec = {
        "tasks": [
            {"name": "prepare", "command": ["true"], "outputs": {"artifacts": ["data"]}},
            {
                "name": "train",
                "command": ["true"],
                "dependsOn": ["prepare"],
                "forEach": {"items": [1, 2, 3]},
            },
        ]
    }
    run = _run(
        "r",
        "2026-01-01T00:00:00Z",
        phase="Running",
        tasks={
            "prepare": {"phase": "Succeeded", "attempts": 2},
            "train": {
                "phase": "Running",
                "attempts": 1,
                "instances": {"total": 3, "succeeded": 1, "failed": 0, "running": 2},
            },
        },
    )
    detail = views.run_detail(run, spec, None, can_cancel=True, can_rerun=False)
    nodes = {n["id"]: n for n in detail["graph"]["nodes"]}
    assert nodes["prepare"]["phase"] == "Succeeded" and nodes["prepare"]["attempts"] == 2
    assert nodes["train"]["forEach"]["total"] == 3
    assert [(e["from"], e["to"]) for e in detail["graph"]["edges"]] == [("prepare", "train")]
    assert detail["tasks"]["prepare"]["outputs"]["artifacts"] == [
        {"name": "data", "instance": None}
    ]
    assert detail["tasks"]["prepare"]["logs"] == [
        {"instance": None, "attempt": 1},
        {"instance": None, "attempt": 2},
    ]
    assert detail["canCancel"] and not detail["canRerun"]
    finished = views.run_detail(
        _run("r", "2026-01-01T00:00:00Z", phase="Succeeded"), spec, None, can_cancel=True
    )
    assert not finished["canCancel"]  # nothing left to cancel


def test_an_archived_run_takes_its_tasks_from_the_record() -> None:
    record = {
        "metadata": {"name": "old", "namespace": "ns"},
        "spec": {"pipelineRef": {"name": "digits"}},
        "status": {"phase": "Failed"},
        "tasks": {"a": {"phase": "Failed", "attempts": 3, "exitCode": 1, "message": "boom"}},
    }
    detail = views.run_detail(views.record_as_run(record), None, record, archived=True)
    assert detail["archived"] and detail["run"]["archived"]
    assert detail["tasks"]["a"]["phase"] == "Failed" and detail["tasks"]["a"]["exitCode"] == 1
    assert detail["graph"]["nodes"][0]["id"] == "a"


def test_a_cached_task_names_its_source_and_cached_instances_count_as_succeeded() -> None:
    record = {
        "metadata": {"name": "again", "namespace": "ns"},
        "spec": {"pipelineRef": {"name": "digits"}},
        "status": {"phase": "Succeeded"},
        "tasks": {
            "prep": {"phase": "Cached", "cachedFrom": {"run": "first", "task": "prep"}},
            "each": {
                "phase": "Succeeded",
                "instances": [
                    {
                        "phase": "Cached",
                        "index": 0,
                        "cachedFrom": {"run": "first", "task": "each[0]"},
                    },
                    {"phase": "Succeeded", "index": 1},
                    {"phase": "Failed", "index": 2},
                ],
            },
        },
    }
    detail = views.run_detail(views.record_as_run(record), None, record, archived=True)
    assert detail["tasks"]["prep"]["phase"] == "Cached"
    assert detail["tasks"]["prep"]["cachedFrom"] == {"run": "first", "task": "prep"}
    assert detail["tasks"]["each"]["cachedFrom"] is None
    each = next(n for n in detail["graph"]["nodes"] if n["id"] == "each")
    assert each["forEach"]["succeeded"] == 2 and each["forEach"]["failed"] == 1


def test_compare_marks_only_what_differs() -> None:
    rows = [{"params": {"lr": "0.1", "epochs": "20"}}, {"params": {"lr": "0.3", "epochs": "20"}}]
    result = views.compare(rows, [{"t.acc": "0.9"}, {"t.acc": "0.9"}], [{"m": 1.0}, {}])
    differs = {row["name"]: row["differs"] for row in result["params"]}
    assert differs == {"lr": True, "epochs": False}
    assert result["outputs"][0]["differs"] is False
    assert result["metrics"][0] == {"name": "m", "values": [1.0, None], "differs": True}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme/ml.git", "https://github.com/acme/ml"),
        (
            "https://user:secret@gitlab.example.com/group/sub/ml",
            "https://gitlab.example.com/group/sub/ml",
        ),
        ("git@github.com:acme/ml.git", "https://github.com/acme/ml"),
        ("ssh://git@gitea.example.com:2222/acme/ml.git", "https://gitea.example.com/acme/ml"),
        ("file:///tmp/repo", None),
        ("https://example.com/", None),
    ],
)
def test_web_urls_of_clone_urls(url: str, expected: str | None) -> None:
    assert views.web_url(url) == expected


def test_file_links_need_a_commit_and_quote_the_path() -> None:
    link = views.file_url("https://github.com/acme/ml.git", "a" * 40, "./pipelines/my file.yaml")
    assert link == f"https://github.com/acme/ml/blob/{'a' * 40}/pipelines/my%20file.yaml"
    assert views.file_url("https://github.com/acme/ml.git", "main; rm", "p.yaml") is None
    assert views.version_file("GitSource/ml-repo:pipelines/digits.yaml") == (
        "ml-repo",
        "pipelines/digits.yaml",
    )


def test_pipeline_versions_link_to_their_file_at_their_commit() -> None:
    pipeline = {
        "metadata": {"name": "digits", "annotations": {"pipesync.io/path": "ml/pipelines/d.yaml"}},
        "spec": {"tasks": [{"name": "a", "command": ["true"]}]},
        "status": {
            "versions": [
                {"id": "1" * 12, "digest": "sha256:" + "1" * 64, "commit": "a" * 40,
                 "source": "ml-repo"},
                {"id": "2" * 12, "digest": "sha256:" + "2" * 64, "commit": "", "source": ""},
            ]
        },
    }  # fmt: skip
    detail = views.pipeline_detail(pipeline, {"ml-repo": "git@github.com:acme/ml.git"})
    newest, oldest = detail["versions"]
    assert newest["fileUrl"] is None  # applied by hand: no file
    assert oldest["fileUrl"] == f"https://github.com/acme/ml/blob/{'a' * 40}/ml/pipelines/d.yaml"
    assert [n["id"] for n in detail["graph"]["nodes"]] == ["a"]


def test_git_source_urls_lose_their_credentials() -> None:
    source = {
        "metadata": {"name": "s"},
        "spec": {"url": "https://bot:hunter2@git.example.com/a/b.git", "ref": {"branch": "main"}},
        "status": {"errors": [{"file": "x.yaml", "line": 3, "column": 1, "message": "bad"}]},
    }
    row = views.gitsource_row(source)
    assert "hunter2" not in json.dumps(views.gitsource_detail(source))
    assert row["url"] == "https://git.example.com/a/b.git" and row["errors"] == 1


def test_next_fire_times_follow_the_schedule_and_stop_when_suspended() -> None:
    recurring_run = {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"pipelineRef": {"name": "p"}, "schedule": {"cron": "0 3 * * *"}},
    }
    now = time.mktime((2026, 3, 1, 12, 0, 0, 0, 0, 0)) - time.timezone
    found = views.next_fire_times(recurring_run, now)
    assert found[:2] == ["2026-03-02T03:00:00Z", "2026-03-03T03:00:00Z"] and len(found) == 5
    recurring_run["spec"]["suspend"] = True
    assert views.next_fire_times(recurring_run, now) == []


def test_watched_namespaces_understand_kopf_globs() -> None:
    existing = ["default", "ml", "solo-1", "team-a"]
    assert views.watched_namespaces(existing, ["*,!solo-*"]) == ["default", "ml", "team-a"]
    assert views.watched_namespaces(existing, ["team-*", "ml"]) == ["ml", "team-a"]
    assert views.watched_namespaces(existing, []) == existing


# --- artifacts --------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.mark.parametrize(
    ("name", "data", "viewer"),
    [
        ("confusion_matrix_png", PNG, "image"),
        ("confusion_matrix", b'{"labels": [0, 1], "matrix": [[5, 1], [0, 4]]}', "confusion_matrix"),
        ("roc", b'{"micro": {"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5}}', "roc"),
        ("metrics", b'{"accuracy": 0.9, "f1": 0.8}', "metrics"),
        ("kfp_metrics", b'{"metrics": [{"name": "acc", "numberValue": 0.7}]}', "metrics"),
        ("config", b'{"a": "text"}', "json"),
        ("report.md", b"# Title\n<script>alert(1)</script>", "markdown"),
        ("page", b"<!DOCTYPE html><html></html>", "html"),
        ("notes", b"plain words", "text"),
        ("model", b"\x00\x01\x02binary", "binary"),
    ],
)
def test_viewers_are_guessed_from_name_and_bytes(name: str, data: bytes, viewer: str) -> None:
    assert artifacts.classify(name, data) == viewer


def test_an_html_file_named_like_an_image_is_not_served_as_an_image() -> None:
    data = b"<html><script>alert(1)</script></html>"
    viewer = artifacts.classify("picture.png", data)
    assert viewer == "html"
    assert artifacts.content_type(viewer, data).startswith("text/html")


def test_normalisers_reject_malformed_data() -> None:
    assert artifacts.normalise_confusion({"labels": [0, 1], "matrix": [[1, 2]]}) is None
    assert artifacts.normalise_confusion({"labels": ["a"], "matrix": [["x"]]}) is None
    assert artifacts.normalise_metrics({"a": "text"}) is None
    assert artifacts.normalise_metrics({"a": float("nan")}) is None
    assert artifacts.normalise_roc({"fpr": [0, 1], "tpr": [0]}) is None
    kfp = artifacts.normalise_confusion(
        {"annotationSpecs": [{"displayName": "cat"}, {"displayName": "dog"}],
         "rows": [{"row": [3, 1]}, {"row": [0, 2]}]}
    )  # fmt: skip
    assert kfp == {"labels": ["cat", "dog"], "matrix": [[3.0, 1.0], [0.0, 2.0]]}
    example = artifacts.normalise_roc(
        {
            "micro": {"fpr": [0, 1], "tpr": [0, 1], "auc": 0.5},
            "per_class": {"3": {"fpr": [0, 0.5, 1], "tpr": [0, 0.9, 1], "auc": 0.7}},
        }
    )
    assert example is not None
    assert [c["label"] for c in example["curves"]] == ["micro", "class 3"]


def test_markdown_is_rendered_with_raw_html_escaped() -> None:
    html = artifacts.markdown_html(
        "# Result\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))"
    )
    assert "<h1>Result</h1>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html


# --- auth -------------------------------------------------------------------------------


class FakeReviews:
    def __init__(self) -> None:
        self.tokens = {"good": {"username": "alice", "groups": ["team"], "uid": "1"}}
        self.allowed: set[tuple[str, str, str]] = {("list", "runs", "ml")}
        self.calls: list[str] = []

    def token_review(self, token: str) -> dict[str, Any] | None:
        self.calls.append("token")
        return self.tokens.get(token)

    def self_subject_review(self) -> dict[str, Any]:
        return {"username": "me", "groups": []}

    def access_review(self, user: Any, attributes: Any) -> bool:
        self.calls.append("access")
        return (attributes["verb"], attributes["resource"], attributes["namespace"]) in self.allowed


def test_tokens_are_reviewed_once_per_minute_from_header_or_cookie() -> None:
    now = [0.0]
    reviews = FakeReviews()
    auth = Authenticator(reviews, "token", clock=lambda: now[0])
    assert auth.authenticate("Bearer bad", "") is None
    principal = auth.authenticate("Bearer good", "")
    assert principal is not None and principal.username == "alice"
    assert auth.authenticate("", "good") == principal  # the login cookie holds the token
    assert reviews.calls.count("token") == 2  # bad once, good once (cached)
    assert auth.login("good") == principal
    assert auth.login("bad") is None  # a rejection is cached too
    assert auth.authenticate("", "") is None
    assert auth.authenticate("Basic Z29vZA==", "") is None
    now[0] += 61
    auth.authenticate("", "good")
    assert reviews.calls.count("token") == 3  # the cached review expired


def test_access_decisions_are_per_user_and_cached_for_30_seconds() -> None:
    now = [0.0]
    reviews = FakeReviews()
    auth = Authenticator(reviews, "token", clock=lambda: now[0])
    principal = auth.authenticate("Bearer good", "")
    assert principal is not None
    assert auth.allowed(principal, Access("list", "runs", "ml"))
    assert not auth.allowed(principal, Access("list", "runs", "other"))
    reviews.allowed.clear()  # RBAC revoked
    assert auth.allowed(principal, Access("list", "runs", "ml"))  # cached
    now[0] += 31
    reviews.tokens["good"] = {"username": "alice", "groups": ["team"]}
    assert not auth.allowed(principal, Access("list", "runs", "ml"))


def test_kubeconfig_mode_needs_no_token_and_a_bad_mode_is_refused() -> None:
    auth = Authenticator(FakeReviews(), "kubeconfig")
    principal = auth.authenticate("", "")
    assert principal is not None and principal.user is None and principal.username == "me"
    with pytest.raises(ValueError, match="unknown auth mode"):
        Authenticator(FakeReviews(), "none")


# --- re-run ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "archived", "offered"),
    [
        ("Failed", False, True),
        ("Cancelled", False, True),
        ("Succeeded", False, False),
        ("Running", False, False),
        ("Cancelling", False, False),
        ("Failed", True, False),  # the operator retries from the Run, gone from the cluster
    ],
)
def test_a_retry_is_offered_for_a_run_in_the_cluster_that_ended_without_succeeding(
    phase: str, archived: bool, offered: bool
) -> None:
    run = _run("r", "2026-01-01T00:00:00Z", phase=phase)
    assert (
        views.run_detail(run, None, None, archived=archived, can_retry=True)["canRetry"] is offered
    )
    assert views.run_detail(run, None, None, archived=archived)["canRetry"] is False


def test_a_rerun_names_the_original_version_and_carries_its_pin() -> None:
    original = {
        "metadata": {"name": "r1", "namespace": "ml"},
        "spec": {"pipelineRef": {"name": "train"}, "params": {"lr": 0.1}},
        "status": {"pipeline": {"name": "train", "version": "abc123def456", "commit": "c0ffee"}},
    }
    pinned = {
        "spec": {"tasks": [{"name": "a", "command": ["echo", "old"]}]},
        "pipeline": {"name": "train", "version": "abc123def456", "commit": "c0ffee",
                     "source": "repo", "path": "pipelines"},
    }  # fmt: skip
    body = views.rerun_body(original, "r1-rerun-1", pinned)
    assert body["spec"]["pipelineRef"] == {"name": "train", "version": "abc123def456"}
    assert body["spec"]["params"] == {"lr": 0.1}
    # the UI writes the pin just after the Run: the annotation makes the operator wait
    # for it rather than pin the pipeline's current version first
    assert body["metadata"]["annotations"] == {
        conventions.ANNOTATION_RERUN_OF: "r1",
        conventions.ANNOTATION_PIN_HANDOVER: "ui",
    }
    created = {"metadata": {"name": "r1-rerun-1", "uid": "u-2"}}
    config_map = views.rerun_pin(created, pinned)
    assert config_map["metadata"]["name"] == "r1-rerun-1-pipeline"
    [owner] = config_map["metadata"]["ownerReferences"]
    assert owner["uid"] == "u-2" and owner["kind"] == "Run" and owner["controller"] is True
    assert json.loads(config_map["data"]["spec.json"]) == pinned
    # without a pin, the version still comes from the original's status
    body = views.rerun_body(original, "r1-rerun-2")
    assert body["spec"]["pipelineRef"]["version"] == "abc123def456"
    assert conventions.ANNOTATION_PIN_HANDOVER not in body["metadata"]["annotations"]


def test_a_local_run_shows_from_its_work_directory_like_an_archived_cluster_run(
    tmp_path: Path,
) -> None:
    # pipesync run writes the RunRecord the S3 mirror writes, under the same keys: the
    # archive source (pipesync ui --local DIR) reads its work directory as it reads S3
    compiled = compile_yaml(
        "tasks: [{name: a, command: [sh, -c, 'echo out; exit 4']}, "
        "{name: b, command: [x], dependsOn: [a]}]"
    )
    local = LocalRun(
        compiled,
        planner.RunContext("r", "local", {}),
        repo_root=tmp_path,
        workdir=tmp_path / "work",
        pipeline_name="p",
    )
    local.execute()
    source = ArchivedRuns(storage.LocalStore(tmp_path / "work"), "local")
    [row] = source.rows("local")
    assert (row["name"], row["pipeline"], row["phase"], row["archived"]) == (
        "r",
        "p",
        "Failed",
        True,
    )
    found = source.find("local", "r")
    assert found is not None and found.archived
    detail = views.run_detail(found.run, None, found.record, archived=True)
    assert (detail["run"]["name"], detail["run"]["namespace"]) == ("r", "local")
    assert detail["tasks"]["a"]["phase"] == "Failed" and detail["tasks"]["a"]["exitCode"] == 4
    assert detail["tasks"]["a"]["startedAt"]
    assert detail["tasks"]["b"]["phase"] == "Omitted"
    assert "a" in detail["message"]  # the outcome, from the Succeeded condition
    log = source.log("local", "r", "a", None, 1)
    assert log is not None and b"".join(log) == b"out\n"
