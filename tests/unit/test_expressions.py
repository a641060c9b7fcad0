"""The `when` language: parsed without eval, placeholders stay data."""

from __future__ import annotations

import pytest

from pipesync.engine import expressions
from pipesync.engine.templating import Ref


def evaluate(text: str, **values: str) -> bool:
    def resolve(ref: Ref) -> str:
        return values[ref.text.replace(".", "_")]

    return expressions.evaluate(expressions.parse(text), resolve)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 4", False),
        ("3 >= 4", False),
        ("1 == 1.0", True),
        ("'a' != 'b'", True),
        ("true and false", False),
        ("true && true", True),
        ("false or true", True),
        ("false || false", False),
        ("not false", True),
        ("!true", False),
        ("not (1 > 2) and (2 > 1)", True),
        ("true or false and false", True),  # and binds tighter than or
        ("'b' > 'a'", True),
        ("\"x y\" == 'x y'", True),
    ],
)
def test_literal_expressions_evaluate_by_the_usual_rules(text: str, expected: bool) -> None:
    assert evaluate(text) is expected


def test_a_numeric_placeholder_compares_as_a_number() -> None:
    text = "{{tasks.train.outputs.parameters.accuracy}} >= 0.9"
    assert evaluate(text, tasks_train_outputs_parameters_accuracy="0.93") is True
    assert evaluate(text, tasks_train_outputs_parameters_accuracy="0.10") is False
    # "10" > "9" as numbers, although "10" < "9" as text
    assert evaluate("{{params.n}} > 9", params_n="10") is True


def test_a_placeholder_inside_quotes_is_text() -> None:
    assert evaluate("'{{params.mode}}' == 'full'", params_mode="full") is True
    assert evaluate("'{{params.mode}}' == 'full'", params_mode="fast") is False


def test_a_value_that_looks_like_an_expression_stays_one_value() -> None:
    # Pasting the value into the text would give `1 or true == 2`: true.
    assert evaluate("{{params.x}} == 2", params_x="1 or true") is False
    assert evaluate("{{params.x}} == '1 or true'", params_x="1 or true") is True


def test_boolean_placeholders_work_with_logic() -> None:
    assert evaluate("{{params.flag}} and 1 < 2", params_flag="true") is True
    assert evaluate("not {{params.flag}}", params_flag="false") is True


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("1 ==", "end of expression"),
        ("(1 == 1", "end of expression"),
        ("1 = 1", "unexpected character '='"),
        ("1 == 1 2", "unexpected '2'"),
        ("__import__('os')", "unexpected"),
        ("{{nope}} == 1", "unknown placeholder"),
    ],
)
def test_syntax_errors_say_where(text: str, fragment: str) -> None:
    with pytest.raises(expressions.ExpressionError, match="column") as caught:
        expressions.parse(text)
    assert fragment in str(caught.value)


def test_ordering_text_against_a_number_is_an_error_not_a_guess() -> None:
    with pytest.raises(expressions.ExpressionError, match="cannot order"):
        evaluate("{{params.x}} > 1", params_x="abc")


def test_logic_over_non_booleans_is_an_error() -> None:
    with pytest.raises(expressions.ExpressionError, match="needs true or false"):
        evaluate("1 and true")
    with pytest.raises(expressions.ExpressionError, match="not true or false"):
        evaluate("{{params.x}}", params_x="abc")


def test_refs_lists_every_placeholder_read() -> None:
    expr = expressions.parse("'{{params.a}}' == 'x' and {{tasks.t.outputs.parameters.p}} > 1")
    assert [ref.text for ref in expressions.refs(expr)] == [
        "params.a",
        "tasks.t.outputs.parameters.p",
    ]
