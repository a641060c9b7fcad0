"""metav1.Condition lists: set one condition, keeping lastTransitionTime when the status
did not change (so `kubectl wait` and kstatus see real transitions only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    *,
    type: str,
    status: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    text = "True" if status else "False"
    result: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != type:
            result.append(dict(condition))
            continue
        found = True
        changed = condition.get("status") != text
        result.append(
            {
                "type": type,
                "status": text,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": now if changed else condition.get("lastTransitionTime", now),
            }
        )
    if not found:
        result.append(
            {
                "type": type,
                "status": text,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": now,
            }
        )
    return [{k: v for k, v in c.items() if v is not None} for c in result]
