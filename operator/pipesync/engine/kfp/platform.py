"""kfp-kubernetes platform settings (the IR's second document) onto pipesync tasks.

Only what pipesync's pod builder supports is mapped: nodeSelector, tolerations and node
affinity. Everything else (secrets or config maps as env or volumes, PVCs, pod metadata,
image pull secrets, ...) is a located "not supported" problem, so a pipeline never runs
without a setting its author relied on.
"""

from __future__ import annotations

from typing import Any, Protocol

from pipesync.api.yamlsource import Path, SourceDocument

_SUPPORTED = ("nodeSelector", "tolerations", "nodeAffinity")


class _Reader(Protocol):
    platforms: SourceDocument | None

    def place(self, target: Path, source: Path) -> None: ...


def executor_settings(platforms: SourceDocument | None, label: str) -> tuple[dict[str, Any], Path]:
    """The kubernetes settings of one executor and their path in the platform document."""
    if platforms is None or not isinstance(platforms.data, dict):
        return {}, ()
    path: Path = ("platforms", "kubernetes", "deploymentSpec", "executors", label)
    node: Any = platforms.data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return (node if isinstance(node, dict) else {}), path


def apply(reader: Any, body: dict[str, Any], label: str, target: Path) -> None:
    """Map the supported settings of executor `label` onto `body`; report the rest."""
    platforms: SourceDocument | None = reader.platforms
    settings, path = executor_settings(platforms, label)
    if not settings or platforms is None:
        return
    for key, value in settings.items():
        where = (*path, key)
        if key not in _SUPPORTED:
            reader.problems.append(
                platforms.diagnostic(
                    where,
                    f"kfp-kubernetes setting {key!r} is not supported by pipesync's pod builder "
                    f"(supported: {', '.join(_SUPPORTED)})",
                    key=True,
                )
            )
            continue
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
