"""The Run controller's task cache: serving launches from S3 entries instead of pods,
and storing the results of tasks that ran.

    look up (per launch the planner decided) -> copy the entry's artifacts -> remember
    the served nodes (S3, `layout.cached_nodes_key`) -> ... -> store results of pods that
    succeeded under the key annotated on them

A served node has no pod, so the run's truth about it lives in the run's own S3 prefix
(`cached.json`, written before the status says Cached); a restart reads it back once.
Each lookup is made once per attempt: a miss is remembered, and the pod created for it
carries the key under which its results are stored when it succeeds. The rules (what
applies, the key, when an entry serves) are engine.cache's; this module does the I/O.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pipesync.api import reports, runstatus
from pipesync.engine import cache as taskcache
from pipesync.engine import inputs, layout, resume
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.context import RunContext
from pipesync.engine.planner import Launch
from pipesync.engine.state import TASK, CacheSource, NodeKey, NodeState, Phase
from pipesync.runtime import cachestore, pods, podstate
from pipesync.runtime.storage import NotFound, StoreError

_log = logging.getLogger(__name__)

#: The format of `cached.json`.
SERVED_FORMAT = "pipesync-cached-nodes/1"


@dataclasses.dataclass(frozen=True)
class Hit:
    state: NodeState  # Cached, with the entry's outputs and digests
    entry: taskcache.CacheEntry


@dataclasses.dataclass
class Lookup:
    """What one round of lookups found."""

    hits: dict[NodeKey, Hit] = dataclasses.field(default_factory=dict)
    #: launches that run: the key their results are stored under when they succeed
    keys: dict[NodeKey, str] = dataclasses.field(default_factory=dict)
    misses: int = 0  # launches that looked the cache up and found nothing to serve

    def report(self) -> reports.CacheReport:
        saved = sum(hit.entry.duration_seconds * hit.entry.gpus for hit in self.hits.values())
        return reports.CacheReport(len(self.hits), self.misses, saved)


@dataclasses.dataclass(frozen=True)
class RunCode:
    """What the cache needs to know about a run's code: whether its tasks start in a
    repository tree (a GitSource's, at the pinned commit) and the digests of the
    `cache.paths` its Pipeline declares there (conventions.ANNOTATION_CODE_DIGESTS)."""

    in_tree: bool
    digests: Mapping[str, str]

    def digest(self, paths: tuple[str, ...] | None) -> str | None:
        """The code digest for `paths`; None when it is not known (the task must run)."""
        if paths == () or not self.in_tree:
            return ""  # no code from the tree: the image and command are the code
        return self.digests.get(taskcache.code_paths_key(paths))


def code_digests(value: Any) -> dict[str, str]:
    """Code digests as a Pipeline's annotation (JSON text) or a pin (an object) holds
    them; anything else reads as none (an annotation is whatever its writer put there)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, Mapping):
        return {}
    return {
        str(paths): digest
        for paths, digest in value.items()
        if isinstance(digest, str) and len(digest) == 64
    }


#: A run whose tasks start in no repository tree (an inline spec, a hand-made Pipeline).
NO_CODE = RunCode(in_tree=False, digests={})


