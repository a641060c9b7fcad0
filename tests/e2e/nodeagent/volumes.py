"""Pod volumes materialised on the host, and a container's mounts onto them.

emptyDir is a per-pod directory; hostPath is the host path itself; configMap
and secret volumes are directories of files written from the API objects.
Other volume types are refused with a clear message rather than half-faked.
"""

from __future__ import annotations

import base64
from pathlib import Path

from .envvars import ConfigError, object_data
from .kube import JSON, Kube
from .sandbox import Mount


def _write_items(target: Path, data: dict[str, str], items: list[JSON] | None, mode: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    chosen = (
        [(i["key"], i["path"], i.get("mode", mode)) for i in items]
        if items
        else [(k, k, mode) for k in data]
    )
    for key, rel, file_mode in chosen:
        if key not in data:
            raise ConfigError(f"key {key!r} missing for volume at {target.name}")
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data[key])
        path.chmod(file_mode)


def _binary_config_map(kube: Kube, namespace: str, name: str) -> dict[str, str]:
    obj = kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return {
        k: base64.b64decode(v).decode("latin-1") for k, v in (obj.get("binaryData") or {}).items()
    }


def prepare(kube: Kube, pod: JSON, pod_dir: Path) -> dict[str, Path]:
    """Create every volume of the pod; return volume name -> host path."""
    namespace = pod["metadata"]["namespace"]
    paths: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        target = pod_dir / "volumes" / name
        if "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            paths[name] = target
        elif "hostPath" in volume:
            spec = volume["hostPath"]
            host = Path(spec["path"])
            kind = spec.get("type", "")
            if kind == "DirectoryOrCreate":
                host.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not host.exists():
                host.parent.mkdir(parents=True, exist_ok=True)
                host.touch()
            elif kind and not host.exists():
                raise ConfigError(f"hostPath {host} of volume {name!r} does not exist")
            paths[name] = host
        elif "configMap" in volume or "secret" in volume:
            is_secret = "secret" in volume
            spec = volume["secret" if is_secret else "configMap"]
            ref = spec["secretName" if is_secret else "name"]
            data = object_data(
                kube,
                "Secret" if is_secret else "ConfigMap",
                namespace,
                ref,
                bool(spec.get("optional")),
            )
            if data is not None and not is_secret:
                data |= _binary_config_map(kube, namespace, ref)
            _write_items(target, data or {}, spec.get("items"), spec.get("defaultMode", 0o644))
            paths[name] = target
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ConfigError(
                f"volume {name!r}: type {kinds} is not supported by the test "
                "node agent (emptyDir, hostPath, configMap, secret are)"
            )
    return paths


def container_mounts(container: JSON, volumes: dict[str, Path]) -> list[Mount]:
    mounts = []
    for vm in container.get("volumeMounts") or []:
        source = volumes.get(vm["name"])
        if source is None:
            raise ConfigError(f"volumeMount {vm['name']!r} names no volume of the pod")
        sub = vm.get("subPath") or ""
        if sub:
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True)  # as kubelet does for a missing subPath
        mounts.append(
            Mount(source=source, target=vm["mountPath"], read_only=bool(vm.get("readOnly")))
        )
    return mounts
