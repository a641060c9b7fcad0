"""The kopf wiring: handlers registered on a registry made per operator (no import-time
global state), each a thin shell over the pure controller logic in this package."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from pipesync.api import model
from pipesync.controllers import pipelines


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    liveness_endpoint: str | None = None


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    group, version = model.GROUP, model.VERSION

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster service account, else KUBECONFIG / ~/.kube/config (kubernetes client).
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Status holds only what the schemas allow: kopf keeps its own bookkeeping in
        # annotations, where pruning cannot eat it (a known kopf pitfall).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="kopf.pipesync.io"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="kopf.pipesync.io", key="last-handled-configuration"
        )
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300

    @kopf.on.resume(group, version, "pipelines", registry=registry)
    @kopf.on.create(group, version, "pipelines", registry=registry)
    @kopf.on.update(group, version, "pipelines", registry=registry)
    def reconcile_pipeline(body: Mapping[str, Any], patch: kopf.Patch, **_: Any) -> None:
        current = dict(body.get("status") or {})
        desired = pipelines.desired_status(body, now_text())
        if _without_times(desired) != _without_times(current):
            patch.status.update(desired)

    return registry


def _without_times(status: Mapping[str, Any]) -> Any:
    """A status compared without transition times: a no-op reconcile writes nothing."""
    result = dict(status)
    result["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions", [])
    ]
    return result


def run(settings: OperatorSettings) -> None:
    registry = build_registry(settings)
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=settings.liveness_endpoint,
    )
