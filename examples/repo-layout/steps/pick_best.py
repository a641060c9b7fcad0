"""Pick the best learning rate of a sweep.

Inputs are two JSON lists in the same order: the learning rates the sweep tried
and the accuracy each forEach instance reported (values may arrive as numbers or
as strings, since output parameters are text). Ties go to the first candidate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import write_parameter


def parse_list(text: str, what: str) -> list[float]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as err:
        sys.exit(f"error: {what} is not JSON ({err}): {text!r}")
    if not isinstance(values, list) or not values:
        sys.exit(f"error: {what} must be a non-empty JSON list, got {text!r}")
    try:
        return [float(value) for value in values]
    except (TypeError, ValueError):
        sys.exit(f"error: {what} must hold numbers, got {text!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--learning-rates", required=True, help="JSON list of learning rates")
    parser.add_argument("--accuracies", required=True, help="JSON list of accuracies, same order")
    parser.add_argument("--best-learning-rate-out", type=Path)
    parser.add_argument("--best-accuracy-out", type=Path)
    parser.add_argument("--summary-out", type=Path, help="optional JSON table of all results")
    args = parser.parse_args()

    rates = parse_list(args.learning_rates, "--learning-rates")
    accuracies = parse_list(args.accuracies, "--accuracies")
    if len(rates) != len(accuracies):
        print(
            f"error: {len(rates)} learning rates but {len(accuracies)} accuracies",
            file=sys.stderr,
        )
        return 2

    best = max(range(len(rates)), key=lambda index: (accuracies[index], -index))
    for index, (rate, accuracy) in enumerate(zip(rates, accuracies, strict=True)):
        marker = "  <- best" if index == best else ""
        print(f"learning_rate={rate:<8g} accuracy={accuracy:.4f}{marker}")

    write_parameter(args.best_learning_rate_out, f"{rates[best]:g}")
    write_parameter(args.best_accuracy_out, f"{accuracies[best]:.4f}")
    if args.summary_out is not None:
        table = [
            {"learning_rate": r, "accuracy": a} for r, a in zip(rates, accuracies, strict=True)
        ]
        args.summary_out.parent.mkdir(parents=True, exist_ok=True)
        args.summary_out.write_text(
            json.dumps({"best": table[best], "results": table}, indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
