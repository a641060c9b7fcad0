"""The web UI's server side without a cluster: request bodies are bounded before a byte is
read, the HTTP endpoint serves a bounded number of requests and drops slow clients,
artifacts and logs leave in chunks, a flood of junk tokens cannot push out good ones, the
resource endpoints answer their views after the person's access is checked, Re-run hands
over the original's pin and Retry from failure creates the Run `pipesync retry` creates, the
kubeconfig mode accepts only its own Host, and `pipesync ui` / `pipesync operator` say in
one line why they cannot start."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from pipesync.api import conventions
from pipesync.cli import cluster
from pipesync.engine import layout
from pipesync.kube.client import KubeClient
from pipesync.observe import endpoint
from pipesync.runtime import storage
from pipesync.ui import app, auth, resourceroutes, runroutes, sessions, sources, views
from tests.unit.conftest import Cli
from tests.unit.kubefakes import ClusterKube, MemoryKube
from tests.unit.test_ui_logic import FakeReviews
from tests.unit.test_ui_sources import LiveRuns

PIPESYNC = Path(sys.executable).with_name("pipesync")


class Body(io.BytesIO):
    """A request body that records how much was asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(size)
        return super().read(size)


def make_app(
    store: storage.ObjectStore | None = None, mode: str = "token", **options: Any
) -> app.UiApp:
    # A client that is never called: these requests end before any API call.
    kube = KubeClient(kubernetes.client.ApiClient(kubernetes.client.Configuration()))
    reviews = FakeReviews()
    reviews.allowed |= {("get", "runs", "ml"), ("patch", "runs", "ml")}
    return app.UiApp(kube, auth.Authenticator(reviews, mode), store, ["ml"], **options)


def call(ui: app.UiApp, method: str, path: str, **environ: Any) -> tuple[int, list[bytes]]:
    seen: list[str] = []
    base = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": Body(b"")}
    body = ui({**base, **environ}, lambda status, headers: seen.append(status))
    return int(seen[0].split()[0]), list(body)


# --- bodies and the login -------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "status"),
    [("-1", 400), ("abc", 400), ("1e3", 400), ("", 411), ("99999999999999", 413), ("40000", 413)],
)
def test_a_login_body_needs_a_sane_content_length(length: str, status: int) -> None:
    body = Body(b'{"token": "good"}' + b" " * 300)
    code, _ = call(
        make_app(), "POST", "/ui/api/login",
        CONTENT_LENGTH=length, HTTP_X_PIPESYNC_REQUEST="1", **{"wsgi.input": body},
    )  # fmt: skip
    assert code == status
    assert body.asked == []  # refused before a byte was read


def test_a_login_reads_exactly_its_content_length_and_needs_the_request_header() -> None:
    body = Body(b'{"token": "good"}trailing bytes the client never declared')
    environ = {"CONTENT_LENGTH": "17", "wsgi.input": body}
    assert call(make_app(), "POST", "/ui/api/login", **environ)[0] == 403  # no header
    assert body.asked == []
    code, answer = call(make_app(), "POST", "/ui/api/login", HTTP_X_PIPESYNC_REQUEST="1", **environ)
    assert code == 200 and json.loads(b"".join(answer))["user"]["username"] == "alice"
    assert body.asked == [17]


def test_any_request_with_a_negative_length_is_refused() -> None:
    assert call(make_app(), "GET", "/ui/api/whoami", CONTENT_LENGTH="-5")[0] == 400
    assert call(make_app(), "POST", "/ui/api/logout", HTTP_TRANSFER_ENCODING="chunked")[0] == 411


# --- the token cache ------------------------------------------------------------------


def test_a_flood_of_junk_tokens_does_not_push_out_the_good_ones() -> None:
    reviews = FakeReviews()
    authenticator = auth.Authenticator(reviews, "token")
    assert authenticator.authenticate("Bearer good", "") is not None
    for number in range(auth.MAX_CACHED_TOKENS + auth.MAX_REJECTED_TOKENS + 10):
        assert authenticator.authenticate(f"Bearer junk{number}", "") is None
    before = reviews.calls.count("token")
    assert authenticator.authenticate("Bearer good", "") is not None
    assert reviews.calls.count("token") == before  # still cached: no new review


# --- streaming ------------------------------------------------------------------------


