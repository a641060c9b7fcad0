"""Retry from failure: which nodes of an earlier run a new run of the same pipeline
reuses, read from that run's record. Succeeded (and cached) tasks and forEach instances
are reused whatever the cache settings, as Cached from the original; failed, cancelled,
omitted, skipped and never-started ones run (a skipped task decides again); onExit
always runs again, since it reports on the new run.

Pure: the executor reads the record and puts the reused artifacts in place.
"""

from __future__ import annotations

from collections.abc import Mapping

from pipesync.api import runstatus
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.state import SUCCESSFUL, TASK, CacheSource, NodeKey, NodeState, Phase

_REUSED = frozenset(phase.value for phase in SUCCESSFUL)


def reused_nodes(
    compiled: CompiledPipeline, record: runstatus.RunRecord
) -> dict[NodeKey, NodeState]:
    """The nodes of `record`'s run that a retry of it starts with, by node key."""
    nodes: dict[NodeKey, NodeState] = {}
    for task in compiled.tasks:
        detail = record.tasks.get(task.name)
        if detail is None:
            continue
        if task.fan_out:
            for instance in detail.instances or ():
                if instance.index is not None and instance.phase in _REUSED:
                    label = f"{task.name}[{instance.index}]"
                    nodes[(task.index, instance.index)] = _reused(record, label, instance)
        if detail.phase in _REUSED:
            nodes[(task.index, TASK)] = _reused(record, task.name, detail)
    return nodes


def _reused(record: runstatus.RunRecord, label: str, detail: runstatus.NodeDetail) -> NodeState:
    # A node the original itself had from a cache or an earlier retry names that source.
    source = detail.cached_from or {}
    origin = CacheSource(source.get("run") or record.name, source.get("task") or label)
    return NodeState(
        Phase.CACHED,
        outputs=dict(detail.outputs),
        message=f"reused from run {record.name}",
        cached_from=origin,
        digests=dict(detail.digests),  # so what runs after it can still be cache-keyed
    )


def params_of(record: runstatus.RunRecord) -> Mapping[str, object]:
    """The parameter values the original ran with."""
    params = record.spec.get("params")
    return dict(params) if isinstance(params, Mapping) else {}
