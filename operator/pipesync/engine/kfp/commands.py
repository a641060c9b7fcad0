"""A KFP container's command and args as pipesync argv templates.

KFP placeholders (`{{$.inputs.parameters['x']}}`, artifact paths, output files) become
pipesync placeholders that expand into single argv elements; `{"Concat": [...]}` becomes
one element and `{"IfPresent": ...}` zero or more, decided here because whether an input
is present is fixed once the DAG is flattened. Nothing goes through a shell.
The templates hold `templating` references (placeholders.py), so what the reader builds
from them (a constant's value, the importer's metadata) needs no parsing of text.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from pipesync.engine.kfp import placeholders, shim
from pipesync.engine.kfp import values as v
from pipesync.engine.kfp.values import Kind, Value
from pipesync.engine.templating import Ref, Template

_PLACEHOLDER = re.compile(r"\{\{\$(?P<body>[^}]*)\}\}")
_IO = re.compile(
    r"^\.(?P<side>inputs|outputs)\.(?P<kind>parameters|artifacts)\[\s*(?P<q>['\"])"
    r"(?P<name>.*?)(?P=q)\s*\](?:\.(?P<field>\w+))?$"
)
_RUN_NAMES = ("pipeline_job_name", "pipeline_job_resource_name", "pipeline_job_uuid")
_RUN_TIMES = {
    "pipeline_job_create_time_utc": "createdAt",
    "pipeline_job_schedule_time_utc": "scheduledAt",
}
#: What a container reads from or writes for the shim (see shim.py's argv mode).
EXECUTOR_FILES = ("{{$}}", "{{$.outputs.output_file}}")


class CommandError(ValueError):
    """A placeholder pipesync cannot render (the message says which and why)."""


@dataclasses.dataclass(frozen=True)
class TaskIO:
    """What one task's placeholders may refer to."""

    task: str  # the flat pipesync task name
    inputs: Mapping[str, Value]  # parameters and artifacts by KFP input name
    loops: tuple[str, ...] = ()  # the task's forEach group, then the enclosing ones
    executor_input: str = ""  # what `{{$}}` becomes (the shim's marker); "" refuses it
    output_file: str = ""  # what `{{$.outputs.output_file}}` becomes; "" refuses it


def render(items: list[Any], io: TaskIO) -> list[Template]:
    """Every element of a command or args list, expanded into pipesync templates."""
    out: list[Template] = []
    for item in items:
        out.extend(_element(item, io))
    return out


def render_text(items: list[Any], io: TaskIO) -> list[str]:
    """`render`, as the argv text written into a Pipeline body."""
    return [placeholders.text(template) for template in render(items, io)]


def _element(item: Any, io: TaskIO) -> list[Template]:
    structured = _structured(item)
    if structured is None:
        return [_text(str(item), io)]
    if "Concat" in structured:
        parts = structured["Concat"]
        if not isinstance(parts, list):
            raise CommandError("Concat must hold a list")
        return [placeholders.of(*(part for item in parts for part in _element(item, io)))]
    spec = structured["IfPresent"]
    if not isinstance(spec, dict) or "InputName" not in spec:
        raise CommandError("IfPresent must name an InputName")
    present = io.inputs.get(str(spec["InputName"]))
    branch = (
        spec.get("Then")
        if present is not None and present.kind is not Kind.ABSENT
        else (spec.get("Else"))
    )
    if branch is None:
        return []
    return render(branch if isinstance(branch, list) else [branch], io)


def _structured(item: Any) -> dict[str, Any] | None:
    """A Concat or IfPresent placeholder (JSON text in the IR), or None for plain text."""
    if isinstance(item, dict):
        found: Any = item
    elif (
        isinstance(item, str)
        and item.lstrip().startswith("{")
        and ('"Concat"' in item or '"IfPresent"' in item)
    ):
        try:
            found = json.loads(item)
        except ValueError:
            return None
    else:
        return None
    if isinstance(found, dict) and len(found) == 1 and next(iter(found)) in ("Concat", "IfPresent"):
        return found
    return None


def _text(text: str, io: TaskIO) -> Template:
    out: list[str | Ref | Template] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        out.append(_literal(text[position : match.start()]))
        out.append(_placeholder(match.group("body"), io))
        position = match.end()
    out.append(_literal(text[position:]))
    return placeholders.of(*out)


def _literal(text: str) -> str:
    if "{{" in text:
        raise CommandError(
            f"literal text {text[:60]!r} holds '{{{{', which pipesync would read as a placeholder"
        )
    return text


def _placeholder(body: str, io: TaskIO) -> str | Ref | Template:
    """What one KFP placeholder (`{{$...}}`, its `body` without the `$`) becomes."""
    shown = "{{$" + body + "}}"
    if body == "" and io.executor_input:
        return io.executor_input
    if body == "":
        raise CommandError(
            f"{shown} (the executor input JSON) is only supported in lightweight Python components"
        )
    name = body.lstrip(".")
    if name == "outputs.output_file" and io.output_file:
        return io.output_file
    if name in _RUN_NAMES:
        return placeholders.run("name")
    if name in _RUN_TIMES:
        return placeholders.run(_RUN_TIMES[name])
    if name == "pipeline_task_name":
        return io.task
    if name == "pipeline_task_uuid":
        return placeholders.task_uid()
    match = _IO.match(body)
    if match is None:
        raise CommandError(f"unsupported placeholder {shown}")
    side, kind, key, field = (
        match.group("side"),
        match.group("kind"),
        match.group("name"),
        match.group("field"),
    )
    if side == "inputs" and kind == "parameters":
        value = io.inputs.get(key)
        if value is None or value.kind is not Kind.TEXT:
            raise CommandError(
                f"{shown}: input {key!r} has no value here (wrap it in IfPresent or give it one)"
            )
        return value.template
    if side == "inputs":
        value = io.inputs.get(key)
        if value is None or value.kind is not Kind.ARTIFACT:
            raise CommandError(f"{shown}: input artifact {key!r} is not connected")
        if field in ("path", "uri"):
            return placeholders.input_artifact(key)
        if field == "metadata" and value.meta and not v.listed(value, io.loops):
            return v.metadata_source(value, shim.META_PREFIX)
        if field == "metadata":
            return "{}"
        raise CommandError(f"unsupported placeholder {shown}")
    if kind == "parameters" and field == "output_file":
        return placeholders.output_parameter(key)
    if kind == "artifacts" and field in ("path", "uri"):
        return placeholders.output_artifact(key)
    raise CommandError(f"unsupported placeholder {shown}")
