"""A pipeline spec checked and prepared for planning: templates parsed, edges resolved.

Everything the planner needs per task is computed here once per run, so planning is a
single pass over prepared data. Problems come back with a path inside the pipeline spec
(e.g. `("tasks", 2, "args", 1)`), which the caller turns into `file:line:col`.
"""

from __future__ import annotations

import dataclasses
import difflib
import heapq
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pipesync.api.model import ParamType, PipelineSpec, Task
from pipesync.engine import expressions, params, resources, templating
from pipesync.engine.templating import FILE_KINDS, Ref, RefKind, Template

SpecPath = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Problem:
    path: SpecPath
    message: str


@dataclasses.dataclass(frozen=True)
class InputBinding:
    name: str
    producer: int  # index of the producing task in CompiledPipeline.tasks
    artifact: str
    optional: bool
    # `{{tasks.A.outputs.artifacts.X|tasks.B.outputs.artifacts.Y}}`: (producer, artifact)
    # choices, the first whose producer succeeded is read (Launch.sources says which).
    alternatives: tuple[tuple[int, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Matrix:
    """forEach.matrix: one instance per combination of the axes' items (row-major)."""

    axes: tuple[tuple[str, tuple[Any, ...] | Ref], ...]


Items = tuple[Any, ...] | Ref | Matrix


@dataclasses.dataclass(frozen=True)
class CompiledTask:
    index: int
    task: Task
    argv: tuple[Template, ...]
    env: tuple[tuple[str, Template], ...]
    upstream: tuple[int, ...]  # every task this one waits for
    consumes: tuple[int, ...]  # upstream tasks whose outputs it reads
    when: expressions.Expr | None
    items: Items | None  # forEach: a literal list, the ref holding one, or a matrix
    inputs: tuple[InputBinding, ...]
    is_exit: bool = False
    # Groups of alternative producers ({{tasks.A...|tasks.B...}}): skipped only when all are.
    consumes_any: tuple[tuple[int, ...], ...] = ()
    group: str | None = None  # forEach.group: the loop body this task belongs to
    # Upstream tasks of the same group: instance i waits for (and reads) their instance i;
    # of an enclosing group (`outer`, also in `paired`): the instance of i's outer item; of
    # a group nested in this one (`inner`, also in `paired`): the instances under item i.
    paired: tuple[int, ...] = ()
    outer: tuple[int, ...] = ()
    inner: tuple[int, ...] = ()
    when_per_item: bool = False  # `when` reads the item or a paired output: per instance
    parallelism: int | None = None  # forEach cap (for a group: iterations running at once)
    # Resource fields written as placeholders (engine/resources.py renders them per attempt).
    resources: tuple[tuple[str, Template], ...] = ()

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def fan_out(self) -> bool:
        return self.items is not None

    def pairs_with(self, producer: int) -> bool:
        """Whether this task's instance i reads `producer`'s instance i (same group)."""
        return producer in self.paired


@dataclasses.dataclass(frozen=True)
class CompiledPipeline:
    spec: PipelineSpec
    tasks: tuple[CompiledTask, ...]  # in a topological order
    on_exit: CompiledTask | None
    downstream: tuple[tuple[int, ...], ...]
    positions: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def task(self, name: str) -> CompiledTask:
        return self.tasks[self.positions[name]]

    def at(self, key: tuple[int, int]) -> CompiledTask:
        """The task a node key names (an index past the tasks is onExit)."""
        index = key[0]
        if index < len(self.tasks):
            return self.tasks[index]
        if self.on_exit is None:
            raise KeyError(key)
        return self.on_exit

    def node_name(self, key: tuple[int, int]) -> str:
        """A node as status, Events and records name it: "train", "sweep[3]"."""
        name = self.at(key).name
        return name if key[1] < 0 else f"{name}[{key[1]}]"


@dataclasses.dataclass
class _Group:
    """What the members of one forEach group share, from the first member declaring it."""

    items: tuple[Any, ...] | str | None = None
    matrix: tuple[tuple[str, tuple[Any, ...] | str], ...] | None = None
    within: str | None = None
    parallelism: int | None = None
    declared_by: dict[str, str] = dataclasses.field(default_factory=dict)  # field -> task

    def share(self, field: str, value: Any, task: str) -> str | None:
        """Take a member's `field`; the first member to declare it sets it. A message
        when it differs from that member's."""
        if value is None:
            return None
        if field not in self.declared_by:
            self.declared_by[field] = task
            if field == "items":
                self.items, self.matrix = value
            else:
                setattr(self, field, value)
            return None
        current = (self.items, self.matrix) if field == "items" else getattr(self, field)
        if current == value:
            return None
        return f"forEach {field} of {task!r} differs from that of {self.declared_by[field]!r}"


class _Checker:
    """Collects problems while compiling each task."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.spec = spec
        self.problems: list[Problem] = []
        self.positions: dict[str, int] = {}
        self.params = {param.name: param for param in spec.params}
        self.groups: dict[str, _Group] = {}

    def enclosing(self, group: str | None) -> list[str]:
        """The groups `group` is nested in, innermost first (stops at a cycle)."""
        found: list[str] = []
        current = None if group is None else self.groups.get(group)
        while current is not None and current.within is not None:
            if current.within in found or current.within == group:
                break
            found.append(current.within)
            current = self.groups.get(current.within)
        return found

    def relation(self, group: str | None, producer: int) -> str | None:
        """How a task of forEach `group` reads `producer` instance-wise: "same" (the same
        group), "outer" (an enclosing group), "inner" (a group nested in it), or None."""
        theirs = self.group_of(producer)
        if group is None or theirs is None:
            return None
        if theirs == group:
            return "same"
        if theirs in self.enclosing(group):
            return "outer"
        if group in self.enclosing(theirs):
            return "inner"
        return None

    def group_of(self, index: int) -> str | None:
        for_each = self.spec.tasks[index].for_each
        return None if for_each is None else for_each.group

    def add(self, path: SpecPath, message: str) -> None:
        self.problems.append(Problem(path, message))

    def template(self, text: str, path: SpecPath) -> Template:
        try:
            return templating.parse(text)
        except templating.TemplateError as error:
            self.add(path, str(error))
            return Template((text,))

    def check_ref(self, ref: Ref, task: Task, path: SpecPath, *, exit_task: bool) -> int | None:
        """Whether `ref` may appear in this task; the producer index for task references."""
        if ref.kind is RefKind.PARAM and ref.name not in self.params:
            self.add(path, f"{ref} names an undeclared parameter {ref.name!r}")
        elif ref.kind is RefKind.ITEM and task.for_each is None:
            self.add(path, f"{ref} is only defined inside a task with forEach")
        elif ref.kind is RefKind.RUN and ref.name == "status" and not exit_task:
            self.add(path, f"{ref} is only defined in onExit")
        elif ref.kind is RefKind.INPUT_ARTIFACT:
            if ref.name not in {a.name for a in task.input_artifacts}:
                self.add(path, f"{ref}: task {task.name!r} declares no input artifact {ref.name!r}")
        elif ref.kind is RefKind.OUTPUT_ARTIFACT:
            if ref.name not in task.output_artifacts:
                self.add(
                    path, f"{ref}: task {task.name!r} declares no output artifact {ref.name!r}"
                )
        elif ref.kind is RefKind.OUTPUT_PARAMETER:
            if ref.name not in task.output_parameters:
                self.add(
                    path, f"{ref}: task {task.name!r} declares no output parameter {ref.name!r}"
                )
        elif ref.kind in (RefKind.TASK_PARAMETER, RefKind.TASK_ARTIFACT):
            return self.check_task_ref(ref, task, path, exit_task=exit_task)
        return None

    def check_task_ref(
        self, ref: Ref, task: Task, path: SpecPath, *, exit_task: bool
    ) -> int | None:
        producer = self.positions.get(ref.task)
        if producer is None:
            self.add(
                path,
                f"{ref} names an unknown task {ref.task!r}"
                + _did_you_mean(ref.task, self.positions),
            )
            return None
        if ref.task == task.name and not exit_task:
            self.add(path, f"{ref}: task {task.name!r} cannot read its own outputs")
            return None
        declared = self.spec.tasks[producer]
        if ref.kind is RefKind.TASK_PARAMETER and ref.name not in declared.output_parameters:
            self.add(path, f"{ref}: task {ref.task!r} declares no output parameter {ref.name!r}")
            return None
        if ref.kind is RefKind.TASK_ARTIFACT and ref.name not in declared.output_artifacts:
            self.add(path, f"{ref}: task {ref.task!r} declares no output artifact {ref.name!r}")
            return None
        return producer


def compile_pipeline(spec: PipelineSpec) -> tuple[CompiledPipeline | None, list[Problem]]:
    """The prepared pipeline, or None with every problem found (all at once)."""
    checker = _Checker(spec)
    for index, problem in params.check_declarations(spec.params):
        checker.add(("params", index), problem)
    for index, task in enumerate(spec.tasks):
        if task.name in checker.positions:
            checker.add(("tasks", index, "name"), f"duplicate task name {task.name!r}")
        else:
            checker.positions[task.name] = index
    if spec.on_exit is not None and spec.on_exit.name in checker.positions:
        checker.add(("onExit", "name"), f"onExit task name {spec.on_exit.name!r} is used by a task")
    _collect_groups(checker)
    _check_nesting(checker)

    drafts = [
        _compile_task(checker, index, task, ("tasks", index), exit_task=False)
        for index, task in enumerate(spec.tasks)
    ]
    on_exit = (
        None
        if spec.on_exit is None
        else _compile_task(checker, len(spec.tasks), spec.on_exit, ("onExit",), exit_task=True)
    )
    order = _topological_order(checker, drafts)
    if checker.problems or order is None:
        return None, checker.problems
    return _renumber(spec, drafts, order, on_exit), []


def _compile_task(
    checker: _Checker, index: int, task: Task, path: SpecPath, *, exit_task: bool
) -> CompiledTask:
    upstream: list[int] = []
    consumes: list[int] = []

    consumes_any: list[tuple[int, ...]] = []

    def use(ref: Ref, where: SpecPath) -> None:
        if ref.alternatives:
            found = [
                producer
                for choice in ref.alternatives
                if (producer := checker.check_ref(choice, task, where, exit_task=exit_task))
                is not None
            ]
            if not exit_task:
                upstream.extend(found)
                consumes_any.append(tuple(found))
            return
        producer = checker.check_ref(ref, task, where, exit_task=exit_task)
        if producer is not None and not exit_task:
            upstream.append(producer)
            consumes.append(producer)

    if not task.command and not task.args:
        checker.add(path, f"task {task.name!r} has neither command nor args")
    argv: list[Template] = []
    for field, values in (("command", task.command), ("args", task.args)):
        for position, text in enumerate(values):
            where = (*path, field, position)
            template = checker.template(text, where)
            for ref in template.refs:
                if ref.kind is RefKind.TASK_ARTIFACT:
                    checker.add(
                        where,
                        f"{ref} may only appear in inputs.artifacts.*.from; "
                        "declare an input artifact and use {{inputs.artifacts.NAME}}",
                    )
                    continue
                use(ref, where)
            argv.append(template)
    env: list[tuple[str, Template]] = []
    for name, value in task.env:
        where = (*path, "env")
        template = checker.template(value, where)
        for ref in template.refs:
            if ref.kind is RefKind.TASK_ARTIFACT:
                checker.add(where, f"{ref} may only appear in inputs.artifacts.*.from")
                continue
            use(ref, where)
        env.append((name, template))
    resource_templates = _compile_resources(checker, task, path, use)

    inputs = _compile_inputs(
        checker, task, path, (upstream, consumes, consumes_any), exit_task=exit_task
    )
    when = _compile_when(checker, task, path, use)
    items = _compile_items(checker, task, path, use)

    for position, dependency in enumerate(task.depends_on):
        where = (*path, "dependsOn", position)
        if dependency == task.name:
            checker.add(where, f"task {task.name!r} depends on itself")
        elif dependency not in checker.positions:
            checker.add(
                where,
                f"task {task.name!r} depends on unknown task {dependency!r}"
                + _did_you_mean(dependency, checker.positions),
            )
        else:
            upstream.append(checker.positions[dependency])
    group = None if task.for_each is None or exit_task else task.for_each.group
    relations = {p: checker.relation(group, p) for p in dict.fromkeys(upstream)}
    paired, outer, inner = (
        tuple(p for p, relation in relations.items() if relation == kind)
        for kind in ("same", "outer", "inner")
    )
    when_per_item = when is not None and any(
        ref.kind is RefKind.ITEM
        or (ref.kind is RefKind.TASK_PARAMETER and _paired_ref(checker, ref, group))
        for ref in expressions.refs(when)
    )
    _check_working_dir(checker, task, path)
    _check_volumes(checker, task, path)
    _check_duplicates(checker, task, path)
    return CompiledTask(
        index=index,
        task=task,
        argv=tuple(argv),
        env=tuple(env),
        upstream=tuple(dict.fromkeys(upstream)),
        consumes=tuple(dict.fromkeys(consumes)),
        when=when,
        items=items,
        inputs=inputs,
        is_exit=exit_task,
        consumes_any=tuple(dict.fromkeys(consumes_any)),
        group=group,
        paired=paired + outer + inner,
        outer=outer,
        inner=inner,
        when_per_item=when_per_item,
        parallelism=_parallelism(checker, task),
        resources=resource_templates,
    )


def _compile_resources(
    checker: _Checker, task: Task, path: SpecPath, use: Callable[[Ref, SpecPath], None]
) -> tuple[tuple[str, Template], ...]:
    """The templated resource fields: values (parameters, items, task output parameters)
    but no files, which a resource cannot be. A constant accelerator type must name a
    resource pipesync can ask for."""
    accelerator = task.resources.accelerator
    if accelerator and resources.accelerator_resource(accelerator) is None:
        checker.add(
            (*path, "resources", "accelerator"),
            f"accelerator {accelerator!r}: pipesync asks for {resources.SUPPORTED}",
        )
    compiled: list[tuple[str, Template]] = []
    for field, text in task.resources.templates:
        where = (*path, "resources", field)
        template = checker.template(text, where)
        for ref in template.refs:
            if ref.kind in FILE_KINDS or ref.kind is RefKind.TASK_ARTIFACT:
                checker.add(where, f"resources.{field}: {ref} is a file, not a value")
                continue
            use(ref, where)
        compiled.append((field, template))
    return tuple(compiled)


def _paired_ref(checker: _Checker, ref: Ref, group: str | None) -> bool:
    return any(
        (producer := checker.positions.get(choice.task)) is not None
        and checker.relation(group, producer) is not None
        for choice in ref.alternatives or (ref,)
    )


def _collect_groups(checker: _Checker) -> None:
    """The items and parallelism of each forEach group; members must agree."""
    for index, task in enumerate(checker.spec.tasks):
        for_each = task.for_each
        if for_each is None or for_each.group is None:
            continue
        group = checker.groups.setdefault(for_each.group, _Group())
        source = None if for_each.source is None else (for_each.items, for_each.matrix)
        for field, value in (
            ("items", source),
            ("within", for_each.within),
            ("parallelism", for_each.parallelism),
        ):
            problem = group.share(field, value, task.name)
            if problem is not None:
                checker.add(
                    ("tasks", index, "forEach", field),
                    f"{problem}, in the same group {for_each.group!r}",
                )


def _check_nesting(checker: _Checker) -> None:
    """`within` names another group, without cycles, whose items lead this group's matrix."""
    for index, task in enumerate(checker.spec.tasks):
        for_each = task.for_each
        if for_each is None or for_each.group is None or for_each.within is None:
            continue
        where = ("tasks", index, "forEach", "within")
        outer = checker.groups.get(for_each.within)
        inner = checker.groups[for_each.group]
        if outer is None or for_each.within == for_each.group:
            checker.add(where, f"forEach within names no other group: {for_each.within!r}")
            continue
        if for_each.group in checker.enclosing(for_each.within):
            checker.add(
                where,
                f"forEach groups {for_each.group!r} and {for_each.within!r} "
                "are nested within each other",
            )
            continue
        leading = (
            [values for _, values in outer.matrix] if outer.matrix is not None else [outer.items]
        )
        axes = [values for _, values in inner.matrix or ()]
        if axes[: len(leading)] != leading or len(axes) <= len(leading):
            checker.add(
                where,
                f"forEach group {for_each.group!r} within {for_each.within!r} needs a matrix "
                f"whose first axes are the items of {for_each.within!r}, then its own",
            )


def _parallelism(checker: _Checker, task: Task) -> int | None:
    if task.for_each is None:
        return None
    if task.for_each.group is not None:
        return checker.groups[task.for_each.group].parallelism
    return task.for_each.parallelism


def _compile_inputs(
    checker: _Checker,
    task: Task,
    path: SpecPath,
    edges: tuple[list[int], list[int], list[tuple[int, ...]]],
    *,
    exit_task: bool,
) -> tuple[InputBinding, ...]:
    upstream, consumes, consumes_any = edges
    bindings: list[InputBinding] = []
    for artifact in task.input_artifacts:
        where = (*path, "inputs", "artifacts", artifact.name, "from")
        template = checker.template(artifact.source, where)
        ref = template.single_ref()
        if ref is None or ref.kind is not RefKind.TASK_ARTIFACT:
            checker.add(
                where,
                f"input artifact {artifact.name!r} must come from exactly one "
                "{{tasks.TASK.outputs.artifacts.NAME}} placeholder (or alternatives of them)",
            )
            continue
        choices = [
            (producer, choice.name)
            for choice in ref.alternatives or (ref,)
            if (producer := checker.check_task_ref(choice, task, where, exit_task=exit_task))
            is not None
        ]
        if len(choices) != len(ref.alternatives or (ref,)):
            continue
        if not exit_task:
            upstream.extend(producer for producer, _ in choices)
            # a skipped producer leaves an optional input absent
            if ref.alternatives and not artifact.optional:
                consumes_any.append(tuple(producer for producer, _ in choices))
            elif not artifact.optional:
                consumes.append(choices[0][0])
        bindings.append(
            InputBinding(
                artifact.name,
                choices[0][0],
                choices[0][1],
                artifact.optional,
                alternatives=tuple(choices) if ref.alternatives else (),
            )
        )
    return tuple(bindings)


def _compile_when(
    checker: _Checker, task: Task, path: SpecPath, use: Any
) -> expressions.Expr | None:
    if task.when is None:
        return None
    where = (*path, "when")
    try:
        expr = expressions.parse(task.when)
    except expressions.ExpressionError as error:
        checker.add(where, f"invalid when expression: {error}")
        return None
    for ref in expressions.refs(expr):
        if ref.kind in (
            RefKind.TASK_ARTIFACT,
            RefKind.INPUT_ARTIFACT,
            RefKind.OUTPUT_ARTIFACT,
            RefKind.OUTPUT_PARAMETER,
            RefKind.TASK_UID,
        ):
            checker.add(where, f"{ref} is not a value; when can only read parameters and outputs")
            continue
        use(ref, where)
    return expr


def _compile_items(checker: _Checker, task: Task, path: SpecPath, use: Any) -> Items | None:
    if task.for_each is None:
        return None
    matrix, items = task.for_each.matrix, task.for_each.items
    if task.for_each.source is None and task.for_each.group is not None:
        shared = checker.groups[task.for_each.group]
        matrix, items = shared.matrix, shared.items
    if matrix is not None:
        axes = [
            (axis, _compile_list(checker, values, (*path, "forEach", "matrix", axis), use))
            for axis, values in matrix
        ]
        if any(values is None for _, values in axes):
            return None
        return Matrix(tuple((axis, values) for axis, values in axes if values is not None))
    if items is None:
        checker.add(
            (*path, "forEach"),
            f"forEach group {task.for_each.group!r} has no items: give forEach.items on "
            "one of its tasks",
        )
        return None
    return _compile_list(checker, items, (*path, "forEach", "items"), use)


def _compile_list(
    checker: _Checker, items: tuple[Any, ...] | str, where: SpecPath, use: Any
) -> tuple[Any, ...] | Ref | None:
    """A literal list, or the placeholder that will hold one."""
    if not isinstance(items, str):
        return tuple(items)
    template = checker.template(items, where)
    ref = template.single_ref()
    if ref is None or ref.kind not in (RefKind.PARAM, RefKind.TASK_PARAMETER):
        checker.add(
            where,
            "forEach items must be a list, or exactly one {{params.NAME}} or "
            "{{tasks.TASK.outputs.parameters.NAME}} placeholder holding a JSON list",
        )
        return None
    if ref.kind is RefKind.PARAM:
        declared = checker.params.get(ref.name)
        if declared is not None and declared.type not in (ParamType.LIST, ParamType.STRING):
            checker.add(
                where,
                f"forEach over {ref}: parameter {ref.name!r} is "
                f"{params.described(declared.type)}, not a list",
            )
    use(ref, where)
    return ref


def _check_working_dir(checker: _Checker, task: Task, path: SpecPath) -> None:
    directory = task.working_dir
    if directory is None:
        return
    parts = directory.replace("\\", "/").split("/")
    if directory.startswith("/") or ".." in parts:
        checker.add(
            (*path, "workingDir"),
            f"workingDir {directory!r} must be a relative path inside the repository",
        )


#: Where pipesync mounts its own volume in every task container (runtime.pods.MOUNT_PATH).
RESERVED_MOUNT = "/pipesync"
RESERVED_VOLUME = "pipesync"


def _check_volumes(checker: _Checker, task: Task, path: SpecPath) -> None:
    names: set[str] = set()
    mounts: set[str] = set()
    for position, volume in enumerate(task.volumes):
        where = (*path, "volumes", position)
        mount = volume.mount_path.rstrip("/") or "/"
        if volume.name == RESERVED_VOLUME or volume.name in names:
            checker.add((*where, "name"), f"volume name {volume.name!r} is reserved or repeated")
        reserved = mount in {"/", RESERVED_MOUNT} or mount.startswith(RESERVED_MOUNT + "/")
        if reserved or ".." in mount.split("/"):
            checker.add(
                (*where, "mountPath"),
                f"mountPath {volume.mount_path!r} must be an absolute path outside "
                f"{RESERVED_MOUNT} (pipesync's own mount), without '..'",
            )
        elif mount in mounts:
            checker.add((*where, "mountPath"), f"two volumes are mounted at {mount!r}")
        names.add(volume.name)
        mounts.add(mount)


def _check_duplicates(checker: _Checker, task: Task, path: SpecPath) -> None:
    for field, names in (
        ("parameters", task.output_parameters),
        ("artifacts", task.output_artifacts),
    ):
        seen: set[str] = set()
        for position, name in enumerate(names):
            if name in seen:
                checker.add(
                    (*path, "outputs", field, position), f"duplicate output {field[:-1]} {name!r}"
                )
            seen.add(name)


def _topological_order(checker: _Checker, drafts: Sequence[CompiledTask]) -> list[int] | None:
    """Kahn's algorithm, keeping declaration order among independent tasks; a cycle is named."""
    indegree = [0] * len(drafts)
    downstream: list[list[int]] = [[] for _ in drafts]
    for draft in drafts:
        for producer in draft.upstream:
            indegree[draft.index] += 1
            downstream[producer].append(draft.index)
    ready = [index for index, degree in enumerate(indegree) if degree == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for child in downstream[index]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, child)
    if len(order) == len(drafts):
        return order
    remaining = {index for index, degree in enumerate(indegree) if degree > 0}
    cycle = _find_cycle(drafts, remaining)
    names = " -> ".join(drafts[index].name for index in cycle)
    checker.add(("tasks", cycle[0], "dependsOn"), f"dependency cycle: {names}")
    return None


def _find_cycle(drafts: Sequence[CompiledTask], remaining: set[int]) -> list[int]:
    """Walk upstream edges inside the unresolved set until a node repeats."""
    start = min(remaining)
    seen: dict[int, int] = {}
    path: list[int] = []
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(p for p in drafts[node].upstream if p in remaining)
    cycle = path[seen[node] :]
    cycle.reverse()  # upstream walk: reverse to read in dependency direction
    first = cycle.index(min(cycle))  # start at the first declared task: stable messages
    cycle = cycle[first:] + cycle[:first]
    return [*cycle, cycle[0]]


def _renumber(
    spec: PipelineSpec,
    drafts: Sequence[CompiledTask],
    order: list[int],
    on_exit: CompiledTask | None,
) -> CompiledPipeline:
    """Tasks re-indexed into topological order, so the planner walks them front to back."""
    new_index = {old: new for new, old in enumerate(order)}

    def moved(draft: CompiledTask, index: int) -> CompiledTask:
        return dataclasses.replace(
            draft,
            index=index,
            upstream=_mapped(draft.upstream, new_index),
            consumes=_mapped(draft.consumes, new_index),
            consumes_any=tuple(_mapped(group, new_index) for group in draft.consumes_any),
            paired=_mapped(draft.paired, new_index),
            outer=_mapped(draft.outer, new_index),
            inner=_mapped(draft.inner, new_index),
            inputs=tuple(
                dataclasses.replace(
                    b,
                    producer=new_index[b.producer],
                    alternatives=tuple((new_index[p], a) for p, a in b.alternatives),
                )
                for b in draft.inputs
            ),
        )

    tasks = tuple(moved(drafts[old], new) for new, old in enumerate(order))
    exit_task = None if on_exit is None else moved(on_exit, len(tasks))
    downstream: list[list[int]] = [[] for _ in tasks]
    for compiled in tasks:
        for producer in compiled.upstream:
            downstream[producer].append(compiled.index)
    return CompiledPipeline(
        spec,
        tasks,
        exit_task,
        tuple(tuple(d) for d in downstream),
        {compiled.name: compiled.index for compiled in tasks},
    )


def _mapped(indices: Iterable[int], new_index: dict[int, int]) -> tuple[int, ...]:
    return tuple(new_index[i] for i in indices)


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    """`; did you mean 'prepare'?` for a near miss, else the task names there are."""
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f" (tasks here: {shown})" if names else ""
