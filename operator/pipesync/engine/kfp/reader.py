"""A KFP v2 pipeline (the SDK's compiled "IR" YAML) as a pipesync Pipeline document.

The IR nests sub-DAGs for conditions, loops, exit handlers and pipelines used as
components; pipesync runs a flat DAG. The reader flattens: each container task becomes
one pipesync task, group conditions become its `when`, a loop becomes its `forEach`,
the exit handler's task becomes `onExit`, DAG outputs are followed to the task that
produces them. The result is an ordinary Pipeline body, so the same schema, compiler,
planner, local executor and operator run it; its positions point into the KFP file.

What pipesync cannot run is reported with the place in the KFP file, all at once.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from pipesync.api.diagnostics import Diagnostic
from pipesync.api.yamlsource import Mark, Path, SourceDocument
from pipesync.engine.kfp import cel, commands, importer, platform, shim
from pipesync.engine.kfp import values as v
from pipesync.engine.kfp.values import Kind, Value

#: Sub-DAGs the SDK generates for control flow: flattened without a name prefix.
_GROUP = re.compile(r"^(condition|condition-branches|for-loop|exit-handler)-\d+$")
_SELECTOR = re.compile(r"""^parseJson\(string_value\)\[\s*(['"])(?P<key>[A-Za-z_][\w-]*)\1\s*\]$""")
_DNS = re.compile(r"[^a-z0-9-]+")
_TASK_OUTPUT = re.compile(r"^\{\{tasks\.([a-z0-9-]+)\.outputs\.parameters\.")
_ITEM = re.compile(r"\{\{item(\}\}|\.)")
_TYPES = {
    "STRING": "string",
    "NUMBER_INTEGER": "integer",
    "NUMBER_DOUBLE": "number",
    "BOOLEAN": "boolean",
    "LIST": "list",
    "STRUCT": "object",
}
_ALL_DONE = "ALL_UPSTREAM_TASKS_COMPLETED"
#: Sub-DAGs nested deeper are refused: the SDK nests one per dsl.If/ParallelFor/pipeline,
#: and the reader recurses once per level (a component that uses itself never ends).
MAX_DAG_DEPTH = 50
#: What a value of the wrong type in the IR raises while it is read; `translate` reports
#: it at the place being read (`Reader.here`) instead of letting it escape.
SHAPE_ERRORS = (TypeError, AttributeError, ValueError, KeyError, IndexError)


class _Loop:
    """A ParallelFor: its items, and the pipesync forEach group its body's tasks form.

    A ParallelFor nested in another becomes a forEach matrix: `axes` holds each enclosing
    loop's items by its group name, then its own, and `{{item.GROUP}}` is each loop's item.
    """

    def __init__(
        self,
        items: Any,
        parallelism: int | None,
        path: Path,
        group: str,
        axes: list[tuple[str, Any]] | None = None,
    ) -> None:
        self.items = items
        self.parallelism = parallelism
        self.path = path
        self.group = group
        self.axes = axes
        self.parent: _Loop | None = None  # the enclosing loop, for a nested one
        self.bodies: list[dict[str, Any]] = []  # the pipesync tasks directly in its body
        self.limits: list[int | None] = []  # each axis's own parallelismLimit (a matrix)

    @property
    def chain(self) -> tuple[str, ...]:
        """Its group, then the enclosing loops' groups."""
        loop: _Loop | None = self
        found: list[str] = []
        while loop is not None:
            found.append(loop.group)
            loop = loop.parent
        return tuple(found)

    def nearest_with_tasks(self) -> _Loop | None:
        """The closest enclosing loop that has tasks of its own (a nested group's
        `within`: the one whose outputs its instances read per outer item)."""
        loop = self.parent
        while loop is not None and not loop.bodies:
            loop = loop.parent
        return loop


class _Context:
    def __init__(
        self,
        prefix: str = "",
        when: tuple[tuple[str, Path], ...] = (),
        deps: tuple[str, ...] = (),
        loop: _Loop | None = None,
    ) -> None:
        self.prefix = prefix
        self.when = when
        self.deps = deps
        self.loop = loop


@dataclasses.dataclass(frozen=True)
class _Site:
    """The KFP task being translated: its name, its data and its path in the file."""

    name: str
    task: Mapping[str, Any]
    path: Path


@dataclasses.dataclass
class _Dag:
    """One DAG being flattened: its inputs, context, and what its tasks became so far."""

    scope: Mapping[str, Value]
    context: _Context
    flat: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    outputs: dict[str, dict[str, Value]] = dataclasses.field(default_factory=dict)


class Reader:
    """One KFP document (and its optional platform document) to a Pipeline body."""

    def __init__(self, main: SourceDocument, platforms: SourceDocument | None) -> None:
        self.doc = main
        self.data: Mapping[str, Any] = main.data
        self.platforms = platforms
        self.problems: list[Diagnostic] = []
        self.marks: dict[Path, Mark] = {}
        self.tasks: list[dict[str, Any]] = []
        self.on_exit: dict[str, Any] | None = None
        self.components: Mapping[str, Any] = _mapping(self.data.get("components"))
        self.loops: dict[str, _Loop] = {}  # by group name
        self.task_loops: dict[str, _Loop] = {}  # flat task name -> the loop it is in
        deployment = _mapping(self.data.get("deploymentSpec"))
        self.executors: Mapping[str, Any] = _mapping(deployment.get("executors"))
        self.here: Path = ()  # what is being read: where a value of the wrong type is
        self.depth = 0  # sub-DAGs being flattened, one inside the other

    # --- entry ------------------------------------------------------------------------

    def problem(self, path: Path, message: str) -> None:
        self.problems.append(self.doc.diagnostic(path, message))

    def place(self, target: Path, source: Path) -> None:
        self.marks[target] = self.doc.mark(source)

    def pipeline(self) -> dict[str, Any]:
        info = _mapping(self.data.get("pipelineInfo"))
        raw_name = str(info.get("name", "kfp-pipeline"))
        name = _dns(raw_name) or "kfp-pipeline"
        self.place(("metadata", "name"), ("pipelineInfo", "name"))
        self.place((), ())
        root = _mapping(self.data.get("root"))
        spec: dict[str, Any] = {}
        if info.get("description") or info.get("displayName"):
            spec["description"] = str(info.get("description") or info.get("displayName"))
        params = self.params(root)
        scope = {p["name"]: v.text("{{params." + p["name"] + "}}") for p in params}
        artifacts = _mapping(_mapping(root.get("inputDefinitions")).get("artifacts"))
        for artifact, definition in artifacts.items():
            self.here = ("root", "inputDefinitions", "artifacts", artifact)
            listed = bool(_mapping(definition).get("isArtifactList"))
            scope[artifact] = self.input_artifact(str(artifact), params, listed=listed)
        if params:
            spec["params"] = params
        if "dag" not in root:
            self.problem(("root",), "root has no dag")
        else:
            self.walk(("root", "dag"), scope, _Context(), root_level=True)
        self.nest()
        spec["tasks"] = self.tasks
        if self.on_exit is not None:
            spec["onExit"] = self.on_exit
        return {
            "apiVersion": "pipesync.io/v1alpha1",
            "kind": "Pipeline",
            "metadata": {
                "name": name,
                "annotations": {
                    "pipesync.io/format": "kfp-ir",
                    "pipesync.io/kfp-pipeline-name": raw_name,
                },
            },
            "spec": spec,
        }

    def params(self, root: Mapping[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        definitions = _mapping(_mapping(root.get("inputDefinitions")).get("parameters"))
        for index, (name, definition) in enumerate(definitions.items()):
            path = ("root", "inputDefinitions", "parameters", name)
            self.here = path
            kind = str(_mapping(definition).get("parameterType", "STRING"))
            param: dict[str, Any] = {"name": name, "type": _TYPES.get(kind, "string")}
            if kind not in _TYPES:
                self.problem((*path, "parameterType"), f"parameter type {kind} is not supported")
            if "defaultValue" in definition:
                default = v.whole(definition["defaultValue"])
                if kind == "NUMBER_INTEGER" and isinstance(default, float):
                    default = int(default)
                param["default"] = default
            elif definition.get("isOptional"):
                param["default"] = None
            if definition.get("description"):
                param["description"] = str(definition["description"])
            self.place(("spec", "params", index), path)
            found.append(param)
        return found

    # --- DAGs -------------------------------------------------------------------------

    def walk(
        self, dag_path: Path, scope: Mapping[str, Value], context: _Context, *, root_level: bool
    ) -> tuple[dict[str, list[str]], dict[str, dict[str, Value]]]:
        """Flatten one DAG: the flat names of each of its tasks, and their outputs."""
        state = _Dag(scope, context)
        if self.depth >= MAX_DAG_DEPTH:
            self.problem(
                dag_path,
                f"groups (conditions, loops, pipelines as components) nested more than "
                f"{MAX_DAG_DEPTH} deep, or a component that contains itself; refusing it",
            )
            return state.flat, state.outputs
        self.depth += 1
        try:
            self._walk_tasks(dag_path, state, root_level=root_level)
        finally:
            self.depth -= 1
        return state.flat, state.outputs

    def _walk_tasks(self, dag_path: Path, state: _Dag, *, root_level: bool) -> None:
        context = state.context
        dag = _mapping(self.at(dag_path))
        self.here = dag_path
        tasks = _mapping(dag.get("tasks"))
        for name in _order(tasks):
            path = (*dag_path, "tasks", name)
            self.here = path
            task = _mapping(tasks[name])
            site = _Site(name, task, path)
            if _ignores_failures(task) and _is_exit_task(task):
                if not root_level or context.loop is not None:
                    self.problem(path, "an exit handler task is only supported at the top level")
                elif self.on_exit is not None:
                    self.problem(path, "only one exit handler per pipeline is supported")
                else:
                    self.exit_task(site, state)
                continue
            self.task(site, state)

    def at(self, path: Path) -> Any:
        node: Any = self.data
        for part in path:
            if isinstance(node, dict):
                node = node.get(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return None
        return node

    def task(self, site: _Site, dag: _Dag) -> None:
        name, task, path, context = site.name, site.task, site.path, dag.context
        component_name = str(_mapping(task.get("componentRef")).get("name", ""))
        component = self.components.get(component_name)
        if not isinstance(component, dict):
            self.problem((*path, "componentRef"), f"unknown component {component_name!r}")
            return
        inputs = self.inputs(site, component, dag)
        deps = list(context.deps)
        for dependency in task.get("dependentTasks") or ():
            deps.extend(dag.flat.get(str(dependency), ()))
        when = context.when
        condition = _mapping(task.get("triggerPolicy")).get("condition")
        if condition:
            translated = self.condition(
                str(condition), (*path, "triggerPolicy", "condition"), component, inputs
            )
            if translated is not None:
                when = (*when, (translated, (*path, "triggerPolicy", "condition")))
        inner = _Context(context.prefix, when, tuple(dict.fromkeys(deps)), context.loop)
        if "dag" in component and _ignores_failures(task):
            self.problem(
                (*path, "triggerPolicy", "strategy"),
                f"{name!r}: ignore_upstream_failure on a pipeline or group is not supported yet",
            )
        elif "dag" in component:
            self.group(site, component_name, inputs, inner, dag)
        elif "executorLabel" in component:
            created = self.container(site, component, inputs, inner)
            if created is not None and _ignores_failures(task):
                self.tasks[-1]["ignoreUpstreamFailure"] = True
            dag.flat[name] = [] if created is None else [created]
            dag.outputs[name] = self.task_outputs(created, component, inner) if created else {}
        else:
            self.problem(
                (*path, "componentRef"), f"component {component_name!r} has no dag or executor"
            )

    def group(
        self,
        site: _Site,
        component_name: str,
        inputs: dict[str, Value],
        context: _Context,
        dag: _Dag,
    ) -> None:
        name, task = site.name, site.task
        prefix = context.prefix if _GROUP.match(name) else f"{context.prefix}{name}--"
        loop = context.loop
        scope = dict(inputs)
        when = context.when
        if "parameterIterator" in task or "artifactIterator" in task:
            group = _dns(prefix + name) or "loop"
            if loop is None:
                loop = self.loop(site, group, inputs, scope)
            else:
                loop = self.nested_loop(site, group, loop, scope)
                if loop is not None and context.loop is not None and not context.loop.axes:
                    axis = context.loop.group
                    when = tuple((_requalify(text, axis), place) for text, place in when)
            if loop is None:
                return
        inner = _Context(prefix, when, context.deps, loop)
        dag_path = ("components", component_name, "dag")
        names, produced = self.walk(dag_path, scope, inner, root_level=False)
        dag.flat[name] = [n for group in names.values() for n in group]
        dag.outputs[name] = self.dag_outputs(dag_path, produced)

    def loop(
        self, site: _Site, group: str, inputs: Mapping[str, Value], scope: dict[str, Value]
    ) -> _Loop | None:
        """The loop a ParallelFor task opens; its item goes into the body's scope."""
        if "artifactIterator" in site.task:
            return self.artifact_loop(site, inputs, scope)
        items = self.loop_items(site, inputs)
        if items is None:
            return None
        iterator = _mapping(site.task.get("parameterIterator"))
        scope[str(iterator.get("itemInput", ""))] = v.text("{{item}}")
        loop = _Loop(items, _limit(site.task), (*site.path, "parameterIterator"), group)
        self.loops[group] = loop
        return loop

    def nested_loop(
        self, site: _Site, group: str, outer: _Loop, scope: dict[str, Value]
    ) -> _Loop | None:
        """A ParallelFor inside another: a matrix over the enclosing loops' items and its
        own, so each (outer, inner) pair is one instance."""
        path = site.path
        if "artifactIterator" in site.task:
            self.problem(
                (*path, "artifactIterator"),
                "a ParallelFor over artifacts inside another ParallelFor is not supported yet",
            )
            return None
        items = self.loop_items(site, scope)
        if items is None:
            return None
        producer = _TASK_OUTPUT.match(items) if isinstance(items, str) else None
        home = None if producer is None else self.task_loops.get(producer.group(1))
        in_loop = home is not None and home.group in outer.chain
        if isinstance(items, str) and ("{{item" in items or in_loop):
            source = "item" if "{{item" in items else "tasks"
            self.problem(
                (*path, "parameterIterator", "items"),
                f"the items of a nested ParallelFor come from the enclosing loop's {source}; "
                "pipesync needs them independent of it (not supported yet)",
            )
            return None
        axes = outer.axes or [(outer.group, outer.items)]
        if not outer.axes:  # the enclosing loop's item is now one axis of a matrix item
            for key, value in scope.items():
                if value.kind is Kind.TEXT and "{{item" in value.text:
                    scope[key] = dataclasses.replace(
                        value, text=_requalify(value.text, outer.group)
                    )
        iterator = _mapping(site.task.get("parameterIterator"))
        scope[str(iterator.get("itemInput", ""))] = v.text("{{item." + group + "}}")
        limits = [*(outer.limits or [outer.parallelism]), _limit(site.task)]
        axes = [*axes, (group, items)]
        loop = _Loop(
            None, _product_limit(limits, axes), (*path, "parameterIterator"), group, axes=axes
        )
        loop.limits = limits
        loop.parent = outer
        self.loops[group] = loop
        return loop

    def loop_items(self, site: _Site, inputs: Mapping[str, Value]) -> Any:
        """A ParallelFor's items: a list, or the placeholder holding one; None (reported)
        when unusable."""
        iterator = _mapping(site.task.get("parameterIterator"))
        ipath = (*site.path, "parameterIterator")
        items_spec = _mapping(iterator.get("items"))
        items: Any
        if "raw" in items_spec:
            raw = items_spec["raw"]
            try:
                items = v.whole(json.loads(raw) if isinstance(raw, str) else raw)
            except ValueError:
                self.problem((*ipath, "items", "raw"), "loop items are not a JSON list")
                return None
            if not isinstance(items, list):
                self.problem((*ipath, "items", "raw"), "loop items are not a JSON list")
                return None
        else:
            source = inputs.get(str(items_spec.get("inputParameter", "")))
            if source is None or source.kind is not Kind.TEXT:
                self.problem((*ipath, "items"), "loop items come from an input with no value")
                return None
            if source.literal:
                try:
                    items = json.loads(source.text)
                except ValueError:
                    items = None
                if not isinstance(items, list):
                    self.problem((*ipath, "items"), "loop items are not a list")
                    return None
            elif source.single_placeholder and (
                source.text.startswith(("{{params.", "{{item"))
                or ".outputs.parameters." in source.text
            ):
                items = source.text
            else:
                self.problem(
                    (*ipath, "items"),
                    "loop items must be a pipeline parameter or a task's output parameter",
                )
                return None
        return items

    def artifact_loop(
        self, site: _Site, inputs: Mapping[str, Value], scope: dict[str, Value]
    ) -> _Loop | None:
        """A ParallelFor over the artifacts a loop collected (`dsl.Collected`): the body
        joins that loop's group, so iteration i reads the artifact of instance i (and
        starts as soon as that instance is done)."""
        iterator = _mapping(site.task.get("artifactIterator"))
        ipath = (*site.path, "artifactIterator")
        source = inputs.get(str(_mapping(iterator.get("items")).get("inputArtifact", "")))
        loop = self.loops.get(source.loop) if source is not None else None
        if source is None or source.kind is not Kind.ARTIFACT or loop is None:
            self.problem(
                (*ipath, "items"),
                "ParallelFor over artifacts is supported over the collected outputs of "
                "another ParallelFor (dsl.Collected) or a pipeline input list of artifacts only",
            )
            return None
        scope[str(iterator.get("itemInput", ""))] = source
        return loop

    def nest(self) -> None:
        """A nested loop's tasks read the enclosing loop's outputs per outer item: their
        group is `within` the nearest enclosing loop that has tasks of its own."""
        for loop in self.loops.values():
            enclosing = loop.nearest_with_tasks()
            if enclosing is None:
                continue
            for body in loop.bodies:
                body["forEach"]["within"] = enclosing.group

    def dag_outputs(
        self, dag_path: Path, produced: Mapping[str, Mapping[str, Value]]
    ) -> dict[str, Value]:
        found: dict[str, Value] = {}
        outputs = _mapping(_mapping(self.at(dag_path)).get("outputs"))
        for key, spec in _mapping(outputs.get("parameters")).items():
            path = (*dag_path, "outputs", "parameters", key)
            if "valueFromOneof" in spec:
                found[key] = self.one_of(path, key, spec["valueFromOneof"], produced)
                continue
            selector = _mapping(spec.get("valueFromParameter"))
            value = produced.get(str(selector.get("producerSubtask")), {}).get(
                str(selector.get("outputParameterKey"))
            )
            if value is not None:
                found[key] = value
        for key, spec in _mapping(outputs.get("artifacts")).items():
            path = (*dag_path, "outputs", "artifacts", key)
            chosen = [
                produced.get(str(selector.get("producerSubtask")), {}).get(
                    str(selector.get("outputArtifactKey"))
                )
                for selector in map(_mapping, spec.get("artifactSelectors") or [])
            ]
            if len(chosen) == 1 and chosen[0] is not None:
                found[key] = chosen[0]
            elif len(chosen) > 1:
                found[key] = self.one_of_artifacts(path, key, chosen)
        return found

    def one_of_artifacts(self, path: Path, key: str, chosen: list[Value | None]) -> Value:
        """`dsl.OneOf` over artifacts: the artifact of whichever branch ran."""
        values = [value for value in chosen if value is not None]
        simple = all(
            value.kind is Kind.ARTIFACT and not value.loop and not value.choices for value in values
        )
        if len(values) != len(chosen) or not simple:
            self.problem(path, f"DAG output {key!r}: OneOf over these outputs is not supported")
            return v.ABSENT  # reported once here, not again at each reader
        first = values[0]
        return dataclasses.replace(
            first,
            meta=all(value.meta for value in values),
            choices=tuple((value.task, value.name) for value in values),
        )

    def one_of(
        self,
        path: Path,
        key: str,
        spec: Any,
        produced: Mapping[str, Mapping[str, Value]],
    ) -> Value:
        """`dsl.OneOf`: the output of whichever branch ran, as `{{A|B}}` alternatives."""
        choices: list[str] = []
        for item in _mapping(spec).get("parameterSelectors") or []:
            selector = _mapping(item)
            value = produced.get(str(selector.get("producerSubtask")), {}).get(
                str(selector.get("outputParameterKey"))
            )
            if value is None or not value.single_placeholder or "|" in value.text:
                break
            choices.append(value.text[2:-2])
        else:
            if choices:
                return v.text("{{" + "|".join(choices) + "}}")
        self.problem(path, f"DAG output {key!r}: OneOf over these outputs is not supported yet")
        return v.ABSENT  # reported once here, not again at each reader

    # --- inputs -----------------------------------------------------------------------

    def inputs(self, site: _Site, component: Mapping[str, Any], dag: _Dag) -> dict[str, Value]:
        task, path, scope, outputs = site.task, site.path, dag.scope, dag.outputs
        given = _mapping(task.get("inputs"))
        definitions = _mapping(component.get("inputDefinitions"))
        parameter_defs = _mapping(definitions.get("parameters"))
        resolved: dict[str, Value] = {}
        constants: list[tuple[str, Any, Path]] = []
        for name, spec in _mapping(given.get("parameters")).items():
            where = (*path, "inputs", "parameters", name)
            if "runtimeValue" in spec:
                constants.append((name, _mapping(spec["runtimeValue"]).get("constant"), where))
                continue
            value = self.parameter(spec, where, scope, outputs)
            if value is not None:
                resolved[name] = value
        for name, constant, where in constants:
            kind = str(_mapping(parameter_defs.get(name)).get("parameterType", "STRING"))
            io = commands.TaskIO(dag.context.prefix + site.name, resolved)
            resolved[name] = self.constant(constant, kind, where, io)
        for name, spec in _mapping(given.get("artifacts")).items():
            where = (*path, "inputs", "artifacts", name)
            value = self.artifact(spec, where, scope, outputs)
            if value is not None:
                resolved[name] = value
        for name, definition in parameter_defs.items():
            if name not in resolved:
                if "defaultValue" in definition:
                    kind = str(definition.get("parameterType", "STRING"))
                    resolved[name] = v.constant(definition["defaultValue"], kind)
                else:
                    resolved[name] = v.ABSENT
        for name in _mapping(definitions.get("artifacts")):
            resolved.setdefault(name, v.ABSENT)
        return resolved

    def parameter(
        self,
        spec: Mapping[str, Any],
        where: Path,
        scope: Mapping[str, Value],
        outputs: Mapping[str, Mapping[str, Value]],
    ) -> Value | None:
        if "componentInputParameter" in spec:
            value = scope.get(str(spec["componentInputParameter"]))
            if value is None:
                self.problem(where, f"unknown input {spec['componentInputParameter']!r}")
                return None
            selector = spec.get("parameterExpressionSelector")
            if selector:
                match = _SELECTOR.match(str(selector).strip())
                if match is None or not (
                    value.single_placeholder and _ITEM.match(value.text) is not None
                ):
                    self.problem(
                        (*where, "parameterExpressionSelector"),
                        f"selector {selector!r} is only supported on a loop item as "
                        'parseJson(string_value)["key"]',
                    )
                    return None
                return v.text(value.text[:-2] + "." + match.group("key") + "}}")
            return value
        if "taskOutputParameter" in spec:
            source = _mapping(spec["taskOutputParameter"])
            producer, key = str(source.get("producerTask")), str(source.get("outputParameterKey"))
            value = outputs.get(producer, {}).get(key)
            if value is None:
                self.problem(where, f"output {key!r} of task {producer!r} is not available here")
            return None if value is v.ABSENT else value
        if "taskFinalStatus" in spec:
            return Value(
                Kind.STATUS, group=str(_mapping(spec["taskFinalStatus"]).get("producerTask"))
            )
        self.problem(where, f"unsupported input source {', '.join(spec) or 'empty'}")
        return None

    def constant(self, constant: Any, kind: str, where: Path, io: commands.TaskIO) -> Value:
        if not isinstance(constant, str) or "{{$." not in constant:
            value = v.constant(constant, kind)
            if "{{" in value.text:
                self.problem(where, "a constant holding '{{' cannot be passed to a pipesync task")
            return value
        # An f-string in the DSL (the SDK refers to the task's own channel inputs), or a
        # run placeholder given as a value (dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER).
        try:
            text = commands.render([constant], io)[0]
        except commands.CommandError as error:
            self.problem(where, str(error))
            return v.ABSENT
        return v.text(text)

    def artifact(
        self,
        spec: Mapping[str, Any],
        where: Path,
        scope: Mapping[str, Value],
        outputs: Mapping[str, Mapping[str, Value]],
    ) -> Value | None:
        if "taskOutputArtifact" in spec:
            source = _mapping(spec["taskOutputArtifact"])
            producer, key = str(source.get("producerTask")), str(source.get("outputArtifactKey"))
            value = outputs.get(producer, {}).get(key)
            if value is None:
                self.problem(where, f"artifact {key!r} of task {producer!r} is not available here")
            return None if value is v.ABSENT else value
        if "componentInputArtifact" in spec:
            value = scope.get(str(spec["componentInputArtifact"]))
            if value is None:
                self.problem(where, f"unknown input artifact {spec['componentInputArtifact']!r}")
            return value
        self.problem(where, f"unsupported artifact source {', '.join(spec) or 'empty'}")
        return None

    def condition(
        self, text: str, where: Path, component: Mapping[str, Any], inputs: Mapping[str, Value]
    ) -> str | None:
        definitions = _mapping(_mapping(component.get("inputDefinitions")).get("parameters"))

        def operand(name: str, numeric: bool) -> str:
            value = inputs.get(name)
            if value is None or value.kind is not Kind.TEXT:
                raise cel.CelError(f"the condition reads {name!r}, which has no value")
            kind = str(_mapping(definitions.get(name)).get("parameterType", "STRING"))
            bare = numeric or kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN")
            if value.literal:
                if bare:
                    return value.text or "''"
                return "'" + value.text.replace("\\", "\\\\").replace("'", "\\'") + "'"
            if bare and value.single_placeholder:
                return value.text
            return "'" + value.text + "'"

        try:
            return cel.translate(text, operand)
        except cel.CelError as error:
            self.problem(where, f"condition {text!r}: {error}")
            return None

    # --- container tasks --------------------------------------------------------------

    def container(
        self,
        site: _Site,
        component: Mapping[str, Any],
        inputs: Mapping[str, Value],
        context: _Context,
        *,
        exit_task: bool = False,
    ) -> str | None:
        name, task, path = site.name, site.task, site.path
        flat_name = context.prefix + name
        label = str(component.get("executorLabel"))
        executor = _mapping(self.executors.get(label))
        epath: Path = ("deploymentSpec", "executors", label)
        if "importer" in executor:
            return self.importer(site, executor, inputs, context, epath)
        container = _mapping(executor.get("container"))
        cpath = (*epath, "container")
        if not container:
            self.problem(epath, f"task {name!r}: executor {label!r} has no container")
            return None
        index = len(self.tasks)
        target: Path = ("spec", "onExit") if exit_task else ("spec", "tasks", index)
        self.place(target, path)
        body: dict[str, Any] = {"name": flat_name}
        if len(flat_name) > 63:
            self.problem(path, f"flattened task name {flat_name!r} is longer than 63 characters")
        if container.get("image"):
            body["image"] = str(container["image"])
        loops = () if context.loop is None or exit_task else context.loop.chain
        if not self.command(site, body, component, inputs, (cpath, target), loops=loops):
            return None
        self.io(
            body,
            component,
            inputs,
            lightweight=_uses_shim(container),
        )
        env = [
            {"name": str(e.get("name")), "value": v.render(e.get("value", ""))}
            for e in container.get("env") or []
            if isinstance(e, dict)
        ]
        if env:
            body["env"] = env
        if not exit_task:
            self.placement(body, context, target)
        self.retry(body, task, path, target)
        self.resources(body, container, cpath)
        platform.apply(self, body, label, target)
        if exit_task:
            self.on_exit = body
        else:
            self.tasks.append(body)
        return flat_name

    def input_artifact(self, name: str, params: list[dict[str, Any]], *, listed: bool) -> Value:
        """A pipeline input artifact: a required string parameter holding its URI, and an
        importer task (`input-<name>`) that fetches it for the tasks that read it. A list of
        artifacts (`Input[List[Artifact]]`): a JSON list of URIs, imported by a forEach
        whose group a ParallelFor over the artifacts joins."""
        where: Path = ("root", "inputDefinitions", "artifacts", name)
        uri = "a path, file://, http(s):// or s3://"
        params.append(
            {
                "name": name,
                "type": "list",
                "description": f"URIs of the input artifacts {name!r}: {uri}",
            }
            if listed
            else {
                "name": name,
                "type": "string",
                "description": f"URI of the input artifact {name!r}: {uri}",
            }
        )
        task = _dns(f"input-{name}") or "input-artifact"
        self.place(("spec", "tasks", len(self.tasks)), where)
        body: dict[str, Any] = {
            "name": task,
            "command": importer.argv("{{item}}" if listed else "{{params." + name + "}}", {}),
            "outputs": {
                "artifacts": [importer.OUTPUT],
                "parameters": [shim.META_PREFIX + importer.OUTPUT],
            },
        }
        loop = ""
        if listed:
            loop = task
            self.loops[loop] = _Loop("{{params." + name + "}}", None, where, loop)
            body["forEach"] = {"items": "{{params." + name + "}}", "group": loop}
        self.tasks.append(body)
        return Value(Kind.ARTIFACT, task=task, name=importer.OUTPUT, meta=True, loop=loop)

    def importer(
        self,
        site: _Site,
        executor: Mapping[str, Any],
        inputs: Mapping[str, Value],
        context: _Context,
        epath: Path,
    ) -> str | None:
        """dsl.importer: a task that copies the artifact at a URI (file, http(s) or s3)
        into its output `artifact`, with the importer's metadata for its consumers."""
        name, path = site.name, site.path
        spec = _mapping(executor.get("importer"))
        ipath: Path = (*epath, "importer")
        source = _mapping(spec.get("artifactUri"))
        if "constant" in source:
            uri = str(source["constant"])
        else:
            value = inputs.get(str(source.get("runtimeParameter", "")), v.ABSENT)
            if value.kind is not Kind.TEXT:
                self.problem((*ipath, "artifactUri"), f"task {name!r}: the importer has no URI")
                return None
            uri = value.text
        flat_name = context.prefix + name
        io = commands.TaskIO(flat_name, inputs)
        try:
            metadata, values = importer.template(
                spec.get("metadata") or {}, lambda text: commands.render([text], io)[0]
            )
        except (ValueError, commands.CommandError) as error:
            self.problem((*ipath, "metadata"), f"task {name!r}: importer metadata: {error}")
            return None
        index = len(self.tasks)
        target: Path = ("spec", "tasks", index)
        self.place(target, path)
        body: dict[str, Any] = {
            "name": flat_name,
            "command": importer.argv(uri, metadata, values),
            "outputs": {
                "artifacts": [importer.OUTPUT],
                "parameters": [shim.META_PREFIX + importer.OUTPUT],
            },
        }
        self.placement(body, context, target)
        self.tasks.append(body)
        return flat_name

    def command(
        self,
        site: _Site,
        body: dict[str, Any],
        component: Mapping[str, Any],
        inputs: Mapping[str, Value],
        paths: tuple[Path, Path],
        *,
        loops: tuple[str, ...],
    ) -> bool:
        """The argv: the runtime shim for lightweight components and for containers that
        read `{{$}}`, else the container's command and args with their placeholders
        rendered. False when unusable."""
        cpath, target = paths
        container = _mapping(self.at(cpath))
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        outputs = _mapping(component.get("outputDefinitions"))

        def slots() -> list[dict[str, Any]]:
            return self.slots(
                component,
                inputs,
                loops,
                list(_mapping(outputs.get("parameters"))),
                list(_mapping(outputs.get("artifacts"))),
            )

        source = _lightweight(command)
        if source is not None:
            function = _function(args)
            if function is None:
                self.problem((*cpath, "args"), "no --function_to_execute in the args")
                return False
            body["command"] = shim.argv(function, source, slots())
            self.place((*target, "command"), (*cpath, "command"))
            return True
        shimmed = _reads_executor_input(container)
        io = commands.TaskIO(
            body["name"],
            inputs,
            loops,
            executor_input=shim.EXECUTOR_INPUT if shimmed else "",
            output_file=shim.OUTPUT_FILE if shimmed else "",
        )
        for field, items in (("command", command), ("args", args)):
            if not items:
                continue
            try:
                body[field] = commands.render(items, io)
            except commands.CommandError as error:
                self.problem((*cpath, field), f"task {site.name!r}: {error}")
            self.place((*target, field), (*cpath, field))
        if not command and not args:
            self.problem(cpath, f"task {site.name!r}: the container has no command or args")
        elif shimmed:
            argv = [*body.pop("command", []), *body.pop("args", [])]
            body["command"] = shim.container_argv(argv, slots())
        return True

    def io(
        self,
        body: dict[str, Any],
        component: Mapping[str, Any],
        inputs: Mapping[str, Value],
        *,
        lightweight: bool,
    ) -> None:
        """Input artifacts and declared outputs (plus the shim's metadata parameters)."""
        outputs = _mapping(component.get("outputDefinitions"))
        out_params = list(_mapping(outputs.get("parameters")))
        out_artifacts = list(_mapping(outputs.get("artifacts")))
        if lightweight:
            out_params += [shim.META_PREFIX + a for a in out_artifacts]
        artifacts_in = {
            key: {"from": v.artifact_source(value)}
            for key, value in inputs.items()
            if value.kind is Kind.ARTIFACT
        }
        if artifacts_in:
            body["inputs"] = {"artifacts": artifacts_in}
        if out_params or out_artifacts:
            body["outputs"] = {}
            if out_params:
                body["outputs"]["parameters"] = out_params
            if out_artifacts:
                body["outputs"]["artifacts"] = out_artifacts

    def placement(self, body: dict[str, Any], context: _Context, target: Path) -> None:
        """Where the task sits in the flattened DAG: dependencies, condition, loop."""
        deps = [d for d in context.deps if d != body["name"]]
        if deps:
            body["dependsOn"] = deps
        if context.when:
            body["when"] = " and ".join(f"({w})" for w, _ in context.when)
            self.place((*target, "when"), context.when[-1][1])
        if context.loop is not None:
            loop = context.loop
            loop.bodies.append(body)
            self.task_loops[body["name"]] = loop
            for_each: dict[str, Any] = {"group": loop.group}
            if loop.axes:
                for_each["matrix"] = dict(loop.axes)
            else:
                for_each["items"] = loop.items
            if loop.parallelism:
                for_each["parallelism"] = loop.parallelism
            body["forEach"] = for_each
            self.place((*target, "forEach"), loop.path)

    def slots(
        self,
        component: Mapping[str, Any],
        inputs: Mapping[str, Value],
        loops: tuple[str, ...],
        out_params: list[str],
        out_artifacts: list[str],
    ) -> list[dict[str, Any]]:
        definitions = _mapping(component.get("inputDefinitions"))
        slots: list[dict[str, Any]] = []
        for name, definition in _mapping(definitions.get("parameters")).items():
            value = inputs.get(name, v.ABSENT)
            if value.kind is Kind.STATUS:
                slots.append({"k": "status", "n": name, "g": value.group, "v": "{{run.status}}"})
            elif value.kind is Kind.TEXT:
                kind = str(definition.get("parameterType", "STRING"))
                slots.append({"k": "param", "n": name, "t": kind, "v": value.text})
        for name, definition in _mapping(definitions.get("artifacts")).items():
            value = inputs.get(name, v.ABSENT)
            if value.kind is not Kind.ARTIFACT:
                continue
            title = _title(definition)
            listed = bool(definition.get("isArtifactList")) or v.listed(value, loops)
            kind = "artifact-list" if listed else "artifact"
            slots.append(
                {"k": kind, "n": name, "s": title, "v": "{{inputs.artifacts." + name + "}}"}
            )
            if value.meta:
                meta = v.metadata_source(value, shim.META_PREFIX)
                slots.append({"k": kind + "-meta", "n": name, "v": meta})
        for name in out_params:
            slots.append({"k": "out-param", "n": name, "v": "{{outputs.parameters." + name + "}}"})
        artifact_defs = _mapping(_mapping(component.get("outputDefinitions")).get("artifacts"))
        for name in out_artifacts:
            title = _title(_mapping(artifact_defs.get(name)))
            slots.append(
                {
                    "k": "out-artifact",
                    "n": name,
                    "s": title,
                    "v": "{{outputs.artifacts." + name + "}}",
                }
            )
            meta = "{{outputs.parameters." + shim.META_PREFIX + name + "}}"
            slots.append({"k": "out-meta", "n": name, "v": meta})
        return slots

    def task_outputs(
        self, flat_name: str, component: Mapping[str, Any], context: _Context
    ) -> dict[str, Value]:
        outputs = _mapping(component.get("outputDefinitions"))
        executor = _mapping(self.executors.get(str(component.get("executorLabel"))))
        meta = "importer" in executor or (_uses_shim(_mapping(executor.get("container"))))
        found: dict[str, Value] = {
            key: v.text("{{tasks." + flat_name + ".outputs.parameters." + key + "}}")
            for key in _mapping(outputs.get("parameters"))
        }
        for key in _mapping(outputs.get("artifacts")):
            found[key] = Value(
                Kind.ARTIFACT,
                task=flat_name,
                name=key,
                loop="" if context.loop is None else context.loop.group,
                meta=meta,
            )
        return found

    def exit_task(self, site: _Site, dag: _Dag) -> None:
        name, task, path = site.name, site.task, site.path
        component = self.components.get(str(_mapping(task.get("componentRef")).get("name", "")))
        if not isinstance(component, dict) or "executorLabel" not in component:
            self.problem(path, "an exit handler must be a single component, not a pipeline")
            return
        inputs = self.inputs(site, component, dag)
        created = self.container(site, component, inputs, _Context(), exit_task=True)
        dag.flat[name] = [] if created is None else [created]

    def retry(
        self, body: dict[str, Any], task: Mapping[str, Any], path: Path, target: Path
    ) -> None:
        policy = _mapping(task.get("retryPolicy"))
        if not policy:
            return
        retry: dict[str, Any] = {"limit": int(policy.get("maxRetryCount", 0))}
        for key, field in (("backoffDuration", "backoff"), ("backoffMaxDuration", "maxBackoff")):
            if policy.get(key):
                retry[field] = str(policy[key])
        if policy.get("backoffFactor"):
            retry["factor"] = max(1.0, float(policy["backoffFactor"]))
        body["retry"] = retry
        self.place((*target, "retry"), (*path, "retryPolicy"))

    def resources(self, body: dict[str, Any], container: Mapping[str, Any], cpath: Path) -> None:
        spec = _mapping(container.get("resources"))
        if not spec:
            return
        resources: dict[str, Any] = {}
        cpu = spec.get("resourceCpuLimit") or spec.get("cpuLimit") or spec.get("resourceCpuRequest")
        if cpu:
            resources["cpu"] = str(cpu)
        memory = spec.get("resourceMemoryLimit") or spec.get("resourceMemoryRequest")
        if memory:
            resources["memory"] = str(memory)
        elif spec.get("memoryLimit"):
            resources["memory"] = f"{int(float(spec['memoryLimit']) * 1000)}M"
        accelerator = _mapping(spec.get("accelerator"))
        count = accelerator.get("resourceCount") or accelerator.get("count")
        if count:
            resources["gpu"] = int(float(count))
            body["pool"] = "gpu"
            kind = accelerator.get("resourceType") or accelerator.get("type")
            if kind and "nvidia" not in str(kind).lower() and "gpu" not in str(kind).lower():
                self.problem(
                    (*cpath, "resources", "accelerator"),
                    f"accelerator {kind!r}: pipesync schedules nvidia.com/gpu only",
                )
        if resources:
            body["resources"] = resources


def _order(tasks: Mapping[str, Any]) -> list[str]:
    """Tasks so that producers come before the tasks that read them (declaration order
    otherwise); unknown names are left for the reader to report."""
    ordered: list[str] = []
    state: dict[str, int] = {}

    def upstream(task: Mapping[str, Any]) -> list[str]:
        names = [str(d) for d in task.get("dependentTasks") or ()]
        inputs = _mapping(task.get("inputs"))
        for group in ("parameters", "artifacts"):
            for spec in _mapping(inputs.get(group)).values():
                for key in ("taskOutputParameter", "taskOutputArtifact", "taskFinalStatus"):
                    producer = _mapping(_mapping(spec).get(key)).get("producerTask")
                    if producer:
                        names.append(str(producer))
        return names

    def visit(name: str) -> None:
        if state.get(name) or name not in tasks:
            return
        state[name] = 1
        for dependency in upstream(_mapping(tasks[name])):
            visit(dependency)
        state[name] = 2
        ordered.append(name)

    for name in tasks:
        visit(name)
    return ordered


def _ignores_failures(task: Mapping[str, Any]) -> bool:
    return _mapping(task.get("triggerPolicy")).get("strategy") == _ALL_DONE


def _is_exit_task(task: Mapping[str, Any]) -> bool:
    parameters = _mapping(_mapping(task.get("inputs")).get("parameters"))
    if any("taskFinalStatus" in _mapping(spec) for spec in parameters.values()):
        return True
    return any(str(d).startswith("exit-handler-") for d in task.get("dependentTasks") or ())


def _uses_shim(container: Mapping[str, Any]) -> bool:
    """Whether the task runs through the KFP shim (which records artifact metadata)."""
    command = list(container.get("command") or [])
    return _lightweight(command) is not None or _reads_executor_input(container)


def _reads_executor_input(container: Mapping[str, Any]) -> bool:
    """Whether the container's command or args hold `{{$}}` (the executor input JSON) or
    `{{$.outputs.output_file}}` (where it writes executor_output.json)."""
    found = [*(container.get("command") or []), *(container.get("args") or [])]
    texts = [item if isinstance(item, str) else json.dumps(item) for item in found]
    return any(marker in text for text in texts for marker in commands.EXECUTOR_FILES)


def _lightweight(command: list[Any]) -> str | None:
    """The component source when `command` is the SDK's lightweight-component launcher."""
    if (
        len(command) >= 7
        and command[:2] == ["sh", "-c"]
        and command[4] in ("-ec", "-c")
        and "kfp.dsl.executor_main" in str(command[5])
    ):
        return str(command[6])
    return None


def _function(args: list[Any]) -> str | None:
    for position, arg in enumerate(args[:-1]):
        if arg == "--function_to_execute":
            return str(args[position + 1])
    return None


def _limit(task: Mapping[str, Any]) -> int | None:
    parallelism = _mapping(task.get("iteratorPolicy")).get("parallelismLimit")
    return int(parallelism) if parallelism else None


def _product_limit(limits: list[int | None], axes: list[tuple[str, Any]]) -> int | None:
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


def _requalify(text: str, axis: str) -> str:
    """An enclosing loop's `{{item...}}` as that loop's axis of a matrix item."""
    return _ITEM.sub(lambda match: "{{item." + axis + match.group(1), text)


def _title(definition: Mapping[str, Any]) -> str:
    return str(_mapping(definition.get("artifactType")).get("schemaTitle", "system.Artifact"))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _dns(name: str) -> str:
    return _DNS.sub("-", name.lower()).strip("-")[:63].strip("-")
