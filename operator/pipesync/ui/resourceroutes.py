"""The endpoints of everything but runs: namespaces, experiments, pipelines, recurring
runs and git sources, read from the cluster after the person's access is checked."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipesync.controllers import kube
from pipesync.ui import inputs, views
from pipesync.ui.auth import Access, Principal
from pipesync.ui.responses import HttpError, Response, Route, json_response
from pipesync.ui.sessions import Sessions
from pipesync.ui.sources import RunSources

_NAMESPACE = r"^namespaces/([^/]+)/"
#: An endpoint: (request, person, path groups...) -> answer.
Handler = Callable[..., Response]
#: (person, namespace, name, object) -> what the page shows of one object.
Detail = Callable[[Principal, str, str, Mapping[str, Any]], dict[str, Any]]


class ResourceRoutes:
    def __init__(
        self,
        client: kube.Kube,
        sessions: Sessions,
        sources: RunSources,
        namespaces: Iterable[str],
        clock: Callable[[], float],
    ) -> None:
        """`namespaces`: the operator's --namespace options (names or kopf's globs)."""
        self.kube = client
        self.sessions = sessions
        self.sources = sources
        self.watched = sorted(set(namespaces))
        self.clock = clock

    def routes(self) -> list[Route]:
        routes = [
            Route("GET", re.compile(r"^namespaces$"), self.namespaces),
            Route("GET", re.compile(_NAMESPACE + "experiments$"), self.experiments),
        ]
        # The kinds shown as a list of rows and one object each; the path is the plural.
        shown: list[tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]], Detail]] = [
            (kube.PIPELINES, views.pipeline_row, self._pipeline),
            (kube.RECURRING_RUNS, views.recurring_row, self._recurring_run),
            (kube.GIT_SOURCES, views.gitsource_row, self._git_source),
        ]
        for plural, row, detail in shown:
            under = _NAMESPACE + plural
            routes += [
                Route("GET", re.compile(under + "$"), self._lister(plural, row)),
                Route("GET", re.compile(under + "/([^/]+)$"), self._getter(plural, detail)),
            ]
        return routes

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
            if self.sessions.allowed(principal, Access("list", kube.RUNS, ns))
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
        items = self._listed(principal, ns, kube.EXPERIMENTS)
        counts: dict[str, int] = {}
        if self.sessions.allowed(principal, Access("list", kube.RUNS, ns)):
            for row in self.sources.live_rows(ns):
                counts[row["experiment"]] = counts.get(row["experiment"], 0) + 1
        rows = [views.experiment_row(e, counts.get(e["metadata"]["name"], 0)) for e in items]
        return json_response(200, {"items": rows})

    def _lister(self, plural: str, row: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Handler:
        """The handler that lists one kind: each object as its `row`."""

        def handler(environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
            items = self._listed(principal, ns, plural)
            return json_response(200, {"items": [row(item) for item in items]})

        return handler

    def _getter(self, plural: str, detail: Detail) -> Handler:
        """The handler that shows one object of a kind, as its `detail` makes it."""

        def handler(
            environ: Mapping[str, Any], principal: Principal, ns: str, name: str
        ) -> Response:
            found = self._got(principal, ns, plural, name)
            return json_response(200, detail(principal, ns, name, found))

        return handler

    def _pipeline(
        self, principal: Principal, ns: str, name: str, found: Mapping[str, Any]
    ) -> dict[str, Any]:
        """With the repository URL of each GitSource, for links to the pipeline's files
        (none when the person may not list the namespace's git sources)."""
        repositories: dict[str, str] = {}
        if self.sessions.allowed(principal, Access("list", kube.GIT_SOURCES, ns)):
            for source in self.kube.list_objects(kube.GIT_SOURCES, ns):
                repositories[source["metadata"]["name"]] = str(
                    (source.get("spec") or {}).get("url") or ""
                )
        return views.pipeline_detail(found, repositories)

    def _recurring_run(
        self, principal: Principal, ns: str, name: str, found: Mapping[str, Any]
    ) -> dict[str, Any]:
        """With the Runs it started, newest first (none when the person may not list the
        namespace's runs), and its next fire times."""
        history: list[Mapping[str, Any]] = []
        if self.sessions.allowed(principal, Access("list", kube.RUNS, ns)):
            rows = self.sources.live_rows(ns)
            history = views.filter_rows([r for r in rows if r["recurringRun"] == name])
        return views.recurring_detail(found, history, self.clock())

    @staticmethod
    def _git_source(
        principal: Principal, ns: str, name: str, found: Mapping[str, Any]
    ) -> dict[str, Any]:
        return views.gitsource_detail(found)
