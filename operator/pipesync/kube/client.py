"""Every Kubernetes call pipesync makes, in one thin adapter (easy to count).

`KubeClient` implements `protocol.Kube` over the official client. `ApiException` is
re-exported so that callers which tell a rejection (422) from an outage catch it without
importing the client themselves.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import os
from collections.abc import Callable, Container, Iterator, Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from pipesync.api import model
from pipesync.kube.protocol import FIELD_MANAGER, Kube, PodRefused

__all__ = ["ApiException", "ConfigException", "KubeClient", "connect", "default_namespace"]

#: No usable credentials: not in a cluster, and no kubeconfig (or a broken one). Re-exported
#: so that the commands tell it from an outage without importing the client.
ConfigException = kubernetes.config.ConfigException

#: Answers that are outcomes, not failures: the object is not there / the name is taken
#: (or, for a write that carries a resourceVersion, another writer came first).
_ABSENT, _TAKEN = (404,), (409,)
_AUTHENTICATION, _AUTHORIZATION = "authentication.k8s.io/v1", "authorization.k8s.io/v1"


def connect(connections: int = 16) -> kubernetes.client.ApiClient:
    """A client for the in-cluster service account, else the current kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    configuration = kubernetes.client.Configuration.get_default_copy()
    # urllib3's default pool keeps cpu_count * 5 sockets; more threads than that open and
    # throw away a TLS connection per request.
    configuration.connection_pool_maxsize = connections
    return kubernetes.client.ApiClient(configuration)


