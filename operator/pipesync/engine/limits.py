"""How big one run may grow: the bounds every executor and `pipesync validate` apply, so
one pipeline cannot take the operator (and with it every tenant) down by its size alone.
The defaults live here only; the operator's flags override them (docs/pipelines.md)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Limits:
    #: Items in one forEach list or one matrix axis.
    items: int = 10_000
    #: Instances of one forEach task: a matrix's product of axis lengths.
    instances: int = 10_000
    #: Task pods one planning pass starts; the rest start in the next passes.
    launches: int = 500


DEFAULT = Limits()


def items_problem(count: int, limits: Limits, what: str = "forEach items") -> str | None:
    """Why a list of `count` items is too long, or None."""
    if count > limits.items:
        return f"{what}: {count} items, more than the limit of {limits.items} per forEach"
    return None


def instances_problem(lengths: list[int], limits: Limits) -> str | None:
    """Why a matrix with these axis lengths has too many instances, or None (the product
    is computed with an early stop, never materialised)."""
    product = 1
    for length in lengths:
        product *= length
        if product > limits.instances:
            shown = " x ".join(str(n) for n in lengths)
            return (
                f"forEach matrix: {shown} makes more than the limit of {limits.instances} "
                "instances per forEach task"
            )
    return None
