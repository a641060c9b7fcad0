"""The Grafana dashboards in charts/pipesync/dashboards/: well-formed, every panel queries
something, every variable a query uses is defined, and every metric a query names is one the
operator exports (observe/metrics.py and its per-domain observe/*_metrics.py,
prometheus_client's process collector) or is listed in
PENDING, metrics other helpers are adding now. tests/e2e/test_dashboards.py evaluates every
query against a real Prometheus."""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "charts/pipesync/dashboards").glob("*.json"))
#: observe/metrics.py wires the per-domain collectors of observe/*_metrics.py.
METRICS_SOURCES = sorted((ROOT / "operator/pipesync/observe").glob("*metrics.py"))
#: Panels of the GitOps view whose metrics the GitSource controller does not export yet.
#: Metrics a panel may query before the operator exports them (none today).
PENDING: set[str] = set()
GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval", "datasource"}
_METRIC = re.compile(r"\b((?:pipesync|process)_[a-z0-9_]+)\b")
_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.extend(panel.get("panels", []))
        if panel["type"] != "row":
            found.append(panel)
    return found


def base_metric(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def exported() -> set[str]:
    source = "".join(path.read_text() for path in METRICS_SOURCES)
    names = set(re.findall(r'"(pipesync_[a-z0-9_]+)"', source))
    if "ProcessCollector(" in source:
        names |= {"process_resident_memory_bytes", "process_cpu_seconds"}
    return names


@pytest.fixture(params=DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def board(request: pytest.FixtureRequest) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(request.param.read_text())
    return data


def test_there_are_the_three_dashboards() -> None:
    assert [p.stem for p in DASHBOARDS] == ["controller", "gitops", "overview"]
    uids = [json.loads(p.read_text())["uid"] for p in DASHBOARDS]
    assert len(set(uids)) == 3


def test_every_panel_has_a_query_on_the_selectable_datasource(board: dict[str, Any]) -> None:
    found = panels(board)
    assert found
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in found:
        assert panel["title"], panel
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']}: empty query"
            assert target["datasource"]["uid"] == "${datasource}"


def test_every_variable_used_is_defined(board: dict[str, Any]) -> None:
    defined = {v["name"] for v in board["templating"]["list"]} | GRAFANA_BUILTINS
    for panel in panels(board):
        for target in panel["targets"]:
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= defined, f"{panel['title']}: undefined {used - defined}"


def test_every_metric_is_exported_or_known_to_be_pending(board: dict[str, Any]) -> None:
    known = exported()
    for panel in panels(board):
        for target in panel["targets"]:
            names = {base_metric(n) for n in _METRIC.findall(target["expr"])}
            assert names, f"{panel['title']}: names no metric"
            unknown = names - known - PENDING
            assert not unknown, f"{panel['title']}: {unknown} is not exported"


def test_pending_metrics_are_really_missing() -> None:
    # Once the GitSource controller exports one, drop it from PENDING (and the e2e xfail).
    assert not PENDING & exported()


def test_the_brackets_of_every_query_balance(board: dict[str, Any]) -> None:
    for panel in panels(board):
        for target in panel["targets"]:
            expr = target["expr"]
            for left, right in ("()", "{}", "[]"):
                assert expr.count(left) == expr.count(right), f"{panel['title']}: {expr}"


# --- the rules of Grafana's dashboard linter -------------------------------------------------
# github.com/grafana/dashboard-linter (v0.2.0, its docs/rules/*.md), checked here as the linter
# states them. The linter itself is not built in CI: its Go module needs Grafana's and Loki's
# AGPL-licensed modules, which this project does not take.

#: Panel types the linter's title, description and unit rules look at.
LINTED_PANELS = {"stat", "singlestat", "graph", "table", "timeseries", "gauge"}
#: Grafana unit ids (packages/grafana-data/src/valueFormats/categories.ts) the boards may use.
UNITS = {"none", "short", "percent", "percentunit", "s", "ms", "h", "d", "bytes", "ops",
         "reqps", "rps", "cps", "dateTimeAsIso", "dateTimeFromNow", "bool"}  # fmt: skip
_SELECTOR = re.compile(r"\b((?:pipesync|process)_[a-z0-9_]+)\b(\{[^}]*\})?(\[[^\]]*\])?")
_LABEL_QUERY = re.compile(r"^(label_names|label_values|metrics|query_result)\((.+)\)$")


def targets(board: dict[str, Any]) -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels(board) for t in p["targets"]]


def variable(board: dict[str, Any], name: str) -> dict[str, Any]:
    found = [v for v in board["templating"]["list"] if v["name"] == name]
    assert found, f"{board['title']}: is missing the {name} template"
    template: dict[str, Any] = found[0]
    return template


def query_of(template: dict[str, Any]) -> str:
    query = template["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def test_template_datasource_rule(board: dict[str, Any]) -> None:
    sources = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["label"], v["query"]) for v in sources] == [
        ("datasource", "Data source", "prometheus")
    ]


