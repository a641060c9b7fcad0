"""Registers the agent's nodes and keeps them alive.

The node lifecycle controller marks a node NotReady (and taints it) when its
Lease in kube-node-lease stops being renewed, and the scheduler skips nodes
that are not Ready. This module creates the Node objects, renews their leases,
refreshes the Ready condition and strips not-ready/unreachable taints left
over from the moment a node was created before it was Ready.
"""

from __future__ import annotations

import logging
import platform
import threading
import uuid

from .kube import JSON, Kube, KubeError, now_micro, now_rfc3339
from .nodespec import NodeSpec

log = logging.getLogger(__name__)

LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 5.0
# Taints the control plane sets on nodes it considers unhealthy; we are healthy.
HEALTH_TAINT_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
KUBELET_VERSION = "v1.36.0-pipesync-nodeagent"


def _conditions() -> list[JSON]:
    now = now_rfc3339()

    def cond(kind: str, status: str, reason: str, message: str) -> JSON:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return [
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "enough memory"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "enough disk"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "enough PIDs"),
        cond("Ready", "True", "KubeletReady", "pipesync test node agent is posting ready status"),
    ]


class NodeKeeper:
    """Owns the Node and Lease objects of one node."""

    def __init__(self, kube: Kube, spec: NodeSpec, kubelet_port: int) -> None:
        self.kube = kube
        self.spec = spec
        self.port = kubelet_port
        self._uid: str | None = None
        self._transition_times: dict[str, str] = {}

    @property
    def path(self) -> str:
        return f"/api/v1/nodes/{self.spec.name}"

    def register(self) -> None:
        body: JSON = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.spec.name, "labels": self.spec.all_labels()},
            "spec": {"taints": list(self.spec.taints)},
        }
        try:
            node = self.kube.request("POST", "/api/v1/nodes", body=body)
        except KubeError as err:
            if err.status != 409:
                raise
            # Left over from an earlier agent: take it over with our labels and taints.
            node = self.kube.merge_patch(
                self.path,
                {
                    "metadata": {"labels": self.spec.all_labels()},
                    "spec": {"taints": list(self.spec.taints)},
                },
            )
        self._uid = node["metadata"]["uid"]
        self.post_status(full=True)
        self.renew_lease()
        log.info("registered node %s (kubelet port %d)", self.spec.name, self.port)

    def post_status(self, *, full: bool = False) -> None:
        conditions = _conditions()
        for c in conditions:
            # Transition times must stay put while the status does not change.
            c["lastTransitionTime"] = self._transition_times.setdefault(
                c["type"], c["lastTransitionTime"]
            )
        status: JSON = {"conditions": conditions}
        if full:
            capacity = self.spec.capacity()
            status |= {
                "capacity": capacity,
                "allocatable": capacity,
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.spec.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
                "nodeInfo": {
                    "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, self.spec.name).hex,
                    "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, self.spec.name)),
                    "bootID": str(uuid.uuid4()),
                    "kernelVersion": platform.release(),
                    "osImage": "pipesync test node agent",
                    "containerRuntimeVersion": "local-process://0.1",
                    "kubeletVersion": KUBELET_VERSION,
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        self.kube.merge_patch(self.path + "/status", {"status": status})

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.spec.name}"
        lease = self.kube.maybe_get(path)
        spec: JSON = {
            "holderIdentity": self.spec.name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now_micro(),
        }
        if lease is None:
            owner = (
                [{"apiVersion": "v1", "kind": "Node", "name": self.spec.name, "uid": self._uid}]
                if self._uid
                else []
            )
            self.kube.request(
                "POST",
                path.rsplit("/", 1)[0],
                body={
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.spec.name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": owner,
                    },
                    "spec": spec,
                },
            )
        else:
            lease["spec"] = lease.get("spec", {}) | spec
            self.kube.request("PUT", path, body=lease)

    def strip_health_taints(self) -> None:
        node = self.kube.get(self.path)
        taints: list[JSON] = node.get("spec", {}).get("taints") or []
        kept = [t for t in taints if t.get("key") not in HEALTH_TAINT_KEYS]
        if len(kept) == len(taints):
            return
        node["spec"]["taints"] = kept
        try:
            # PUT with the read resourceVersion: never clobber a concurrent change.
            self.kube.request("PUT", self.path, body=node)
            log.info("removed health taints from %s", self.spec.name)
        except KubeError as err:
            if err.status != 409:
                raise

    def heartbeat(self) -> None:
        self.renew_lease()
        self.post_status()
        self.strip_health_taints()


def keep_alive(keepers: list[NodeKeeper], stop: threading.Event) -> None:
    """Heartbeat loop for all nodes; errors are logged and retried, never fatal."""
    while not stop.wait(HEARTBEAT_SECONDS):
        for keeper in keepers:
            try:
                keeper.heartbeat()
            except Exception:
                log.exception("heartbeat of %s failed", keeper.spec.name)
