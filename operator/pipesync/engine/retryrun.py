"""The Run that retries a finished run from failure (`spec.retryOf: {name: RUN}`): one pure
function for `pipesync retry` and the UI's "Retry from failure", so the two cannot ask the
operator for different things.

Which spec, version, commit and params the retry runs is the operator's to pin, from the
original (controllers/runs.py `_retry_pin`): no pin is handed over. The new Run carries
the original's pipelineRef (naming the version it ran) or pipelineSpec, params,
experiment and limits anyway, so it is a whole Run by the schema (exactly one of
pipelineRef and pipelineSpec) and reads as what it runs in `kubectl get runs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api import model
from pipesync.engine.state import FINISHED, RunPhase

#: The phases a retry is offered for (the UI's button): the run ended without succeeding.
#: A succeeded run may still be retried by name (it reuses every task, runs onExit).
OFFERED: frozenset[str] = frozenset({RunPhase.FAILED.value, RunPhase.CANCELLED.value})

#: The original's spec fields a retry carries over (not `cancel`: a retry of a cancelled
#: run is meant to run; not `retryOf`: a retry of a retry names the run it retries).
_KEPT = (
    "pipelineRef",
    "pipelineSpec",
    "params",
    "experimentRef",
    "timeout",
    "cache",
    "serviceAccountName",
)


class NotRetryable(ValueError):
    """The run cannot be retried (yet); the message says why, in one line."""


def retry_body(original: Mapping[str, Any], new_name: str) -> dict[str, Any]:
    """The Run retrying `original` (a Run object) from failure, named `new_name`;
    NotRetryable when it has not finished (nothing to retry from yet) or is no Run
    pipesync could run."""
    metadata, spec = original.get("metadata") or {}, original.get("spec") or {}
    status = original.get("status") or {}
    name = str(metadata.get("name") or "")
    phase = str(status.get("phase") or "")
    if phase not in FINISHED:
        raise NotRetryable(
            f"run {name} is {phase or 'Pending'}, not finished: wait for it or cancel it, "
            "then retry"
        )
    kept: dict[str, Any] = {key: spec[key] for key in _KEPT if key in spec}
    if ("pipelineRef" in kept) == ("pipelineSpec" in kept):
        raise NotRetryable(f"run {name} has neither a pipelineRef nor a pipelineSpec to retry")
    version = (status.get("pipeline") or {}).get("version")
    if "pipelineRef" in kept and version:
        kept["pipelineRef"] = {**kept["pipelineRef"], "version": str(version)}
    kept["retryOf"] = {"name": name}
    return {
        "apiVersion": model.API_VERSION,
        "kind": "Run",
        "metadata": {"name": new_name},
        "spec": kept,
    }