@pytest.mark.parametrize("name", ["job", "instance"])
def test_template_job_and_instance_rules(board: dict[str, Any], name: str) -> None:
    template = variable(board, name)
    assert template["datasource"]["uid"] in ("$datasource", "${datasource}")
    assert template["type"] == "query"
    assert template["label"] == name.title()
    assert template["multi"] is True
    assert template["allValue"] == ".+"


def test_template_label_promql_and_time_change_reload_rules(board: dict[str, Any]) -> None:
    for template in board["templating"]["list"]:
        if template["type"] != "query":
            continue
        assert _LABEL_QUERY.match(query_of(template)), template["name"]
        assert template["refresh"] == 2, f"{template['name']}: refresh on time range change"


def test_panel_datasource_title_description_units_and_targets_rules(
    board: dict[str, Any],
) -> None:
    for panel in panels(board):
        assert panel["targets"], f"{panel['title']}: no target"
        if panel["type"] not in LINTED_PANELS:
            continue
        assert panel["datasource"]["uid"] in ("$datasource", "${datasource}"), panel["title"]
        assert panel["title"] and panel.get("description"), panel["title"]
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit in UNITS, f"{panel['title']}: has no or invalid units defined: {unit!r}"


def test_target_job_and_instance_rules(board: dict[str, Any]) -> None:
    """Every selector of every query filters on the dashboard's job and instance, so a
    Grafana that sees several Prometheus jobs shows this operator's series only."""
    for title, expr in targets(board):
        selectors = _SELECTOR.findall(expr)
        assert selectors, f"{title}: no selector in {expr}"
        for name, matchers, _ in selectors:
            found = {m.strip() for m in matchers.strip("{}").split(",")}
            for required in ('job=~"$job"', 'instance=~"$instance"'):
                assert required in found, f"{title}: {name} has no {required} matcher: {expr}"


def test_template_variables_chain_job_then_instance(board: dict[str, Any]) -> None:
    # every later variable's values are limited by the job (and instance) chosen before it
    names = [v["name"] for v in board["templating"]["list"]]
    assert names[:3] == ["datasource", "job", "instance"]
    for template in board["templating"]["list"][2:]:
        assert 'job=~"$job"' in query_of(template), template["name"]


def test_target_rate_interval_and_counter_aggregation_rules(board: dict[str, Any]) -> None:
    for title, expr in targets(board):
        for function, window in re.findall(r"\b(i?rate)\([^\[]*\[([^\]]*)\]", expr):
            assert window == "$__rate_interval", f"{title}: {function} should use $__rate_interval"
        for match in _SELECTOR.finditer(expr):
            name, window = match.group(1), match.group(3)
            if not name.endswith("_total"):
                continue
            before = expr[: match.start()].rstrip()
            assert window and re.search(r"\b(rate|irate|increase)\($", before), (
                f"{title}: counter {name} is not aggregated with rate, irate or increase"
            )


def test_uneditable_rule(board: dict[str, Any]) -> None:
    # provisioned from the chart's ConfigMaps: an edit in Grafana would be lost at upgrade
    assert board["editable"] is False


def test_run_panels_filter_on_the_namespace(board: dict[str, Any]) -> None:
    """Run, task and GitSource metrics carry the run's namespace: the boards that show them
    offer a namespace variable and every such selector uses it."""
    namespaced = re.compile(
        r"^pipesync_(runs_|run_duration|task_|tasks$|pods_pending|gpu_|gitsource_)"
    )
    for title, expr in targets(board):
        for name, matchers, _ in _SELECTOR.findall(expr):
            if namespaced.match(name):
                variable(board, "namespace")
                assert 'namespace=~"$namespace"' in matchers, f"{title}: {name}: {expr}"
