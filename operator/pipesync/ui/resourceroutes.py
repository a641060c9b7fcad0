"""The endpoints of everything but runs: namespaces, experiments, pipelines, recurring
runs and git sources, read from the cluster after the person's access is checked."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipesync.controllers.kube import (
    EXPERIMENTS,
    GIT_SOURCES,
    PIPELINES,
    RECURRING_RUNS,
    RUNS,
    Kube,
)
from pipesync.ui import inputs, views
from pipesync.ui.auth import Access, Principal
from pipesync.ui.responses import HttpError, Response, Route, json_response
from pipesync.ui.sessions import Sessions
from pipesync.ui.sources import RunSources

_NAMESPACE = r"^namespaces/([^/]+)/"


class ResourceRoutes:
    def __init__(
        self,
        kube: Kube,
        sessions: Sessions,
        sources: RunSources,
        namespaces: Iterable[str],
        clock: Callable[[], float],
    ) -> None:
        """`namespaces`: the operator's --namespace options (names or kopf's globs)."""
        self.kube = kube
        self.sessions = sessions
        self.sources = sources
        self.watched = sorted(set(namespaces))
        self.clock = clock

    def routes(self) -> list[Route]:
        def under_namespace(rest: str) -> re.Pattern[str]:
            return re.compile(_NAMESPACE + rest)

        return [
            Route("GET", re.compile(r"^namespaces$"), self.namespaces),
            Route("GET", under_namespace("experiments$"), self.experiments),
            Route("GET", under_namespace("pipelines$"), self.pipelines),
            Route("GET", under_namespace("pipelines/([^/]+)$"), self.pipeline),
            Route("GET", under_namespace("recurringruns$"), self.recurring_runs),
            Route("GET", under_namespace("recurringruns/([^/]+)$"), self.recurring_run),
            Route("GET", under_namespace("gitsources$"), self.git_sources),
            Route("GET", under_namespace("gitsources/([^/]+)$"), self.git_source),
        ]

    def namespaces(self, environ: Mapping[str, Any], principal: Principal) -> Response:
        plain = self.watched and not any(set(p) & set("*?[,!") for p in self.watched)
        candidates = (
            self.watched
            if plain
            else views.watched_namespaces(self.kube.list_namespaces(), self.watched)
        )
        visible = [
            {"name": ns}
            for ns in candidates
            if self.sessions.allowed(principal, Access("list", RUNS, ns))
        ]
        return json_response(200, {"items": visible})

    def _listed(self, principal: Principal, ns: str, plural: str) -> list[dict[str, Any]]:
        inputs.name(ns, "namespace")
        self.sessions.require(principal, Access("list", plural, ns))
        return self.kube.list_objects(plural, ns)

    def _got(self, principal: Principal, ns: str, plural: str, name: str) -> dict[str, Any]:
        inputs.name(ns, "namespace")
        inputs.name(name, "name")
        self.sessions.require(principal, Access("get", plural, ns))
        found = self.kube.get_object(plural, ns, name)
        if found is None:
            raise HttpError(404, f"{plural} {name} not found in namespace {ns}")
        return found

    def experiments(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, EXPERIMENTS)
        counts: dict[str, int] = {}
        if self.sessions.allowed(principal, Access("list", RUNS, ns)):
            for row in self.sources.live_rows(ns):
                counts[row["experiment"]] = counts.get(row["experiment"], 0) + 1
        rows = [views.experiment_row(e, counts.get(e["metadata"]["name"], 0)) for e in items]
        return json_response(200, {"items": rows})

    def pipelines(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, PIPELINES)
        return json_response(200, {"items": [views.pipeline_row(p) for p in items]})

    def pipeline(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        found = self._got(principal, ns, PIPELINES, name)
        repositories: dict[str, str] = {}
        if self.sessions.allowed(principal, Access("list", GIT_SOURCES, ns)):
            for source in self.kube.list_objects(GIT_SOURCES, ns):
                repositories[source["metadata"]["name"]] = str(
                    (source.get("spec") or {}).get("url") or ""
                )
        return json_response(200, views.pipeline_detail(found, repositories))

    def recurring_runs(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, RECURRING_RUNS)
        return json_response(200, {"items": [views.recurring_row(r) for r in items]})

    def recurring_run(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        found = self._got(principal, ns, RECURRING_RUNS, name)
        history: list[Mapping[str, Any]] = []
        if self.sessions.allowed(principal, Access("list", RUNS, ns)):
            history = views.filter_rows(
                [r for r in self.sources.live_rows(ns) if r["recurringRun"] == name]
            )
        return json_response(200, views.recurring_detail(found, history, self.clock()))

    def git_sources(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        items = self._listed(principal, ns, GIT_SOURCES)
        return json_response(200, {"items": [views.gitsource_row(s) for s in items]})

    def git_source(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        found = self._got(principal, ns, GIT_SOURCES, name)
        return json_response(200, views.gitsource_detail(found))
