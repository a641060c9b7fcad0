"""Which nodes' artifacts each input artifact of a launch reads, and where inside the
input they land. One definition for the pod builder (which turns each source into an S3
key to fetch) and the task cache (which keys a task on the sources' content digests).

A plain input reads one node's artifact into the input itself; a forEach instance paired
with a producer instance reads that instance's; an input collecting a forEach's
artifacts reads each instance into a numbered folder of the input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from pipesync.engine.compiler import CompiledPipeline, InputBinding
from pipesync.engine.planner import Launch
from pipesync.engine.state import TASK, NodeKey, NodeState, Phase


class MissingInstances(Exception):
    """An input collects a forEach task's artifacts, but its instances are not known."""


@dataclasses.dataclass(frozen=True)
class Source:
    node: NodeKey  # the producing task or forEach instance
    artifact: str  # the producer's output artifact
    inside: str  # where it lands inside the input: "" for the input itself, else "3"


@dataclasses.dataclass(frozen=True)
class InputSources:
    binding: InputBinding
    sources: tuple[Source, ...]


def input_sources(
    launch: Launch,
    pipeline: CompiledPipeline,
    collected: Mapping[int, Sequence[int]] | None,
) -> list[InputSources]:
    """Each input artifact of `launch` and what it reads. `collected`: per forEach task
    (by index) its instances that ran, for inputs that collect their artifacts."""
    found = []
    for binding in launch.task.inputs:
        index, artifact = launch.source(binding)
        producer = pipeline.tasks[index]
        if index in launch.positions:  # a paired forEach instance's own artifact
            sources = [Source((index, launch.positions[index]), artifact, "")]
        elif index in launch.slices:  # the instances nested under this one
            under = launch.slices[index]
            first = under[0] if under else 0
            sources = [Source((index, i), artifact, str(i - first)) for i in under]
        elif producer.fan_out:
            instances = (collected or {}).get(index)
            if instances is None:
                raise MissingInstances(
                    f"task {launch.task.name!r} reads artifact {artifact!r} of forEach "
                    f"task {producer.name!r}: its instances are needed"
                )
            sources = [Source((index, i), artifact, str(i)) for i in instances]
        else:
            sources = [Source((index, TASK), artifact, "")]
        found.append(InputSources(binding, tuple(sources)))
    return found


def collected_instances(
    pipeline: CompiledPipeline, nodes: Mapping[NodeKey, NodeState]
) -> dict[int, list[int]]:
    """Per forEach task, its instances that ran (a skipped one has no artifacts): what
    an input collecting its artifacts reads."""
    found: dict[int, list[int]] = {}
    for (index, instance), state in nodes.items():
        if instance != TASK and index < len(pipeline.tasks) and pipeline.tasks[index].fan_out:
            listed = found.setdefault(index, [])
            if state.phase is not Phase.SKIPPED:
                listed.append(instance)
    for listed in found.values():
        listed.sort()
    return found
