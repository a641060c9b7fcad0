"""Parameters and artifacts: what the pipeline takes, what each task reads and produces.

KFP passes values through sub-DAG inputs and task outputs; here each one is followed to
its end (a pipeline parameter, a loop item, a flat task's output, a constant) as a
`Value`, so a task reads it directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import commands, executors, importer, placeholders
from pipesync.engine.kfp import values as v
from pipesync.engine.kfp.state import Context, Dag, Site, Translation, mapping
from pipesync.engine.kfp.values import Kind, Value
from pipesync.engine.templating import RefKind

_TYPES = {
    "STRING": "string",
    "NUMBER_INTEGER": "integer",
    "NUMBER_DOUBLE": "number",
    "BOOLEAN": "boolean",
    "LIST": "list",
    "STRUCT": "object",
}
_SELECTOR = re.compile(r"""^parseJson\(string_value\)\[\s*(['"])(?P<key>[A-Za-z_][\w-]*)\1\s*\]$""")


def pipeline_params(reading: Translation, root: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's parameters, typed, with their defaults and descriptions."""
    found: list[dict[str, Any]] = []
    definitions = mapping(mapping(root.get("inputDefinitions")).get("parameters"))
    for index, (name, definition) in enumerate(definitions.items()):
        path = ("root", "inputDefinitions", "parameters", name)
        reading.here = path
        kind = str(mapping(definition).get("parameterType", "STRING"))
        param: dict[str, Any] = {"name": name, "type": _TYPES.get(kind, "string")}
        if kind not in _TYPES:
            reading.problem((*path, "parameterType"), f"parameter type {kind} is not supported")
        if "defaultValue" in definition:
            default = v.whole(definition["defaultValue"])
            if kind == "NUMBER_INTEGER" and isinstance(default, float):
                default = int(default)
            param["default"] = default
        elif definition.get("isOptional"):
            param["default"] = None
        if definition.get("description"):
            param["description"] = str(definition["description"])
        reading.place(("spec", "params", index), path)
        found.append(param)
    return found


def pipeline_scope(
    reading: Translation, root: Mapping[str, Any], params: list[dict[str, Any]]
) -> dict[str, Value]:
    """What the root DAG's inputs are: each parameter's placeholder, and for each input
    artifact the output of the importer task that fetches it (its URI becomes a
    parameter, added to `params`)."""
    scope = {p["name"]: v.refers(placeholders.param(p["name"])) for p in params}
    artifacts = mapping(mapping(root.get("inputDefinitions")).get("artifacts"))
    for artifact, definition in artifacts.items():
        reading.here = ("root", "inputDefinitions", "artifacts", artifact)
        listed = bool(mapping(definition).get("isArtifactList"))
        scope[artifact] = importer.input_artifact(reading, str(artifact), params, listed=listed)
    return scope


def task_inputs(
    reading: Translation, site: Site, component: Mapping[str, Any], dag: Dag
) -> dict[str, Value]:
    """Each input of a task's component: what the task gives it, its default, or ABSENT."""
    task, path = site.task, site.path
    given = mapping(task.get("inputs"))
    definitions = mapping(component.get("inputDefinitions"))
    parameter_defs = mapping(definitions.get("parameters"))
    resolved: dict[str, Value] = {}
    constants: list[tuple[str, Any, Path]] = []
    for name, spec in mapping(given.get("parameters")).items():
        where = (*path, "inputs", "parameters", name)
        if "runtimeValue" in spec:
            constants.append((name, mapping(spec["runtimeValue"]).get("constant"), where))
            continue
        value = _parameter(reading, spec, where, dag)
        if value is not None:
            resolved[name] = value
    # Constants last: an f-string constant reads the task's other inputs.
    for name, constant, where in constants:
        kind = str(mapping(parameter_defs.get(name)).get("parameterType", "STRING"))
        io = commands.TaskIO(dag.context.prefix + site.name, resolved)
        resolved[name] = _constant(reading, constant, kind, where, io)
    for name, spec in mapping(given.get("artifacts")).items():
        where = (*path, "inputs", "artifacts", name)
        value = _artifact(reading, spec, where, dag)
        if value is not None:
            resolved[name] = value
    for name, definition in parameter_defs.items():
        if name not in resolved:
            if "defaultValue" in definition:
                kind = str(definition.get("parameterType", "STRING"))
                resolved[name] = v.constant(definition["defaultValue"], kind)
            else:
                resolved[name] = v.ABSENT
    for name in mapping(definitions.get("artifacts")):
        resolved.setdefault(name, v.ABSENT)
    return resolved


def _parameter(
    reading: Translation, spec: Mapping[str, Any], where: Path, dag: Dag
) -> Value | None:
    """What a task's input parameter is given: a DAG input, another task's output, or the
    exit handler's view of the run's status."""
    if "componentInputParameter" in spec:
        value = dag.scope.get(str(spec["componentInputParameter"]))
        if value is None:
            reading.problem(where, f"unknown input {spec['componentInputParameter']!r}")
            return None
        selector = spec.get("parameterExpressionSelector")
        if selector:
            match = _SELECTOR.match(str(selector).strip())
            item = value.single_ref
            if match is None or item is None or item.kind is not RefKind.ITEM:
                reading.problem(
                    (*where, "parameterExpressionSelector"),
                    f"selector {selector!r} is only supported on a loop item as "
                    'parseJson(string_value)["key"]',
                )
                return None
            return v.refers(placeholders.item_key(item, match.group("key")))
        return value
    if "taskOutputParameter" in spec:
        source = mapping(spec["taskOutputParameter"])
        return _task_output(
            reading, source, "outputParameterKey", "output", where=where, outputs=dag.outputs
        )
    if "taskFinalStatus" in spec:
        return Value(Kind.STATUS, group=str(mapping(spec["taskFinalStatus"]).get("producerTask")))
    reading.problem(where, f"unsupported input source {', '.join(spec) or 'empty'}")
    return None


def _constant(
    reading: Translation, constant: Any, kind: str, where: Path, io: commands.TaskIO
) -> Value:
    if not isinstance(constant, str) or "{{$." not in constant:
        value = v.constant(constant, kind)
        if "{{" in value.text:
            reading.problem(where, "a constant holding '{{' cannot be passed to a pipesync task")
        return value
    # An f-string in the DSL (the SDK refers to the task's own channel inputs), or a
    # run placeholder given as a value (dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER).
    try:
        template = commands.render([constant], io)[0]
    except commands.CommandError as error:
        reading.problem(where, str(error))
        return v.ABSENT
    return v.refers(template)


def _artifact(reading: Translation, spec: Mapping[str, Any], where: Path, dag: Dag) -> Value | None:
    """What a task's input artifact is given: another task's output or a DAG input."""
    if "taskOutputArtifact" in spec:
        source = mapping(spec["taskOutputArtifact"])
        return _task_output(
            reading, source, "outputArtifactKey", "artifact", where=where, outputs=dag.outputs
        )
    if "componentInputArtifact" in spec:
        value = dag.scope.get(str(spec["componentInputArtifact"]))
        if value is None:
            reading.problem(where, f"unknown input artifact {spec['componentInputArtifact']!r}")
        return value
    reading.problem(where, f"unsupported artifact source {', '.join(spec) or 'empty'}")
    return None


def _task_output(
    reading: Translation,
    source: Mapping[str, Any],
    key_field: str,
    what: str,
    *,
    where: Path,
    outputs: Mapping[str, Mapping[str, Value]],
) -> Value | None:
    """Another task's output (`what`: output or artifact) as this DAG knows it so far; an
    optional one left unset (ABSENT) is no input at all."""
    producer, key = str(source.get("producerTask")), str(source.get(key_field))
    value = outputs.get(producer, {}).get(key)
    if value is None:
        reading.problem(where, f"{what} {key!r} of task {producer!r} is not available here")
    return None if value is v.ABSENT else value


def task_outputs(
    reading: Translation, flat_name: str, component: Mapping[str, Any], context: Context
) -> dict[str, Value]:
    """What a flat task's outputs are to the tasks that read them."""
    outputs = mapping(component.get("outputDefinitions"))
    executor = mapping(reading.executors.get(str(component.get("executorLabel"))))
    meta = "importer" in executor or executors.uses_shim(mapping(executor.get("container")))
    found: dict[str, Value] = {
        key: v.refers(placeholders.task_parameter(flat_name, key))
        for key in mapping(outputs.get("parameters"))
    }
    for key in mapping(outputs.get("artifacts")):
        found[key] = Value(
            Kind.ARTIFACT,
            task=flat_name,
            name=key,
            loop="" if context.loop is None else context.loop.group,
            meta=meta,
        )
    return found