def test_artifacts_and_s3_logs_leave_in_chunks(tmp_path: Path) -> None:
    store = storage.LocalStore(tmp_path)
    prefix = layout.node_prefix("ml", "r1", "train", None)
    big = bytes(range(256)) * (5 * 4096)  # 5 MiB of binary
    store.put_bytes(layout.output_artifact_key(prefix, "model"), big)
    log = b"".join(b"line %07d\n" % n for n in range(300_000))  # 3.6 MB
    store.put_bytes(layout.log_key(prefix, 1), log)
    ui = make_app(store)
    token = {"HTTP_AUTHORIZATION": "Bearer good"}

    code, chunks = call(ui, "GET", "/ui/api/namespaces/ml/runs/r1/artifacts/train/model", **token)
    assert code == 200 and b"".join(chunks) == big
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 2 * 1024 * 1024

    code, chunks = call(ui, "GET", "/ui/api/namespaces/ml/runs/r1/logs", QUERY_STRING="task=train",
                        **token)  # fmt: skip
    assert code == 200 and b"".join(chunks) == log[-sources.MAX_LOG_BYTES :]
    assert len(chunks) > 1

    code, chunks = call(
        ui, "GET", "/ui/api/namespaces/ml/runs/r1/artifacts/train/model/view", **token
    )
    view = json.loads(b"".join(chunks))
    assert code == 200 and view["viewer"] == "binary" and view["size"] is None


# --- the resource endpoints -----------------------------------------------------------

NOW = 1_800_000_000.0


class ListingKube(MemoryKube):
    """MemoryKube that also lists a namespace's objects, counting the lists per kind."""

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = "", label_selector: str = ""
    ) -> list[dict[str, Any]]:
        self.requests[f"list {plural}"] += 1
        return [
            obj
            for (kind, ns, _), obj in sorted(self.objects.items())
            if (kind, ns) == (plural, namespace)
        ]


def _object(name: str, **fields: Any) -> dict[str, Any]:
    metadata = {"name": name, "namespace": "ml", "creationTimestamp": "2026-01-01T00:00:00Z"}
    return {"metadata": metadata, **fields}


def _resources() -> tuple[ListingKube, LiveRuns]:
    kube = ListingKube()
    version = {"id": "v1", "commit": "a" * 40, "source": "repo"}
    objects = {
        "experiments": [_object("e1", spec={"description": "first"}), _object("e2")],
        "pipelines": [_object("p1", spec={"tasks": [{"name": "a", "command": ["x"]}]},
                              status={"latestVersion": "v1", "versions": [version]})],
        "recurringruns": [_object("nightly", spec={"schedule": {"cron": "0 3 * * *"},
                                                   "pipelineRef": {"name": "p1"}})],
        "gitsources": [_object("repo", spec={"url": "https://u:pw@github.com/acme/ml.git"})],
    }  # fmt: skip
    objects["pipelines"][0]["metadata"]["annotations"] = {conventions.ANNOTATION_FILE: "p.yaml"}
    for plural, items in objects.items():
        for item in items:
            kube.objects[(plural, "ml", item["metadata"]["name"])] = item
    nightly = {conventions.LABEL_RECURRING_RUN: "nightly"}
    runs = LiveRuns(
        {**_object("r1", spec={"experimentRef": {"name": "e1"}}), "status": {}},
        {"metadata": {"name": "r2", "namespace": "ml", "labels": nightly,
                      "creationTimestamp": "2026-01-02T00:00:00Z"},
         "spec": {"experimentRef": {"name": "e1"}}},
        {"metadata": {"name": "r3", "namespace": "ml", "labels": nightly,
                      "creationTimestamp": "2026-01-03T00:00:00Z"}, "spec": {}},
    )  # fmt: skip
    return kube, runs


def _resource_app(
    kube: ListingKube, runs: LiveRuns, allowed: set[tuple[str, str, str]]
) -> app.UiApp:
    reviews = FakeReviews()
    reviews.allowed = set(allowed)
    ui = app.UiApp(kube, auth.Authenticator(reviews, "token"), None, ["ml"], lambda: NOW)
    # The runs from an in-memory live source instead of the cluster's watch.
    routes = resourceroutes.ResourceRoutes(
        kube, ui.sessions, sources.RunSources([runs]), ["ml"], lambda: NOW
    )
    ui.routes = [*ui.sessions.routes(), *routes.routes()]
    return ui


