"""The Pipeline controller's logic: validate the spec, record its versions, say Ready.

Pure: the kopf handler in `pipesync.controllers.operator` hands in the object and the
time, and writes back the status this returns (only when it differs).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pipesync.api import documents, model, schemas
from pipesync.controllers.conditions import Health, set_health
from pipesync.engine import compiler

#: Versions kept in status; older ones drop off (runs pin theirs in their own status).
MAX_VERSIONS = 20
COMMIT_ANNOTATION = "pipesync.io/commit"
SOURCE_ANNOTATION = "pipesync.io/source"
#: The GitSource's path: the repository folder holding pipelines/, the tasks' working dir.
SOURCE_PATH_ANNOTATION = "pipesync.io/source-path"
#: The sha256 of the repository archive the GitSource uploaded for this commit: task pods
#: refuse an archive that differs (someone else with write access to the key replaced it).
ARCHIVE_DIGEST_ANNOTATION = "pipesync.io/archive-sha256"
_MAX_PROBLEMS_SHOWN = 5


def digest(spec: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a spec: equal specs, equal digests."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


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
    spec_digest = digest(spec)
    version_id = spec_digest.split(":", 1)[1][:12]
    versions = [dict(v) for v in status.get("versions", [])]
    if not any(v.get("id") == version_id for v in versions):
        annotations = metadata.get("annotations") or {}
        versions.append(
            {
                "id": version_id,
                "digest": spec_digest,
                "commit": annotations.get(COMMIT_ANNOTATION, ""),
                "source": annotations.get(SOURCE_ANNOTATION, ""),
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
