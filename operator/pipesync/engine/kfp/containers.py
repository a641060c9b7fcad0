"""A KFP container task as one flat pipesync task: its argv (through the runtime shim
for Python components), inputs and outputs, env, retry policy, resources and platform
settings (resources.py); dsl.importer executors become importer tasks (importer.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import (
    commands,
    executors,
    importer,
    placeholders,
    platform,
    resources,
    shim,
)
from pipesync.engine.kfp import values as v
from pipesync.engine.kfp.placement import place_task
from pipesync.engine.kfp.state import Context, Site, Translation, mapping
from pipesync.engine.kfp.values import Kind, Value


def container_task(
    reading: Translation,
    site: Site,
    component: Mapping[str, Any],
    inputs: Mapping[str, Value],
    context: Context,
    *,
    exit_task: bool = False,
) -> str | None:
    """Write the flat task for `site` (or the exit task); its flat name, or None (reported)
    when it cannot be run."""
    name, task, path = site.name, site.task, site.path
    flat_name = context.prefix + name
    label = str(component.get("executorLabel"))
    executor = mapping(reading.executors.get(label))
    epath: Path = ("deploymentSpec", "executors", label)
    if "importer" in executor:
        return importer.importer_task(reading, site, inputs, context, label)
    container = mapping(executor.get("container"))
    cpath = (*epath, "container")
    if not container:
        reading.problem(epath, f"task {name!r}: executor {label!r} has no container")
        return None
    index = len(reading.tasks)
    target: Path = ("spec", "onExit") if exit_task else ("spec", "tasks", index)
    reading.place(target, path)
    body: dict[str, Any] = {"name": flat_name}
    if len(flat_name) > 63:
        reading.problem(path, f"flattened task name {flat_name!r} is longer than 63 characters")
    if container.get("image"):
        body["image"] = str(container["image"])
    loops = () if context.loop is None or exit_task else context.loop.chain
    if not _command(reading, site, body, component, inputs, paths=(cpath, target), loops=loops):
        return None
    _io(body, component, inputs, lightweight=executors.uses_shim(container))
    env = [
        {"name": str(e.get("name")), "value": v.render(e.get("value", ""))}
        for e in container.get("env") or []
        if isinstance(e, dict)
    ]
    if env:
        body["env"] = env
    if not exit_task:
        place_task(reading, body, context, target)
    _retry(reading, body, task, path, target)
    _cache(body, task)
    resources.apply(reading, body, cpath, commands.TaskIO(flat_name, inputs, loops))
    platform.apply(reading, body, label, target)
    if exit_task:
        reading.on_exit = body
    else:
        reading.tasks.append(body)
    return flat_name


def _command(
    reading: Translation,
    site: Site,
    body: dict[str, Any],
    component: Mapping[str, Any],
    inputs: Mapping[str, Value],
    *,
    paths: tuple[Path, Path],
    loops: tuple[str, ...],
) -> bool:
    """The argv: the runtime shim for lightweight components and for containers that
    read `{{$}}`, else the container's command and args with their placeholders
    rendered. False when unusable."""
    cpath, target = paths
    container = mapping(reading.at(cpath))
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    outputs = mapping(component.get("outputDefinitions"))

    def slots() -> list[dict[str, Any]]:
        return _slots(
            component,
            inputs,
            loops,
            list(mapping(outputs.get("parameters"))),
            list(mapping(outputs.get("artifacts"))),
        )

    source = executors.lightweight_source(command)
    if source is not None:
        function = executors.function_name(args)
        if function is None:
            reading.problem((*cpath, "args"), "no --function_to_execute in the args")
            return False
        body["command"] = shim.argv(function, source, slots())
        reading.place((*target, "command"), (*cpath, "command"))
        return True
    shimmed = executors.reads_executor_input(container)
    io = commands.TaskIO(
        body["name"],
        inputs,
        loops,
        executor_input=shim.EXECUTOR_INPUT if shimmed else "",
        output_file=shim.OUTPUT_FILE if shimmed else "",
    )
    for field, items in (("command", command), ("args", args)):
        if not items:
            continue
        try:
            body[field] = commands.render_text(items, io)
        except commands.CommandError as error:
            reading.problem((*cpath, field), f"task {site.name!r}: {error}")
        reading.place((*target, field), (*cpath, field))
    if not command and not args:
        reading.problem(cpath, f"task {site.name!r}: the container has no command or args")
    elif shimmed:
        argv = [*body.pop("command", []), *body.pop("args", [])]
        body["command"] = shim.container_argv(argv, slots())
    return True


def _io(
    body: dict[str, Any],
    component: Mapping[str, Any],
    inputs: Mapping[str, Value],
    *,
    lightweight: bool,
) -> None:
    """Input artifacts and declared outputs (plus the shim's metadata parameters)."""
    outputs = mapping(component.get("outputDefinitions"))
    out_params = list(mapping(outputs.get("parameters")))
    out_artifacts = list(mapping(outputs.get("artifacts")))
    if lightweight:
        out_params += [shim.META_PREFIX + a for a in out_artifacts]
    artifacts_in = {
        key: {"from": placeholders.text(v.artifact_source(value))}
        for key, value in inputs.items()
        if value.kind is Kind.ARTIFACT
    }
    if artifacts_in:
        body["inputs"] = {"artifacts": artifacts_in}
    if out_params or out_artifacts:
        body["outputs"] = {}
        if out_params:
            body["outputs"]["parameters"] = out_params
        if out_artifacts:
            body["outputs"]["artifacts"] = out_artifacts


def _slots(
    component: Mapping[str, Any],
    inputs: Mapping[str, Value],
    loops: tuple[str, ...],
    out_params: list[str],
    out_artifacts: list[str],
) -> list[dict[str, Any]]:
    """The shim's slots: one per input and output, each with the placeholder whose value
    the shim receives as one argv element (see shim.py)."""
    definitions = mapping(component.get("inputDefinitions"))
    slots: list[dict[str, Any]] = []
    for name, definition in mapping(definitions.get("parameters")).items():
        value = inputs.get(name, v.ABSENT)
        if value.kind is Kind.STATUS:
            status = placeholders.text(placeholders.run("status"))
            slots.append({"k": "status", "n": name, "g": value.group, "v": status})
        elif value.kind is Kind.TEXT:
            kind = str(definition.get("parameterType", "STRING"))
            slots.append({"k": "param", "n": name, "t": kind, "v": value.text})
    for name, definition in mapping(definitions.get("artifacts")).items():
        value = inputs.get(name, v.ABSENT)
        if value.kind is not Kind.ARTIFACT:
            continue
        listed = bool(definition.get("isArtifactList")) or v.listed(value, loops)
        kind = "artifact-list" if listed else "artifact"
        path = placeholders.text(placeholders.input_artifact(name))
        slots.append({"k": kind, "n": name, "s": _title(definition), "v": path})
        if value.meta:
            meta = placeholders.text(v.metadata_source(value, shim.META_PREFIX))
            slots.append({"k": kind + "-meta", "n": name, "v": meta})
    for name in out_params:
        path = placeholders.text(placeholders.output_parameter(name))
        slots.append({"k": "out-param", "n": name, "v": path})
    artifact_defs = mapping(mapping(component.get("outputDefinitions")).get("artifacts"))
    for name in out_artifacts:
        title = _title(mapping(artifact_defs.get(name)))
        path = placeholders.text(placeholders.output_artifact(name))
        slots.append({"k": "out-artifact", "n": name, "s": title, "v": path})
        meta = placeholders.text(placeholders.output_parameter(shim.META_PREFIX + name))
        slots.append({"k": "out-meta", "n": name, "v": meta})
    return slots


def _retry(
    reading: Translation, body: dict[str, Any], task: Mapping[str, Any], path: Path, target: Path
) -> None:
    policy = mapping(task.get("retryPolicy"))
    if not policy:
        return
    retry: dict[str, Any] = {"limit": int(policy.get("maxRetryCount", 0))}
    for key, field in (("backoffDuration", "backoff"), ("backoffMaxDuration", "maxBackoff")):
        if policy.get(key):
            retry[field] = str(policy[key])
    if policy.get("backoffFactor"):
        retry["factor"] = max(1.0, float(policy["backoffFactor"]))
    body["retry"] = retry
    reading.place((*target, "retry"), (*path, "retryPolicy"))


def _cache(body: dict[str, Any], task: Mapping[str, Any]) -> None:
    """KFP caches a task when its `cachingOptions.enableCache` is true (the SDK writes it
    unless `set_caching_options(False)`); its code is its image and its command."""
    if mapping(task.get("cachingOptions")).get("enableCache") is True:
        body["cache"] = {"enabled": True, "paths": []}


def _title(definition: Mapping[str, Any]) -> str:
    return str(mapping(definition.get("artifactType")).get("schemaTitle", "system.Artifact"))