def _get_json(ui: app.UiApp, path: str) -> tuple[int, Any]:
    code, body = call(ui, "GET", f"/ui/api/{path}", HTTP_AUTHORIZATION="Bearer good")
    return code, json.loads(b"".join(body))


EVERYTHING = {
    (verb, plural, "ml")
    for verb in ("list", "get")
    for plural in ("runs", "experiments", "pipelines", "recurringruns", "gitsources")
}


def test_each_resource_endpoint_answers_the_view_of_its_objects() -> None:
    kube, runs = _resources()
    ui = _resource_app(kube, runs, EVERYTHING)
    rows = runs.rows("ml")

    def get(plural: str, name: str) -> dict[str, Any]:
        return kube.objects[(plural, "ml", name)]

    expected = {
        "namespaces": {"items": [{"name": "ml"}]},
        "namespaces/ml/experiments": {"items": [
            views.experiment_row(get("experiments", "e1"), 2),
            views.experiment_row(get("experiments", "e2"), 0),
        ]},
        "namespaces/ml/pipelines": {"items": [views.pipeline_row(get("pipelines", "p1"))]},
        "namespaces/ml/pipelines/p1": views.pipeline_detail(
            get("pipelines", "p1"), {"repo": "https://u:pw@github.com/acme/ml.git"}
        ),
        "namespaces/ml/recurringruns": {"items": [
            views.recurring_row(get("recurringruns", "nightly"))
        ]},
        "namespaces/ml/recurringruns/nightly": views.recurring_detail(
            get("recurringruns", "nightly"),
            views.filter_rows([r for r in rows if r["recurringRun"] == "nightly"]),
            NOW,
        ),
        "namespaces/ml/gitsources": {"items": [views.gitsource_row(get("gitsources", "repo"))]},
        "namespaces/ml/gitsources/repo": views.gitsource_detail(get("gitsources", "repo")),
    }  # fmt: skip
    for path, body in expected.items():
        assert _get_json(ui, path) == (200, json.loads(json.dumps(body))), path
    detail = expected["namespaces/ml/pipelines/p1"]
    assert detail["versions"][0]["fileUrl"] == f"https://github.com/acme/ml/blob/{'a' * 40}/p.yaml"
    history = expected["namespaces/ml/recurringruns/nightly"]["history"]
    assert [row["name"] for row in history] == ["r3", "r2"]  # newest first
    for path in ("namespaces/ml/pipelines/nope", "namespaces/ml/gitsources/nope"):
        code, body = _get_json(ui, path)
        assert code == 404 and "nope not found in namespace ml" in body["error"]
    assert _get_json(ui, "namespaces/ml/recurringruns/Bad_Name")[0] == 400
    assert call(ui, "POST", "/ui/api/namespaces/ml/pipelines", HTTP_X_PIPESYNC_REQUEST="1",
                HTTP_AUTHORIZATION="Bearer good")[0] == 405  # fmt: skip


def test_what_a_view_reads_besides_its_objects_is_read_only_where_the_person_may_list_it() -> None:
    kube, runs = _resources()
    own = {
        ("list", "experiments", "ml"),
        ("get", "pipelines", "ml"),
        ("get", "recurringruns", "ml"),
    }
    ui = _resource_app(kube, runs, own)
    code, body = _get_json(ui, "namespaces/ml/experiments")
    assert code == 200 and [row["runs"] for row in body["items"]] == [0, 0]  # no run counts
    code, body = _get_json(ui, "namespaces/ml/pipelines/p1")
    assert code == 200 and body["versions"][0]["fileUrl"] is None  # no git source links
    assert kube.requests["list gitsources"] == 0
    code, body = _get_json(ui, "namespaces/ml/recurringruns/nightly")
    assert code == 200 and body["history"] == [] and len(body["nextFireTimes"]) == 5
    code, body = _get_json(ui, "namespaces/ml/pipelines")
    assert code == 403 and body["error"] == "alice may not list pipelines in namespace ml"
    code, body = _get_json(ui, "namespaces")
    assert code == 200 and body["items"] == []  # may not list runs there


def _path(view: views.View) -> str:
    """The path of a view's endpoint for the objects _resources() holds."""
    first = {"experiments": "e1", "pipelines": "p1", "recurringruns": "nightly"}
    name = first.get(view.kind, "repo")
    return f"namespaces/ml/{view.kind}" + (f"/{name}" if view.verb == "get" else "")


