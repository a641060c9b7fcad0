"""The endpoints of everything but runs: the namespaces, and one route per entry of
`views.VIEWS` (experiments, pipelines, recurring runs, git sources), each read from the
cluster after the person's access is checked.

Why generic: a view is an entry in the table, never a route written here, so every view
gets the same checks (its verb on its kind in the namespace before anything is read, and
`list` on each kind it reads besides, or that part is left out) and the same path shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipesync.kube import protocol as kube
from pipesync.ui import inputs, views
from pipesync.ui.auth import Access, Principal
from pipesync.ui.responses import HttpError, Response, Route, json_response
from pipesync.ui.sessions import Sessions
from pipesync.ui.sources import RunSources

_NAMESPACE = r"^namespaces/([^/]+)/"
#: An endpoint: (request, person, path groups...) -> answer.
Handler = Callable[..., Response]


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
        routes = [Route("GET", re.compile(r"^namespaces$"), self.namespaces)]
        for view in views.VIEWS:
            routes.append(self.route(view))
        return routes

    def route(self, view: views.View) -> Route:
        """The endpoint of one view: its path is the kind's plural (and, to get one
        object, its name), and it answers only a person who may `view.verb` the kind."""
        under = _NAMESPACE + re.escape(view.kind)
        if view.verb == "list":
            return Route("GET", re.compile(under + "$"), self._lister(view))
        if view.verb == "get":
            return Route("GET", re.compile(under + "/([^/]+)$"), self._getter(view))
        raise ValueError(f"view {view.name}: no route for verb {view.verb!r}")

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

    def _listed(self, principal: Principal, ns: str, view: views.View) -> list[dict[str, Any]]:
        inputs.name(ns, "namespace")
        self.sessions.require(principal, Access(view.verb, view.kind, ns))
        return self.kube.list_objects(view.kind, ns)

    def _got(self, principal: Principal, ns: str, view: views.View, name: str) -> dict[str, Any]:
        inputs.name(ns, "namespace")
        inputs.name(name, "name")
        self.sessions.require(principal, Access(view.verb, view.kind, ns))
        found = self.kube.get_object(view.kind, ns, name)
        if found is None:
            raise HttpError(404, f"{view.kind} {name} not found in namespace {ns}")
        return found

    def _reads(self, principal: Principal, ns: str, view: views.View) -> views.Reads:
        """The kinds the view reads besides its own that the person may list there: the
        runs as their rows from the live sources, any other kind from the cluster."""
        kinds: dict[str, list[dict[str, Any]]] = {}
        for kind in view.reads:
            if self.sessions.allowed(principal, Access("list", kind, ns)):
                kinds[kind] = (
                    self.sources.live_rows(ns)
                    if kind == kube.RUNS
                    else self.kube.list_objects(kind, ns)
                )
        return views.Reads(self.clock(), kinds)

    def _lister(self, view: views.View) -> Handler:
        """The handler that lists the view's kind in a namespace."""

        def handler(environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
            items = self._listed(principal, ns, view)
            return json_response(200, view.to_view(items, self._reads(principal, ns, view)))

        return handler

    def _getter(self, view: views.View) -> Handler:
        """The handler that shows one object of the view's kind."""

        def handler(
            environ: Mapping[str, Any], principal: Principal, ns: str, name: str
        ) -> Response:
            found = self._got(principal, ns, view, name)
            return json_response(200, view.to_view(found, self._reads(principal, ns, view)))

        return handler
