"""A small JSON client over the kubernetes package's ApiClient.

The generated typed API of the kubernetes client validates bodies against its
own models, which gets in the way of an agent that speaks plain JSON documents
(node status, pod status patches, leases with micro-times). This module keeps
the client's configuration, TLS and authentication, and exposes plain
request/watch calls on dicts, so every caller can write the API's own JSON.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import kubernetes

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): relist."""


@dataclass
class Kube:
    """Plain-JSON access to one API server."""

    api: Any  # kubernetes.client.ApiClient (untyped package)

    @classmethod
    def from_kubeconfig(cls, path: str) -> Kube:
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=config
        )
        return cls(api=kubernetes.client.ApiClient(configuration=config))

    def _url(self, path: str, query: Mapping[str, Any] | None) -> str:
        url = str(self.api.configuration.host) + path
        if query:
            url += "?" + urlencode(
                {k: str(v).lower() if isinstance(v, bool) else v for k, v in query.items()}
            )
        return url

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers: dict[str, str] = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        # Authentication (client certificate or token) lives in the configuration;
        # param_serialize adds token headers when the kubeconfig uses one.
        _method, _url, out, _body, _post = self.api.param_serialize(
            "GET", "/", header_params=headers, auth_settings=["BearerToken"]
        )
        return dict(out)

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float = 30.0,
    ) -> JSON:
        """One API call; returns the decoded JSON answer or raises KubeError."""
        if body is not None and content_type is None:
            content_type = "application/json"
        resp = self.api.call_api(
            method,
            self._url(path, query),
            header_params=self._headers(content_type),
            body=body,
            _request_timeout=timeout,
        )
        data = resp.read()
        text = data.decode("utf-8", "replace") if data else ""
        if not 200 <= resp.status < 300:
            raise KubeError(resp.status, method, path, text)
        return json.loads(text) if text else {}

    def get(self, path: str, **query: Any) -> JSON:
        return self.request("GET", path, query=query)

    def maybe_get(self, path: str) -> JSON | None:
        try:
            return self.get(path)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def merge_patch(self, path: str, body: JSON) -> JSON:
        return self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 60, **query: Any
    ) -> Iterator[JSON]:
        """Yield watch events (dicts with type and object) until the server ends the watch.

        Raises WatchExpired when the server answers 410 Gone, so the caller relists.
        """
        params = dict(
            query,
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=timeout_seconds,
        )
        # The read timeout must exceed the server-side timeout, which ends watches cleanly.
        resp = self.api.call_api(
            "GET",
            self._url(path, params),
            header_params=self._headers(None),
            _request_timeout=(10, timeout_seconds + 30),
        )
        raw = resp.response  # urllib3 response, not preloaded
        try:
            if resp.status == 410:
                raise WatchExpired(path)
            if not 200 <= resp.status < 300:
                raise KubeError(resp.status, "WATCH", path, raw.read().decode("utf-8", "replace"))
            buffer = b""
            for chunk in raw.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event: JSON = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        if status.get("code") == 410:
                            raise WatchExpired(path)
                        raise KubeError(int(status.get("code", 500)), "WATCH", path, str(status))
                    yield event
        finally:
            raw.release_conn()


def now_rfc3339() -> str:
    """The API's metav1.Time format (seconds precision, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def now_micro() -> str:
    """The API's metav1.MicroTime format, used by Lease renewTime."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"
