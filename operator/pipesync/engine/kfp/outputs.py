"""A sub-DAG's outputs, followed to the flat tasks that produce them.

A pipeline used as a component, or a group with a `dsl.OneOf`, passes its tasks' outputs
up as its own; pipesync tasks read the producing task directly, and a OneOf reads the
first of its branches' outputs that exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from pipesync.api.yamlsource import Path
from pipesync.engine.kfp import placeholders
from pipesync.engine.kfp import values as v
from pipesync.engine.kfp.state import Translation, mapping
from pipesync.engine.kfp.values import Kind, Value
from pipesync.engine.templating import Ref

#: What the tasks of a DAG produce: by KFP task name, each output by its key.
Produced = Mapping[str, Mapping[str, Value]]


def dag_outputs(reading: Translation, dag_path: Path, produced: Produced) -> dict[str, Value]:
    """The outputs the DAG at `dag_path` declares, each as what produces it."""
    found: dict[str, Value] = {}
    outputs = mapping(mapping(reading.at(dag_path)).get("outputs"))
    for key, spec in mapping(outputs.get("parameters")).items():
        path = (*dag_path, "outputs", "parameters", key)
        if "valueFromOneof" in spec:
            found[key] = _one_of(reading, path, key, spec["valueFromOneof"], produced)
            continue
        selector = mapping(spec.get("valueFromParameter"))
        value = _selected(produced, selector, "outputParameterKey")
        if value is not None:
            found[key] = value
    for key, spec in mapping(outputs.get("artifacts")).items():
        path = (*dag_path, "outputs", "artifacts", key)
        chosen = [
            _selected(produced, selector, "outputArtifactKey")
            for selector in map(mapping, spec.get("artifactSelectors") or [])
        ]
        if len(chosen) == 1 and chosen[0] is not None:
            found[key] = chosen[0]
        elif len(chosen) > 1:
            found[key] = _one_of_artifacts(reading, path, key, chosen)
    return found


def _selected(produced: Produced, selector: Mapping[str, Any], key_field: str) -> Value | None:
    """The output a selector names (`producerSubtask` and its key), if it was produced."""
    return produced.get(str(selector.get("producerSubtask")), {}).get(str(selector.get(key_field)))


def _one_of_artifacts(
    reading: Translation, path: Path, key: str, chosen: list[Value | None]
) -> Value:
    """`dsl.OneOf` over artifacts: the artifact of whichever branch ran."""
    values = [value for value in chosen if value is not None]
    simple = all(
        value.kind is Kind.ARTIFACT and not value.loop and not value.choices for value in values
    )
    if len(values) != len(chosen) or not simple:
        reading.problem(path, f"DAG output {key!r}: OneOf over these outputs is not supported")
        return v.ABSENT  # reported once here, not again at each reader
    first = values[0]
    return dataclasses.replace(
        first,
        meta=all(value.meta for value in values),
        choices=tuple((value.task, value.name) for value in values),
    )


def _one_of(reading: Translation, path: Path, key: str, spec: Any, produced: Produced) -> Value:
    """`dsl.OneOf`: the output of whichever branch ran, as `{{A|B}}` alternatives."""
    choices: list[Ref] = []
    for item in mapping(spec).get("parameterSelectors") or []:
        value = _selected(produced, mapping(item), "outputParameterKey")
        ref = None if value is None else value.single_ref
        if ref is None or ref.alternatives:
            break
        choices.append(ref)
    else:
        if choices:
            return v.refers(placeholders.first_of(choices))
    reading.problem(path, f"DAG output {key!r}: OneOf over these outputs is not supported yet")
    return v.ABSENT  # reported once here, not again at each reader
