"""Where a flat task sits in the flattened DAG: its dependencies, the conditions of the
groups around it (its `when`) and the loop it is in (its `forEach`)."""

from __future__ import annotations

from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import placeholders
from pipesync.engine.kfp.state import Context, Items, Translation
from pipesync.engine.templating import Template


def place_task(reading: Translation, body: dict[str, Any], context: Context, target: Path) -> None:
    """Write the task's `dependsOn`, `when` and `forEach` from its context."""
    deps = [d for d in context.deps if d != body["name"]]
    if deps:
        body["dependsOn"] = deps
    if context.when:
        body["when"] = " and ".join(f"({placeholders.text(w)})" for w, _ in context.when)
        reading.place((*target, "when"), context.when[-1][1])
    if context.loop is not None:
        loop = context.loop
        loop.bodies.append(body)
        reading.task_loops[body["name"]] = loop
        for_each: dict[str, Any] = {"group": loop.group}
        if loop.axes:
            for_each["matrix"] = {group: _written(items) for group, items in loop.axes}
        else:
            for_each["items"] = _written(loop.items)
        if loop.parallelism:
            for_each["parallelism"] = loop.parallelism
        body["forEach"] = for_each
        reading.place((*target, "forEach"), loop.path)


def _written(items: Items | None) -> Any:
    """A loop's items as the body holds them: the list, or the placeholder's text."""
    return items if not isinstance(items, Template) else placeholders.text(items)
