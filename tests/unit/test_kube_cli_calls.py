"""The adapter calls the cluster commands added: a followed pod log and the namespace a
command means without -n (as kubectl picks it). The client's API objects are replaced by
recorders; nothing is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes
import pytest

from pipesync.kube import client
from pipesync.kube.client import ApiException, KubeClient


class Streamed:
    """A raw (`_preload_content=False`) answer: its body in chunks, its connection."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.released = False

    def stream(self, amount: int, decode_content: bool = True) -> Any:
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True


def a_client() -> KubeClient:
    return KubeClient(kubernetes.client.ApiClient(kubernetes.client.Configuration()))


def test_a_followed_log_is_asked_with_follow_and_read_chunk_by_chunk() -> None:
    kube = a_client()
    answer = Streamed([b"one\n", b"two\n"])
    asked: list[dict[str, Any]] = []

    def read(pod: str, namespace: str, **options: Any) -> Streamed:
        asked.append({"pod": pod, "namespace": namespace, **options})
        return answer

    kube.core.read_namespaced_pod_log = read  # type: ignore[method-assign]
    stream = kube.stream_pod_log("ml", "p1", "main")
    assert stream is not None
    assert list(stream) == [b"one\n", b"two\n"]
    assert asked[0]["follow"] is True
    assert asked[0]["container"] == "main"
    assert answer.released
    assert kube.requests[("get", 200)] == 1


def test_a_followed_log_of_a_container_not_started_is_none() -> None:
    kube = a_client()

    def refused(pod: str, namespace: str, **options: Any) -> Streamed:
        raise ApiException(status=400, reason="Bad Request")

    kube.core.read_namespaced_pod_log = refused  # type: ignore[method-assign]
    assert kube.stream_pod_log("ml", "p1", "main") is None


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
  - {name: work, context: {cluster: c, user: u, namespace: team-ml}}
  - {name: bare, context: {cluster: c, user: u}}
current-context: {current}
"""


@pytest.mark.parametrize(("current", "namespace"), [("work", "team-ml"), ("bare", "default")])
def test_the_default_namespace_is_the_kubeconfig_contexts(
    current: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.write_text(KUBECONFIG.replace("{current}", current))
    monkeypatch.setenv("KUBECONFIG", str(config))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert client.default_namespace() == namespace


def test_no_kubeconfig_means_the_default_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert client.default_namespace() == "default"