#: Where a pod finds the namespace it runs in.
_POD_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def default_namespace() -> str:
    """The namespace a command means when given none, as kubectl chooses it: the pod's own
    in a cluster (where `connect` uses the service account), else the current kubeconfig
    context's, else `default`."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(_POD_NAMESPACE):
        with open(_POD_NAMESPACE, encoding="utf-8") as file:
            return file.read().strip() or "default"
    # KUBECONFIG as it is now (the client reads it once, when it is imported).
    files = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    try:
        _, active = kubernetes.config.list_kube_config_contexts(files)  # type: ignore[no-untyped-call]
    except (kubernetes.config.ConfigException, OSError):
        return "default"
    context = (active or {}).get("context") or {}
    return str(context.get("namespace") or "default")


class KubeClient(Kube):
    """Counts every request by verb and status code: the figures the benchmarks print and
    pipesync_kubernetes_requests_total exposes. (Subclassing the Protocol makes mypy check
    that every operation is here with its declared signature.)"""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.authentication = kubernetes.client.AuthenticationV1Api(client)
        self.authorization = kubernetes.client.AuthorizationV1Api(client)
        self.coordination = kubernetes.client.CoordinationV1Api(client)
        self.version = kubernetes.client.VersionApi(client)
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()

    def _count(self, verb: str, code: int) -> None:
        self.requests[(verb, code)] += 1

    def _call(self, verb: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = function(*args, **kwargs)
        except ApiException as error:
            self._count(verb, int(error.status or 0))
            raise
        self._count(verb, 200)
        return result

    def _call_unless(
        self, refused: Container[int], verb: str, function: Any, *args: Any, **kwargs: Any
    ) -> tuple[bool, Any]:
        """(True, the result), or (False, None) when the API server answers one of the
        `refused` codes, which the caller takes as an outcome, not a failure (404: not
        there; 409: the name is taken, or another writer came first)."""
        try:
            return True, self._call(verb, function, *args, **kwargs)
        except ApiException as error:
            if error.status in refused:
                return False, None
            raise

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        _, found = self._call_unless(
            _ABSENT,
            "get",
            self.custom.get_namespaced_custom_object,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            name,
        )
        result: dict[str, Any] | None = found
        return result

    def _listed(self, plural: str, namespace: str, **selectors: str) -> dict[str, Any]:
        """One list request for a kind in a namespace: the whole answer (items and
        metadata), since some callers want the list's resourceVersion too."""
        listed: dict[str, Any] = self._call(
            "list",
            self.custom.list_namespaced_custom_object,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            **selectors,
        )
        return listed

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = "", label_selector: str = ""
    ) -> list[dict[str, Any]]:
        response = self._listed(
            plural, namespace, field_selector=field_selector, label_selector=label_selector
        )
        items: list[dict[str, Any]] = response["items"]
        return items

    def list_objects_with_version(
        self, plural: str, namespace: str
    ) -> tuple[list[dict[str, Any]], str]:
        """All objects of a kind in a namespace, and the list's resourceVersion: where a
        watch that follows the list starts."""
        listed = self._listed(plural, namespace)
        return listed["items"], str(listed["metadata"].get("resourceVersion", ""))

    def watch_objects(
        self,
        plural: str,
        namespace: str,
        resource_version: str,
        timeout_seconds: int,
        field_selector: str = "",
    ) -> Iterator[dict[str, Any]]:
        """The watch events (type, object as a dict) after `resource_version`, with
        bookmarks, until the server ends the watch after `timeout_seconds`; only objects
        matching `field_selector` (`metadata.name=NAME`: one object). Each opening of the
        watch is one request, counted under the verb "watch"."""
        listing = self.custom.list_namespaced_custom_object

        # The client's Watch finds the event type from the listing function's signature
        # and docstring: the counting wrapper keeps both (functools.wraps).
        @functools.wraps(listing)
        def opened(*args: Any, **kwargs: Any) -> Any:
            return self._call("watch", listing, *args, **kwargs)

        stream: Iterator[dict[str, Any]] = kubernetes.watch.Watch().stream(  # type: ignore[no-untyped-call]
            opened,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            resource_version=resource_version,
            timeout_seconds=timeout_seconds,
            allow_watch_bookmarks=True,
            **({"field_selector": field_selector} if field_selector else {}),
        )
        yield from stream

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        written: Mapping[str, Any] | None = self._call(
            "patch",
            self.custom.patch_namespaced_custom_object_status,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            name,
            {"status": dict(status)},
        )
        return written

    def create_object(self, plural: str, namespace: str, body: Mapping[str, Any]) -> bool:
        """Creates a pipesync object; False when one of that name exists already, so a
        repeated decision (a restart, a second replica) never makes a second one."""
        created, _ = self._call_unless(
            _TAKEN,
            "create",
            self.custom.create_namespaced_custom_object,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            dict(body),
            field_manager=FIELD_MANAGER,
        )
        return created

    def apply_object(
        self, plural: str, namespace: str, body: Mapping[str, Any], *, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply under the `pipesync` field manager; returns the object."""
        _, applied = self._patch_object(
            "apply",
            plural,
            namespace,
            body["metadata"]["name"],
            dict(body),
            content_type="application/apply-patch+yaml",
            field_manager=FIELD_MANAGER,
            force=force,
        )
        result: dict[str, Any] = applied
        return result

    def patch_object(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        """A JSON merge patch of a pipesync object (e.g. spec.cancel, a label)."""
        self._patch_object(
            "patch",
            plural,
            namespace,
            name,
            dict(patch),
            content_type="application/merge-patch+json",
        )

    def _patch_object(
        self,
        verb: str,
        plural: str,
        namespace: str,
        name: str,
        body: dict[str, Any] | list[dict[str, Any]],
        *,
        content_type: str,
        refused: Container[int] = (),
        **options: Any,
    ) -> tuple[bool, Any]:
        """One PATCH endpoint, three meanings: the content type says server-side apply,
        JSON merge patch or JSON patch. (True, the object), or (False, None) when the API
        server answers one of the `refused` codes (see `_call_unless`)."""
        return self._call_unless(
            refused,
            verb,
            self.custom.patch_namespaced_custom_object,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            name,
            body,
            _content_type=content_type,
            **options,
        )

    def list_all_objects(self, plural: str) -> list[dict[str, Any]]:
        """Every pipesync object of a kind, in every namespace."""
        response = self._call(
            "list", self.custom.list_cluster_custom_object, model.GROUP, model.VERSION, plural
        )
        items: list[dict[str, Any]] = response["items"]
        return items

    def replace_finalizers(
        self,
        plural: str,
        namespace: str,
        name: str,
        current: list[str],
        wanted: list[str],
    ) -> bool:
        """Sets an object's finalizers to `wanted` if they still are `current` (a JSON
        patch with a test, so a finalizer another controller added meanwhile is never
        dropped); False when the object is gone or its finalizers changed."""
        patch: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "replace", "path": "/metadata/finalizers", "value": wanted},
        ]
        replaced, _ = self._patch_object(
            "patch",
            plural,
            namespace,
            name,
            patch,
            content_type="application/json-patch+json",
            refused=(404, 409, 422),  # 422: the test failed (the finalizers changed meanwhile)
        )
        return replaced

    def delete_object(self, plural: str, namespace: str, name: str) -> bool:
        """Deletes a pipesync object (background propagation); False when already gone."""
        deleted, _ = self._call_unless(
            _ABSENT,
            "delete",
            self.custom.delete_namespaced_custom_object,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            name,
            propagation_policy="Background",
        )
        return deleted

    def get_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded; None when it does not exist."""
        found, secret = self._call_unless(
            _ABSENT, "get", self.core.read_namespaced_secret, name, namespace
        )
        if not found:
            return None
        return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        response = self._call(
            "list",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
        return items

    def create_pod(self, namespace: str, pod: Mapping[str, Any]) -> bool:
        """Creates the pod; False when it exists already (a repeated decision is harmless)."""
        try:
            created, _ = self._call_unless(
                _TAKEN, "create", self.core.create_namespaced_pod, namespace, dict(pod)
            )
        except ApiException as error:
            # Not an outcome to return but a failure of its own kind: the pod itself is
            # refused (invalid, admission, quota), which no plain retry fixes.
            if error.status in _POD_REFUSED:
                raise PodRefused(int(error.status), _message(error)) from None
            raise
        return created

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call_unless(_ABSENT, "delete", self.core.delete_namespaced_pod, name, namespace)

    def patch_pod(
        self, namespace: str, name: str, patch: Mapping[str, Any], timeout: float | None = None
    ) -> None:
        """A strategic merge patch of a pod (the leader's label on its own pod)."""
        self._call(
            "patch",
            self.core.patch_namespaced_pod,
            name,
            namespace,
            dict(patch),
            _request_timeout=timeout,
        )

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found, result = self._call_unless(
            _ABSENT, "get", self.core.read_namespaced_config_map, name, namespace
        )
        if not found:
            return None
        data: dict[str, str] = result.data or {}
        return data

    def read_config_map(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The whole ConfigMap (metadata with its owners, and data); None when absent."""
        return _json(
            self._call_unless(
                _ABSENT,
                "get",
                self.core.read_namespaced_config_map,
                name,
                namespace,
                _preload_content=False,
            )
        )

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> bool:
        created, _ = self._call_unless(
            _TAKEN,
            "create",
            self.core.create_namespaced_config_map,
            namespace,
            dict(body),
            field_manager=FIELD_MANAGER,
        )
        return created

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None:
        """One container's log as raw bytes (at most `limit_bytes`: programs print any
        bytes); None when the pod is gone or the container never started."""
        response = self._pod_log(namespace, pod, container, limit_bytes=limit_bytes)
        if response is None:
            return None
        data: bytes = response.data
        return data

    def stream_pod_log(self, namespace: str, pod: str, container: str) -> Iterator[bytes] | None:
        """A container's log from its start, as the kubelet sends it, until the container
        ends (`follow`); None when the pod is gone or the container has not started."""
        response = self._pod_log(namespace, pod, container, follow=True)
        return None if response is None else _chunks(response)

    def _pod_log(self, namespace: str, pod: str, container: str, **options: Any) -> Any:
        """The raw log response (not read yet); None when there is no log to read."""
        # 400: the container has not started (or never will), so it has no log yet.
        found, response = self._call_unless(
            (400, 404),
            "get",
            self.core.read_namespaced_pod_log,
            pod,
            namespace,
            container=container,
            _preload_content=False,
            **options,
        )
        return response if found else None

    # --- the leader election's Lease ------------------------------------------------------
    # Raw JSON, not the client's models: MicroTime stays text, read back as written.

    def get_lease(
        self, namespace: str, name: str, timeout: float | None = None
    ) -> dict[str, Any] | None:
        """The Lease as JSON; None when it does not exist."""
        return _json(
            self._call_unless(
                _ABSENT,
                "get",
                self.coordination.read_namespaced_lease,
                name,
                namespace,
                _preload_content=False,
                _request_timeout=timeout,
            )
        )

    def create_lease(
        self, namespace: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None:
        """The created Lease; None when one of that name exists (another replica won)."""
        return self._write_lease(
            "create",
            self.coordination.create_namespaced_lease,
            namespace,
            dict(body),
            timeout=timeout,
        )

    def replace_lease(
        self, namespace: str, name: str, body: Mapping[str, Any], timeout: float | None = None
    ) -> dict[str, Any] | None:
        """The replaced Lease; None when its resourceVersion is no longer the current one
        (another replica wrote first)."""
        return self._write_lease(
            "update",
            self.coordination.replace_namespaced_lease,
            name,
            namespace,
            dict(body),
            timeout=timeout,
        )

    def _write_lease(
        self, verb: str, call: Callable[..., Any], *args: Any, timeout: float | None
    ) -> dict[str, Any] | None:
        return _json(
            self._call_unless(
                _TAKEN, verb, call, *args, _preload_content=False, _request_timeout=timeout
            )
        )

    # --- who is asking (the web UI acts for its user) ------------------------------------

    def token_review(self, token: str) -> dict[str, Any] | None:
        """The user a bearer token belongs to (username, uid, groups, extra), or None when
        the API server does not accept the token."""
        create = self.authentication.create_token_review
        review = self._review(create, _AUTHENTICATION, "TokenReview", {"token": token})
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            return None
        user = status.user
        return {
            "username": user.username or "",
            "uid": user.uid or "",
            "groups": list(user.groups or []),
            "extra": {k: list(v) for k, v in (user.extra or {}).items()},
        }

    def self_subject_review(self) -> dict[str, Any]:
        """Who this client's own credentials are."""
        review = self._review(
            self.authentication.create_self_subject_review, _AUTHENTICATION, "SelfSubjectReview"
        )
        info = review.status.user_info if review.status is not None else None
        return {
            "username": (info.username if info else "") or "",
            "uid": (info.uid if info else "") or "",
            "groups": list((info.groups if info else None) or []),
            "extra": {},
        }

    def access_review(self, user: Mapping[str, Any] | None, attributes: Mapping[str, str]) -> bool:
        """Whether `user` (None: this client itself) may do what `attributes` says
        (verb, group, resource, subresource, namespace, name)."""
        attrs = {key: value for key, value in attributes.items() if value}
        if user is None:
            review = self._review(
                self.authorization.create_self_subject_access_review,
                _AUTHORIZATION,
                "SelfSubjectAccessReview",
                {"resourceAttributes": attrs},
            )
        else:
            spec: dict[str, Any] = {
                "resourceAttributes": attrs,
                "user": user.get("username"),
                "groups": list(user.get("groups") or []),
            }
            if user.get("uid"):
                spec["uid"] = user["uid"]
            if user.get("extra"):
                spec["extra"] = dict(user["extra"])
            review = self._review(
                self.authorization.create_subject_access_review,
                _AUTHORIZATION,
                "SubjectAccessReview",
                spec,
            )
        return bool(review.status is not None and review.status.allowed)

    def _review(
        self, create: Any, api_version: str, kind: str, spec: Mapping[str, Any] | None = None
    ) -> Any:
        """Creates a review (the API server answers it in the returned object's status and
        stores nothing); the client's model of the answer."""
        body: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
        if spec is not None:
            body["spec"] = dict(spec)
        return self._call("create", create, body)

    def list_namespaces(self) -> list[str]:
        listed = self._call("list", self.core.list_namespace)
        return sorted(item.metadata.name for item in listed.items)

    # --- the cluster itself ---------------------------------------------------------------

    def server_version(self, timeout: float | None = None) -> dict[str, Any]:
        """The API server's version (git version, platform): whether it answers at all."""
        info = self._call("get", self.version.get_code, _request_timeout=timeout)
        answered: dict[str, Any] = info.to_dict()
        return answered

    @property
    def server_url(self) -> str:
        """Where this client sends its requests (for messages)."""
        return str(self.core.api_client.configuration.host)


def _chunks(response: Any) -> Iterator[bytes]:
    """The body of a streamed (`_preload_content=False`) answer as it arrives; the
    connection is released however the reader stops."""
    try:
        yield from response.stream(_STREAM_CHUNK, decode_content=True)
    finally:
        response.release_conn()


_STREAM_CHUNK = 64 * 1024


def _json(answer: tuple[bool, Any]) -> dict[str, Any] | None:
    """The JSON body of a raw (`_preload_content=False`) answer; None when it was refused."""
    answered, response = answer
    if not answered:
        return None
    found: dict[str, Any] = json.loads(response.data)
    return found


#: The answers to a pod create that say the pod itself is refused (no retry makes it pass,
#: unless a quota frees up), as opposed to the API server being unavailable.
_POD_REFUSED = frozenset({400, 403, 422})


def _message(error: ApiException) -> str:
    """The API server's own message (the Status body), else the HTTP reason."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{error.status} {error.reason}"
