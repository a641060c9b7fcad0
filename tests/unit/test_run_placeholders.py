"""`{{run.*}}`: one table (engine/context.py) names them and reads their values; the parser
accepts exactly its names, and the planner renders each from the run context."""

from __future__ import annotations

import pytest

from pipesync.api import model
from pipesync.engine import compiler, planner, templating
from pipesync.engine.context import RUN_PLACEHOLDERS, RunContext
from pipesync.engine.state import TASK

CONTEXT = RunContext("r-1", "team-a", {}, created_at=1_800_000_000.0, scheduled_at=None)


def test_the_parser_knows_exactly_the_tables_names() -> None:
    for name in RUN_PLACEHOLDERS:
        (ref,) = templating.parse(f"{{{{run.{name}}}}}").refs
        assert (ref.kind, ref.name) == (templating.RefKind.RUN, name)
    with pytest.raises(templating.TemplateError) as unknown:
        templating.parse("{{run.uid}}")
    assert all(f"run.{name}" in str(unknown.value) for name in RUN_PLACEHOLDERS)


@pytest.mark.parametrize("name", [n for n, read in RUN_PLACEHOLDERS.items() if read])
def test_the_planner_renders_each_from_the_context(name: str) -> None:
    spec = model.pipeline_spec_from_spec(
        {"tasks": [{"name": "t", "image": "i", "command": ["echo", f"{{{{run.{name}}}}}"]}]}
    )
    compiled, problems = compiler.compile_pipeline(spec)
    assert compiled is not None, problems
    (launch,) = planner.plan(compiled, {}, CONTEXT, now=1_800_000_000.0).launches
    assert launch.key == (0, TASK)
    read = RUN_PLACEHOLDERS[name]
    assert read is not None
    assert launch.values[f"run.{name}"] == read(CONTEXT) != ""
