"""kfp-kubernetes platform settings (the IR's second document) onto pipesync tasks.

What pipesync's pod builder supports is mapped: nodeSelector, tolerations, node affinity,
secrets and config maps as env or volumes, PVC mounts and emptyDir mounts (names given as
constants). Everything else (pod metadata, image pull secrets, names from runtime
parameters, ...) is a located "not supported" problem, so a pipeline never runs without
a setting its author relied on.
"""

from __future__ import annotations

from typing import Any

from pipesync.api.yamlsource import Path, SourceDocument
from pipesync.engine.kfp.state import Translation

_SUPPORTED = (
    "nodeSelector",
    "tolerations",
    "nodeAffinity",
    "secretAsEnv",
    "configMapAsEnv",
    "secretAsVolume",
    "configMapAsVolume",
    "pvcMount",
    "emptyDirMounts",
)
_ENV = {
    "secretAsEnv": ("secretKeyRef", "secret"),
    "configMapAsEnv": ("configMapKeyRef", "configMap"),
}


class _Unsupported(Exception):
    """A form of a supported setting pipesync cannot map (e.g. a name from a parameter)."""


def executor_settings(platforms: SourceDocument | None, label: str) -> tuple[dict[str, Any], Path]:
    """The kubernetes settings of one executor and their path in the platform document."""
    if platforms is None or not isinstance(platforms.data, dict):
        return {}, ()
    path: Path = ("platforms", "kubernetes", "deploymentSpec", "executors", label)
    node: Any = platforms.data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else {}), path


def apply(reading: Translation, body: dict[str, Any], label: str, target: Path) -> None:
    """Map the supported settings of executor `label` onto `body`; report the rest."""
    platforms = reading.platforms
    settings, path = executor_settings(platforms, label)
    if not settings or platforms is None:
        return
    for key, value in settings.items():
        where = (*path, key)
        if key not in _SUPPORTED:
            reading.problems.append(
                platforms.diagnostic(
                    where,
                    f"kfp-kubernetes setting {key!r} is not supported by pipesync's pod builder "
                    f"(supported: {', '.join(_SUPPORTED)})",
                    key=True,
                )
            )
            continue
        try:
            _map(body, key, value)
        except _Unsupported as why:
            reading.problems.append(platforms.diagnostic(where, f"kfp-kubernetes {key}: {why}"))
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as error:
            # a value of the wrong type (e.g. a number where kfp-kubernetes writes a list)
            reading.problems.append(
                platforms.diagnostic(
                    where,
                    f"kfp-kubernetes {key}: unexpected value ({type(error).__name__}); "
                    "expected what kfp-kubernetes writes for it",
                )
            )


def _map(body: dict[str, Any], key: str, value: Any) -> None:
    if key in _ENV:
        body.setdefault("env", []).extend(_env_refs(key, value))
    elif key in ("secretAsVolume", "configMapAsVolume", "pvcMount", "emptyDirMounts"):
        body.setdefault("volumes", []).extend(_volumes(key, value, len(body.get("volumes", []))))
    else:
        _placement(body, key, value)


def _constant(entry: dict[str, Any], field: str, parameter: str) -> str:
    """A resource name that must be a constant: `field`, or its parameter's constant."""
    found = entry.get(field)
    runtime = (entry.get(parameter) or {}).get("runtimeValue") or {}
    if not found and "constant" in runtime:
        found = runtime["constant"]
    if not found or not isinstance(found, str):
        raise _Unsupported(
            "the name comes from a pipeline or task parameter; pipesync needs a constant name"
        )
    return found


def _env_refs(key: str, value: Any) -> list[dict[str, Any]]:
    source_kind, prefix = _ENV[key]
    refs = []
    for entry in value if isinstance(value, list) else []:
        name = _constant(entry, f"{prefix}Name", f"{prefix}NameParameter")
        for pair in entry.get("keyToEnv") or []:
            refs.append(
                {
                    "name": str(pair.get("envVar")),
                    "valueFrom": {
                        source_kind: {
                            "name": name,
                            "key": str(pair.get(f"{prefix}Key")),
                            "optional": bool(entry.get("optional", False)),
                        }
                    },
                }
            )
    return refs


def _volumes(key: str, value: Any, start: int) -> list[dict[str, Any]]:
    found = []
    for offset, entry in enumerate(value if isinstance(value, list) else []):
        number = start + offset
        volume: dict[str, Any] = {"mountPath": str(entry.get("mountPath", ""))}
        if key == "secretAsVolume":
            volume["name"] = f"secret-{number}"
            volume["secret"] = {
                "secretName": _constant(entry, "secretName", "secretNameParameter"),
                "optional": bool(entry.get("optional", False)),
            }
        elif key == "configMapAsVolume":
            volume["name"] = f"config-map-{number}"
            volume["configMap"] = {
                "name": _constant(entry, "configMapName", "configMapNameParameter"),
                "optional": bool(entry.get("optional", False)),
            }
        elif key == "pvcMount":
            volume["name"] = f"pvc-{number}"
            volume["persistentVolumeClaim"] = {
                "claimName": _constant(entry, "constant", "pvcNameParameter")
            }
        else:
            volume["name"] = f"empty-dir-{number}"
            volume["emptyDir"] = {k: str(entry[k]) for k in ("medium", "sizeLimit") if entry.get(k)}
        found.append(volume)
    return found


def _placement(body: dict[str, Any], key: str, value: Any) -> None:
    if key == "nodeSelector":
        labels = value.get("labels") if isinstance(value, dict) else None
        if isinstance(labels, dict):
            body["nodeSelector"] = {str(k): str(v) for k, v in labels.items()}
    elif key == "tolerations" and isinstance(value, list):
        body["tolerations"] = [_toleration(t) for t in value if isinstance(t, dict)]
    elif key == "nodeAffinity" and isinstance(value, list):
        body["affinity"] = {"nodeAffinity": _node_affinity(value)}


def _toleration(spec: dict[str, Any]) -> dict[str, Any]:
    found = {k: spec[k] for k in ("key", "operator", "value", "effect") if spec.get(k)}
    if spec.get("tolerationSeconds") is not None:
        found["tolerationSeconds"] = int(spec["tolerationSeconds"])
    return found


def _node_affinity(terms: list[Any]) -> dict[str, Any]:
    required: list[dict[str, Any]] = []
    preferred: list[dict[str, Any]] = []
    for term in terms:
        if not isinstance(term, dict):
            continue
        selector = {k: term[k] for k in ("matchExpressions", "matchFields") if term.get(k)}
        if term.get("weight"):
            preferred.append({"weight": int(term["weight"]), "preference": selector})
        else:
            required.append(selector)
    affinity: dict[str, Any] = {}
    if required:
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": required}
    if preferred:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return affinity
