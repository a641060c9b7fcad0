"""`{{...}}` placeholders: parsed once, expanded into single argv elements, never via a shell."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Callable
from typing import Any

from pipesync.engine.context import RUN_PLACEHOLDERS

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class RefKind(enum.Enum):
    PARAM = "params"  # {{params.P}}
    ITEM = "item"  # {{item}}, {{item.key}} or {{item.key.inner}}
    TASK_UID = "task-uid"  # {{task.uid}}: this task instance's id in this run
    RUN = "run"  # {{run.name}}, {{run.namespace}}, {{run.status}}, {{run.createdAt}}, ...
    TASK_PARAMETER = "task-parameter"  # {{tasks.T.outputs.parameters.P}}
    TASK_ARTIFACT = "task-artifact"  # {{tasks.T.outputs.artifacts.A}}
    INPUT_ARTIFACT = "input-artifact"  # {{inputs.artifacts.A}}
    OUTPUT_ARTIFACT = "output-artifact"  # {{outputs.artifacts.A}}
    OUTPUT_PARAMETER = "output-parameter"  # {{outputs.parameters.P}}


#: Placeholders that name a file of the attempt, whose path only the executor knows.
FILE_KINDS = frozenset({RefKind.INPUT_ARTIFACT, RefKind.OUTPUT_ARTIFACT, RefKind.OUTPUT_PARAMETER})
#: The `{{run.NAME}}` placeholders there are (engine.context reads their values).
RUN_FIELDS = tuple(RUN_PLACEHOLDERS)


@dataclasses.dataclass(frozen=True)
class Ref:
    """One placeholder: its kind and names (`task` only for TASK_* kinds)."""

    kind: RefKind
    name: str = ""
    task: str = ""
    text: str = ""
    # `{{tasks.A.outputs.parameters.P|tasks.B.outputs.parameters.Q}}`: the first of these
    # task outputs that exists (e.g. from whichever of several exclusive branches ran).
    alternatives: tuple[Ref, ...] = ()

    def __str__(self) -> str:
        return "{{" + self.text + "}}"


class TemplateError(ValueError):
    """A malformed or unknown placeholder."""


Segment = str | Ref


@dataclasses.dataclass(frozen=True)
class Template:
    segments: tuple[Segment, ...]

    @property
    def refs(self) -> tuple[Ref, ...]:
        return tuple(s for s in self.segments if isinstance(s, Ref))

    @property
    def is_literal(self) -> bool:
        return all(isinstance(s, str) for s in self.segments)

    def single_ref(self) -> Ref | None:
        """The placeholder when the whole text is exactly one placeholder."""
        if len(self.segments) == 1 and isinstance(self.segments[0], Ref):
            return self.segments[0]
        return None

    def render(self, resolve: Callable[[Ref], str]) -> str:
        return "".join(s if isinstance(s, str) else resolve(s) for s in self.segments)


def parse_ref(text: str) -> Ref:
    """`params.lr` and friends to a Ref; TemplateError says what is wrong."""
    body = text.strip()
    if "|" in body:
        choices = tuple(parse_ref(choice) for choice in body.split("|"))
        if {c.kind for c in choices} not in ({RefKind.TASK_PARAMETER}, {RefKind.TASK_ARTIFACT}):
            raise TemplateError(
                f"alternatives in {{{{{body}}}}} must all be tasks.TASK.outputs.parameters.NAME "
                "or all tasks.TASK.outputs.artifacts.NAME"
            )
        first = choices[0]
        return Ref(first.kind, first.name, first.task, body, alternatives=choices)
    parts = body.split(".")
    head = parts[0]

    def ident(part: str) -> str:
        if not _IDENT.match(part):
            raise TemplateError(f"invalid name {part!r} in placeholder {{{{{body}}}}}")
        return part

    if head == "params" and len(parts) == 2:
        return Ref(RefKind.PARAM, ident(parts[1]), text=body)
    if head == "item":
        return Ref(RefKind.ITEM, ".".join(ident(part) for part in parts[1:]), text=body)
    if body == "task.uid":
        return Ref(RefKind.TASK_UID, "uid", text=body)
    if head == "run" and len(parts) == 2 and parts[1] in RUN_FIELDS:
        return Ref(RefKind.RUN, parts[1], text=body)
    if head == "tasks" and len(parts) == 5 and parts[2] == "outputs":
        if parts[3] == "parameters":
            return Ref(RefKind.TASK_PARAMETER, ident(parts[4]), ident(parts[1]), body)
        if parts[3] == "artifacts":
            return Ref(RefKind.TASK_ARTIFACT, ident(parts[4]), ident(parts[1]), body)
    if head in ("inputs", "outputs") and len(parts) == 3:
        kinds = {
            ("inputs", "artifacts"): RefKind.INPUT_ARTIFACT,
            ("outputs", "artifacts"): RefKind.OUTPUT_ARTIFACT,
            ("outputs", "parameters"): RefKind.OUTPUT_PARAMETER,
        }
        kind = kinds.get((head, parts[1]))
        if kind is not None:
            return Ref(kind, ident(parts[2]), text=body)
    raise TemplateError(
        f"unknown placeholder {{{{{body}}}}}: expected params.NAME, item, "
        f"{', '.join(f'run.{name}' for name in RUN_FIELDS)}, task.uid, "
        "tasks.TASK.outputs.parameters.NAME, "
        "tasks.TASK.outputs.artifacts.NAME, inputs.artifacts.NAME, "
        "outputs.artifacts.NAME or outputs.parameters.NAME"
    )


def parse(text: str) -> Template:
    segments: list[Segment] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        if match.start() > position:
            segments.append(text[position : match.start()])
        segments.append(parse_ref(match.group(1)))
        position = match.end()
    rest = text[position:]
    if "{{" in rest:
        raise TemplateError(f"unclosed placeholder in {text!r}: '{{{{' without '}}}}'")
    if rest:
        segments.append(rest)
    return Template(tuple(segments))


def render_value(value: Any) -> str:
    """A typed value as the text a program receives in its argv."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=False)
