"""The compiled pre-check agrees with the full validator: it only decides who gets walked."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pipesync.api import schemas
from tests.unit.test_schemas import DESIGN_EXAMPLES, INVALID, minimal


@pytest.mark.parametrize("kind", schemas.KINDS)
def test_a_minimal_document_passes_both_checks(kind: str) -> None:
    document = minimal(kind)
    assert schemas.validator(kind).is_valid(document)
    assert schemas.compiled_is_valid(kind, document)


def test_the_design_examples_pass_both_checks() -> None:
    for document in yaml.safe_load_all(DESIGN_EXAMPLES):
        assert schemas.compiled_is_valid(document["kind"], document)


@pytest.mark.parametrize(("doc", "expected"), INVALID)
def test_every_invalid_document_fails_the_fast_check_too(
    doc: dict[str, Any], expected: Any
) -> None:
    assert not schemas.validator(doc["kind"]).is_valid(doc)
    assert not schemas.compiled_is_valid(doc["kind"], doc)


@pytest.mark.parametrize("kind", schemas.KINDS)
def test_bundled_schemas_hold_no_references(kind: str) -> None:
    assert "$ref" not in repr(schemas.bundled(kind))


def test_the_adaptive_check_answers_like_the_validator_before_and_after_switching() -> None:
    bad = minimal("Experiment")
    bad["spec"] = {"unknown": 1}
    answers = [schemas.is_valid("Experiment", d) for d in [minimal("Experiment"), bad] * 20]
    assert answers == [True, False] * 20
