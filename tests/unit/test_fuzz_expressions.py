"""Property-based fuzzing of the `when` language and the KFP CEL subset: any text parses
or is refused with an ExpressionError/CelError (which the compiler locates), never
another exception; what parses evaluates or refuses the same way."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipesync.engine import expressions
from pipesync.engine.kfp import cel
from tests.unit.fuzzing import FUZZ

WORDS = st.sampled_from(
    [
        "true",
        "false",
        "and",
        "or",
        "not",
        "!",
        "&&",
        "||",
        "(",
        ")",
        "==",
        "!=",
        "<",
        ">=",
        "1",
        "-2.5e3",
        "'a'",
        '"b"',
        "'{{params.mode}}'",
        "{{params.n}}",
        "{{tasks.t.outputs.parameters.x}}",
        "{{",
        "}}",
        "'",
        "9" * 5000,
        "(" * 1000,
        ")" * 1000,
        "not " * 1000,
        " and true" * 600,
        "\x01",
        "inputs.parameter_values['x']",
        "int(",
        "double(",
        "string(",
        "parseJson(x)",
    ]
)
TEXTS = st.one_of(st.text(max_size=40), st.lists(WORDS, max_size=12).map(" ".join))


@FUZZ
@given(TEXTS)
def test_any_when_text_parses_or_is_refused_with_a_message(text: str) -> None:
    try:
        parsed = expressions.parse(text)
    except expressions.ExpressionError as error:
        assert "\n" not in str(error)
        return
    expressions.refs(parsed)
    try:
        expressions.evaluate(parsed, lambda ref: "1")
    except expressions.ExpressionError as error:
        assert "\n" not in str(error)


@FUZZ
@given(TEXTS)
def test_any_kfp_condition_translates_or_is_refused_with_a_message(text: str) -> None:
    try:
        translated = cel.translate(text, lambda name, numeric: "{{params.x}}")
    except cel.CelError as error:
        assert "\n" not in str(error)
        return
    try:
        expressions.parse(translated)
    except expressions.ExpressionError as error:
        assert "\n" not in str(error)
