"""The references the KFP reader builds are the ones pipesync's compiler parses from the
text it writes: built and parsed agree, so the reader can decide on references and
write text only once."""

from __future__ import annotations

import pytest

from pipesync.engine import templating
from pipesync.engine.kfp import placeholders
from pipesync.engine.templating import Ref, RefKind

BUILT = [
    placeholders.param("lr"),
    placeholders.item(),
    placeholders.item("key"),
    placeholders.item("for-loop-2.key"),
    placeholders.run("name"),
    placeholders.run("scheduledAt"),
    placeholders.task_uid(),
    placeholders.task_parameter("train", "accuracy"),
    placeholders.task_artifact("prepare", "dataset"),
    placeholders.input_artifact("dataset"),
    placeholders.output_artifact("model"),
    placeholders.output_parameter("kfp-meta-model"),
    placeholders.first_of(
        [placeholders.task_parameter("a", "Output"), placeholders.task_parameter("b", "Output")]
    ),
    placeholders.first_of(
        [placeholders.task_artifact("a", "data"), placeholders.task_artifact("b", "data")]
    ),
]


@pytest.mark.parametrize("ref", BUILT, ids=str)
def test_a_built_reference_equals_the_one_parsed_from_its_text(ref: Ref) -> None:
    assert templating.parse(placeholders.text(ref)).single_ref() == ref


def test_a_template_of_text_and_references_reads_back_as_written() -> None:
    template = placeholders.of("--lr=", placeholders.param("lr"), "", " at ", placeholders.item())
    assert placeholders.text(template) == "--lr={{params.lr}} at {{item}}"
    assert template == templating.parse(placeholders.text(template))


def test_one_placeholder_is_a_template_with_one_segment() -> None:
    template = placeholders.of("", placeholders.param("n"), "")
    assert template.single_ref() == placeholders.param("n")


def test_joined_puts_the_separator_between_parts_only() -> None:
    template = placeholders.joined(["(", placeholders.param("n"), "==", "1", ")"], " ")
    assert placeholders.text(template) == "( {{params.n}} == 1 )"


def test_a_single_choice_is_that_reference_itself() -> None:
    only = placeholders.task_parameter("a", "Output")
    assert placeholders.first_of([only]) is only
    assert placeholders.first_of([only]).alternatives == ()


def test_an_enclosing_loops_item_becomes_an_axis_of_the_matrix_item() -> None:
    template = placeholders.of(
        placeholders.item(), "/", placeholders.item("key"), "/", placeholders.param("p")
    )
    moved = placeholders.on_axis(template, "for-loop-1")
    assert placeholders.text(moved) == "{{item.for-loop-1}}/{{item.for-loop-1.key}}/{{params.p}}"
    assert placeholders.reads_item(moved)
    assert not placeholders.reads_item(placeholders.of(placeholders.param("p")))


def test_a_selected_key_of_an_item_or_of_an_axis() -> None:
    assert placeholders.item_key(placeholders.item(), "a") == placeholders.item("a")
    axis = placeholders.item("for-loop-1")
    assert placeholders.text(placeholders.item_key(axis, "a")) == "{{item.for-loop-1.a}}"
    assert placeholders.item_key(axis, "a").kind is RefKind.ITEM
