"""The finalizer release when a pipesync CRD is deleted (docs/install.md, Uninstalling)."""

from __future__ import annotations

import copy
from typing import Any, cast

from pipesync.controllers import teardown
from pipesync.controllers.kube import Kube

OURS = "pipesync.io/operator"


def crd(group: str = "pipesync.io", deleting: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"runs.{group}"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-03T06:00:00Z"
    return {"metadata": metadata, "spec": {"group": group, "names": {"plural": "runs"}}}


def obj(namespace: str, name: str, finalizers: list[str]) -> dict[str, Any]:
    return {"metadata": {"namespace": namespace, "name": name, "finalizers": finalizers}}


class FinalizerKube:
    """Objects by (namespace, name); `replace_finalizers` tests like a JSON patch does.
    `interfere` adds a finalizer just before the first patch, as another controller might."""

    def __init__(self, objects: list[dict[str, Any]], interfere: str = "") -> None:
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
        self.interfere = interfere
        self.patches = 0

    def list_objects(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (ns, _), o in self.objects.items() if ns == namespace]

    def list_all_objects(self, plural: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self.objects.values()]

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def replace_finalizers(
        self, plural: str, namespace: str, name: str, current: list[str], wanted: list[str]
    ) -> bool:
        self.patches += 1
        metadata = self.objects[(namespace, name)]["metadata"]
        if self.interfere:
            metadata["finalizers"].append(self.interfere)
            self.interfere = ""
        if metadata["finalizers"] != current:
            return False
        metadata["finalizers"] = list(wanted)
        return True


def test_only_a_terminating_pipesync_crd_names_its_kind() -> None:
    assert teardown.terminating_plural(crd()) == "runs"
    assert teardown.terminating_plural(crd(deleting=False)) is None
    assert teardown.terminating_plural(crd(group="argoproj.io")) is None


def test_every_object_of_the_kind_loses_our_finalizer_and_keeps_the_others() -> None:
    kube = FinalizerKube(
        [obj("a", "r1", [OURS]), obj("b", "r2", ["other.io/keep", OURS]), obj("b", "r3", [])]
    )
    assert teardown.release(cast(Kube, kube), "runs", (), OURS) == 2
    assert kube.objects[("a", "r1")]["metadata"]["finalizers"] == []
    assert kube.objects[("b", "r2")]["metadata"]["finalizers"] == ["other.io/keep"]
    assert kube.patches == 2  # r3 had nothing of ours: no request


def test_a_namespaced_operator_releases_only_its_namespaces() -> None:
    kube = FinalizerKube([obj("a", "r1", [OURS]), obj("b", "r2", [OURS])])
    assert teardown.release(cast(Kube, kube), "runs", ("a",), OURS) == 1
    assert kube.objects[("b", "r2")]["metadata"]["finalizers"] == [OURS]


def test_a_finalizer_added_meanwhile_is_kept_and_ours_still_goes() -> None:
    kube = FinalizerKube([obj("a", "r1", [OURS])], interfere="other.io/late")
    assert teardown.release(cast(Kube, kube), "runs", (), OURS) == 1
    assert kube.objects[("a", "r1")]["metadata"]["finalizers"] == ["other.io/late"]