@pytest.mark.parametrize("view", views.VIEWS, ids=[view.name for view in views.VIEWS])
def test_every_view_answers_only_a_person_who_may_use_its_verb_on_its_kind(
    view: views.View,
) -> None:
    kube, runs = _resources()
    needed = (view.verb, view.kind, "ml")
    code, body = _get_json(_resource_app(kube, runs, EVERYTHING - {needed}), _path(view))
    assert code == 403
    assert body["error"] == f"alice may not {view.verb} {view.kind} in namespace ml"
    assert sum(kube.requests.values()) == 0  # refused before anything was read
    assert _get_json(_resource_app(kube, runs, {needed}), _path(view))[0] == 200


def test_a_view_entry_alone_is_an_endpoint_with_its_access_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def described(found: dict[str, Any], reads: views.Reads) -> dict[str, Any]:
        return {"name": found["metadata"]["name"], "runs": len(reads.of("runs"))}

    added = views.View("experiments-detail", "experiments", "get", described, reads=("runs",))
    monkeypatch.setattr(views, "VIEWS", (*views.VIEWS, added))
    kube, runs = _resources()
    path = "namespaces/ml/experiments/e1"
    ui = _resource_app(kube, runs, EVERYTHING)
    assert _get_json(ui, path) == (200, {"name": "e1", "runs": 3})
    only = {("get", "experiments", "ml")}
    assert _get_json(_resource_app(kube, runs, only), path) == (200, {"name": "e1", "runs": 0})
    code, body = _get_json(_resource_app(kube, runs, EVERYTHING - only), path)
    assert code == 403 and body["error"] == "alice may not get experiments in namespace ml"
    assert _get_json(ui, "namespaces/ml/experiments/no")[0] == 404


STATIC = Path(app.__file__).with_name("static")
# One entry of pages.js's page table: page("route", drawFunction, "Nav label");
PAGE_ENTRY = re.compile(r'^page\("([\w-]+)", (\w+)(?:, "([^"]+)")?\);$', re.MULTILINE)


def test_the_page_table_keeps_the_navigation_and_has_a_page_for_every_view() -> None:
    pages_js = (STATIC / "pages.js").read_text()
    table = [(route, draw, nav) for route, draw, nav in PAGE_ENTRY.findall(pages_js)]
    routes = [route for route, _, _ in table]
    assert len(routes) == len(set(routes)) == pages_js.count("\npage(")
    for _, draw, _ in table:
        assert f"export async function {draw}(ctx)" in pages_js
    # the navigation's links, in this order, as before the table moved to pages.js
    assert [(route, nav) for route, _, nav in table if nav] == [
        ("experiments", "Experiments"),
        ("runs", "Runs"),
        ("pipelines", "Pipelines"),
        ("recurringruns", "Recurring runs"),
        ("gitsources", "Git sources"),
    ]
    assert {view.name for view in views.VIEWS} <= set(routes)
    # app.js names no page: its routes and links come from the table
    app_js = (STATIC / "app.js").read_text()
    assert set(re.findall(r"\bpages\.(?!js\b)(\w+)", app_js)) == {"PAGES", "login", "showError"}


# --- re-run and retry from failure ---------------------------------------------------

PIN = {
    "spec": {"tasks": [{"name": "a", "command": ["echo", "old"]}]},
    "pipeline": {"name": "digits", "version": "abc123def456", "commit": "c" * 40,
                 "source": "repo", "path": "pipelines"},
}  # fmt: skip
MAY_CREATE = {("get", "runs", "ml"), ("create", "runs", "ml")}


class PinnedRuns(LiveRuns):
    """LiveRuns pinned as the cluster source reads them (their `<run>-pipeline`
    ConfigMap), or known from S3 only (archived)."""

    def __init__(self, *runs: dict[str, Any], archived: bool = False) -> None:
        super().__init__(*runs)
        self.archived = archived

    def find(self, namespace: str, name: str) -> sources.FoundRun | None:
        found = super().find(namespace, name)
        if found is None:
            return None
        return dataclasses.replace(found, pinned=PIN, archived=self.archived)


