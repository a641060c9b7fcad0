"""engine/attempt.program: what one attempt runs, as both executors get it."""

from __future__ import annotations

from pipesync.api import model
from pipesync.engine import attempt, compiler, planner
from pipesync.engine.context import RunContext
from pipesync.engine.templating import RefKind

SPEC = {
    "tasks": [
        {
            "name": "fan",
            "image": "i",
            "workingDir": "steps",
            "forEach": {"items": ["a"]},
            "command": ["sh", "-c", "x", "{{item}}", "{{outputs.artifacts.model}}"],
            "env": [{"name": "WHO", "value": "{{run.name}}"}],
            "outputs": {"artifacts": ["model"]},
        }
    ]
}


def test_the_program_of_an_attempt_has_its_paths_from_the_executor() -> None:
    compiled, problems = compiler.compile_pipeline(model.pipeline_spec_from_spec(SPEC))
    assert compiled is not None, problems
    (launch,) = planner.plan(compiled, {}, RunContext("r", "ns", {}), now=0.0).launches
    asked: list[tuple[RefKind, str]] = []

    def path_of(kind: RefKind, name: str) -> str:
        asked.append((kind, name))
        return f"/files/{name}"

    ran = attempt.program(launch, run="r", namespace="ns", path_of=path_of)
    assert ran.argv == ("sh", "-c", "x", "a", "/files/model")
    assert asked == [(RefKind.OUTPUT_ARTIFACT, "model")]
    assert dict(ran.env) == {
        "WHO": "r",
        "PIPESYNC_RUN": "r",
        "PIPESYNC_NAMESPACE": "ns",
        "PIPESYNC_TASK": "fan",
        "PIPESYNC_ATTEMPT": "1",
        "PIPESYNC_ITEM_INDEX": "0",
    }
    assert ran.working_dir == "steps"
