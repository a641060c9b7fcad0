"""Status plumbing shared by the controllers: metav1.Condition lists (lastTransitionTime
kept when a condition's status did not change, so `kubectl wait` and kstatus see real
transitions only) and the comparison that keeps no-op passes from writing."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

#: Status fields that change with the clock alone; a pass that only moves them writes nothing.
_CLOCK_ONLY = frozenset({"duration"})


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
    # The condition as this pass writes it; only its lastTransitionTime depends on the
    # condition it replaces (kept when the status did not change).
    written = {
        "type": type,
        "status": text,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }
    result: list[dict[str, Any]] = []
    found = False
    for condition in conditions:
        if condition.get("type") != type:
            result.append(dict(condition))
            continue
        found = True
        changed = condition.get("status") != text
        since = now if changed else condition.get("lastTransitionTime", now)
        result.append({**written, "lastTransitionTime": since})
    if not found:
        result.append({**written, "lastTransitionTime": now})
    return [{k: v for k, v in c.items() if v is not None} for c in result]


class Health(enum.Enum):
    """What an object's conditions tell kstatus (Flux) and Argo CD, set together so they
    never contradict: kstatus reads Stalled=True as Failed, Reconciling=True as
    InProgress and Ready=True as Current (sigs.k8s.io/cli-utils pkg/kstatus/status)."""

    PROGRESSING = "Progressing"  # Ready=False, Reconciling=True: work under way
    READY = "Ready"  # Ready=True: done and well
    STALLED = "Stalled"  # Ready=False, Stalled=True: failed, or stuck until a change
    FAILING = "Failing"  # Ready=False only: this attempt failed, a retry follows


def set_health(
    conditions: Sequence[Mapping[str, Any]],
    health: Health,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """Ready, Reconciling and Stalled for one state, with one reason and message."""
    result: list[dict[str, Any]] = [dict(c) for c in conditions]
    for kind, on in (
        ("Ready", health is Health.READY),
        ("Reconciling", health is Health.PROGRESSING),
        ("Stalled", health is Health.STALLED),
    ):
        result = set_condition(
            result,
            type=kind,
            status=on,
            reason=reason,
            message=message if on or kind == "Ready" else "",
            generation=generation,
            now=now,
        )
    return result


def same_status(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two statuses differ only in what the clock moves (transition times,
    durations): then writing would be a no-op for anyone reading them."""
    return bool(_comparable(a) == _comparable(b))


def _comparable(status: Mapping[str, Any]) -> Any:
    result = {k: v for k, v in status.items() if k not in _CLOCK_ONLY}
    result["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"}
        for c in status.get("conditions", [])
    ]
    return result
