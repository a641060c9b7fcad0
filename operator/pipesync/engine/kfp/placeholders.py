"""The pipesync placeholders the KFP reader writes, built as `templating` references.

The reader decides things from the values it passes along (is this a loop item, which
task produces these loop items, which branches a OneOf chooses from) and rewrites some of
them (an enclosing loop's item becomes one axis of a matrix item). It does so on these
references, never on placeholder text: text is written once, when the Pipeline body is,
and pipesync's compiler parses that text like any other Pipeline's.

Each reference carries the text `templating.parse_ref` would give it, so a reference
built here and one parsed from the written body are equal.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipesync.engine.templating import Ref, RefKind, Segment, Template

EMPTY = Template(())


def param(name: str) -> Ref:
    """`{{params.NAME}}`."""
    return Ref(RefKind.PARAM, name, text=f"params.{name}")


def item(path: str = "") -> Ref:
    """`{{item}}`, or `{{item.PATH}}` (a key of the item, or an axis of a matrix item)."""
    return Ref(RefKind.ITEM, path, text=f"item.{path}" if path else "item")


def run(field: str) -> Ref:
    """`{{run.FIELD}}` (name, status, createdAt, ...)."""
    return Ref(RefKind.RUN, field, text=f"run.{field}")


def task_uid() -> Ref:
    """`{{task.uid}}`."""
    return Ref(RefKind.TASK_UID, "uid", text="task.uid")


def task_parameter(task: str, name: str) -> Ref:
    """`{{tasks.TASK.outputs.parameters.NAME}}`."""
    return Ref(RefKind.TASK_PARAMETER, name, task, f"tasks.{task}.outputs.parameters.{name}")


def task_artifact(task: str, name: str) -> Ref:
    """`{{tasks.TASK.outputs.artifacts.NAME}}`."""
    return Ref(RefKind.TASK_ARTIFACT, name, task, f"tasks.{task}.outputs.artifacts.{name}")


def input_artifact(name: str) -> Ref:
    """`{{inputs.artifacts.NAME}}`: where the task finds an input artifact."""
    return Ref(RefKind.INPUT_ARTIFACT, name, text=f"inputs.artifacts.{name}")


def output_artifact(name: str) -> Ref:
    """`{{outputs.artifacts.NAME}}`: where the task writes an output artifact."""
    return Ref(RefKind.OUTPUT_ARTIFACT, name, text=f"outputs.artifacts.{name}")


def output_parameter(name: str) -> Ref:
    """`{{outputs.parameters.NAME}}`: the file whose content becomes the output's value."""
    return Ref(RefKind.OUTPUT_PARAMETER, name, text=f"outputs.parameters.{name}")


def first_of(choices: Sequence[Ref]) -> Ref:
    """`{{A|B|...}}`: the first of these task outputs that exists (a dsl.OneOf); a single
    choice is that reference itself."""
    if len(choices) == 1:
        return choices[0]
    head = choices[0]
    text = "|".join(choice.text for choice in choices)
    return Ref(head.kind, head.name, head.task, text, alternatives=tuple(choices))


def item_key(ref: Ref, key: str) -> Ref:
    """A loop item's `key` (what `parseJson(string_value)["key"]` selects): `{{item.key}}`,
    or `{{item.AXIS.key}}` on a matrix axis."""
    return item(f"{ref.name}.{key}" if ref.name else key)


def on_axis(template: Template, axis: str) -> Template:
    """`template` with each `{{item...}}` as the `axis` of a matrix item: what a loop's
    item becomes once a ParallelFor nested in it turns the loop into a matrix."""
    return Template(
        tuple(
            item(f"{axis}.{part.name}" if part.name else axis)
            if isinstance(part, Ref) and part.kind is RefKind.ITEM
            else part
            for part in template.segments
        )
    )


def reads_item(template: Template) -> bool:
    """Whether `template` holds a loop item's placeholder."""
    return any(ref.kind is RefKind.ITEM for ref in template.refs)


def of(*parts: str | Ref | Template) -> Template:
    """The template that reads as the parts one after the other (literal text merged, empty
    text dropped, so a template that is one placeholder has exactly one segment)."""
    segments: list[Segment] = []
    for part in parts:
        for segment in part.segments if isinstance(part, Template) else (part,):
            if isinstance(segment, str) and segments and isinstance(segments[-1], str):
                segments[-1] += segment
            elif segment != "":
                segments.append(segment)
    return Template(tuple(segments))


def joined(parts: Sequence[str | Ref | Template], separator: str) -> Template:
    """The parts with `separator` between them."""
    spaced: list[str | Ref | Template] = []
    for position, part in enumerate(parts):
        if position:
            spaced.append(separator)
        spaced.append(part)
    return of(*spaced)


def text(template: Template | Ref) -> str:
    """The placeholder text pipesync's compiler reads: written into the Pipeline body."""
    if isinstance(template, Ref):
        return str(template)
    return template.render(str)
