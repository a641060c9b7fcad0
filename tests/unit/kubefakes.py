"""The unit tests' in-memory Kubernetes fakes, all on one base: `pipesync.kube.protocol.Kube`
with every operation failing the test.

Why a base: a fake subclasses it and overrides only what its code under test calls, and is
still a whole `Kube` that mypy checks against the Protocol (an override with another
signature than the adapter's fails the type check), so no test needs a cast to pass a fake.
A call the fake does not expect fails loudly instead of returning None. The fakes live in
this module, which `mypy` checks with the product code (pyproject.toml).
"""

from __future__ import annotations

import collections
import copy
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

from pipesync.kube.client import ApiException
from pipesync.kube.protocol import Kube


def _unexpected(operation: str) -> NoReturn:
    raise AssertionError(f"this test's fake Kubernetes API does not expect {operation}")


class UnusedKube(Kube):
    """Every operation of the Protocol, each an AssertionError until a fake overrides it."""

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        _unexpected("get_object")

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = "", label_selector: str = ""
    ) -> list[dict[str, Any]]:
        _unexpected("list_objects")

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        _unexpected("patch_status")

    def create_object(self, plural: str, namespace: str, body: Mapping[str, Any]) -> bool:
        _unexpected("create_object")

    def apply_object(
        self, plural: str, namespace: str, body: Mapping[str, Any], *, force: bool = True
    ) -> dict[str, Any]:
        _unexpected("apply_object")

    def patch_object(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        _unexpected("patch_object")

    def list_all_objects(self, plural: str) -> list[dict[str, Any]]:
        _unexpected("list_all_objects")

    def replace_finalizers(
        self, plural: str, namespace: str, name: str, current: list[str], wanted: list[str]
    ) -> bool:
        _unexpected("replace_finalizers")

    def delete_object(self, plural: str, namespace: str, name: str) -> bool:
        _unexpected("delete_object")

    def list_objects_with_version(
        self, plural: str, namespace: str
    ) -> tuple[list[dict[str, Any]], str]:
        _unexpected("list_objects_with_version")

    def watch_objects(
        self,
        plural: str,
        namespace: str,
        resource_version: str,
        timeout_seconds: int,
        field_selector: str = "",
    ) -> Iterator[dict[str, Any]]:
        _unexpected("watch_objects")

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        _unexpected("list_pods")

    def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> bool:
        _unexpected("create_pod")

    def delete_pod(self, namespace: str, name: str) -> None:
        _unexpected("delete_pod")

    def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any], timeout: float | None = None
    ) -> None:
        _unexpected("patch_pod")

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None:
        _unexpected("read_pod_log")

    def stream_pod_log(self, namespace: str, pod: str, container: str) -> Iterator[bytes] | None:
        _unexpected("stream_pod_log")

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        _unexpected("get_config_map")

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        _unexpected("read_config_map")

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> bool:
        _unexpected("create_config_map")

    def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        _unexpected("get_secret")

    def get_lease(
        self, namespace: str, name: str, timeout: float | None = None
    ) -> dict[str, Any] | None:
        _unexpected("get_lease")

    def create_lease(
        self, namespace: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None:
        _unexpected("create_lease")

    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None:
        _unexpected("replace_lease")

    def token_review(self, token: str) -> dict[str, Any] | None:
        _unexpected("token_review")

    def self_subject_review(self) -> dict[str, Any]:
        _unexpected("self_subject_review")

    def access_review(self, user: Mapping[str, Any] | None, attributes: Mapping[str, str]) -> bool:
        _unexpected("access_review")

    def list_namespaces(self) -> list[str]:
        _unexpected("list_namespaces")

    def server_version(self, timeout: float | None = None) -> dict[str, Any]:
        _unexpected("server_version")

    @property
    def server_url(self) -> str:
        return "https://fake.invalid"


class MemoryKube(UnusedKube):
    """The part of the Kube Protocol the GitSource controller uses, in memory."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.writes: list[tuple[str, str, str]] = []
        self.requests: collections.Counter[str] = collections.Counter()
        self.reject: set[str] = set()  # names whose apply gets a 422

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.requests["get"] += 1
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        self.writes.append(("status", plural, name))
        self.objects[(plural, namespace, name)]["status"] = copy.deepcopy(dict(status))

    def apply_object(
        self, plural: str, namespace: str, body: Mapping[str, Any], *, force: bool = True
    ) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.writes.append(("apply", plural, name))
        if name in self.reject:
            raise ApiException(status=422, reason="Invalid")
        self.objects[(plural, namespace, name)] = copy.deepcopy(dict(body))
        return dict(body)

    def create_object(self, plural: str, namespace: str, body: Mapping[str, Any]) -> bool:
        name = body["metadata"]["name"]
        self.writes.append(("create", plural, name))
        if (plural, namespace, name) in self.objects:
            return False
        self.objects[(plural, namespace, name)] = copy.deepcopy(dict(body))
        return True

    def delete_object(self, plural: str, namespace: str, name: str) -> bool:
        self.writes.append(("delete", plural, name))
        return self.objects.pop((plural, namespace, name), None) is not None

    def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.secrets.get((namespace, name))


class CreatedPods(UnusedKube):
    """A Kube that accepts every pod."""

    def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> bool:
        del namespace, pod
        return True


class LeaseKube(UnusedKube):
    """One namespace's Leases and pod labels, with the API server's optimistic concurrency:
    a replace must carry the current resourceVersion (else None, the adapter's 409)."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.timeouts: list[float | None] = []
        self.pod_patches: list[tuple[str, str, dict[str, Any]]] = []

    def _stored(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.version += 1
        # Through JSON, as the API server answers: the caller's dict is not kept.
        lease: dict[str, Any] = json.loads(json.dumps(dict(body)))
        lease["metadata"]["resourceVersion"] = str(self.version)
        self.leases[lease["metadata"]["name"]] = lease
        return copy.deepcopy(lease)

    def get_lease(
        self, namespace: str, name: str, timeout: float | None = None
    ) -> dict[str, Any] | None:
        self.timeouts.append(timeout)
        found = self.leases.get(name)
        return copy.deepcopy(found) if found is not None else None

    def create_lease(
        self, namespace: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None:
        self.timeouts.append(timeout)
        if body["metadata"]["name"] in self.leases:
            return None
        return self._stored(body)

    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None:
        self.timeouts.append(timeout)
        current = self.leases.get(name)
        sent = body["metadata"].get("resourceVersion")
        if current is None or sent != current["metadata"]["resourceVersion"]:
            return None
        return self._stored(body)

    def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any], timeout: float | None = None
    ) -> None:
        self.timeouts.append(timeout)
        self.pod_patches.append((namespace, name, dict(patch)))


class WatchedRuns(UnusedKube):
    """One namespace's Runs: a list, then one watch that sends `events` and ends (as the
    API server ends a watch after its timeout); every later watch stays open and silent
    for good (the UI's cache thread, a daemon, then waits there without spinning)."""

    def __init__(
        self, runs: list[dict[str, Any]], version: str, events: list[dict[str, Any]]
    ) -> None:
        self.runs = runs
        self.version = version
        self.events = events
        self.watched_from: list[str] = []
        self._silent = threading.Event()  # never set

    def list_objects_with_version(
        self, plural: str, namespace: str
    ) -> tuple[list[dict[str, Any]], str]:
        return copy.deepcopy(self.runs), self.version

    def watch_objects(
        self,
        plural: str,
        namespace: str,
        resource_version: str,
        timeout_seconds: int,
        field_selector: str = "",
    ) -> Iterator[dict[str, Any]]:
        self.watched_from.append(resource_version)
        if len(self.watched_from) == 1:
            yield from copy.deepcopy(self.events)
            return
        self._silent.wait()


class FinalizerKube(UnusedKube):
    """Objects by (namespace, name); `replace_finalizers` tests like a JSON patch does.
    `interfere` adds a finalizer just before the first patch, as another controller might."""

    def __init__(self, objects: list[dict[str, Any]], interfere: str = "") -> None:
        self.objects = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects}
        self.interfere = interfere
        self.patches = 0

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = "", label_selector: str = ""
    ) -> list[dict[str, Any]]:
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