class RunKube(MemoryKube):
    """MemoryKube that keeps the ConfigMaps it is asked to create."""

    def __init__(self) -> None:
        super().__init__()
        self.config_maps: dict[str, dict[str, Any]] = {}

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> bool:
        name = body["metadata"]["name"]
        if name in self.config_maps:
            return False
        self.config_maps[name] = dict(body)
        return True

    def created_runs(self) -> dict[str, dict[str, Any]]:
        return {name: obj for (plural, _, name), obj in self.objects.items() if plural == "runs"}


def _original(phase: str) -> dict[str, Any]:
    spec = {
        "pipelineRef": {"name": "digits"},
        "params": {"lr": 0.1},
        "experimentRef": {"name": "e1"},
        "timeout": "1h",
        "cache": "Disabled",
        "serviceAccountName": "trainer",
        "cancel": True,
    }
    status = {"phase": phase, "pipeline": PIN["pipeline"]} if phase else {}
    return {"metadata": {"name": "r1", "namespace": "ml", "uid": "u-1"}, "spec": spec,
            "status": status}  # fmt: skip


#: What a retry of _original() asks for: its spec, the version it ran, never cancel.
RETRY_SPEC = {
    "pipelineRef": {"name": "digits", "version": "abc123def456"},
    "params": {"lr": 0.1},
    "experimentRef": {"name": "e1"},
    "timeout": "1h",
    "cache": "Disabled",
    "serviceAccountName": "trainer",
    "retryOf": {"name": "r1"},
}


def _run_app(kube: RunKube, runs: LiveRuns, allowed: set[tuple[str, str, str]]) -> app.UiApp:
    reviews = FakeReviews()
    reviews.allowed = set(allowed)
    ui = app.UiApp(kube, auth.Authenticator(reviews, "token"), None, ["ml"], lambda: NOW)
    routes = runroutes.RunRoutes(kube, ui.sessions, sources.RunSources([runs]), lambda: NOW)
    ui.routes = [*ui.sessions.routes(), *routes.routes()]
    return ui


def _post(ui: app.UiApp, path: str) -> tuple[int, Any]:
    code, body = call(ui, "POST", f"/ui/api/{path}", HTTP_AUTHORIZATION="Bearer good",
                      HTTP_X_PIPESYNC_REQUEST="1")  # fmt: skip
    return code, json.loads(b"".join(body))


def test_a_rerun_from_the_ui_names_the_original_version_and_hands_over_its_commit() -> None:
    kube = RunKube()
    code, answer = _post(_run_app(kube, PinnedRuns(_original("Failed")), MAY_CREATE),
                         "namespaces/ml/runs/r1/rerun")  # fmt: skip
    name = conventions.rerun_name("r1", NOW)
    assert (code, answer) == (201, {"name": name, "pinned": True})
    created = kube.created_runs()[name]
    assert created["spec"]["pipelineRef"] == {"name": "digits", "version": "abc123def456"}
    assert created["metadata"]["annotations"][conventions.ANNOTATION_PIN_HANDOVER] == "ui"
    handed = kube.config_maps[conventions.pinned_config_name(name)]
    assert json.loads(handed["data"][conventions.PINNED_SPEC_KEY]) == PIN  # version, commit


@pytest.mark.parametrize("phase", ["Failed", "Cancelled"])
def test_a_retry_from_the_ui_creates_a_run_retrying_the_original_with_its_spec(
    phase: str,
) -> None:
    kube = RunKube()
    ui = _run_app(kube, PinnedRuns(_original(phase)), MAY_CREATE)
    code, answer = _post(ui, "namespaces/ml/runs/r1/retry")
    name = conventions.retry_name("r1", NOW)
    assert (code, answer) == (201, {"name": name})
    created = kube.created_runs()[name]
    assert created["spec"] == RETRY_SPEC  # params copied, no cancel
    assert created["metadata"] == {"name": name}  # no pin handover: the operator pins it
    assert kube.config_maps == {}
    code, answer = _post(ui, "namespaces/ml/runs/r1/retry")  # the same second: same name
    assert code == 409 and answer["error"] == f"run {name} exists already; try again in a second"


