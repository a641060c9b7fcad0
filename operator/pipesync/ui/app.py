"""The web UI as a WSGI app under PREFIX: the page, its static files and the JSON API.

Every API request is authenticated and every namespace and resource checked for the
person (SubjectAccessReview) before anything is read; the reads then use this process's
credentials (the operator's), so the checks are the only gate. The parts, one job each:

- `sessions`: who is asking (token or cookie), the login, and the checks that refuse
  requests no person meant to send (Host and Origin, the X-Pipesync-Request header);
- `inputs` and `responses`: bounded request bodies, validated path parts, and answers
  whose artifacts and logs leave in chunks, never whole in memory;
- `sources`: where runs come from (`cluster`: the Runs that exist now; `archived`: their
  records in S3), asked in order;
- `runroutes` and `resourceroutes`: the endpoints;
- `views`, `graph` and `artifacts`: pure, objects to what the page shows.

This module puts them together and maps every failure to one JSON answer.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from importlib import resources
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from pipesync.controllers.kube import Kube
from pipesync.runtime import storage
from pipesync.ui import PREFIX, inputs
from pipesync.ui.archived import ArchivedRuns
from pipesync.ui.auth import Authenticator
from pipesync.ui.cluster import ClusterRuns
from pipesync.ui.resourceroutes import ResourceRoutes
from pipesync.ui.responses import (
    HttpError,
    Response,
    Route,
    StartResponse,
    error_response,
    json_response,
    send,
)
from pipesync.ui.runroutes import RunRoutes
from pipesync.ui.sessions import Sessions
from pipesync.ui.sources import RunSource, RunSources

_log = logging.getLogger(__name__)

STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


class UiApp:
    """WSGI: mount at PREFIX on the operator's endpoint, or serve alone (`pipesync ui`)."""

    def __init__(
        self,
        kube: Kube,
        authenticator: Authenticator,
        store: storage.ObjectStore | None = None,
        namespaces: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
        *,
        hosts: Collection[str] | None = None,
        more_sources: Sequence[RunSource] = (),
    ) -> None:
        """`hosts`: the Host header values accepted (None: any, as behind an ingress).
        Runs come from the cluster, then from `store`'s records, then `more_sources`."""
        self.kube = kube
        self.sessions = Sessions(authenticator, hosts)
        archives = [] if store is None else [ArchivedRuns(store)]
        self.sources = RunSources([ClusterRuns(kube), *archives, *more_sources])
        run_routes = RunRoutes(kube, self.sessions, self.sources, clock)
        other_routes = ResourceRoutes(kube, self.sessions, self.sources, namespaces, clock)
        self.routes: list[Route] = [
            *self.sessions.routes(),
            *other_routes.routes(),
            *run_routes.routes(),
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = self._dispatch(environ)
        except HttpError as error:
            response = error_response(error)
        except ApiException as error:
            status = error.status if error.status in (403, 404, 409) else 502
            response = json_response(
                status, {"error": f"Kubernetes API: {error.status} {error.reason}"}
            )
        except storage.StoreError as error:
            response = json_response(502, {"error": f"object store: {error}"})
        except urllib3.exceptions.HTTPError as error:  # the API server is away
            _log.warning("ui: Kubernetes API unreachable: %s", error)
            response = json_response(502, {"error": "the Kubernetes API server is unreachable"})
        except Exception:
            _log.exception(
                "ui: %s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
            )
            response = json_response(500, {"error": "internal error (see the operator's log)"})
        return send(response, start_response)

    def _dispatch(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET")
        self.sessions.check_origin(environ, method)
        # Checked on every request, whether or not its handler reads a body.
        inputs.declared_length(environ)
        if path in ("/", "/ui"):
            return Response(302, b"", "text/plain", [("Location", PREFIX)])
        if not path.startswith(PREFIX):
            raise HttpError(404, "not found")
        rest = path[len(PREFIX) :]
        if rest in ("", "index.html"):
            return self._static("index.html")
        if rest.startswith("static/"):
            return self._static(rest[len("static/") :])
        if not rest.startswith("api/"):
            raise HttpError(404, "not found")
        api = rest[len("api/") :]
        for route in self.routes:
            match = route.pattern.match(api)
            if match is None:
                continue
            if method != route.method:
                raise HttpError(405, f"{method} not allowed here")
            self.sessions.check_write(environ, method)
            if route.anonymous:
                return route.handler(environ)
            principal = self.sessions.principal(environ)
            return route.handler(environ, principal, *match.groups())
        raise HttpError(404, f"no API endpoint {api!r}")

    def _static(self, name: str) -> Response:
        if not re.fullmatch(r"[a-z0-9_-]+\.(js|css|html|svg|png)", name):
            raise HttpError(404, "not found")
        try:
            data = resources.files("pipesync.ui").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise HttpError(404, "not found") from None
        suffix = name[name.rfind(".") :]
        return Response(200, data, STATIC_TYPES[suffix])
