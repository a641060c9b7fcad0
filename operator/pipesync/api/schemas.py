"""Access to the JSON Schemas of the pipesync kinds, the single source of truth.

The schema files live in the repository's ``schemas/`` directory. The package
reaches them through ``pipesync/schemas`` (a symlink in the source tree, real
files in an installed wheel), so the same code works from a checkout, an
editable install and ``pip install .``. ``$ref``s between the files resolve
offline through a ``referencing`` registry: validation never touches the
network.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from pipesync.api import times

# kind -> file name under schemas/. "common" holds the shared $defs.
SCHEMA_FILES: dict[str, str] = {
    "GitSource": "gitsource.schema.json",
    "Pipeline": "pipeline.schema.json",
    "Experiment": "experiment.schema.json",
    "Run": "run.schema.json",
    "RecurringRun": "recurringrun.schema.json",
    "common": "common.schema.json",
}

#: The kinds a document may have (every schema except the shared definitions).
KINDS: tuple[str, ...] = tuple(k for k in SCHEMA_FILES if k != "common")

_BY_LOWER = {k.lower(): k for k in SCHEMA_FILES}


def _canonical_kind(kind: str) -> str:
    try:
        return _BY_LOWER[kind.lower()]
    except KeyError:
        known = ", ".join(SCHEMA_FILES)
        raise KeyError(f"no schema for kind {kind!r} (known: {known})") from None


@functools.cache
def _load_cached(kind: str) -> dict[str, Any]:
    path = resources.files("pipesync") / "schemas" / SCHEMA_FILES[kind]
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def load(kind: str) -> dict[str, Any]:
    """Return the JSON Schema of ``kind`` ("Pipeline", "run", "common", ...).

    The result is a fresh copy: callers may modify it freely.
    """
    return copy.deepcopy(_load_cached(_canonical_kind(kind)))


def properties(definition: str, *, leaving_out: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The property names of a common definition ("task", "pipelineSpec"), in the
    schema's order: one list for every reader that walks an object's fields (`pipesync
    diff`), so a field added to the schema is never forgotten by one of them."""
    declared = _load_cached("common")["$defs"][definition]["properties"]
    return tuple(name for name in declared if name not in leaving_out)


def _is_datetime(value: object) -> bool:
    # jsonschema only checks "date-time" when the optional rfc3339-validator package is
    # installed; we check it ourselves so `pipesync validate` behaves the same everywhere.
    if not isinstance(value, str):
        return True  # formats only constrain strings; "type" reports the rest
    return times.is_rfc3339(value)


def format_checker() -> FormatChecker:
    """The format checker used by :func:`validator`: the formats the schemas use."""
    checker = FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_is_datetime)
    return checker


@functools.cache
def registry() -> Registry[Any]:
    """A registry holding every schema under its ``$id``, for offline ``$ref`` resolution."""
    resources_ = []
    for kind in SCHEMA_FILES:
        contents = _load_cached(kind)
        resources_.append(
            (contents["$id"], Resource.from_contents(contents, default_specification=DRAFT202012))
        )
    return Registry().with_resources(resources_).crawl()


@functools.cache
def validator(kind: str) -> Validator:
    """A cached Draft 2020-12 validator of documents of ``kind``, with format checking on."""
    canonical = _canonical_kind(kind)
    schema = _load_cached(canonical)
    return Draft202012Validator(schema, registry=registry(), format_checker=format_checker())


def bundled(kind: str) -> dict[str, Any]:
    """The schema of ``kind`` with every ``$ref`` replaced by what it points to.

    A ``$ref`` with sibling keywords becomes ``allOf`` of the target and the siblings, so
    the meaning is the one Draft 2020-12 gives it. Used where a validator cannot follow
    references between files (the fast pre-check in :func:`is_valid`).
    """
    canonical = _canonical_kind(kind)
    root = _load_cached(canonical)
    inlined: dict[str, Any] = _inline(root, root, depth=0)
    return inlined


def _inline(node: Any, base: dict[str, Any], depth: int) -> Any:
    if depth > 64:
        raise ValueError("schema references nest too deeply (a recursive $ref?)")
    if isinstance(node, list):
        return [_inline(item, base, depth) for item in node]
    if not isinstance(node, dict):
        return node
    result = {
        key: _inline(value, base, depth)
        for key, value in node.items()
        if key not in ("$ref", "$defs", "$id", "$schema")
    }
    reference = node.get("$ref")
    if reference is None:
        return result
    document, _, pointer = str(reference).partition("#")
    target_root = _load_cached(_kind_of_file(document)) if document else base
    target: Any = target_root
    for part in pointer.strip("/").split("/") if pointer.strip("/") else ():
        target = target[part]
    resolved = _inline(target, target_root, depth + 1)
    siblings = {k: v for k, v in result.items() if k not in ("description", "default")}
    if not siblings:
        return resolved
    return {"allOf": [resolved, siblings]}


def _kind_of_file(file: str) -> str:
    for kind, name in SCHEMA_FILES.items():
        if name == file:
            return kind
    raise KeyError(f"$ref to unknown schema file {file!r}")


_WALK_FIRST = 12
_checked: dict[str, int] = {}


@functools.cache
def _fast_check(kind: str) -> Any:
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", **bundled(kind)}
    # use_default=False: fastjsonschema would otherwise write the schemas' defaults into
    # the document it checks, so documents would change after the first dozen of a kind.
    return fastjsonschema.compile(schema, formats={"date-time": _is_datetime}, use_default=False)


def is_valid(kind: str, document: Any) -> bool:
    """A fast yes/no: schema-valid documents (nearly all) skip the detailed validator.

    Compiling the check costs about as much as walking a dozen documents, so the first
    few documents of a kind are walked and the compiled check serves the rest.
    """
    seen = _checked.get(kind, 0)
    _checked[kind] = seen + 1
    if seen < _WALK_FIRST:
        return bool(validator(kind).is_valid(document))
    return compiled_is_valid(kind, document)


def compiled_is_valid(kind: str, document: Any) -> bool:
    """The compiled check (fastjsonschema): generated Python code, tens of times faster
    than walking the schema, over the bundled schema so it means the same."""
    try:
        _fast_check(_canonical_kind(kind))(document)
    except fastjsonschema.JsonSchemaException:
        return False
    return True
