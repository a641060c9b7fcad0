"""Property-based fuzzing of the readers every file goes through (`validate`, `diff`, the
GitSource sync): whatever the bytes, they return located one-line problems and never
raise. Seeds are the example repository (native documents) and a small KFP IR file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import given

from pipesync.engine import checks, loading
from tests.unit.conftest import PROJECT
from tests.unit.fuzzing import FUZZ, assert_reported_well, mutated_documents, mutated_text

NATIVE = sorted((PROJECT / "examples" / "repo-layout").rglob("*.yaml"))
KFP_SAMPLE = Path(__file__).with_name("kfp_ir_sample.yaml")


def _documents(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text()))


NATIVE_DOCUMENTS = [document for path in NATIVE for document in _documents(path)]
NATIVE_TEXT = "---\n".join(path.read_text() for path in NATIVE)
KFP_DOCUMENTS = _documents(KFP_SAMPLE)
KFP_TEXT = KFP_SAMPLE.read_text()


def read(text: str) -> None:
    """What `validate` does with one file: load it, then check what loaded."""
    resources, problems = loading.load(text.encode(), "fuzz.yaml")
    problems += checks.check(resources)
    assert_reported_well(problems)


def test_the_kfp_sample_is_kfp_and_valid() -> None:
    resources, problems = loading.load(KFP_TEXT.encode(), "kfp.yaml")
    assert problems == [] and [r.kind.value for r in resources] == ["Pipeline"]


@FUZZ
@given(mutated_documents(NATIVE_DOCUMENTS))
def test_native_documents_with_odd_values_give_located_problems(text: str) -> None:
    read(text)


@FUZZ
@given(mutated_text(NATIVE_TEXT))
def test_native_text_with_broken_syntax_gives_located_problems(text: str) -> None:
    read(text)


@FUZZ
@given(mutated_documents(KFP_DOCUMENTS))
def test_kfp_ir_with_odd_values_gives_located_problems(text: str) -> None:
    read(text)


@FUZZ
@given(mutated_text(KFP_TEXT))
def test_kfp_ir_text_with_broken_syntax_gives_located_problems(text: str) -> None:
    read(text)
