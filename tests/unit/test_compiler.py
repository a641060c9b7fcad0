"""Semantic checks of a pipeline: the DAG, references and placeholders, all found at once."""

from __future__ import annotations

from tests.unit.pipelines import compile_yaml, problems_of


def messages(text: str) -> list[str]:
    return [problem.message for problem in problems_of(text)]


def test_a_cycle_is_reported_with_its_path() -> None:
    found = problems_of(
        """
tasks:
  - {name: a, command: [x], dependsOn: [c]}
  - {name: b, command: [x], dependsOn: [a]}
  - {name: c, command: [x], dependsOn: [b]}
  - {name: d, command: [x]}
"""
    )
    assert len(found) == 1
    assert "dependency cycle: " in found[0].message
    cycle = found[0].message.split(": ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"a", "b", "c"}
    assert found[0].path[:2] == ("tasks", 0)


def test_a_cycle_through_an_output_reference_is_found() -> None:
    found = messages(
        """
tasks:
  - {name: a, command: ["{{tasks.b.outputs.parameters.p}}"], outputs: {parameters: [p]}}
  - {name: b, command: ["{{tasks.a.outputs.parameters.p}}"], outputs: {parameters: [p]}}
"""
    )
    assert any("dependency cycle" in m for m in found)


def test_self_dependency_unknown_dependency_and_duplicate_names_are_all_reported() -> None:
    found = messages(
        """
tasks:
  - {name: a, command: [x], dependsOn: [a]}
  - {name: b, command: [x], dependsOn: [nope]}
  - {name: b, command: [x]}
"""
    )
    assert "task 'a' depends on itself" in found
    assert "task 'b' depends on unknown task 'nope' (tasks here: a, b)" in found
    assert "duplicate task name 'b'" in found


def test_bad_references_are_named() -> None:
    found = messages(
        """
params: [{name: lr, type: number, default: 0.1}]
tasks:
  - name: a
    command: ["{{params.nope}}", "{{item}}", "{{run.status}}", "{{outputs.parameters.x}}"]
  - name: b
    command: ["{{tasks.a.outputs.parameters.missing}}", "{{tasks.ghost.outputs.parameters.p}}"]
  - name: c
    command: ["{{tasks.a.outputs.artifacts.model}}"]
"""
    )
    joined = "\n".join(found)
    assert "undeclared parameter 'nope'" in joined
    assert "{{item}} is only defined inside a task with forEach" in joined
    assert "{{run.status}} is only defined in onExit" in joined
    assert "declares no output parameter 'x'" in joined
    assert "task 'a' declares no output parameter 'missing'" in joined
    assert "unknown task 'ghost'" in joined
    assert "may only appear in inputs.artifacts.*.from" in joined


def test_forEach_over_a_scalar_parameter_is_refused() -> None:
    found = messages(
        """
params: [{name: n, type: integer, default: 3}]
tasks:
  - {name: a, command: ["{{item}}"], forEach: {items: "{{params.n}}"}}
"""
    )
    assert any("is an integer, not a list" in m for m in found)


def test_bad_when_and_bad_param_defaults_are_reported() -> None:
    found = messages(
        """
params: [{name: n, type: integer, default: abc}, {name: n, type: string}]
tasks:
  - {name: a, command: [x], when: "1 >"}
"""
    )
    joined = "\n".join(found)
    assert "invalid when expression" in joined
    assert "default 'abc' of 'n' is not an integer" in joined
    assert "duplicate parameter name 'n'" in joined


def test_working_dir_may_not_leave_the_repository() -> None:
    assert any(
        "must be a relative path" in m
        for m in messages("tasks: [{name: a, command: [x], workingDir: ../../etc}]")
    )


def test_references_imply_dependencies_and_order_is_topological() -> None:
    compiled = compile_yaml(
        """
tasks:
  - {name: late, command: ["{{tasks.early.outputs.parameters.p}}"]}
  - {name: early, command: [x], outputs: {parameters: [p]}}
  - {name: free, command: [x]}
"""
    )
    names = [task.name for task in compiled.tasks]
    assert names.index("early") < names.index("late")
    late = compiled.task("late")
    assert late.upstream == (compiled.task("early").index,)
    assert late.consumes == late.upstream


def test_input_artifacts_bind_to_their_producer() -> None:
    compiled = compile_yaml(
        """
tasks:
  - {name: p, command: [x], outputs: {artifacts: [data]}}
  - name: c
    command: ["{{inputs.artifacts.d}}"]
    inputs: {artifacts: {d: {from: "{{tasks.p.outputs.artifacts.data}}"}}}
"""
    )
    (binding,) = compiled.task("c").inputs
    assert (binding.name, binding.producer, binding.artifact) == ("d", 0, "data")
