"""The run endpoints: the runs list, one run, its logs and artifacts, cancel, re-run,
retry from failure and compare. Each checks the person's access before it reads
(sessions.Sessions.require); the reads go through the run sources (sources.RunSources),
the writes to the cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pipesync.api import conventions
from pipesync.engine import retryrun, state
from pipesync.kube.protocol import RUNS, Kube
from pipesync.ui import PREFIX, artifacts, inputs, views
from pipesync.ui.auth import Access, Principal
from pipesync.ui.responses import (
    ARTIFACT_POLICY,
    HttpError,
    Response,
    Route,
    close,
    first_bytes,
    json_response,
    streamed,
)
from pipesync.ui.sessions import Sessions
from pipesync.ui.sources import RunSources

_log = logging.getLogger(__name__)

PHASES = frozenset(phase.value for phase in state.RunPhase)
_RUN = r"^namespaces/([^/]+)/runs/([^/]+)"
_ARTIFACT = _RUN + r"/artifacts/([^/]+)/([^/]+)"


class RunRoutes:
    def __init__(
        self, kube: Kube, sessions: Sessions, sources: RunSources, clock: Callable[[], float]
    ) -> None:
        self.kube = kube
        self.sessions = sessions
        self.sources = sources
        self.clock = clock

    def routes(self) -> list[Route]:
        return [
            Route("GET", re.compile(r"^namespaces/([^/]+)/runs$"), self.runs),
            Route("GET", re.compile(_RUN + "$"), self.run),
            Route("GET", re.compile(_RUN + "/logs$"), self.logs),
            Route("GET", re.compile(_ARTIFACT + "$"), self.artifact),
            Route("GET", re.compile(_ARTIFACT + "/view$"), self.artifact_view),
            Route("POST", re.compile(_RUN + "/cancel$"), self.cancel),
            Route("POST", re.compile(_RUN + "/rerun$"), self.rerun),
            Route("POST", re.compile(_RUN + "/retry$"), self.retry),
            Route("GET", re.compile(r"^namespaces/([^/]+)/compare$"), self.compare),
        ]

    def runs(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        inputs.name(ns, "namespace")
        self.sessions.require(principal, Access("list", RUNS, ns))
        query = inputs.query(environ)
        phase = query.get("phase", "")
        if phase and phase not in PHASES:
            raise HttpError(400, f"unknown phase {phase!r}: one of {', '.join(sorted(PHASES))}")
        try:
            limit = min(max(int(query.get("limit") or 100), 1), 1000)
            offset = max(int(query.get("offset") or 0), 0)
        except ValueError:
            raise HttpError(400, "limit and offset must be numbers") from None
        rows = self.sources.rows(ns, archived=query.get("archived") == "true")
        chosen = views.filter_rows(
            rows,
            pipeline=query.get("pipeline", ""),
            experiment=query.get("experiment", ""),
            phase=phase,
            commit=query.get("commit", ""),
            query=query.get("q", ""),
        )
        return json_response(200, {"items": chosen[offset : offset + limit], "total": len(chosen)})

    def _detail(self, principal: Principal, ns: str, name: str) -> dict[str, Any]:
        found = self.sources.find(ns, name)
        spec = None if found.pinned is None else found.pinned["spec"]
        if spec is None:
            spec = (found.run.get("spec") or {}).get("pipelineSpec") or (found.record or {}).get(
                "pipelineSpec"
            )
        may_create = self.sessions.allowed(principal, Access("create", RUNS, ns))
        return views.run_detail(
            found.run,
            spec,
            found.record,
            archived=found.archived,
            can_cancel=self.sessions.allowed(principal, Access("patch", RUNS, ns)),
            can_rerun=may_create,
            can_retry=may_create,
        )

    def run(self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str) -> Response:
        inputs.name(ns, "namespace")
        inputs.name(name, "run")
        self.sessions.require(principal, Access("get", RUNS, ns))
        detail = self._detail(principal, ns, name)
        body = json.dumps(detail, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if environ.get("HTTP_IF_NONE_MATCH") == etag:
            return Response(304, b"", "application/json", [("ETag", etag)])
        return Response(200, body, "application/json", [("ETag", etag)])

    def logs(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        inputs.name(ns, "namespace")
        inputs.name(name, "run")
        query = inputs.query(environ)
        task = inputs.name(query.get("task", ""), "task")
        instance = inputs.instance(query)
        attempt = inputs.attempt(query)
        self.sessions.require(principal, Access("get", RUNS, ns))
        where = (ns, name, task, instance, attempt)
        found = self.sources.log(where, lambda access: self.sessions.allowed(principal, access))
        if found is None:
            raise HttpError(404, f"no log yet for {task} attempt {attempt} of run {name}")
        source, body = found
        return Response(200, body, "text/plain; charset=utf-8", [("X-Pipesync-Log-Source", source)])

    def _artifact_chunks(
        self, principal: Principal, where: tuple[str, ...], instance: int | None
    ) -> tuple[str, Iterator[bytes]]:
        """`where`: (namespace, run, task, artifact) from the path; (key, its bytes)."""
        ns, name, task, artifact = where
        inputs.name(ns, "namespace")
        inputs.name(name, "run")
        inputs.name(task, "task")
        inputs.part(artifact, "artifact")
        self.sessions.require(principal, Access("get", RUNS, ns))
        if not self.sources.archives:
            raise HttpError(404, "no object store configured: artifacts cannot be read")
        found = self.sources.artifact(ns, name, task, instance, artifact)
        if found is None:
            raise HttpError(404, f"artifact {artifact} of task {task} not stored (yet)")
        return found

    def artifact(self, environ: Mapping[str, Any], principal: Principal, *where: str) -> Response:
        """The raw bytes, streamed: only the first MAX_PARSED_BYTES are held, to choose
        the content type (a rendered Markdown page is made from those alone)."""
        query = inputs.query(environ)
        key, chunks = self._artifact_chunks(principal, where, inputs.instance(query))
        head, _ = first_bytes(chunks, artifacts.MAX_PARSED_BYTES)
        artifact = where[3]
        viewer = artifacts.classify(artifact, head[: artifacts.MAX_PARSED_BYTES])
        content_type = artifacts.content_type(viewer, head[:64])
        if viewer == "markdown" and query.get("render") == "1":
            close(chunks)
            text = head[: artifacts.MAX_PARSED_BYTES].decode("utf-8", "replace")
            body: bytes | Iterable[bytes] = artifacts.markdown_html(text).encode()
        else:
            body = streamed(head, chunks, key)
        if viewer == "markdown" and query.get("render") != "1":
            content_type = "text/plain; charset=utf-8"
        headers = [("Content-Security-Policy", ARTIFACT_POLICY)]
        if viewer == "binary":
            headers.append(("Content-Disposition", f'attachment; filename="{artifact}"'))
        return Response(200, body, content_type, headers)

    def artifact_view(
        self, environ: Mapping[str, Any], principal: Principal, *where: str
    ) -> Response:
        """What the viewer needs, from the first MAX_PARSED_BYTES (+1, to know whether
        there is more): `size` is None for a larger artifact, which is not read further."""
        instance = inputs.instance(inputs.query(environ))
        _, chunks = self._artifact_chunks(principal, where, instance)
        data, complete = first_bytes(chunks, artifacts.MAX_PARSED_BYTES + 1)
        close(chunks)
        ns, name, task, artifact = where
        viewer = artifacts.classify(artifact, data[: artifacts.MAX_PARSED_BYTES])
        url = f"{PREFIX}api/namespaces/{ns}/runs/{name}/artifacts/{task}/{artifact}"
        url += "" if instance is None else f"?instance={instance}"
        text = None
        if viewer in ("text", "markdown", "json", "html"):
            text = data[: artifacts.MAX_TEXT_BYTES].decode("utf-8", "replace")
        return json_response(
            200,
            {
                "name": artifact,
                "task": task,
                "instance": instance,
                "viewer": viewer,
                "size": len(data) if complete else None,
                "contentType": artifacts.content_type(viewer, data[:64]),
                "url": url,
                "data": artifacts.view_data(viewer, data),
                "text": text,
            },
        )

    def cancel(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        inputs.name(ns, "namespace")
        inputs.name(name, "run")
        self.sessions.require(principal, Access("patch", RUNS, ns, name=name))
        if self.kube.get_object(RUNS, ns, name) is None:
            raise HttpError(404, f"run {name} not found in namespace {ns}")
        self.kube.patch_object(RUNS, ns, name, {"spec": {"cancel": True}})
        return json_response(202, {"name": name})

    def rerun(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        inputs.name(ns, "namespace")
        inputs.name(name, "run")
        self.sessions.require(principal, Access("create", RUNS, ns))
        self.sessions.require(principal, Access("get", RUNS, ns))
        found = self.sources.find(ns, name)
        pinned = found.pinned
        if pinned is None and isinstance((found.record or {}).get("pipelineSpec"), dict):
            # an archived run: its record keeps the spec and the pin's pipeline in status
            pinned = {
                "spec": found.record["pipelineSpec"],  # type: ignore[index]
                "pipeline": (found.run.get("status") or {}).get("pipeline") or {},
            }
        new_name = conventions.rerun_name(name, self.clock())
        if not self.kube.create_object(RUNS, ns, views.rerun_body(found.run, new_name, pinned)):
            raise HttpError(409, f"run {new_name} exists already; try again in a second")
        pinned_too = self._pin_rerun(ns, new_name, pinned)
        return json_response(201, {"name": new_name, "pinned": pinned_too})

    def _pin_rerun(self, ns: str, new_name: str, pinned: Mapping[str, Any] | None) -> bool:
        """Hands the original's pin to the re-run (views.rerun_pin). False when there was
        none to hand on, or the operator pinned the new run first (then its reference's
        version still keeps it to the original's spec, or fails it)."""
        created = self.kube.get_object(RUNS, ns, new_name)
        if pinned is None or created is None:
            return False
        if self.kube.create_config_map(ns, views.rerun_pin(created, pinned)):
            return True
        _log.warning("ui: re-run %s/%s was pinned by the operator first", ns, new_name)
        return False

    def retry(
        self, environ: Mapping[str, Any], principal: Principal, ns: str, name: str
    ) -> Response:
        """A new Run with spec.retryOf naming this one (retryrun.retry_body, as `pipesync
        retry` makes it): the operator pins it to the original's spec, version, commit
        and params and reuses its succeeded tasks, so no pin is handed over here."""
        inputs.name(ns, "namespace")
        inputs.name(name, "run")
        self.sessions.require(principal, Access("create", RUNS, ns))
        self.sessions.require(principal, Access("get", RUNS, ns))
        found = self.sources.find(ns, name)
        if found.archived:
            # the operator retries from the Run object and its pin, both gone with it
            raise HttpError(
                409, f"run {name} is only archived in S3: it cannot be retried; re-run it"
            )
        new_name = conventions.retry_name(name, self.clock())
        try:
            body = retryrun.retry_body(found.run, new_name)
        except retryrun.NotRetryable as error:
            raise HttpError(409, str(error)) from None
        if not self.kube.create_object(RUNS, ns, body):
            raise HttpError(409, f"run {new_name} exists already; try again in a second")
        return json_response(201, {"name": new_name})

    def compare(self, environ: Mapping[str, Any], principal: Principal, ns: str) -> Response:
        inputs.name(ns, "namespace")
        self.sessions.require(principal, Access("get", RUNS, ns))
        names = [n for n in inputs.query(environ).get("runs", "").split(",") if n]
        if not 2 <= len(names) <= 10:
            raise HttpError(400, "compare needs 2 to 10 runs: ?runs=a,b")
        details = [self._detail(principal, ns, inputs.name(n, "run")) for n in names]
        metrics = [self._metrics(ns, detail) for detail in details]
        return json_response(
            200,
            views.compare(
                [d["run"] for d in details],
                [views.output_parameters(d) for d in details],
                metrics,
            ),
        )

    def _metrics(self, ns: str, detail: Mapping[str, Any]) -> dict[str, Any]:
        """`<task>.<artifact>.<key>` -> number, from the run's metrics artifacts."""
        found: dict[str, Any] = {}
        name = detail["run"]["name"]
        for task, view in detail["tasks"].items():
            for artifact in view["outputs"]["artifacts"]:
                if artifact["instance"] is not None or "metric" not in artifact["name"]:
                    continue
                stored = self.sources.artifact(ns, name, task, None, artifact["name"])
                if stored is None:
                    continue
                data, _ = first_bytes(stored[1], artifacts.MAX_PARSED_BYTES + 1)
                close(stored[1])
                parsed = artifacts.view_data("metrics", data)
                for metric, value in ((parsed or {}).get("metrics") or {}).items():
                    found[f"{task}.{artifact['name']}.{metric}"] = value
        return found
