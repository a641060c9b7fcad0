"""A task's compute resources as one attempt gets them: fields written as placeholders
(`gpu: "{{params.gpus}}"`, a KFP accelerator limit from a pipeline input or a task
output) rendered once their values are known, and accelerator types named as the
Kubernetes extended resource a pod's limits count.

Both executors read an attempt's resources here (engine/attempt.py), so a value that is
not a quantity or a whole number fails the attempt with one clear line in either.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from pipesync.api.model import Resources

GPU = "nvidia.com/gpu"
TPU = "google.com/tpu"
AMD_GPU = "amd.com/gpu"

#: The resource fields a placeholder may stand for, as the schema spells them.
FIELDS = ("cpu", "memory", "gpu", "ephemeralStorage", "accelerator")

#: A Kubernetes quantity (the schema's `quantity`), for values known only at run time.
_QUANTITY = re.compile(
    r"^\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?[0-9]+))?$"
)
#: An extended resource name: a domain prefix, a slash, a name (`nvidia.com/gpu`).
_EXTENDED = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

SUPPORTED = (
    f"an extended resource name ({GPU}, {TPU}, {AMD_GPU}, ...) or a KFP type "
    "(NVIDIA_TESLA_T4, TPU_V3, ...)"
)


class ResourceError(ValueError):
    """A resource value an attempt cannot be given (one line, names the field)."""


def accelerator_resource(kind: str) -> str | None:
    """The extended resource an accelerator type counts, or None when unknown: a resource
    name as it is (`google.com/tpu`); the KFP SDK's and Vertex AI's type names by vendor
    (`NVIDIA_TESLA_T4`, `nvidia-l4` -> nvidia.com/gpu; `TPU_V3`, `tpu-v3` ->
    google.com/tpu; `AMD_...` -> amd.com/gpu); "" (no type) is the default GPU."""
    text = kind.strip()
    if not text:
        return GPU
    if "/" in text:
        return text if _EXTENDED.match(text) else None
    lowered = text.lower()
    for prefix, resource in (("nvidia", GPU), ("gpu", GPU), ("tpu", TPU), ("amd", AMD_GPU)):
        if lowered.startswith(prefix):
            return resource
    return None


def resolve(resources: Resources, rendered: Mapping[str, str], task: str) -> Resources:
    """`resources` with each templated field set to its rendered value (`rendered`, by
    field) once checked; unchanged when nothing in it is a placeholder."""
    if not resources.templates:
        return resources
    values: dict[str, object] = {}
    for field, text in resources.templates:
        value = rendered[field].strip()
        where = f"task {task!r}: resources.{field} {text!r} is {value!r}"
        if field == "gpu":
            values["gpu"] = _count(value, where)
        elif field == "accelerator":
            resource = accelerator_resource(value)
            if resource is None:
                raise ResourceError(f"{where}: not {SUPPORTED}")
            values["accelerator"] = resource
        else:
            if not _QUANTITY.match(value):
                raise ResourceError(f"{where}: not a Kubernetes quantity (e.g. 500m, 4Gi)")
            values[_ATTRIBUTES[field]] = value
    return dataclasses.replace(resources, templates=(), **values)  # type: ignore[arg-type]


def _count(value: str, where: str) -> int:
    """A whole, non-negative accelerator count ("1", "1.0" and 1 as KFP writes them)."""
    try:
        number = float(value)
    except ValueError:
        raise ResourceError(f"{where}: not a whole number") from None
    if number < 0 or not number.is_integer():
        raise ResourceError(f"{where}: not a whole number of at least 0")
    return int(number)


_ATTRIBUTES = {"cpu": "cpu", "memory": "memory", "ephemeralStorage": "ephemeral_storage"}
