"""The IR's nested DAGs flattened into pipesync's one DAG.

Each DAG's tasks are visited producers first; a container task becomes one flat task, a
group (a condition, a loop, an exit handler, a pipeline used as a component) is walked
with what it adds to its tasks' context: its condition, its loop, a name prefix, its
dependencies. Dependencies on a group become dependencies on its flat tasks, and outputs
of a group on the tasks that produce them (outputs.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import conditions, containers, loops, outputs, parameters
from pipesync.engine.kfp.state import Context, Dag, Site, Translation, dns, mapping
from pipesync.engine.kfp.values import Value

#: Sub-DAGs the SDK generates for control flow: flattened without a name prefix.
_GROUP = re.compile(r"^(condition|condition-branches|for-loop|exit-handler)-\d+$")
_ALL_DONE = "ALL_UPSTREAM_TASKS_COMPLETED"
#: Sub-DAGs nested deeper are refused: the SDK nests one per dsl.If/ParallelFor/pipeline,
#: and the reader recurses once per level (a component that uses itself never ends).
MAX_DAG_DEPTH = 50


def walk(
    reading: Translation,
    dag_path: Path,
    scope: Mapping[str, Value],
    context: Context,
    *,
    root_level: bool,
) -> tuple[dict[str, list[str]], dict[str, dict[str, Value]]]:
    """Flatten one DAG: the flat names of each of its tasks, and their outputs."""
    state = Dag(scope, context)
    if reading.depth >= MAX_DAG_DEPTH:
        reading.problem(
            dag_path,
            f"groups (conditions, loops, pipelines as components) nested more than "
            f"{MAX_DAG_DEPTH} deep, or a component that contains itself; refusing it",
        )
        return state.flat, state.outputs
    reading.depth += 1
    try:
        _walk_tasks(reading, dag_path, state, root_level=root_level)
    finally:
        reading.depth -= 1
    return state.flat, state.outputs


def _walk_tasks(reading: Translation, dag_path: Path, state: Dag, *, root_level: bool) -> None:
    context = state.context
    dag = mapping(reading.at(dag_path))
    reading.here = dag_path
    tasks = mapping(dag.get("tasks"))
    for name in _order(tasks):
        path = (*dag_path, "tasks", name)
        reading.here = path
        task = mapping(tasks[name])
        site = Site(name, task, path)
        if _ignores_failures(task) and _is_exit_task(task):
            if not root_level or context.loop is not None:
                reading.problem(path, "an exit handler task is only supported at the top level")
            elif reading.on_exit is not None:
                reading.problem(path, "only one exit handler per pipeline is supported")
            else:
                _exit_task(reading, site, state)
            continue
        _task(reading, site, state)


def _task(reading: Translation, site: Site, dag: Dag) -> None:
    name, task, path, context = site.name, site.task, site.path, dag.context
    component_name = str(mapping(task.get("componentRef")).get("name", ""))
    component = reading.components.get(component_name)
    if not isinstance(component, dict):
        reading.problem((*path, "componentRef"), f"unknown component {component_name!r}")
        return
    inputs = parameters.task_inputs(reading, site, component, dag)
    deps = list(context.deps)
    for dependency in task.get("dependentTasks") or ():
        deps.extend(dag.flat.get(str(dependency), ()))
    when = context.when
    condition = conditions.condition(reading, site, component, inputs)
    if condition is not None:
        when = (*when, condition)
    inner = Context(context.prefix, when, tuple(dict.fromkeys(deps)), context.loop)
    if "dag" in component and _ignores_failures(task):
        reading.problem(
            (*path, "triggerPolicy", "strategy"),
            f"{name!r}: ignore_upstream_failure on a pipeline or group is not supported yet",
        )
    elif "dag" in component:
        _group(reading, site, component_name, inputs, context=inner, dag=dag)
    elif "executorLabel" in component:
        created = containers.container_task(reading, site, component, inputs, inner)
        if created is not None and _ignores_failures(task):
            reading.tasks[-1]["ignoreUpstreamFailure"] = True
        dag.flat[name] = [] if created is None else [created]
        dag.outputs[name] = (
            parameters.task_outputs(reading, created, component, inner) if created else {}
        )
    else:
        reading.problem(
            (*path, "componentRef"), f"component {component_name!r} has no dag or executor"
        )


def _group(
    reading: Translation,
    site: Site,
    component_name: str,
    inputs: dict[str, Value],
    *,
    context: Context,
    dag: Dag,
) -> None:
    """A task whose component is a DAG: its tasks walked in its context (and loop)."""
    name, task = site.name, site.task
    prefix = context.prefix if _GROUP.match(name) else f"{context.prefix}{name}--"
    loop = context.loop
    scope = dict(inputs)
    when = context.when
    if "parameterIterator" in task or "artifactIterator" in task:
        group = dns(prefix + name) or "loop"
        opened = loops.open_loop(reading, site, group, context, inputs=inputs, scope=scope)
        if opened is None:
            return
        loop, when = opened
    inner = Context(prefix, when, context.deps, loop)
    dag_path = ("components", component_name, "dag")
    names, produced = walk(reading, dag_path, scope, inner, root_level=False)
    dag.flat[name] = [n for group in names.values() for n in group]
    dag.outputs[name] = outputs.dag_outputs(reading, dag_path, produced)


def _exit_task(reading: Translation, site: Site, dag: Dag) -> None:
    name, task, path = site.name, site.task, site.path
    component = reading.components.get(str(mapping(task.get("componentRef")).get("name", "")))
    if not isinstance(component, dict) or "executorLabel" not in component:
        reading.problem(path, "an exit handler must be a single component, not a pipeline")
        return
    inputs = parameters.task_inputs(reading, site, component, dag)
    created = containers.container_task(reading, site, component, inputs, Context(), exit_task=True)
    dag.flat[name] = [] if created is None else [created]


def _order(tasks: Mapping[str, Any]) -> list[str]:
    """Tasks so that producers come before the tasks that read them (declaration order
    otherwise); unknown names are left for the reader to report."""
    ordered: list[str] = []
    state: dict[str, int] = {}

    def upstream(task: Mapping[str, Any]) -> list[str]:
        names = [str(d) for d in task.get("dependentTasks") or ()]
        inputs = mapping(task.get("inputs"))
        for group in ("parameters", "artifacts"):
            for spec in mapping(inputs.get(group)).values():
                for key in ("taskOutputParameter", "taskOutputArtifact", "taskFinalStatus"):
                    producer = mapping(mapping(spec).get(key)).get("producerTask")
                    if producer:
                        names.append(str(producer))
        return names

    def visit(name: str) -> None:
        if state.get(name) or name not in tasks:
            return
        state[name] = 1
        for dependency in upstream(mapping(tasks[name])):
            visit(dependency)
        state[name] = 2
        ordered.append(name)

    for name in tasks:
        visit(name)
    return ordered


def _ignores_failures(task: Mapping[str, Any]) -> bool:
    return mapping(task.get("triggerPolicy")).get("strategy") == _ALL_DONE


def _is_exit_task(task: Mapping[str, Any]) -> bool:
    given = mapping(mapping(task.get("inputs")).get("parameters"))
    if any("taskFinalStatus" in mapping(spec) for spec in given.values()):
        return True
    return any(str(d).startswith("exit-handler-") for d in task.get("dependentTasks") or ())
