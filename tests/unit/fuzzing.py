"""Shared pieces of the property-based fuzz tests (tests/unit/test_fuzz_*.py).

What a reader must do with any input: return, never raise, and report each problem as
exactly one `file:line:col: message` line; an internal error (an exception the readers
did not turn into a located problem) is a bug and fails the property.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pipesync.api.diagnostics import Diagnostic

#: Bounded so the fuzz tests together take well under a minute in CI.
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,  # nothing written into the checkout
    derandomize=True,  # the same examples on every run: CI fails reproducibly, or not at all
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ONE_LINE = re.compile(r"^[^\n]+:\d+:\d+: [^\n]+$")

#: Values of the wrong type, size or depth, where the readers expect something else.
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(["{{params.x}}", "{{", "}}", "9" * 5000, "\x01", "[", "*a", "&a"]),
)
odd_values: st.SearchStrategy[Any] = st.recursive(
    odd_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `data` (mapping keys and list indexes)."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(paths(value, (*prefix, index)))
    return found


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`data` with the value at `path` replaced (a copy)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {k: (replaced(v, rest, value) if k == head else v) for k, v in data.items()}
    return [replaced(v, rest, value) if i == head else v for i, v in enumerate(data)]


@st.composite
def mutated_documents(draw: st.DrawFn, documents: list[Any]) -> str:
    """YAML text of `documents` with a few values swapped for odd ones."""
    changed = list(documents)
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(changed) - 1))
        path = draw(st.sampled_from(paths(changed[index])))
        changed[index] = replaced(changed[index], path, draw(odd_values))
    return yaml.safe_dump_all(changed, sort_keys=False, allow_unicode=True)


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str:
    """`text` with characters inserted, deleted or replaced (syntax errors, control
    characters, deep nesting)."""
    pieces = st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ":",
            "- ",
            "\n",
            "  ",
            "'",
            '"',
            "\x01",
            "\x7f",
            "&a ",
            "*a",
            "{{",
            "}}",
            "[" * 1001,
            "9" * 4400,
            "\t",
            "#",
            "---\n",
        ]
    )
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + draw(pieces) + text[at + cut :]
    return text


def assert_reported_well(problems: list[Diagnostic]) -> None:
    for problem in problems:
        line = problem.format()
        assert ONE_LINE.match(line), f"not one file:line:col line: {line!r}"
        assert problem.line >= 1 and problem.column >= 1, line
        assert not problem.internal, f"an exception escaped a reader: {line}"