class RunCache:
    """The task cache as the Run controller uses it; holds only what S3 holds too."""

    def __init__(self, store: cachestore.ObjectCacheStore, settings: pods.PodSettings) -> None:
        self.store = store
        self.settings = settings
        self._served: dict[str, dict[NodeKey, NodeState]] = {}  # by run uid
        self._recorded: set[str] = set()  # run uids whose cached.json exists
        self._missed: set[tuple[str, NodeKey, int]] = set()  # (run uid, node, attempt)
        self._stored: set[str] = set()  # pod uids whose results are in the cache

    # --- serving --------------------------------------------------------------------------

    def served(self, run: Mapping[str, Any], *, load: bool = True) -> dict[NodeKey, NodeState]:
        """The nodes the cache served this run in earlier passes. `load=False`: the run
        has none as far as its status says, so S3 is not asked (a run that caches
        nothing never waits for S3 here); if a crash came between writing them and the
        status, their launches are simply looked up again."""
        uid = run["metadata"]["uid"]
        if uid not in self._served and not load:
            return {}
        if uid not in self._served:
            loaded = self._load(run)
            if loaded is not None:
                self._recorded.add(uid)
            self._served[uid] = loaded or {}
        return dict(self._served[uid])

    def recorded(self, run: Mapping[str, Any]) -> bool:
        """Whether the run's served nodes were written at least once (a retry writes
        them, possibly none, before its first launch)."""
        self.served(run)
        return run["metadata"]["uid"] in self._recorded

    def reuse(
        self, run: Mapping[str, Any], compiled: CompiledPipeline, original: str
    ) -> dict[NodeKey, NodeState] | None:
        """Retry from failure: the original run's succeeded tasks and instances, read from
        its record (engine.resume), their artifacts copied into this run's keys; None
        while the original's record is not written yet."""
        metadata = run["metadata"]
        namespace = metadata["namespace"]
        key = self.store.full(layout.record_key(namespace, original))
        try:
            data = json.loads(self.store.store.get_bytes(key))
        except NotFound:
            return None
        record = runstatus.RunRecord.from_json(data) if isinstance(data, Mapping) else None
        if record is None or record.name != original or record.namespace != namespace:
            return {}  # not that run's record: nothing is reused, everything runs
        nodes = resume.reused_nodes(compiled, record)
        source = pods.RunInfo(original, namespace, "")
        reused = {}
        for node, state in nodes.items():
            task = compiled.at(node)
            position = None if node[1] == TASK else node[1]
            before = pods.node_prefix(self.settings.s3, source, task.name, position)
            after = self._node(run, task.name, node)
            origins = {
                name: layout.output_artifact_key(before, name)
                for name in task.task.output_artifacts
            }
            listed = {name: self.store.store.content_tags(key) for name, key in origins.items()}
            if not all(listed.values()):
                continue  # an artifact of it is gone: the task runs again
            for name, origin in origins.items():
                target = layout.output_artifact_key(after, name)
                self.store.copy(origin, listed[name], target)
            reused[node] = state
        return reused

    def look_up(
        self,
        run: Mapping[str, Any],
        compiled: CompiledPipeline,
        launches: Sequence[Launch],
        nodes: Mapping[NodeKey, NodeState],
        *,
        code: RunCode,
        context: RunContext,
        now: float,
    ) -> Lookup:
        """Keys each launch whose task caches; serves those an intact entry serves."""
        metadata = run["metadata"]
        uid, namespace = metadata["uid"], metadata["namespace"]
        collected = inputs.collected_instances(compiled, nodes)
        found = Lookup()
        for launch in launches:
            key = self._key(
                launch, compiled, nodes, code=code, collected=collected, context=context
            )
            if key is None:
                continue
            attempt = (uid, launch.key, launch.attempt)
            if taskcache.looks_up(launch.task, context.cache_mode) and attempt not in self._missed:
                hit = self._hit(run, launch, key, now)
                if hit is not None:
                    found.hits[launch.key] = hit
                    continue
                self._missed.add(attempt)
                found.misses += 1
            found.keys[launch.key] = key
        _log.debug("%s/%s: %d cache hits", namespace, metadata["name"], len(found.hits))
        return found

    def remember(
        self, run: Mapping[str, Any], served: Mapping[NodeKey, NodeState], *, always: bool = False
    ) -> bool:
        """Writes the run's served nodes with `served` added (`always`: even when none
        are); False when S3 refused (they are then not served: their tasks run)."""
        if not served and not always:
            return True
        metadata = run["metadata"]
        uid = metadata["uid"]
        merged = {**self.served(run), **served}
        body = {
            "format": SERVED_FORMAT,
            "runUid": uid,
            "nodes": {pods.format_node_key(key): _state_json(s) for key, s in merged.items()},
        }
        try:
            self.store.store.put_bytes(
                self.store.full(layout.cached_nodes_key(metadata["namespace"], metadata["name"])),
                json.dumps(body, sort_keys=True).encode(),
            )
        except StoreError as error:
            _log.warning("%s: the cache's served tasks not recorded: %s", metadata["name"], error)
            return False
        self._served[uid] = merged
        self._recorded.add(uid)
        return True

    def forget(self, uid: str) -> None:
        """The run finished: nothing of it is looked up again."""
        self._served.pop(uid, None)
        self._recorded.discard(uid)
        self._missed = {missed for missed in self._missed if missed[0] != uid}

    # --- storing --------------------------------------------------------------------------

    def store_results(
        self,
        run: Mapping[str, Any],
        compiled: CompiledPipeline,
        nodes: Mapping[NodeKey, NodeState],
        pods_by_key: Mapping[NodeKey, podstate.PodState],
    ) -> int:
        """Writes an entry for each succeeded pod whose attempt was keyed (once per pod);
        how many it wrote."""
        written = 0
        for key, pod in pods_by_key.items():
            state = nodes.get(key)
            if (
                not pod.cache_key
                or pod.uid in self._stored
                or state is None
                or state.phase is not Phase.SUCCEEDED
            ):
                continue
            try:
                written += self._store(run, compiled, key, pod, state)
            except StoreError as error:  # the run goes on; a later run runs this task again
                _log.warning("%s: caching %s failed: %s", run["metadata"]["name"], key, error)
            self._stored.add(pod.uid)
        return written

    def _store(
        self,
        run: Mapping[str, Any],
        compiled: CompiledPipeline,
        key: NodeKey,
        pod: podstate.PodState,
        state: NodeState,
    ) -> int:
        metadata = run["metadata"]
        namespace = metadata["namespace"]
        task = compiled.at(key)
        node = self._node(run, task.name, key)
        artifacts = {}
        for name in task.task.output_artifacts:
            digest = state.digests.get(name)
            if digest is None:
                return 0  # the agent reported no digest: its consumers could not be keyed
            artifacts[name] = self.store.stored(layout.output_artifact_key(node, name), digest)
        finished = state.finished_at or pod.last_finished_at or 0.0
        existing = self.store.get(namespace, pod.cache_key)
        if existing is not None and existing.created_at > finished:
            return 0  # a newer result of the same key (a Refresh run's) stays
        started = pod.started_at or finished
        self.store.put(
            namespace,
            taskcache.CacheEntry(
                key=pod.cache_key,
                created_at=finished,
                run=metadata["name"],
                task=compiled.node_name(key),
                outputs=dict(state.outputs),
                artifacts=artifacts,
                duration_seconds=max(finished - started, 0.0),
                gpus=task.task.resources.gpu,
            ),
        )
        return 1

    # --- steps ----------------------------------------------------------------------------

    def _key(
        self,
        launch: Launch,
        compiled: CompiledPipeline,
        nodes: Mapping[NodeKey, NodeState],
        *,
        code: RunCode,
        collected: Mapping[int, Sequence[int]],
        context: RunContext,
    ) -> str | None:
        """The launch's cache key; None when its task does not cache in this run or an
        input of it cannot be keyed (no digest, no known code)."""
        if not taskcache.applies(launch.task, context.cache_mode):
            return None
        code_digest = code.digest(launch.task.task.cache.paths)
        if code_digest is None:
            return None
        try:
            read = inputs.input_sources(launch, compiled, collected)
        except inputs.MissingInstances:
            return None
        digests = taskcache.input_digests(read, nodes)
        if digests is None:
            return None
        return taskcache.cache_key(launch, input_digests=digests, code_digest=code_digest)

    def _hit(self, run: Mapping[str, Any], launch: Launch, key: str, now: float) -> Hit | None:
        """Serves the launch from the entry of `key` if it is fresh, complete and every
        artifact intact, copying them into the run's own keys; None for a miss."""
        namespace = run["metadata"]["namespace"]
        task = launch.task.task
        try:
            entry = self.store.get(namespace, key)
            if entry is None or not taskcache.serves(
                entry, launch, key, now, task.cache.max_age_seconds
            ):
                return None
            listed = {}
            for name in task.output_artifacts:
                objects = self.store.intact(namespace, entry.artifacts[name])
                if objects is None:
                    return None
                listed[name] = objects
            node = self._node(run, launch.task.name, launch.key)
            for name, objects in listed.items():
                source, target = entry.artifacts[name].key, layout.output_artifact_key(node, name)
                if source != target:
                    self.store.copy(source, objects, target)
        except (NotFound, StoreError) as error:  # gone meanwhile, or S3 away: the task runs
            _log.info("%s: cache entry %s not served: %s", launch.task.name, key[:12], error)
            return None
        state = NodeState(
            Phase.CACHED,
            finished_at=now,
            outputs={name: entry.outputs[name] for name in task.output_parameters},
            cached_from=CacheSource(entry.run, entry.task),
            digests={name: entry.artifacts[name].sha256 for name in task.output_artifacts},
        )
        return Hit(state, entry)

    def _load(self, run: Mapping[str, Any]) -> dict[NodeKey, NodeState] | None:
        """The served nodes in the run's cached.json; None when it has none."""
        metadata = run["metadata"]
        key = self.store.full(layout.cached_nodes_key(metadata["namespace"], metadata["name"]))
        try:
            data = json.loads(self.store.store.get_bytes(key))
        except NotFound:
            return None
        except (StoreError, ValueError) as error:
            _log.warning("%s: served tasks unreadable (%s): they run", metadata["name"], error)
            return None
        if not isinstance(data, Mapping) or data.get("runUid") != metadata["uid"]:
            return None  # an earlier Run's of the same name
        found = {}
        for text, item in dict(data.get("nodes") or {}).items():
            node = pods.parse_node_key(str(text))
            state = _state_from_json(item)
            if node is not None and state is not None:
                found[node] = state
        return found

    def _node(self, run: Mapping[str, Any], task: str, key: NodeKey) -> str:
        metadata = run["metadata"]
        info = pods.RunInfo(metadata["name"], metadata["namespace"], metadata["uid"])
        return pods.node_prefix(self.settings.s3, info, task, None if key[1] == TASK else key[1])


def _state_json(state: NodeState) -> dict[str, Any]:
    source = state.cached_from
    return {
        "finishedAt": state.finished_at,
        "outputs": dict(state.outputs),
        "digests": dict(state.digests),
        "cachedFrom": None if source is None else source.to_json(),
    }


def _state_from_json(item: Any) -> NodeState | None:
    try:
        source = item["cachedFrom"]
        return NodeState(
            Phase.CACHED,
            finished_at=float(item["finishedAt"]),
            outputs={str(k): str(v) for k, v in dict(item["outputs"]).items()},
            digests={str(k): str(v) for k, v in dict(item["digests"]).items()},
            cached_from=CacheSource(str(source["run"]), str(source["task"])),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
