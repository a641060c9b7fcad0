"""The `when` language: comparisons, and/or/not, literals and placeholders. No eval.

Placeholders are parsed as operands, never pasted into the text before parsing, so a
parameter value such as `1 or true` stays one string and cannot change the expression.

    expr    := or
    or      := and (("or" | "||") and)*
    and     := not (("and" | "&&") not)*
    not     := ("not" | "!") not | compare
    compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand := NUMBER | STRING | "true" | "false" | PLACEHOLDER | "(" expr ")"

A quoted string may hold placeholders (`'{{params.mode}}' == 'full'`); their values are
inserted as text. A bare placeholder's value is typed: true/false, a number, or text.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

from pipesync.engine import templating
from pipesync.engine.templating import Ref, Template


class ExpressionError(ValueError):
    """A syntax error (with the column) or an evaluation error."""


@dataclasses.dataclass(frozen=True)
class Literal:
    value: Any


@dataclasses.dataclass(frozen=True)
class Placeholder:
    ref: Ref


@dataclasses.dataclass(frozen=True)
class Text:
    template: Template


@dataclasses.dataclass(frozen=True)
class Not:
    operand: Expr


@dataclasses.dataclass(frozen=True)
class Logical:
    op: str  # "and" | "or"
    left: Expr
    right: Expr


@dataclasses.dataclass(frozen=True)
class Compare:
    op: str
    left: Expr
    right: Expr


Expr = Literal | Placeholder | Text | Not | Logical | Compare

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<placeholder>\{\{.*?\}\})
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\))
    | (?P<word>[A-Za-z_]+)
    )""",
    re.VERBOSE,
)
_COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
#: Deeper expressions are refused: parsing and evaluating recurse once per level.
MAX_DEPTH = 64
MAX_TERMS = 256


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    column: int  # 1-based


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            column = position + 1 + (len(text[position:]) - len(text[position:].lstrip()))
            raise ExpressionError(f"column {column}: unexpected character {text[column - 1]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append(_Token(kind, value, match.start(kind) + 1))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.depth = 0  # open parentheses and `not`s
        self.terms = 0  # `and`s and `or`s so far

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ExpressionError(f"column {len(self.text) + 1}: unexpected end of expression")
        self.position += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.kind in ("op", "word") and token.text in texts

    def parse(self) -> Expr:
        if not self.tokens:
            raise ExpressionError("column 1: empty expression")
        expr = self.or_()
        token = self.peek()
        if token is not None:
            raise ExpressionError(f"column {token.column}: unexpected {token.text!r}")
        return expr

    def or_(self) -> Expr:
        expr = self.and_()
        while self.at("or", "||"):
            self._chained(self.take())
            expr = Logical("or", expr, self.and_())
        return expr

    def and_(self) -> Expr:
        expr = self.not_()
        while self.at("and", "&&"):
            self._chained(self.take())
            expr = Logical("and", expr, self.not_())
        return expr

    def _chained(self, token: _Token) -> None:
        """`a and b and ...` nests to the left: evaluating it recurses once per term."""
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise ExpressionError(
                f"column {token.column}: more than {MAX_TERMS} 'and'/'or' terms; simplify it"
            )

    def not_(self) -> Expr:
        if self.at("not", "!"):
            token = self.take()
            self._deeper(token)
            operand = Not(self.not_())
            self.depth -= 1
            return operand
        return self.compare()

    def _deeper(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"column {token.column}: nested more than {MAX_DEPTH} levels deep; simplify it"
            )

    def compare(self) -> Expr:
        left = self.operand()
        token = self.peek()
        if token is not None and token.kind == "op" and token.text in _COMPARISONS:
            self.take()
            return Compare(token.text, left, self.operand())
        return left

    def operand(self) -> Expr:
        token = self.take()
        if token.kind == "number":
            number = float(token.text)
            return Literal(int(number) if number.is_integer() and "." not in token.text else number)
        if token.kind == "string":
            body = re.sub(r"\\(.)", r"\1", token.text[1:-1])
            return self._text(body, token)
        if token.kind == "placeholder":
            try:
                return Placeholder(templating.parse_ref(token.text[2:-2]))
            except templating.TemplateError as error:
                raise ExpressionError(f"column {token.column}: {error}") from None
        if token.kind == "word" and token.text in ("true", "false"):
            return Literal(token.text == "true")
        if token.text == "(":
            self._deeper(token)
            expr = self.or_()
            self.depth -= 1
            closing = self.take()
            if closing.text != ")":
                raise ExpressionError(f"column {closing.column}: expected ')'")
            return expr
        raise ExpressionError(f"column {token.column}: unexpected {token.text!r}")

    def _text(self, body: str, token: _Token) -> Expr:
        try:
            template = templating.parse(body)
        except templating.TemplateError as error:
            raise ExpressionError(f"column {token.column}: {error}") from None
        return Literal(body) if template.is_literal else Text(template)


def parse(text: str) -> Expr:
    return _Parser(text).parse()


def refs(expr: Expr) -> list[Ref]:
    """Every placeholder the expression reads."""
    match expr:
        case Placeholder(ref):
            return [ref]
        case Text(template):
            return list(template.refs)
        case Not(operand):
            return refs(operand)
        case Logical(_, left, right) | Compare(_, left, right):
            return refs(left) + refs(right)
        case _:
            return []


def typed(text: str) -> Any:
    """A placeholder's text as the value it denotes: a bool, a number or the text itself."""
    stripped = text.strip()
    if stripped in ("true", "True"):
        return True
    if stripped in ("false", "False"):
        return False
    try:
        number = float(stripped)
    except ValueError:
        return text
    if not math.isfinite(number):  # NaN and inf stay text
        return text
    return int(number) if number.is_integer() and re.fullmatch(r"-?\d+", stripped) else number


def evaluate(expr: Expr, resolve: Callable[[Ref], str]) -> bool:
    value = _value(expr, resolve)
    if not isinstance(value, bool):
        raise ExpressionError(f"the expression gives {value!r}, not true or false")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value(expr: Expr, resolve: Callable[[Ref], str]) -> Any:
    match expr:
        case Literal(value):
            return value
        case Placeholder(ref):
            return typed(resolve(ref))
        case Text(template):
            return template.render(resolve)
        case Not(operand):
            return not _boolean(_value(operand, resolve), "not")
        case Logical("and", left, right):
            return _boolean(_value(left, resolve), "and") and _boolean(
                _value(right, resolve), "and"
            )
        case Logical(_, left, right):
            return _boolean(_value(left, resolve), "or") or _boolean(_value(right, resolve), "or")
        case Compare(op, left, right):
            return _compare(op, _value(left, resolve), _value(right, resolve))
    raise ExpressionError(f"cannot evaluate {expr!r}")  # pragma: no cover


def _boolean(value: Any, op: str) -> bool:
    if not isinstance(value, bool):
        raise ExpressionError(f"'{op}' needs true or false, got {value!r}")
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("==", "!="):
        if _is_number(left) and _is_number(right):
            equal = left == right
        elif isinstance(left, bool) or isinstance(right, bool):
            equal = left is right
        else:
            equal = templating.render_value(left) == templating.render_value(right)
        return equal if op == "==" else not equal
    both_numbers = _is_number(left) and _is_number(right)
    if not both_numbers and not (isinstance(left, str) and isinstance(right, str)):
        raise ExpressionError(f"cannot order {left!r} {op} {right!r}: compare numbers or texts")
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)
