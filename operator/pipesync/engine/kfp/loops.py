"""ParallelFor groups as pipesync forEach groups.

A ParallelFor's body tasks form one forEach group over its items (a literal list, or a
parameter or task output holding one); a ParallelFor nested in another makes the group a
matrix over both loops' items; a ParallelFor over the artifacts a loop collected joins
that loop's group. Each loop's item goes into its body's scope as `{{item}}` (or
`{{item.GROUP}}`, an axis of a matrix item).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import placeholders
from pipesync.engine.kfp import values as v
from pipesync.engine.kfp.state import Context, Items, Loop, Site, Translation, mapping
from pipesync.engine.kfp.values import Kind, Value
from pipesync.engine.templating import Ref, RefKind, Template

#: The placeholders whose value can be a loop's items: a pipeline parameter, an enclosing
#: loop's item, a task's output parameter (or the first of several, a dsl.OneOf).
_ITEM_SOURCES = (RefKind.PARAM, RefKind.ITEM, RefKind.TASK_PARAMETER)


def open_loop(
    reading: Translation,
    site: Site,
    group: str,
    context: Context,
    *,
    inputs: Mapping[str, Value],
    scope: dict[str, Value],
) -> tuple[Loop, tuple[tuple[Template, Path], ...]] | None:
    """The loop a ParallelFor task opens, and the conditions its body inherits; None
    (reported) when unusable. The loop's item goes into the body's `scope`."""
    outer = context.loop
    if outer is None:
        loop = _loop(reading, site, group, inputs, scope)
        return None if loop is None else (loop, context.when)
    loop = _nested_loop(reading, site, group, outer, scope)
    if loop is None:
        return None
    when = context.when
    if not outer.axes:  # the enclosing loop's item is now one axis of a matrix item
        when = tuple((placeholders.on_axis(w, outer.group), place) for w, place in when)
    return loop, when


def _loop(
    reading: Translation,
    site: Site,
    group: str,
    inputs: Mapping[str, Value],
    scope: dict[str, Value],
) -> Loop | None:
    if "artifactIterator" in site.task:
        return _artifact_loop(reading, site, inputs, scope)
    items = _items(reading, site, inputs)
    if items is None:
        return None
    iterator = mapping(site.task.get("parameterIterator"))
    scope[str(iterator.get("itemInput", ""))] = v.refers(placeholders.item())
    loop = Loop(items, _limit(site.task), (*site.path, "parameterIterator"), group)
    reading.loops[group] = loop
    return loop


def _nested_loop(
    reading: Translation, site: Site, group: str, outer: Loop, scope: dict[str, Value]
) -> Loop | None:
    """A ParallelFor inside another: a matrix over the enclosing loops' items and its
    own, so each (outer, inner) pair is one instance."""
    path = site.path
    if "artifactIterator" in site.task:
        reading.problem(
            (*path, "artifactIterator"),
            "a ParallelFor over artifacts inside another ParallelFor is not supported yet",
        )
        return None
    items = _items(reading, site, scope)
    if items is None:
        return None
    ref = items.single_ref() if isinstance(items, Template) else None
    producer = ref.task if ref is not None and ref.kind is RefKind.TASK_PARAMETER else None
    home = None if producer is None else reading.task_loops.get(producer)
    in_loop = home is not None and home.group in outer.chain
    reads_item = isinstance(items, Template) and placeholders.reads_item(items)
    if reads_item or in_loop:
        source = "item" if reads_item else "tasks"
        reading.problem(
            (*path, "parameterIterator", "items"),
            f"the items of a nested ParallelFor come from the enclosing loop's {source}; "
            "pipesync needs them independent of it (not supported yet)",
        )
        return None
    axes = outer.axes or [(outer.group, outer.items)]
    if not outer.axes:  # the enclosing loop's item is now one axis of a matrix item
        for key, value in scope.items():
            if value.kind is Kind.TEXT and placeholders.reads_item(value.template):
                moved = placeholders.on_axis(value.template, outer.group)
                scope[key] = dataclasses.replace(value, template=moved)
    iterator = mapping(site.task.get("parameterIterator"))
    scope[str(iterator.get("itemInput", ""))] = v.refers(placeholders.item(group))
    limits = [*(outer.limits or [outer.parallelism]), _limit(site.task)]
    axes = [*axes, (group, items)]
    loop = Loop(None, _product_limit(limits, axes), (*path, "parameterIterator"), group, axes=axes)
    loop.limits = limits
    loop.parent = outer
    reading.loops[group] = loop
    return loop


def _items(reading: Translation, site: Site, inputs: Mapping[str, Value]) -> Items | None:
    """A ParallelFor's items: a list, or the placeholder holding one; None (reported)
    when unusable."""
    iterator = mapping(site.task.get("parameterIterator"))
    ipath = (*site.path, "parameterIterator")
    items_spec = mapping(iterator.get("items"))
    items: Any
    if "raw" in items_spec:
        raw = items_spec["raw"]
        try:
            items = v.whole(json.loads(raw) if isinstance(raw, str) else raw)
        except ValueError:
            reading.problem((*ipath, "items", "raw"), "loop items are not a JSON list")
            return None
        if not isinstance(items, list):
            reading.problem((*ipath, "items", "raw"), "loop items are not a JSON list")
            return None
        return items
    source = inputs.get(str(items_spec.get("inputParameter", "")))
    if source is None or source.kind is not Kind.TEXT:
        reading.problem((*ipath, "items"), "loop items come from an input with no value")
        return None
    if source.literal:
        try:
            items = json.loads(source.text)
        except ValueError:
            items = None
        if not isinstance(items, list):
            reading.problem((*ipath, "items"), "loop items are not a list")
            return None
        return items
    if _holds_items(source.single_ref):
        return source.template
    reading.problem(
        (*ipath, "items"), "loop items must be a pipeline parameter or a task's output parameter"
    )
    return None


def _holds_items(ref: Ref | None) -> bool:
    return ref is not None and ref.kind in _ITEM_SOURCES


def _artifact_loop(
    reading: Translation, site: Site, inputs: Mapping[str, Value], scope: dict[str, Value]
) -> Loop | None:
    """A ParallelFor over the artifacts a loop collected (`dsl.Collected`): the body
    joins that loop's group, so iteration i reads the artifact of instance i (and
    starts as soon as that instance is done)."""
    iterator = mapping(site.task.get("artifactIterator"))
    ipath = (*site.path, "artifactIterator")
    source = inputs.get(str(mapping(iterator.get("items")).get("inputArtifact", "")))
    loop = reading.loops.get(source.loop) if source is not None else None
    if source is None or source.kind is not Kind.ARTIFACT or loop is None:
        reading.problem(
            (*ipath, "items"),
            "ParallelFor over artifacts is supported over the collected outputs of "
            "another ParallelFor (dsl.Collected) or a pipeline input list of artifacts only",
        )
        return None
    scope[str(iterator.get("itemInput", ""))] = source
    return loop


def nest(reading: Translation) -> None:
    """A nested loop's tasks read the enclosing loop's outputs per outer item: their
    group is `within` the nearest enclosing loop that has tasks of its own."""
    for loop in reading.loops.values():
        enclosing = loop.nearest_with_tasks()
        if enclosing is None:
            continue
        for body in loop.bodies:
            body["forEach"]["within"] = enclosing.group


def _limit(task: Mapping[str, Any]) -> int | None:
    parallelism = mapping(task.get("iteratorPolicy")).get("parallelismLimit")
    return int(parallelism) if parallelism else None


def _product_limit(limits: list[int | None], axes: list[tuple[str, Items | None]]) -> int | None:
    """A matrix's parallelism from the nested loops' limits: their product, a loop without
    one counting with its length when that is known (a literal list), else as 1: erring
    on fewer pods at once, since limits guard scarce resources."""
    if all(limit is None for limit in limits):
        return None
    total = 1
    for limit, (_, items) in zip(limits, axes, strict=True):
        if limit is not None:
            total *= limit
        elif isinstance(items, list):
            total *= max(len(items), 1)
    return total
