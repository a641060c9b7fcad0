"""Placeholders: parsed strictly, rendered into single argv elements."""

from __future__ import annotations

import pytest

from pipesync.engine import templating
from pipesync.engine.templating import RefKind


@pytest.mark.parametrize(
    ("text", "kind", "name", "task"),
    [
        ("params.lr", RefKind.PARAM, "lr", ""),
        ("item", RefKind.ITEM, "", ""),
        ("item.lr", RefKind.ITEM, "lr", ""),
        ("run.name", RefKind.RUN, "name", ""),
        ("run.status", RefKind.RUN, "status", ""),
        ("tasks.train.outputs.parameters.acc", RefKind.TASK_PARAMETER, "acc", "train"),
        ("tasks.train.outputs.artifacts.model", RefKind.TASK_ARTIFACT, "model", "train"),
        ("inputs.artifacts.data", RefKind.INPUT_ARTIFACT, "data", ""),
        ("outputs.artifacts.model", RefKind.OUTPUT_ARTIFACT, "model", ""),
        ("outputs.parameters.acc", RefKind.OUTPUT_PARAMETER, "acc", ""),
        (" params.lr ", RefKind.PARAM, "lr", ""),
    ],
)
def test_every_documented_placeholder_parses(
    text: str, kind: RefKind, name: str, task: str
) -> None:
    ref = templating.parse_ref(text)
    assert (ref.kind, ref.name, ref.task) == (kind, name, task)


@pytest.mark.parametrize(
    "text",
    [
        "params",
        "params.a.b",
        "run.id",
        "tasks.t.outputs.x.y",
        "inputs.parameters.p",
        "env.HOME",
        "params.../etc",
    ],
)
def test_unknown_placeholders_are_refused(text: str) -> None:
    with pytest.raises(templating.TemplateError):
        templating.parse_ref(text)


def test_an_unclosed_placeholder_is_refused() -> None:
    with pytest.raises(templating.TemplateError, match="unclosed"):
        templating.parse("--lr={{params.lr")


def test_rendering_substitutes_text_without_splitting_or_re_expanding() -> None:
    template = templating.parse("--name={{params.name}}!")
    value = "a b; $(rm -rf /) {{params.name}}"
    assert template.render(lambda ref: value) == f"--name={value}!"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.1"),
        (3, "3"),
        (True, "true"),
        (False, "false"),
        ("x", "x"),
        ([1, 2.5, "a"], '[1,2.5,"a"]'),
        ({"a": 1}, '{"a":1}'),
        (None, ""),
    ],
)
def test_values_render_as_programs_expect_them(value: object, text: str) -> None:
    assert templating.render_value(value) == text
