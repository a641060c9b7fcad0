"""A KFP container's `resources` as a pipesync task's: cpu and memory limits, and the
accelerator (`set_accelerator_limit`, `set_accelerator_type`) as `resources.gpu` and
`resources.accelerator`.

Each may come from a pipeline input or a task output (`set_accelerator_limit(p)`); its
placeholder becomes a pipesync one (`{{params.p}}`, `{{tasks.T.outputs.parameters.P}}`),
which both executors render when the task starts (engine/resources.py) and check then.
A constant accelerator type names its extended resource here (TPU_V3 is google.com/tpu).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine import resources as task_resources
from pipesync.engine.kfp import commands
from pipesync.engine.kfp.state import Translation, mapping


def apply(reading: Translation, body: dict[str, Any], cpath: Path, io: commands.TaskIO) -> None:
    """Write the task's `resources` (and `pool: gpu` for an NVIDIA accelerator) from the
    container at `cpath`; what cannot be given is reported there."""
    spec = mapping(mapping(reading.at(cpath)).get("resources"))
    if not spec:
        return
    where: Path = (*cpath, "resources")
    found: dict[str, Any] = {}
    cpu_key = _first(spec, "resourceCpuLimit", "cpuLimit", "resourceCpuRequest")
    if cpu_key:
        found["cpu"] = _value(reading, (*where, cpu_key), spec[cpu_key], io)
    memory_key = _first(spec, "resourceMemoryLimit", "resourceMemoryRequest")
    if memory_key:
        found["memory"] = _value(reading, (*where, memory_key), spec[memory_key], io)
    elif spec.get("memoryLimit"):
        found["memory"] = f"{int(float(spec['memoryLimit']) * 1000)}M"
    _accelerator(reading, body, found, (*where, "accelerator"), io)
    resources = {key: value for key, value in found.items() if value is not None}
    if resources:
        body["resources"] = resources


def _accelerator(
    reading: Translation,
    body: dict[str, Any],
    found: dict[str, Any],
    where: Path,
    io: commands.TaskIO,
) -> None:
    accelerator = mapping(reading.at(where))
    count_key = _first(accelerator, "resourceCount", "count")
    if not count_key:
        return
    count = _value(reading, (*where, count_key), accelerator[count_key], io)
    if count is None:
        return
    if _placeholder(count):
        found["gpu"] = count  # counted when the task starts
    else:
        try:
            number = float(count)
        except ValueError:
            number = -1.0
        if number < 0 or not number.is_integer():
            reading.problem(
                (*where, count_key), f"accelerator count {count!r} is not a whole number"
            )
            return
        if number == 0:
            return
        found["gpu"] = int(number)
    type_key = _first(accelerator, "resourceType", "type")
    kind = "" if not type_key else _value(reading, (*where, type_key), accelerator[type_key], io)
    if kind is None:
        return
    if _placeholder(kind):
        found["accelerator"] = kind  # named when the task starts
        body["pool"] = "gpu"
        return
    resource = task_resources.accelerator_resource(kind)
    if resource is None:
        reading.problem(
            (*where, type_key or "resourceType"),
            f"accelerator type {kind!r}: pipesync asks for {task_resources.SUPPORTED}",
        )
        return
    if resource != task_resources.GPU:
        found["accelerator"] = resource  # a TPU, ...: its resource steers the scheduler
    else:
        body["pool"] = "gpu"


def _value(reading: Translation, where: Path, raw: Any, io: commands.TaskIO) -> str | None:
    """A resource setting as pipesync text: a constant as it is, a KFP placeholder (a
    pipeline input, a task output) as the pipesync placeholder of the same value; None
    (reported) when it names something that is not a value."""
    text = str(raw)
    if "{{" not in text:
        return text
    try:
        return commands.render_text([text], io)[0]
    except commands.CommandError as error:
        setting = ".".join(str(part) for part in where[-2:])
        reading.problem(where, f"task {io.task!r}: {setting}: {error}")
        return None


def _placeholder(text: str) -> bool:
    return "{{" in text


def _first(spec: Mapping[str, Any], *keys: str) -> str:
    """The first key that `spec` sets (the SDK writes the newer field and the deprecated
    one; the newer wins), or ""."""
    return next((key for key in keys if spec.get(key) not in (None, "")), "")
