"""Files to resources: YAML parsed with positions, kind checked, schema validated.

Every problem comes back as a located diagnostic, and one bad document never hides the
good ones beside it: the caller gets both.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema

from pipesync.api import model, schemas, yamlsource
from pipesync.api.diagnostics import Diagnostic
from pipesync.api.yamlsource import Path, SourceDocument

_KINDS = {kind.value: kind for kind in model.Kind}

#: Friendlier words for the patterns the schemas use.
_PATTERN_HINTS = {
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": "a DNS-1123 label: lowercase letters, digits and '-', "
    "starting and ending with a letter or digit",
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$": "a DNS-1123 "
    "subdomain: lowercase letters, digits, '-' and '.'",
    "^([0-9]+(\\.[0-9]+)?(ms|s|m|h|d))+$": "a duration such as 30s, 5m, 1h30m or 2d",
    "^([^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+)(/([^/.][^/]*|\\.[^/.][^/]*|\\.\\.[^/]+))*$": (
        "a path inside the repository, relative to its root, such as steps/train.py "
        "(no leading '/', no empty, '.' or '..' part)"
    ),
    "^\\{\\{tasks\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.outputs\\.artifacts\\.[A-Za-z_]"
    "[A-Za-z0-9_-]*(\\|tasks\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.outputs\\.artifacts\\."
    "[A-Za-z_][A-Za-z0-9_-]*)*\\}\\}$": "an artifact reference: expected "
    "'{{tasks.TASK.outputs.artifacts.NAME}}' (alternatives joined by '|', as in "
    "'{{tasks.a.outputs.artifacts.x|tasks.b.outputs.artifacts.x}}')",
    "^\\{\\{(params\\.[A-Za-z_][A-Za-z0-9_-]*|tasks\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?"
    "\\.outputs\\.parameters\\.[A-Za-z_][A-Za-z0-9_-]*)\\}\\}$": "a parameter "
    "reference: expected '{{params.NAME}}' or '{{tasks.TASK.outputs.parameters.NAME}}'",
    "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[^\\s]+(\\s+[^\\s]+){4,5})$": (
        "a cron expression: expected 5 fields (minute hour day-of-month month "
        "day-of-week), 6 with seconds first, or a macro such as @daily"
    ),
}


@dataclasses.dataclass(frozen=True)
class Resource:
    """One valid document: its kind, metadata, the raw body and where it came from."""

    kind: model.Kind
    metadata: model.Metadata
    body: Mapping[str, Any]
    source: SourceDocument

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.body.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def name(self) -> str:
        return self.metadata.name

    def diagnostic(self, path: Path, message: str, *, key: bool = False) -> Diagnostic:
        return self.source.diagnostic(path, message, key=key)


def load(raw: bytes, file: str) -> tuple[list[Resource], list[Diagnostic]]:
    """The valid resources of a file and the problems of the others."""
    text, problems = yamlsource.decode(raw, file)
    if text is None:
        return [], problems
    documents, problems = yamlsource.parse(text, file)
    resources: list[Resource] = []
    for document in documents:
        resource, found = check_document(document)
        problems.extend(found)
        if resource is not None:
            resources.append(resource)
    return resources, problems


def check_document(document: SourceDocument) -> tuple[Resource | None, list[Diagnostic]]:
    data = document.data
    if not isinstance(data, dict):
        return None, [
            document.diagnostic((), "a document must be a mapping with apiVersion, kind, metadata")
        ]
    api_version = data.get("apiVersion")
    if api_version != model.API_VERSION:
        where: Path = ("apiVersion",) if "apiVersion" in data else ()
        shown = "missing" if api_version is None else repr(api_version)
        return None, [
            document.diagnostic(where, f"apiVersion is {shown}; expected {model.API_VERSION!r}")
        ]
    kind = _KINDS.get(str(data.get("kind")))
    if kind is None:
        known = ", ".join(_KINDS)
        where = ("kind",) if "kind" in data else ()
        return None, [
            document.diagnostic(
                where, f"unknown kind {data.get('kind')!r}; expected one of {known}"
            )
        ]
    problems = schema_problems(document, kind)
    if problems:
        return None, problems
    return Resource(kind, model.metadata_from_spec(data["metadata"]), data, document), []


def schema_problems(document: SourceDocument, kind: model.Kind) -> list[Diagnostic]:
    if schemas.is_valid(kind.value, document.data):
        return []
    validator = schemas.validator(kind.value)
    problems = [
        _describe(document, error)
        for error in sorted(validator.iter_errors(document.data), key=_error_order)
    ]
    return sorted(set(problems))


def _error_order(error: jsonschema.ValidationError) -> tuple[int, str]:
    return (len(error.absolute_path), str(list(error.absolute_path)))


def dotted(path: Iterable[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _describe(document: SourceDocument, error: jsonschema.ValidationError) -> Diagnostic:
    error = _deepest(error)
    path: Path = tuple(error.absolute_path)
    where = dotted(path)
    validator = error.validator
    if validator == "additionalProperties":
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        instance = error.instance if isinstance(error.instance, Mapping) else {}
        extras = sorted(set(instance) - set(schema.get("properties", {})))
        if extras:
            first = extras[0]
            names = ", ".join(repr(e) for e in extras)
            return document.diagnostic((*path, first), f"{where}: unknown field {names}", key=True)
    if validator == "required":
        return document.diagnostic(path, f"{where}: {error.message.replace('property', 'field')}")
    if validator == "pattern":
        hint = _PATTERN_HINTS.get(str(error.validator_value))
        expected = hint or f"text matching {error.validator_value}"
        return document.diagnostic(path, f"{where}: {error.instance!r} is not {expected}")
    if validator == "not" and isinstance(error.schema, Mapping):
        reason = error.schema.get("description", "this field is not allowed here")
        return document.diagnostic(path, f"{where}: {reason}", key=True)
    if validator == "const":
        return document.diagnostic(path, f"{where}: must be {error.validator_value!r}")
    if validator == "enum":
        allowed = ", ".join(repr(v) for v in _listed(error.validator_value))
        return document.diagnostic(path, f"{where}: {error.instance!r} is not one of {allowed}")
    if validator == "oneOf" and "is valid under each of" in error.message:
        return document.diagnostic(path, f"{where}: {_one_of_message(error)}")
    if validator == "type":
        return document.diagnostic(
            path,
            f"{where}: expected {_type_words(error.validator_value)}, "
            f"got {_json_type(error.instance)}",
        )
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    return document.diagnostic(path, f"{where}: {message}")


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For oneOf/anyOf failures, the sub-error that explains the most specific problem."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and "is valid under each of" not in error.message:
            return _deepest(best)
    return error


def _one_of_message(error: jsonschema.ValidationError) -> str:
    options = [
        " and ".join(sorted(option.get("required", []))) or "an alternative"
        for option in _listed(error.validator_value)
        if isinstance(option, dict)
    ]
    return "set exactly one of " + ", ".join(options) if options else error.message


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _type_words(expected: Any) -> str:
    names = {
        "object": "a mapping",
        "array": "a list",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "null",
    }
    if isinstance(expected, list):
        return " or ".join(names.get(str(e), str(e)) for e in expected)
    return names.get(str(expected), str(expected))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"{value!r} (a number)"
    if value is None:
        return "null (empty)"
    return f"{value!r} (a string)"
