"""Releasing the operator's finalizer when a pipesync CRD is deleted.

`kubectl delete -f crds/` marks every object of the kind Terminating and waits for them.
The objects a daemon drives (unfinished Runs, GitSources, RecurringRuns) carry the
operator's finalizer, but kopf stops serving a CRD the moment it terminates (the kind
leaves API discovery), so without this nothing would ever remove that finalizer and the
deletion would hang. With its CRD going, no work of the operator on those objects can
matter any more: their pods go with them (ownerReferences), their records are written
already or never will be.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import kopf

from pipesync.api import model
from pipesync.controllers.kube import Kube

_log = logging.getLogger(__name__)
_ATTEMPTS = 3


def terminating_plural(crd: Mapping[str, Any]) -> str | None:
    """The plural of a pipesync CRD that is being deleted; None for any other CRD."""
    spec = crd.get("spec") or {}
    if spec.get("group") != model.GROUP:
        return None
    if not (crd.get("metadata") or {}).get("deletionTimestamp"):
        return None
    plural = (spec.get("names") or {}).get("plural")
    return str(plural) if plural else None


def without_finalizer(finalizers: Sequence[str], finalizer: str) -> list[str] | None:
    """The finalizer list with ours taken out; None when ours is not there."""
    if finalizer not in finalizers:
        return None
    return [name for name in finalizers if name != finalizer]


def release(kube: Kube, plural: str, namespaces: Iterable[str], finalizer: str) -> int:
    """Takes `finalizer` off every object of `plural` in `namespaces` (empty: all of
    them); returns how many it released."""
    listed = list(namespaces)
    bodies = (
        [obj for namespace in listed for obj in kube.list_objects(plural, namespace)]
        if listed
        else kube.list_all_objects(plural)
    )
    return sum(_release_one(kube, plural, body, finalizer) for body in bodies)


def _release_one(kube: Kube, plural: str, body: Mapping[str, Any] | None, finalizer: str) -> bool:
    # Another controller may change the list between our read and our patch (the test
    # in the patch then refuses it): read again and retry, a few times at most.
    for _ in range(_ATTEMPTS):
        if body is None:
            return False
        metadata = body.get("metadata") or {}
        current = list(metadata.get("finalizers") or [])
        remaining = without_finalizer(current, finalizer)
        if remaining is None:
            return False
        namespace, name = metadata["namespace"], metadata["name"]
        if kube.replace_finalizers(plural, namespace, name, current, remaining):
            return True
        body = kube.get_object(plural, namespace, name)
    return False


def register(
    registry: kopf.OperatorRegistry, kube: Kube, namespaces: Sequence[str], finalizer: str
) -> None:
    @kopf.on.event(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        registry=registry,
        when=lambda body, **_: terminating_plural(body) is not None,
    )
    def crd_terminating(body: Mapping[str, Any], **_: Any) -> None:
        plural = terminating_plural(body)
        if plural is None:
            return
        count = release(kube, plural, namespaces, finalizer)
        if count:
            _log.warning(
                "CRD %s is being deleted: released the finalizer of %d %s",
                (body.get("metadata") or {}).get("name"),
                count,
                plural,
            )
