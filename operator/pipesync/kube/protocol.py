"""What the controllers and the UI may ask of the API server: the `Kube` Protocol.

Why a Protocol: the controllers, the UI and the unit tests' in-memory fakes all depend on
this one list of operations, so a fake that drifts from the real adapter fails mypy, and
every request the product sends goes through the one class that counts it
(`client.KubeClient`). No Kubernetes client is imported here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

RUNS, PIPELINES, EXPERIMENTS = "runs", "pipelines", "experiments"
RECURRING_RUNS, GIT_SOURCES = "recurringruns", "gitsources"
#: Server-side apply's field manager for everything the operator owns.
FIELD_MANAGER = "pipesync"


class PodRefused(Exception):
    """The API server refused to create a pod (400, 403 or 422): an invalid pod, a
    namespace's ResourceQuota or LimitRange, Pod Security Admission. Retrying the same
    pod cannot help, except when a quota frees up (`quota`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def quota(self) -> bool:
        """Refused for a ResourceQuota that is full now: it may pass once pods end."""
        return self.status == 403 and "exceeded quota" in self.message


class Kube(Protocol):
    """The Kubernetes API as pipesync uses it. Failures other than the ones a method
    names (None or False) raise the client's ApiException (`client.ApiException`)."""

    # --- pipesync objects (group pipesync.io) --------------------------------------------

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = "", label_selector: str = ""
    ) -> list[dict[str, Any]]: ...

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """Merge-patches the status; the object as the API server has it after the write
        (None where an implementation does not tell)."""
        ...

    def create_object(self, plural: str, namespace: str, body: Mapping[str, Any]) -> bool: ...

    def apply_object(
        self, plural: str, namespace: str, body: Mapping[str, Any], *, force: bool = True
    ) -> dict[str, Any]: ...

    def patch_object(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None: ...

    def list_all_objects(self, plural: str) -> list[dict[str, Any]]: ...

    def replace_finalizers(
        self, plural: str, namespace: str, name: str, current: list[str], wanted: list[str]
    ) -> bool: ...

    def delete_object(self, plural: str, namespace: str, name: str) -> bool: ...

    # --- watching pipesync objects (the UI's runs list) ----------------------------------

    def list_objects_with_version(
        self, plural: str, namespace: str
    ) -> tuple[list[dict[str, Any]], str]: ...

    def watch_objects(
        self,
        plural: str,
        namespace: str,
        resource_version: str,
        timeout_seconds: int,
        field_selector: str = "",
    ) -> Iterator[dict[str, Any]]: ...

    # --- pods, their logs, ConfigMaps and Secrets ----------------------------------------

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> bool:
        """Creates the pod; False when it exists already; PodRefused when refused."""
        ...

    def delete_pod(self, namespace: str, name: str) -> None: ...

    def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any], timeout: float | None = None
    ) -> None: ...

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None: ...

    def stream_pod_log(self, namespace: str, pod: str, container: str) -> Iterator[bytes] | None:
        """A container's log from its start, followed until the container ends; None when
        the pod is gone or the container has not started."""
        ...

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> bool: ...

    def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    # --- the leader election's Lease (coordination.k8s.io/v1) ----------------------------

    def get_lease(
        self, namespace: str, name: str, timeout: float | None = None
    ) -> dict[str, Any] | None: ...

    def create_lease(
        self, namespace: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None: ...

    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None: ...

    # --- who is asking (the web UI acts for its user), and the cluster itself ------------

    def token_review(self, token: str) -> dict[str, Any] | None: ...

    def self_subject_review(self) -> dict[str, Any]: ...

    def access_review(
        self, user: Mapping[str, Any] | None, attributes: Mapping[str, str]
    ) -> bool: ...

    def list_namespaces(self) -> list[str]: ...

    def server_version(self, timeout: float | None = None) -> dict[str, Any]: ...

    @property
    def server_url(self) -> str: ...


def resource_version(obj: Mapping[str, Any]) -> int:
    """An object's metadata.resourceVersion as a number (-1 when absent or not one), to
    tell which of two views of one object is newer. The API calls it opaque; etcd's
    revisions, which every API server in use gives, grow with each write."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or -1)
    except (TypeError, ValueError):
        return -1
