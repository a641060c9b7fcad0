"""The CEL subset the KFP SDK emits for `dsl.If/Elif/Else`, translated into pipesync's
`when` language, so the planner's own evaluator (no eval) decides it.

Accepted: `inputs.parameter_values['NAME']` operands, optionally wrapped in `int(...)`
or `double(...)`; string, number and boolean literals; `== != < <= > >=`; `&&`, `||`,
`!` and parentheses. Anything else (e.g. `parseJson(...)` selectors, which the SDK
only emits on loop items) is refused with a message, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<input>inputs\.parameter_values\[\s*(?P<q>['"])(?P<name>.*?)(?P=q)\s*\])
    | (?P<cast>(?:int|double|string)\s*\()
    | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\))
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_WORDS = {"&&": "and", "||": "or", "!": "not"}

#: What an operand becomes: text, or (for the reader) a pipesync template.
T = TypeVar("T")

#: Turns an input name into a `when` operand; `numeric` when the CEL cast asks for one.
Operand = Callable[[str, bool], str]


class CelError(ValueError):
    """A condition outside the supported subset."""


def translate(condition: str, operand: Operand) -> str:
    """The `when` expression equivalent to `condition`."""
    return " ".join(tokens(condition, operand))


def tokens(condition: str, operand: Callable[[str, bool], T]) -> list[str | T]:
    """The `when` expression equivalent to `condition`, token by token (to be joined with
    spaces): operators and literals as text, each input as `operand` made it."""
    out: list[str | T] = []
    position = 0
    casts: list[int] = []  # parenthesis depth of each open int()/double() wrapper
    depth = 0
    text = condition.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise CelError(f"unsupported syntax at {text[position : position + 30]!r}")
        position = match.end()
        if match.group("input"):
            out.append(operand(match.group("name"), bool(casts)))
        elif match.group("cast"):
            depth += 1
            casts.append(depth)
            if match.group("cast").startswith("string"):
                raise CelError("string() conversions are not supported")
        elif match.group("string"):
            out.append(_string(match.group("string")))
        elif match.group("number"):
            out.append(match.group("number"))
        elif match.group("op"):
            op = match.group("op")
            if op == "(":
                depth += 1
                out.append("(")
            elif op == ")":
                if casts and casts[-1] == depth:
                    casts.pop()  # the wrapper's own parenthesis: dropped with it
                else:
                    out.append(")")
                depth -= 1
            else:
                out.append(_WORDS.get(op, op))
        else:
            word = match.group("word")
            if word in ("true", "false"):
                out.append(word)
            else:
                raise CelError(f"unsupported name or function {word!r}")
    if depth != 0:
        raise CelError("unbalanced parentheses")
    return out


def _string(literal: str) -> str:
    """A CEL string literal as a `when` literal (single-quoted, escapes kept)."""
    body = literal[1:-1]
    if literal[0] == '"':
        body = body.replace('\\"', '"').replace("'", "\\'")
    return f"'{body}'"