@pytest.mark.parametrize(
    ("runs", "allowed", "status", "error"),
    [
        (PinnedRuns(_original("Running")), MAY_CREATE, 409,
         "run r1 is Running, not finished: wait for it or cancel it, then retry"),
        (PinnedRuns(_original("")), MAY_CREATE, 409,
         "run r1 is Pending, not finished: wait for it or cancel it, then retry"),
        (PinnedRuns(_original("Failed")), {("get", "runs", "ml")}, 403,
         "alice may not create runs in namespace ml"),
        (PinnedRuns(_original("Failed"), archived=True), MAY_CREATE, 409,
         "run r1 is only archived in S3: it cannot be retried; re-run it"),
        (PinnedRuns(), MAY_CREATE, 404, "run r1 not found in namespace ml (nor in S3)"),
    ],
    ids=["running", "pending", "no-create-access", "archived", "unknown"],
)  # fmt: skip
def test_a_retry_from_the_ui_is_refused_for_what_cannot_be_retried(
    runs: PinnedRuns, allowed: set[tuple[str, str, str]], status: int, error: str
) -> None:
    kube = RunKube()
    code, answer = _post(_run_app(kube, runs, allowed), "namespaces/ml/runs/r1/retry")
    assert (code, answer["error"]) == (status, error)
    assert kube.created_runs() == {}


@pytest.mark.parametrize(
    ("phase", "allowed", "offered"),
    [
        ("Failed", MAY_CREATE, True),
        ("Cancelled", MAY_CREATE, True),
        ("Succeeded", MAY_CREATE, False),
        ("Running", MAY_CREATE, False),
        ("Failed", {("get", "runs", "ml")}, False),
    ],
    ids=["failed", "cancelled", "succeeded", "running", "no-create-access"],
)
def test_the_run_view_offers_a_retry_for_a_run_that_ended_without_succeeding(
    phase: str, allowed: set[tuple[str, str, str]], offered: bool
) -> None:
    ui = _run_app(RunKube(), PinnedRuns(_original(phase)), allowed)
    code, detail = _get_json(ui, "namespaces/ml/runs/r1")
    assert code == 200
    assert detail["canRetry"] is offered
    assert detail["canRerun"] is (allowed == MAY_CREATE)


def test_the_run_view_offers_no_retry_for_an_archived_run() -> None:
    ui = _run_app(RunKube(), PinnedRuns(_original("Failed"), archived=True), MAY_CREATE)
    code, detail = _get_json(ui, "namespaces/ml/runs/r1")
    assert code == 200 and detail["canRerun"] and not detail["canRetry"]


