"""What a KFP task input resolves to once the nested DAGs are flattened.

KFP passes values down through sub-DAG inputs (`pipelinechannel--...`) and up through
DAG outputs; pipesync tasks read parameters, items and other tasks' outputs directly.
A `Value` is the end of that chain: a pipesync template, an artifact of a flat task,
the exit handler's final status, or nothing at all (an optional input left unset).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection
from typing import Any

from pipesync.engine import templating
from pipesync.engine.kfp import placeholders
from pipesync.engine.templating import Ref, Template


class Kind(enum.Enum):
    TEXT = "text"
    ARTIFACT = "artifact"
    STATUS = "status"
    ABSENT = "absent"


@dataclasses.dataclass(frozen=True)
class Value:
    kind: Kind
    # TEXT: the pipesync template giving the value's text, as references (see placeholders)
    template: Template = placeholders.EMPTY
    literal: bool = False  # TEXT without placeholders (a constant)
    task: str = ""  # ARTIFACT: the flat producer task
    name: str = ""  # ARTIFACT: the producer's output artifact name
    loop: str = ""  # ARTIFACT from a task in a loop: its forEach group
    meta: bool = False  # ARTIFACT whose producer records KFP metadata
    group: str = ""  # STATUS: the KFP task whose final status this is
    # ARTIFACT from a dsl.OneOf: (task, name) of each branch's producer, first one ran wins
    choices: tuple[tuple[str, str], ...] = ()

    @property
    def text(self) -> str:
        """The template as the text written into the Pipeline body."""
        return placeholders.text(self.template)

    @property
    def single_ref(self) -> Ref | None:
        """The placeholder when the value is exactly one (e.g. `{{params.x}}`)."""
        return self.template.single_ref()


ABSENT = Value(Kind.ABSENT)


def artifact_source(value: Value) -> Ref:
    """The pipesync `inputs.artifacts.*.from` placeholder for an ARTIFACT value."""
    choices = value.choices or ((value.task, value.name),)
    return placeholders.first_of([placeholders.task_artifact(*choice) for choice in choices])


def metadata_source(value: Value, prefix: str) -> Ref:
    """The placeholder of the hidden output parameter carrying the artifact's metadata."""
    choices = value.choices or ((value.task, value.name),)
    return placeholders.first_of(
        [placeholders.task_parameter(task, prefix + name) for task, name in choices]
    )


def listed(value: Value, loops: Collection[str]) -> bool:
    """Whether a task in the forEach groups `loops` (its own, then the enclosing ones;
    empty outside loops) receives the artifact as a list: from a loop it is not in, one
    entry per instance; from its own or an enclosing loop, its iteration's one."""
    return bool(value.loop) and value.loop not in loops


def refers(*parts: str | Ref | Template) -> Value:
    """A TEXT value made of placeholders (and text around them)."""
    return Value(Kind.TEXT, template=placeholders.of(*parts))


def constant(value: Any, parameter_type: str) -> Value:
    return Value(Kind.TEXT, template=placeholders.of(render(value, parameter_type)), literal=True)


def render(value: Any, parameter_type: str = "") -> str:
    """A KFP constant as the text a program receives: integers written as doubles by the
    SDK (`3.0`) become `3`, also inside lists and structs."""
    value = whole(value)
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return templating.render_value(value)


def whole(value: Any) -> Any:
    """Whole-number doubles inside lists and mappings as ints (how the SDK's values read)."""
    if isinstance(value, list):
        return [_whole_item(item) for item in value]
    if isinstance(value, dict):
        return {key: _whole_item(item) for key, item in value.items()}
    return value


def _whole_item(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return whole(value)
