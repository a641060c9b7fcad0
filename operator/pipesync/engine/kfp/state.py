"""What the parts of the KFP reader share while one document is translated.

`Translation` holds the KFP document being read, the Pipeline body written so far (flat
tasks, the exit task, where each part of the body comes from in the KFP file) and the
problems found; each part of the reader (dag, parameters, loops, conditions, containers,
importer, outputs) reads and writes through it. The small records here say where a task
sits while the nested DAGs are flattened.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from pipesync.api.diagnostics import Diagnostic
from pipesync.api.yamlsource import Mark, Path, SourceDocument
from pipesync.engine.kfp.values import Value
from pipesync.engine.templating import Template

_DNS = re.compile(r"[^a-z0-9-]+")

#: A loop's items: a literal list, or the placeholder of a parameter or output holding one.
Items = list[Any] | Template


class Translation:
    """One KFP document (and its optional platform document) being read into a Pipeline."""

    def __init__(self, main: SourceDocument, platforms: SourceDocument | None) -> None:
        self.doc = main
        self.data: Mapping[str, Any] = main.data
        self.platforms = platforms
        self.problems: list[Diagnostic] = []
        self.marks: dict[Path, Mark] = {}
        self.tasks: list[dict[str, Any]] = []
        self.on_exit: dict[str, Any] | None = None
        self.components: Mapping[str, Any] = mapping(self.data.get("components"))
        self.loops: dict[str, Loop] = {}  # by group name
        self.task_loops: dict[str, Loop] = {}  # flat task name -> the loop it is in
        deployment = mapping(self.data.get("deploymentSpec"))
        self.executors: Mapping[str, Any] = mapping(deployment.get("executors"))
        self.here: Path = ()  # what is being read: where a value of the wrong type is
        self.depth = 0  # sub-DAGs being flattened, one inside the other

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(self.doc.diagnostic(path, message))

    def place(self, target: Path, source: Path) -> None:
        """Positions in the body at `target` point at `source` in the KFP file."""
        self.marks[target] = self.doc.mark(source)

    def at(self, path: Path) -> Any:
        """The KFP document's value at `path`, or None where there is none."""
        node: Any = self.data
        for part in path:
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return None
        return node


@dataclasses.dataclass(eq=False)  # one per ParallelFor: compared by identity
class Loop:
    """A ParallelFor: its items, and the pipesync forEach group its body's tasks form.

    A ParallelFor nested in another becomes a forEach matrix: `axes` holds each enclosing
    loop's items by its group name, then its own, and `{{item.GROUP}}` is each loop's item.
    """

    items: Items | None  # None for a matrix: its items are in `axes`
    parallelism: int | None
    path: Path
    group: str
    axes: list[tuple[str, Items | None]] | None = None
    parent: Loop | None = None  # the enclosing loop, for a nested one
    bodies: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # its own tasks
    limits: list[int | None] = dataclasses.field(default_factory=list)  # each axis's limit

    @property
    def chain(self) -> tuple[str, ...]:
        """Its group, then the enclosing loops' groups."""
        loop: Loop | None = self
        found: list[str] = []
        while loop is not None:
            found.append(loop.group)
            loop = loop.parent
        return tuple(found)

    def nearest_with_tasks(self) -> Loop | None:
        """The closest enclosing loop that has tasks of its own (a nested group's
        `within`: the one whose outputs its instances read per outer item)."""
        loop = self.parent
        while loop is not None and not loop.bodies:
            loop = loop.parent
        return loop


@dataclasses.dataclass(frozen=True)
class Context:
    """What a task inherits from the groups around it: the prefix of its flat name, the
    conditions (each with its place in the file), dependencies and the loop it is in."""

    prefix: str = ""
    when: tuple[tuple[Template, Path], ...] = ()
    deps: tuple[str, ...] = ()
    loop: Loop | None = None


@dataclasses.dataclass(frozen=True)
class Site:
    """The KFP task being translated: its name, its data and its path in the file."""

    name: str
    task: Mapping[str, Any]
    path: Path


@dataclasses.dataclass
class Dag:
    """One DAG being flattened: its inputs, context, and what its tasks became so far."""

    scope: Mapping[str, Value]
    context: Context
    flat: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    outputs: dict[str, dict[str, Value]] = dataclasses.field(default_factory=dict)


def mapping(value: Any) -> Mapping[str, Any]:
    """`value` when it is a mapping, else an empty one (the IR leaves out what is empty)."""
    return value if isinstance(value, dict) else {}


def dns(name: str) -> str:
    """`name` as a DNS label (how pipesync names pipelines, tasks and groups)."""
    return _DNS.sub("-", name.lower()).strip("-")[:63].strip("-")