class RecurringKube(MemoryKube):
    """MemoryKube with the Run listing and cancel patch the RecurringRun controller uses."""

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = "", label_selector: str = ""
    ) -> list[dict[str, Any]]:
        return [body for (p, n, _), body in self.objects.items() if (p, n) == (plural, namespace)]


class ClusterKube(UnusedKube):
    """What the cluster commands (get, wait, logs, submit, retry) ask, in memory: Runs by
    (namespace, name), pods with their logs, and scripted watches (each call of
    `watch_objects` sends the next list of events, then ends as the server ends a watch).
    `failure`, when set, is raised by every call, as an API server refusing or away."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.logs: dict[str, bytes] = {}  # pod name -> its main container's log
        self.watches: list[list[dict[str, Any]]] = []
        self.watched: list[tuple[str, str, int, str]] = []  # (ns, version, seconds, selector)
        self.created: list[tuple[str, dict[str, Any]]] = []
        self.failure: Exception | None = None

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def add_run(self, namespace: str, run: dict[str, Any]) -> None:
        run.setdefault("metadata", {}).update(namespace=namespace)
        self.runs[(namespace, run["metadata"]["name"])] = run

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        found = self.runs.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = "", label_selector: str = ""
    ) -> list[dict[str, Any]]:
        self._check()
        return [copy.deepcopy(r) for (ns, _), r in self.runs.items() if ns == namespace]

    def list_all_objects(self, plural: str) -> list[dict[str, Any]]:
        self._check()
        return [copy.deepcopy(r) for r in self.runs.values()]

    def create_object(self, plural: str, namespace: str, body: Mapping[str, Any]) -> bool:
        self._check()
        name = body["metadata"]["name"]
        if (namespace, name) in self.runs:
            return False
        self.created.append((namespace, copy.deepcopy(dict(body))))
        self.add_run(namespace, copy.deepcopy(dict(body)))
        return True

    def watch_objects(
        self,
        plural: str,
        namespace: str,
        resource_version: str,
        timeout_seconds: int,
        field_selector: str = "",
    ) -> Iterator[dict[str, Any]]:
        self._check()
        self.watched.append((namespace, resource_version, timeout_seconds, field_selector))
        events = self.watches.pop(0) if self.watches else []
        for event in events:
            body = event.get("object") or {}
            if event.get("type") == "MODIFIED":
                self.runs[(namespace, body["metadata"]["name"])] = copy.deepcopy(body)
            if event.get("type") == "DELETED":
                self.runs.pop((namespace, body["metadata"]["name"]), None)
            yield copy.deepcopy(event)

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self._check()
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        return [
            copy.deepcopy(pod)
            for pod in self.pods
            if all(pod["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None:
        self._check()
        return self.logs.get(pod)

    def stream_pod_log(self, namespace: str, pod: str, container: str) -> Iterator[bytes] | None:
        self._check()
        data = self.logs.get(pod)
        if data is None:
            return None
        return iter([data[: len(data) // 2], data[len(data) // 2 :]])
