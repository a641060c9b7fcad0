"""Pipeline parameters: typing given values against declarations, defaults, enums."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from pipesync.api.model import Param, ParamType


class ParamError(ValueError):
    """A value that does not fit its declared parameter."""


def described(kind: ParamType) -> str:
    """The type with its article, for messages: "an integer", "a list"."""
    return ("an " if kind.value[0] in "aeiou" else "a ") + kind.value


def conforms(value: Any, kind: ParamType) -> bool:
    """Whether an already-typed value (from YAML or JSON) has the declared type."""
    if kind is ParamType.STRING:
        return isinstance(value, str)
    if kind is ParamType.BOOLEAN:
        return isinstance(value, bool)
    if kind is ParamType.INTEGER:
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind is ParamType.NUMBER:
        return (
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        )
    if kind is ParamType.LIST:
        return isinstance(value, list | tuple)
    return isinstance(value, dict)


def coerce_text(text: str, kind: ParamType) -> Any:
    """A value typed on a command line (`-p lr=0.1`) as its declared type."""
    try:
        if kind is ParamType.STRING:
            return text
        if kind is ParamType.INTEGER:
            return int(text)
        if kind is ParamType.NUMBER:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
        if kind is ParamType.BOOLEAN:
            lowered = text.strip().lower()
            if lowered in ("true", "yes", "1"):
                return True
            if lowered in ("false", "no", "0"):
                return False
            raise ValueError(text)
        value = json.loads(text)
    except ValueError:
        raise ParamError(f"{text!r} is not {described(kind)}") from None
    if not conforms(value, kind):
        raise ParamError(f"{text!r} is not {described(kind)} (as JSON)")
    return value


def normalise(value: Any, kind: ParamType) -> Any:
    if kind is ParamType.INTEGER and isinstance(value, float):
        return int(value)
    if kind is ParamType.LIST and isinstance(value, tuple):
        return list(value)
    return value


def resolve(
    declared: tuple[Param, ...], given: Mapping[str, Any], *, from_text: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """Final parameter values and the problems (each naming the parameter)."""
    problems: list[str] = []
    by_name = {param.name: param for param in declared}
    for name in given:
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none"
            problems.append(f"unknown parameter {name!r} (declared: {known})")
    values: dict[str, Any] = {}
    for param in declared:
        if param.name in given:
            raw = given[param.name]
            try:
                if from_text and isinstance(raw, str):
                    value = coerce_text(raw, param.type)
                elif conforms(raw, param.type):
                    value = raw
                else:
                    raise ParamError(f"{raw!r} is not {described(param.type)}")
            except ParamError as error:
                problems.append(f"parameter {param.name!r}: {error}")
                continue
        elif param.has_default:
            value = param.default
        else:
            problems.append(f"parameter {param.name!r} is required (it has no default)")
            continue
        value = normalise(value, param.type)
        if param.enum and value not in param.enum:
            allowed = ", ".join(repr(v) for v in param.enum)
            problems.append(f"parameter {param.name!r}: {value!r} is not one of {allowed}")
            continue
        values[param.name] = value
    return values, problems


def check_declarations(declared: tuple[Param, ...]) -> list[tuple[int, str]]:
    """Problems in the declarations themselves, as (index, message)."""
    problems: list[tuple[int, str]] = []
    seen: set[str] = set()
    for index, param in enumerate(declared):
        if param.name in seen:
            problems.append((index, f"duplicate parameter name {param.name!r}"))
        seen.add(param.name)
        if param.has_default and not conforms(param.default, param.type):
            problems.append(
                (
                    index,
                    f"default {param.default!r} of {param.name!r} is not {described(param.type)}",
                )
            )
        if (
            param.enum
            and param.has_default
            and conforms(param.default, param.type)
            and normalise(param.default, param.type) not in param.enum
        ):
            allowed = ", ".join(repr(v) for v in param.enum)
            problems.append(
                (
                    index,
                    f"default {param.default!r} of {param.name!r} is not one of its enum "
                    f"values {allowed}: make the default one of them, or add it to enum",
                )
            )
        for option in param.enum:
            if not conforms(option, param.type):
                problems.append(
                    (
                        index,
                        f"enum value {option!r} of {param.name!r} is not {described(param.type)}",
                    )
                )
    return problems
