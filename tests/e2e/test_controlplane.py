"""Proof that the e2e control plane is the real thing, not a lookalike.

Each test exercises behaviour a fake would get wrong: the version the binaries were built
as, the API server's own schema validation of our CRDs, the controller-manager's garbage
collector, and server-side apply's field ownership conflicts.
"""

from __future__ import annotations

import json
import pathlib
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.fixtures.controlplane import Cluster

REPO = pathlib.Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
GROUP, VERSION = "pipesync.io", "v1alpha1"
EXPECTED_CRDS = ["pipelines", "runs", "experiments", "recurringruns", "gitsources"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Polls `condition` until true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting for it to go)."""
    name = f"cp-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def crds_applied(cluster: Cluster) -> list[str]:
    """Applies every file in crds/ server-side and waits until the CRDs are Established."""
    cluster.kubectl("apply", "--server-side", "-f", str(CRDS))
    names = [f"{plural}.{GROUP}" for plural in EXPECTED_CRDS]
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names)
    )
    return names


def test_version_is_the_pinned_kubernetes(cluster: Cluster) -> None:
    versions = json.loads(cluster.kubectl("version", "--output=json").stdout)
    # kubectl is ours in every mode; the server is ours only when we started it.
    assert versions["clientVersion"]["gitVersion"].startswith("v1.36."), versions
    if cluster.external:
        pytest.skip("external cluster: its server version is not ours to pin")
    with cluster.api_client() as api:
        info = client.VersionApi(api).get_code()
    assert info.git_version.startswith("v1.36."), info
    assert (info.major, info.minor) == ("1", "36")
    assert info.git_version == versions["serverVersion"]["gitVersion"]


def test_crds_are_established(cluster: Cluster, crds_applied: list[str]) -> None:
    with cluster.api_client() as api:
        ext = client.ApiextensionsV1Api(api)
        for name in crds_applied:
            crd = ext.read_custom_resource_definition(name)
            assert crd.status is not None, name
            conditions = {c.type: c.status for c in crd.status.conditions or []}
            assert conditions.get("Established") == "True", (name, conditions)
            assert conditions.get("NamesAccepted") == "True", (name, conditions)


def _pipeline(name: str, tasks: object) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {"tasks": tasks},
    }


def test_server_rejects_invalid_pipeline(
    cluster: Cluster, crds_applied: list[str], namespace: str
) -> None:
    good = _pipeline(
        "good", [{"name": "hello", "image": "python:3.12-slim", "command": ["echo", "hi"]}]
    )
    bad = _pipeline("bad", "not-a-list")
    with cluster.api_client() as api:
        objects = client.CustomObjectsApi(api)
        # Control: a well-formed Pipeline passes the same path (server-side dry run).
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "pipelines", good, dry_run="All"
        )
        # The Python client validates nothing, so a rejection can only come from the server.
        with pytest.raises(ApiException) as rejected:
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "pipelines", bad)
    assert rejected.value.status == 422, rejected.value.body
    status = json.loads(str(rejected.value.body))
    fields = [cause.get("field") for cause in status["details"]["causes"]]
    assert "spec.tasks" in fields, status
    assert "array" in status["message"], status["message"]
    # And kubectl users see the same message naming the field.
    shown = cluster.kubectl(
        "create", "-n", namespace, "-f", "-", check=False, input=yaml.safe_dump(bad)
    )
    assert shown.returncode != 0
    assert "spec.tasks" in shown.stderr, shown.stderr


def _pod(name: str, owner: client.V1ConfigMap | None) -> client.V1Pod:
    references = None
    if owner is not None:
        assert owner.metadata is not None
        references = [
            client.V1OwnerReference(
                api_version="v1",
                kind="ConfigMap",
                name=str(owner.metadata.name),
                uid=str(owner.metadata.uid),
            )
        ]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, owner_references=references),
        spec=client.V1PodSpec(
            # Matches no node, so the pods stay Pending even if a node agent runs this session.
            node_selector={"pipesync.io/pool": "nowhere"},
            containers=[client.V1Container(name="main", image="busybox", command=["true"])],
        ),
    )


def test_deleting_owner_garbage_collects_its_pods(cluster: Cluster, namespace: str) -> None:
    with cluster.api_client() as api:
        core = client.CoreV1Api(api)
        owner = core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"), data={"k": "v"}),
        )
        for name in ("owned-1", "owned-2"):
            core.create_namespaced_pod(namespace, _pod(name, owner))
        core.create_namespaced_pod(namespace, _pod("bystander", None))

        def pod_names() -> set[str]:
            return {
                str(p.metadata.name)
                for p in core.list_namespaced_pod(namespace).items
                if p.metadata
            }

        assert pod_names() == {"owned-1", "owned-2", "bystander"}
        core.delete_namespaced_config_map(
            "owner", namespace, body=client.V1DeleteOptions(propagation_policy="Background")
        )
        # Background propagation: the owner goes at once, the garbage collector then
        # deletes the dependents. Nothing else deletes pods here.
        wait_until(lambda: pod_names() == {"bystander"}, "the owned pods to be collected")
        with pytest.raises(ApiException) as gone:
            core.read_namespaced_config_map("owner", namespace)
        assert gone.value.status == 404


def _configmap_yaml(namespace: str, value: str) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "shared", "namespace": namespace},
            "data": {"key": value},
        }
    )


def test_server_side_apply_detects_conflicting_managers(cluster: Cluster, namespace: str) -> None:
    apply = ("apply", "--server-side", "-f", "-")
    cluster.kubectl(*apply, "--field-manager=alice", input=_configmap_yaml(namespace, "a"))
    clash = cluster.kubectl(
        *apply, "--field-manager=bob", check=False, input=_configmap_yaml(namespace, "b")
    )
    assert clash.returncode != 0, clash.stdout
    assert "conflict" in clash.stderr.lower(), clash.stderr
    assert "alice" in clash.stderr and ".data.key" in clash.stderr, clash.stderr

    # Re-applying the same value with the same manager is not a conflict.
    cluster.kubectl(*apply, "--field-manager=alice", input=_configmap_yaml(namespace, "a"))
    # Forcing takes ownership: the value changes and bob now manages data.key.
    cluster.kubectl(
        *apply, "--field-manager=bob", "--force-conflicts", input=_configmap_yaml(namespace, "b")
    )
    live = json.loads(
        cluster.kubectl(
            "get", "configmap", "shared", "-n", namespace, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert live["data"] == {"key": "b"}
    owners = {
        entry["manager"]
        for entry in live["metadata"]["managedFields"]
        if "f:key" in entry.get("fieldsV1", {}).get("f:data", {})
    }
    assert owners == {"bob"}, live["metadata"]["managedFields"]
