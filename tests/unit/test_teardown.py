"""The finalizer release when a pipesync CRD is deleted (docs/install.md, Uninstalling)."""

from __future__ import annotations

from typing import Any

from pipesync.controllers import teardown
from tests.unit.kubefakes import FinalizerKube

OURS = "pipesync.io/operator"


def crd(group: str = "pipesync.io", deleting: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"runs.{group}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-03T06:00:00Z"
    return {"metadata": metadata, "spec": {"group": group, "names": {"plural": "runs"}}}


def obj(namespace: str, name: str, finalizers: list[str]) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "finalizers": finalizers}}


def test_only_a_terminating_pipesync_crd_names_its_kind() -> None:
    assert teardown.terminating_plural(crd()) == "runs"
    assert teardown.terminating_plural(crd(deleting=False)) is None
    assert teardown.terminating_plural(crd(group="argoproj.io")) is None


def test_every_object_of_the_kind_loses_our_finalizer_and_keeps_the_others() -> None:
    kube = FinalizerKube(
        [obj("a", "r1", [OURS]), obj("b", "r2", ["other.io/keep", OURS]), obj("b", "r3", [])]
    )
    assert teardown.release(kube, "runs", (), OURS) == 2
    assert kube.objects[("a", "r1")]["metadata"]["finalizers"] == []
    assert kube.objects[("b", "r2")]["metadata"]["finalizers"] == ["other.io/keep"]
    assert kube.patches == 2  # r3 had nothing of ours: no request


def test_a_namespaced_operator_releases_only_its_namespaces() -> None:
    kube = FinalizerKube([obj("a", "r1", [OURS]), obj("b", "r2", [OURS])])
    assert teardown.release(kube, "runs", ("a",), OURS) == 1
    assert kube.objects[("b", "r2")]["metadata"]["finalizers"] == [OURS]


def test_a_finalizer_added_meanwhile_is_kept_and_ours_still_goes() -> None:
    kube = FinalizerKube([obj("a", "r1", [OURS])], interfere="other.io/late")
    assert teardown.release(kube, "runs", (), OURS) == 1
    assert kube.objects[("a", "r1")]["metadata"]["finalizers"] == ["other.io/late"]
