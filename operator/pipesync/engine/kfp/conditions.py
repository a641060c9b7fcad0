"""dsl.If/Elif/Else conditions as pipesync `when` expressions.

The SDK writes a condition as CEL over the task's inputs (cel.py translates the subset
it emits); each input becomes its value: a quoted literal, or the placeholder of the
parameter, item or task output it comes from, as a reference the reader can still
rewrite (an enclosing loop's item, see loops.py) before the `when` text is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import cel, placeholders
from pipesync.engine.kfp.state import Site, Translation, mapping
from pipesync.engine.kfp.values import Kind, Value
from pipesync.engine.templating import Template

_BARE_TYPES = ("NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN")


def condition(
    reading: Translation, site: Site, component: Mapping[str, Any], inputs: Mapping[str, Value]
) -> tuple[Template, Path] | None:
    """The `when` expression of the task's trigger condition and its place in the file;
    None when the task has none, or (reported) when pipesync cannot decide it."""
    found = mapping(site.task.get("triggerPolicy")).get("condition")
    if not found:
        return None
    text = str(found)
    where = (*site.path, "triggerPolicy", "condition")
    definitions = mapping(mapping(component.get("inputDefinitions")).get("parameters"))

    def operand(name: str, numeric: bool) -> str | Template:
        value = inputs.get(name)
        if value is None or value.kind is not Kind.TEXT:
            raise cel.CelError(f"the condition reads {name!r}, which has no value")
        kind = str(mapping(definitions.get(name)).get("parameterType", "STRING"))
        bare = numeric or kind in _BARE_TYPES
        if value.literal:
            if bare:
                return value.text or "''"
            return "'" + value.text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        if bare and value.single_ref is not None:
            return value.template
        return placeholders.of("'", value.template, "'")

    try:
        return placeholders.joined(cel.tokens(text, operand), " "), where
    except cel.CelError as error:
        reading.problem(where, f"condition {text!r}: {error}")
        return None
