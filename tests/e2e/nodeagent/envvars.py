"""A container's environment, resolved the way a kubelet resolves it.

Covers env values with $(VAR) expansion, envFrom, and valueFrom with
fieldRef, resourceFieldRef, secretKeyRef and configMapKeyRef (read through the
API). Also expands $(VAR) in command and args.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from .kube import JSON, Kube, KubeError

POD_IP = "127.0.0.1"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class ConfigError(Exception):
    """The container cannot start: kubelet's CreateContainerConfigError."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes expansion: $(NAME) if defined, else left as is; $$ escapes a $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def _field(pod: JSON, path: str) -> str:
    meta = pod.get("metadata", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": pod.get("spec", {}).get("nodeName", ""),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName", ""),
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
        "status.hostIP": POD_IP,
        "status.hostIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldRef {path!r}")


def object_data(
    kube: Kube, kind: str, namespace: str, name: str, optional: bool
) -> dict[str, str] | None:
    """The decoded data of a ConfigMap or Secret; None if optional and missing."""
    plural = "secrets" if kind == "Secret" else "configmaps"
    try:
        obj = kube.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
    except KubeError as err:
        if err.status == 404:
            if optional:
                return None
            raise ConfigError(f"{kind.lower()} {name!r} not found") from err
        raise
    if kind == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def _key(kube: Kube, kind: str, namespace: str, ref: JSON) -> str | None:
    optional = bool(ref.get("optional"))
    data = object_data(kube, kind, namespace, ref["name"], optional)
    if data is None:
        return None
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"key {ref['key']!r} not found in {kind.lower()} {ref['name']!r}")
    return data[ref["key"]]


def _resource(container: JSON, ref: JSON) -> str:
    # Divisors are not applied: the raw quantity is what tests can check for.
    kind, _, name = ref["resource"].partition(".")
    value = (container.get("resources", {}).get(kind) or {}).get(name)
    return str(value) if value is not None else "0"


def container_env(
    kube: Kube, pod: JSON, container: JSON, base: Mapping[str, str]
) -> dict[str, str]:
    """The full environment: base (PATH, HOME, ...), then envFrom, then env."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    env["HOSTNAME"] = pod["metadata"]["name"]
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                ref = source[key]
                data = object_data(kube, kind, namespace, ref["name"], bool(ref.get("optional")))
                env.update({prefix + k: v for k, v in (data or {}).items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = _field(pod, source["fieldRef"]["fieldPath"])
        elif "resourceFieldRef" in source:
            value = _resource(container, source["resourceFieldRef"])
        elif "secretKeyRef" in source:
            value = _key(kube, "Secret", namespace, source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key(kube, "ConfigMap", namespace, source["configMapKeyRef"])
        else:
            raise ConfigError(f"unsupported valueFrom in env {name!r}")
        if value is not None:
            env[name] = value
    return env


def container_argv(container: JSON, env: Mapping[str, str]) -> list[str]:
    """command + args, expanded. Without an image there is no default entrypoint."""
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    argv = command + args if command else args
    if not argv:
        raise ConfigError(
            f"container {container['name']!r} has neither command nor args; the test node "
            "agent ignores images, so it has no entrypoint to run"
        )
    return [expand(a, env) for a in argv]
