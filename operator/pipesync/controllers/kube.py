"""The Kubernetes calls the run controller makes, in one thin adapter (easy to count)."""

from __future__ import annotations

import collections
import json
from collections.abc import Mapping
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from pipesync.api import model

RUNS, PIPELINES, EXPERIMENTS = "runs", "pipelines", "experiments"


class Kube:
    """Counts every request by verb and status code: the figures the benchmarks print."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(client)
        self.custom = kubernetes.client.CustomObjectsApi(client)
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

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call(
                "get",
                self.custom.get_namespaced_custom_object,
                model.GROUP,
                model.VERSION,
                namespace,
                plural,
                name,
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return result

    def list_objects(
        self, plural: str, namespace: str, field_selector: str = ""
    ) -> list[dict[str, Any]]:
        response = self._call(
            "list",
            self.custom.list_namespaced_custom_object,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            field_selector=field_selector,
        )
        items: list[dict[str, Any]] = response["items"]
        return items

    def patch_status(
        self, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        self._call(
            "patch",
            self.custom.patch_namespaced_custom_object_status,
            model.GROUP,
            model.VERSION,
            namespace,
            plural,
            name,
            {"status": dict(status)},
        )

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
            self._call("create", self.core.create_namespaced_pod, namespace, dict(pod))
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def delete_pod(self, namespace: str, name: str) -> None:
        try:
            self._call("delete", self.core.delete_namespaced_pod, name, namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    def get_config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            result = self._call("get", self.core.read_namespaced_config_map, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        data: dict[str, str] = result.data or {}
        return data

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> bool:
        try:
            self._call("create", self.core.create_namespaced_config_map, namespace, dict(body))
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def read_pod_log(
        self, namespace: str, pod: str, container: str, limit_bytes: int | None = None
    ) -> bytes | None:
        """One container's log as raw bytes (at most `limit_bytes`: programs print any
        bytes); None when the pod is gone or the container never started."""
        try:
            response = self._call(
                "get",
                self.core.read_namespaced_pod_log,
                pod,
                namespace,
                container=container,
                limit_bytes=limit_bytes,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status in (400, 404):
                return None
            raise
        data: bytes = response.data
        return data