def test_pipesync_retry_and_the_ui_create_the_same_retry(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster_kube = ClusterKube()
    cluster_kube.add_run("ml", _original("Failed"))
    monkeypatch.setattr(cluster, "connect", lambda: cluster_kube)
    result = cli("retry", "r1", "-n", "ml", "--run-name", "r1-again")
    assert result.code == 0, result.err
    ((_, from_cli),) = cluster_kube.created
    kube = RunKube()
    assert _post(_run_app(kube, PinnedRuns(_original("Failed")), MAY_CREATE),
                 "namespaces/ml/runs/r1/retry")[0] == 201  # fmt: skip
    (from_ui,) = kube.created_runs().values()
    assert from_cli["spec"] == from_ui["spec"] == RETRY_SPEC
    assert from_cli["kind"] == from_ui["kind"] == "Run"
    assert from_cli["apiVersion"] == from_ui["apiVersion"]


# --- Host and Origin ------------------------------------------------------------------


def test_kubeconfig_mode_answers_only_its_own_host_and_origin() -> None:
    ui = make_app(mode="kubeconfig", hosts=sessions.local_hosts("127.0.0.1", 8090))
    assert call(ui, "GET", "/ui/api/whoami", HTTP_HOST="localhost:8090")[0] == 200
    assert call(ui, "GET", "/ui/api/whoami", HTTP_HOST="127.0.0.1:8090")[0] == 200
    # a DNS-rebinding page: same origin by its own name, but it cannot fake the Host
    assert call(ui, "GET", "/ui/api/whoami", HTTP_HOST="evil.example:8090")[0] == 403
    assert call(ui, "GET", "/ui/", HTTP_HOST="evil.example:8090")[0] == 403
    cancel = {"HTTP_HOST": "localhost:8090", "HTTP_X_PIPESYNC_REQUEST": "1"}
    code, _ = call(ui, "POST", "/ui/api/namespaces/ml/runs/r1/cancel",
                   HTTP_ORIGIN="http://evil.example:8090", **cancel)  # fmt: skip
    assert code == 403
    assert sessions.local_hosts("::1", 80) >= {"[::1]", "[::1]:80", "localhost"}


def test_kubeconfig_mode_refuses_a_non_loopback_address_unless_asked(tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "none")}
    result = subprocess.run(
        [str(PIPESYNC), "ui", "--no-s3", "--address", "0.0.0.0:0"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--allow-remote" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = subprocess.run(
        [str(PIPESYNC), "ui", "--no-s3", "--address", "0.0.0.0:0", "--allow-remote"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1 and "kubeconfig" in result.stderr  # past the address check


# --- cannot start: one line, exit 1 ---------------------------------------------------


UNREACHABLE = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


def test_pipesync_ui_against_an_unreachable_cluster_exits_1_with_one_line(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE)
    port = _free_port()
    result = subprocess.run(
        [str(PIPESYNC), "ui", "--no-s3", "--address", f"127.0.0.1:{port}"],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("pipesync ui: cannot reach Kubernetes at https://127.0.0.1:1")


def test_pipesync_ui_local_needs_an_existing_work_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    result = subprocess.run(
        [str(PIPESYNC), "ui", "--no-s3", "--local", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"pipesync ui: --local {missing}: no such directory"


def test_pipesync_operator_without_a_kubeconfig_exits_1_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    result = subprocess.run(
        [str(PIPESYNC), "operator", "--metrics-address", "127.0.0.1:0"],
        env={**env, "KUBECONFIG": str(tmp_path / "none")},
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("pipesync operator: no Kubernetes credentials")


# --- the HTTP endpoint ----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _hello(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"hello"


def _get(port: int, client: str = "127.0.0.1") -> bytes:
    with socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(client, 0)
    ) as connection:
        connection.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
        return answer


def _hold(port: int, client: str) -> socket.socket:
    """A connection from `client` that sends half a request and then nothing."""
    connection = socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(client, 0)
    )
    connection.sendall(b"GET / HTTP/1.0\r\n")
    return connection


def test_one_client_cannot_take_the_slots_the_probes_need() -> None:
    server = endpoint.serve_app(_hello, "127.0.0.1:0")
    idle = []
    try:
        for _ in range(endpoint.MAX_HANDLERS + 1):
            idle.append(_hold(server.server_port, "127.0.0.2"))
        time.sleep(0.5)
        assert _get(server.server_port, "127.0.0.2").startswith(b"HTTP/1.0 503")
        assert _get(server.server_port, "127.0.0.1").startswith(b"HTTP/1.0 200")  # the kubelet
    finally:
        for connection in idle:
            connection.close()
        server.shutdown()
        server.server_close()


def test_the_endpoint_serves_a_bounded_number_of_requests_at_once() -> None:
    server = endpoint.serve_app(_hello, "127.0.0.1:0")
    idle = []
    try:
        for number in range(endpoint.MAX_HANDLERS):
            # Loopback has a whole /8: many clients, none over its own share.
            client = f"127.0.1.{number // endpoint.MAX_PER_CLIENT + 1}"
            idle.append(_hold(server.server_port, client))
        time.sleep(0.5)
        assert _get(server.server_port).startswith(b"HTTP/1.0 503")
        for connection in idle:
            connection.close()
        deadline = time.monotonic() + 10
        while not (answer := _get(server.server_port)).startswith(b"HTTP/1.0 200"):
            assert time.monotonic() < deadline, answer
            time.sleep(0.1)
    finally:
        for connection in idle:
            connection.close()
        server.shutdown()
        server.server_close()


def test_a_client_that_trickles_its_request_is_dropped_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(endpoint, "REQUEST_SECONDS", 1.0)
    server = endpoint.serve_app(_hello, "127.0.0.1:0")
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as client:
            started = time.monotonic()
            closed = False
            for byte in b"GET / HTTP/1.0\r\nX-Slow: " + b"a" * 40:
                try:
                    client.sendall(bytes([byte]))
                except OSError:
                    closed = True
                    break
                time.sleep(0.2)
                client.setblocking(False)
                try:
                    closed = client.recv(1) == b""
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                client.setblocking(True)
                if closed:
                    break
            assert closed and time.monotonic() - started < 4
    finally:
        server.shutdown()
        server.server_close()
