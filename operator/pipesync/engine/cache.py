"""The task cache's rules: when a task uses it, its key, its entries and when an entry may
serve. Both executors follow them, so a task cached on a laptop and in the cluster is
keyed the same way; they differ only in where entries and artifacts are kept (a work
directory, S3 under the namespace's prefix: `engine.layout.cache_entry_key`).

The key is a sha256 over what decides a task's results, in canonical JSON:
  the image; the argv and env as rendered for the attempt, with the attempt's own files
  left symbolic (they differ per run, what is in them is the task's business) and
  without the per-run PIPESYNC_* variables; env from Secrets and ConfigMaps by name and
  key (not their values, which pipesync must not read); volumes as declared; the
  working directory; the content digest of each input artifact; the task's code (a
  digest of the repository paths in `cache.paths` at the run's commit, or of the whole
  tree); the declared outputs; `cache.salt`. Not in it: resources, placement, retry,
  timeout, description: they change how or where a task runs, not what it computes.

Pure: the executors compute digests and read and write entries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pipesync.api import conventions
from pipesync.api.model import CacheMode, Task
from pipesync.engine import attempt
from pipesync.engine.compiler import CompiledPipeline, CompiledTask
from pipesync.engine.inputs import InputSources
from pipesync.engine.planner import Launch
from pipesync.engine.state import SUCCESSFUL, NodeKey, NodeState
from pipesync.engine.templating import Ref, RefKind

#: Changes when what goes into a key changes, so older entries stop matching.
KEY_FORMAT = "pipesync-cache/1"

#: What pipesync tells every attempt that differs per run or per attempt, not per input.
_PER_RUN_ENV = frozenset({"PIPESYNC_RUN", "PIPESYNC_NAMESPACE", "PIPESYNC_ATTEMPT"})


def applies(task: CompiledTask, mode: CacheMode) -> bool:
    """Whether the run reads or writes the cache for this task: its cache is enabled
    and the run does not disable it. onExit is never cached: it reports on this run."""
    return task.task.cache.enabled and not task.is_exit and mode is not CacheMode.DISABLED


def looks_up(task: CompiledTask, mode: CacheMode) -> bool:
    """Whether an entry may serve this task (Refresh runs it and rewrites the entry)."""
    return applies(task, mode) and mode is CacheMode.ENABLED


def cache_key(launch: Launch, *, input_digests: Mapping[str, str], code_digest: str) -> str:
    """The key of one task attempt's results (see the module's docstring). `input_digests`:
    each input artifact's content digest by input name; `code_digest`: the digest of the
    task's code (`cache.paths`) at the run's commit, "" when `paths` is empty."""

    def symbolic(kind: RefKind, name: str) -> str:
        return f"<{kind.value}:{name}>"

    program = attempt.program(launch, run="", namespace="", path_of=symbolic)
    env = {k: v for k, v in program.env.items() if k not in _PER_RUN_ENV}
    material: dict[str, Any] = {
        "format": KEY_FORMAT,
        **_declared(launch.task.task, program.argv, env, program.working_dir),
        "inputs": sorted(input_digests.items()),
        "code": code_digest,
    }
    return hashlib.sha256(conventions.canonical_json(material)).hexdigest()


def definition(task: CompiledTask) -> dict[str, Any]:
    """The parts of a task's key its definition decides, as compiled: the argv and env
    with their placeholders unrendered (what they render to is the run's: parameter
    values, upstream outputs, see `keyed_upstream`). Two versions of a task whose
    definitions are equal get equal keys from equal inputs and code; `pipesync diff`
    compares them to forecast the cache (gitops.cacheforecast)."""
    argv = tuple(t.render(str) for t in task.argv)  # a Ref's str is its placeholder
    env = {name: t.render(str) for name, t in task.env}
    return _declared(task.task, argv, env, task.task.working_dir or "")


def keyed_upstream(pipeline: CompiledPipeline, task: CompiledTask) -> tuple[str, ...]:
    """The upstream tasks whose outputs go into this task's key: the producers of its
    input artifacts (content digests) and of the output parameters its argv and env
    render, and the task whose output its forEach items are. A task it only waits for
    (`dependsOn`, a `when`) does not change its key."""
    names = [
        pipeline.tasks[producer].name
        for binding in task.inputs
        for producer, _ in binding.alternatives or ((binding.producer, binding.artifact),)
    ]
    for template in (*task.argv, *(t for _, t in task.env)):
        for ref in template.refs:
            names.extend(
                r.task for r in ref.alternatives or (ref,) if r.kind is RefKind.TASK_PARAMETER
            )
    if isinstance(task.items, Ref) and task.items.kind is RefKind.TASK_PARAMETER:
        names.extend(r.task for r in task.items.alternatives or (task.items,))
    return tuple(dict.fromkeys(names))


def _declared(
    task: Task, argv: Sequence[str], env: Mapping[str, str], working_dir: str
) -> dict[str, Any]:
    """What of the key comes from the task and its rendered program (all but the input
    digests and the code): one list for `cache_key` and `definition`."""
    return {
        "image": task.image or "",
        "argv": list(argv),
        "env": sorted(env.items()),
        "envFrom": sorted([r.name, r.kind, r.source, r.key, r.optional] for r in task.env_refs),
        "volumes": [
            [v.name, v.mount_path, v.read_only, v.kind, dict(v.source)] for v in task.volumes
        ],
        "workingDir": working_dir,
        "outputs": [list(task.output_parameters), list(task.output_artifacts)],
        "salt": task.cache.salt,
    }


@dataclasses.dataclass(frozen=True)
class StoredArtifact:
    key: str  # where the artifact is, relative to the store's root (an S3 key)
    sha256: str
    #: The store's tags of its objects when stored (`ObjectStore.content_tags`, digested):
    #: an object rewritten or gone since changes them. "" in the local store, which
    #: checks the content digest itself.
    tags: str = ""


def code_paths_key(paths: Sequence[str] | None) -> str:
    """How a task's `cache.paths` is named where code digests are kept by paths (the
    Pipeline annotation a GitSource writes): "*" for the whole tree."""
    return "*" if paths is None else json.dumps(sorted(paths), separators=(",", ":"))


def input_digests(
    read: Sequence[InputSources], nodes: Mapping[NodeKey, NodeState]
) -> dict[str, str] | None:
    """Each input artifact's digest from its producers' states (engine.inputs says which
    nodes it reads); None when a producer that succeeded reported no digest, so the task
    cannot be keyed. A producer that did not succeed (an optional input never written)
    counts as absent. An input of several artifacts is digested over their digests."""
    found: dict[str, str] = {}
    for each in read:
        parts: list[tuple[str, str]] = []
        for source in each.sources:
            state = nodes.get(source.node)
            if state is None or state.phase not in SUCCESSFUL:
                parts.append((source.inside, ""))
                continue
            digest = state.digests.get(source.artifact)
            if digest is None:
                return None
            parts.append((source.inside, digest))
        if len(parts) == 1 and not parts[0][0]:
            found[each.binding.name] = parts[0][1]
        else:
            material = conventions.canonical_json(sorted(parts))
            found[each.binding.name] = hashlib.sha256(material).hexdigest()
    return found


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """`<namespace>/cache/<key>.json`: what a succeeded task produced, to serve the next
    task with the same key."""

    key: str
    created_at: float  # when the source task finished (epoch seconds)
    run: str  # the source run
    task: str  # the source task or instance, as its run names it
    outputs: Mapping[str, str] = dataclasses.field(default_factory=dict)
    artifacts: Mapping[str, StoredArtifact] = dataclasses.field(default_factory=dict)
    duration_seconds: float = 0.0  # how long the source task ran
    gpus: int = 0  # what it held while it ran (GPU-seconds saved = duration x gpus)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "key": self.key,
            "createdAt": self.created_at,
            "run": self.run,
            "task": self.task,
            "outputs": dict(self.outputs),
            "artifacts": {
                name: {"key": a.key, "sha256": a.sha256, "tags": a.tags}
                for name, a in self.artifacts.items()
            },
            "durationSeconds": self.duration_seconds,
            "gpus": self.gpus,
        }

    @classmethod
    def from_json(cls, data: Any) -> CacheEntry | None:
        """None for anything that is not an entry of this format (a miss, not an error:
        a store is shared by versions of pipesync and by whoever can write to it)."""
        try:
            if not isinstance(data, Mapping) or data.get("format") != KEY_FORMAT:
                return None
            artifacts = {
                str(name): StoredArtifact(str(a["key"]), str(a["sha256"]), str(a.get("tags") or ""))
                for name, a in dict(data.get("artifacts") or {}).items()
            }
            created = float(data["createdAt"])
            if not math.isfinite(created):
                return None
            return cls(
                key=str(data["key"]),
                created_at=created,
                run=str(data["run"]),
                task=str(data["task"]),
                outputs={str(k): str(v) for k, v in dict(data.get("outputs") or {}).items()},
                artifacts=artifacts,
                duration_seconds=float(data.get("durationSeconds") or 0.0),
                gpus=int(data.get("gpus") or 0),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def serves(
    entry: CacheEntry | None, launch: Launch, key: str, now: float, max_age: float | None
) -> bool:
    """Whether `entry` may serve `launch`: it is the entry of this key, no older than the
    task's `cache.maxAge`, and holds every output the task declares (artifact objects and
    their digests are the executor's to check)."""
    if entry is None or entry.key != key:
        return False
    if max_age is not None and now - entry.created_at > max_age:
        return False
    task = launch.task.task
    return set(task.output_parameters) <= set(entry.outputs) and set(task.output_artifacts) <= set(
        entry.artifacts
    )
