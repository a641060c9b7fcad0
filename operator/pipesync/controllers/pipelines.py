"""The Pipeline controller's logic: validate the spec, record its versions, say Ready.

Pure: the kopf handler in `pipesync.controllers.operator` hands in the object and the
time, and writes back the status this returns (only when it differs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipesync.api import conventions, documents, model, schemas
from pipesync.controllers.conditions import Health, set_health
from pipesync.engine import compiler

#: Versions kept in status; older ones drop off (runs pin theirs in their own status).
MAX_VERSIONS = 20
_MAX_PROBLEMS_SHOWN = 5


def problems(body: Mapping[str, Any]) -> list[str]:
    """Schema and DAG problems of a Pipeline object, each naming its field."""
    validator = schemas.validator(model.Kind.PIPELINE.value)
    found = [
        f"{documents.dotted(error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(dict(body))
        if list(error.absolute_path)[:1] != ["status"]
    ]
    if found:
        return found
    _, compile_problems = compiler.compile_pipeline(
        model.pipeline_spec_from_spec(body.get("spec", {}))
    )
    return [
        f"{documents.dotted(('spec', *problem.path))}: {problem.message}"
        for problem in compile_problems
    ]


def desired_status(body: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The status a Pipeline should have, given its current one."""
    metadata = body.get("metadata", {})
    status = dict(body.get("status") or {})
    generation = metadata.get("generation")
    found = problems(body)
    spec = body.get("spec", {})
    if found:
        shown = "; ".join(found[:_MAX_PROBLEMS_SHOWN])
        more = len(found) - _MAX_PROBLEMS_SHOWN
        message = shown + (f"; and {more} more" if more > 0 else "")
        # Stalled: only a change to the spec can fix it (kstatus: Failed, not InProgress).
        status["conditions"] = set_health(
            status.get("conditions", []),
            Health.STALLED,
            reason="InvalidSpec",
            message=message,
            generation=generation,
            now=now,
        )
        status["observedGeneration"] = generation
        return status
    spec_digest = conventions.spec_digest(spec)
    version_id = spec_digest.split(":", 1)[1][:12]
    versions = [dict(v) for v in status.get("versions", [])]
    if not any(v.get("id") == version_id for v in versions):
        annotations = metadata.get("annotations") or {}
        versions.append(
            {
                "id": version_id,
                "digest": spec_digest,
                "commit": annotations.get(conventions.ANNOTATION_COMMIT, ""),
                "source": annotations.get(conventions.ANNOTATION_SOURCE, ""),
                "createdAt": now,
            }
        )
    status["versions"] = versions[-MAX_VERSIONS:]
    status["latestVersion"] = version_id
    status["taskCount"] = len(spec.get("tasks", []))
    status["observedGeneration"] = generation
    status["conditions"] = set_health(
        status.get("conditions", []),
        Health.READY,
        reason="DAGValid",
        message=f"{len(spec.get('tasks', []))} tasks form a valid DAG (version {version_id})",
        generation=generation,
        now=now,
    )
    return status
