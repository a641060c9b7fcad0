"""The Run controller: one pass turns the observed pods into the planner's state, acts on
its decision, and writes status once.

The truth lives in the cluster, never in this process: the pinned spec in a ConfigMap the
Run owns, each attempt in a pod with a deterministic name. A pass repeated after a crash
at any point recomputes the same decision, and creating a pod that exists is a no-op, so
a restart neither duplicates nor loses work.

    pin -> observe -> plan -> act -> summarise -> write status
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pipesync.api import conventions, documents, durations, model, reports, runstatus, times
from pipesync.api.times import timestamp
from pipesync.controllers import errors, runcache
from pipesync.controllers.conditions import Health, same_status, set_condition, set_health
from pipesync.engine import compiler, inputs, layout, limits, params, planner, summary
from pipesync.engine import context as runcontext
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import FINISHED, TASK, NodeKey, NodeState, Phase, RunPhase
from pipesync.kube.protocol import PIPELINES, RUNS, Kube, PodRefused, resource_version
from pipesync.observe.passes import ObserverResult
from pipesync.runtime import pods, podstate, taskpolicy
from pipesync.runtime.storage import ObjectStore

#: Above this many tasks, status keeps counts and unfinished or failed tasks only.
MAX_TASKS_IN_STATUS = 200
#: How soon a run whose pod a full ResourceQuota refused tries to create it again.
QUOTA_RETRY_SECONDS = 10.0
#: How soon a run waiting for an earlier Run's pinned spec to be collected looks again.
PIN_RETRY_SECONDS = 2.0


class _PinPending(errors.Waiting):
    """The pinned-spec ConfigMap is still an earlier Run's: the next pass looks again."""

    def __init__(self, message: str) -> None:
        super().__init__("PinPending", message, delay=PIN_RETRY_SECONDS)


def _await_handover(run: Mapping[str, Any], config_name: str, now: float) -> None:
    """A re-run the UI pins with its original's spec (ANNOTATION_PIN_HANDOVER): the UI
    creates the Run first (the ConfigMap must name the Run's uid as its owner), so a pass
    between its two writes would pin the reference's current version instead. Wait for
    the UI's ConfigMap a little; the owner check still decides whether it is this Run's."""
    metadata = run["metadata"]
    if conventions.ANNOTATION_PIN_HANDOVER not in (metadata.get("annotations") or {}):
        return
    created = times.instant(metadata.get("creationTimestamp"))
    if created is None or now - created >= conventions.PIN_HANDOVER_SECONDS:
        return  # the UI did not hand a pin over in time: pin it as any other run
    raise _PinPending(f"ConfigMap {config_name} is still being written by the UI")


class _RetryPending(errors.Waiting):
    """The run retried (spec.retryOf) has no record in S3 yet: the next pass looks again."""

    def __init__(self, message: str) -> None:
        super().__init__("RetryPending", message, delay=PIN_RETRY_SECONDS)


class RunError(errors.Stalled):
    """A run that cannot proceed (bad reference or parameters): it fails with the reason."""


@dataclasses.dataclass(frozen=True)
class PassResult:
    finished: bool
    wake_at: float | None = None
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message)


@dataclasses.dataclass
class Pinned:
    compiled: CompiledPipeline
    params: dict[str, Any]
    pipeline: dict[str, str]
    #: the code digests of its `cache.paths` at the pinned commit (runcache.RunCode)
    code: runcache.RunCode = runcache.NO_CODE
    retry_of: str = ""  # spec.retryOf: the run whose succeeded tasks this one reuses


@dataclasses.dataclass(frozen=True)
class PassReport:
    """What one pass saw and decided, for observers (metrics, the S3 mirror)."""

    run: Mapping[str, Any]  # the Run as read at the start of the pass
    previous: Mapping[str, Any]  # its status before the pass
    status: Mapping[str, Any]  # its status after the pass (written if it differed)
    pinned: Pinned | None  # None when the run failed before its spec was pinned
    nodes: Mapping[NodeKey, NodeState]
    pods: Mapping[NodeKey, podstate.PodState]  # the newest pod of each node
    launched: int
    seconds: float  # how long the pass took
    cache: reports.CacheReport = dataclasses.field(default_factory=reports.CacheReport)


class RunObserver(Protocol):
    """Hears every pass; must not block (queue slow work) and must not raise. What it
    hands back goes into the Run's status, which only the controller writes."""

    def run_pass(self, report: PassReport) -> ObserverResult | None: ...


class RunController:
    """Drives runs; holds only caches of what is already in the cluster."""

    def __init__(
        self,
        kube: Kube,
        settings: pods.PodSettings,
        observers: tuple[RunObserver, ...] = (),
        store: ObjectStore | None = None,
        bounds: limits.Limits = limits.DEFAULT,
        *,
        cache: runcache.RunCache | None = None,
    ) -> None:
        """`cache`: the task cache in S3 (None: every task runs, whatever it declares)."""
        self.kube = kube
        self.cache = cache
        self.bounds = bounds
        self.settings = settings
        self.observers = observers
        self.store = store  # reads output parameters too big for a termination message
        self._pinned: dict[str, Pinned] = {}  # by run uid
        #: each unfinished run as the API server answered this controller's last status
        #: write: newer than a watch that has not reported that write yet
        self._written: dict[tuple[str, str], Mapping[str, Any]] = {}
        self._outputs: dict[str, dict[str, str]] = {}  # by pod uid: outputs read from S3

    def reconcile(
        self,
        namespace: str,
        name: str,
        now: float | None = None,
        *,
        known_pods: Sequence[podstate.PodState] | None = None,
        known_run: Mapping[str, Any] | None = None,
    ) -> PassResult:
        """One pass. `known_pods`: the run's pods as a watch already knows them (may lag a
        little: a pod created a moment ago and missing here is created again, which the
        API server refuses as existing); without it they are listed. `known_run`: the
        Run as a watch last reported it; without it, it is read."""
        now = time.time() if now is None else now
        run = self._current_run(namespace, name, known_run)
        if run is None:
            return PassResult(finished=True)
        status = dict(run.get("status") or {})
        if status.get("phase") in FINISHED:
            self._written.pop((namespace, name), None)
            if self.cache is not None:
                self.cache.forget(run["metadata"]["uid"])
            self._record_finished(run, status)
            return PassResult(finished=True)
        began = time.monotonic()
        try:
            pinned = self._pin(run, now)
        except _PinPending as pending:
            return PassResult(False, wake_at=now + pending.delay)
        except RunError as error:
            return self._fail(run, status, error, now, began)
        nodes, pods_by_key = self._observe(run, pinned.compiled, known_pods)
        started = times.instant(status.get("startedAt")) or now
        context = run_context(run, pinned, now, self.bounds)
        timeout = context.timeout_seconds
        try:
            self._recall_cache(run, pinned, nodes, pods_by_key)
        except _RetryPending as pending:
            return PassResult(False, wake_at=now + pending.delay)
        except RunError as error:
            return self._fail(run, status, error, now, began)
        decision, cached = self._plan(
            run,
            pinned,
            nodes,
            context,
            now=now,
            deadline_exceeded=timeout is not None and now >= started + timeout,
        )
        observed = dict(nodes)
        for transition in decision.transitions:
            nodes[transition.key] = transition.state
        waiting = _waiting(nodes, pods_by_key)
        try:
            events = self._act(
                run,
                pinned,
                decision,
                nodes,
                pods_by_key,
                waiting=waiting,
                observed=observed,
                cached=cached,
            )
        except RunError as error:
            return self._fail(run, status, error, now, began)
        new_status = summarise(
            run,
            pinned,
            nodes,
            decision,
            started=started,
            now=now,
            waiting=waiting,
            pods_by_key=pods_by_key,
        )
        self._write(run, new_status)
        told = self._tell(
            PassReport(
                run,
                status,
                new_status,
                pinned,
                nodes,
                pods_by_key,
                len(decision.launches),
                time.monotonic() - began,
                cached.report(),
            )
        )
        self._write_results(run, new_status, told)
        wake_at = decision.wake_at
        if any(launch.key in waiting for launch in decision.launches):
            # A launch a full ResourceQuota refused: try again soon, not at the resync.
            retry = now + QUOTA_RETRY_SECONDS
            wake_at = retry if wake_at is None else min(wake_at, retry)
        if timeout is not None and decision.finished is None:
            # The run deadline must be noticed when it passes, not at the next resync.
            deadline = started + timeout
            wake_at = deadline if wake_at is None else min(wake_at, deadline)
        return PassResult(finished=new_status["phase"] in FINISHED, wake_at=wake_at, events=events)

    def _fail(
        self,
        run: Mapping[str, Any],
        status: Mapping[str, Any],
        error: RunError,
        now: float,
        began: float,
    ) -> PassResult:
        """The run ends Failed with the error's reason; one status write, one Event."""
        failed = _failed_status(run, status, error, now)
        self._write(run, failed)
        results = self._tell(
            PassReport(run, status, failed, None, {}, {}, 0, time.monotonic() - began)
        )
        self._write_results(run, failed, results)
        event = error.event()
        return PassResult(True, events=() if event is None else (event,))

    def _tell(self, report: PassReport) -> list[ObserverResult]:
        told = [observer.run_pass(report) for observer in self.observers]
        return [result for result in told if result is not None]

    def _record_finished(self, run: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """A finished run's last write: the URI of its final record, once an observer (the
        S3 mirror, which calls this pass when it has written the record) reports it. The
        finishing pass cannot carry it: the record is written after that pass, so that
        an S3 outage never holds a run back, and a URI must not name a record not there."""
        if (status.get("record") or {}).get("uri") or not self.observers:
            return
        told = self._tell(PassReport(run, status, status, None, {}, {}, 0, 0.0))
        self._write_results(run, status, told)

    def _write_results(
        self, run: Mapping[str, Any], written: Mapping[str, Any], told: Sequence[ObserverResult]
    ) -> None:
        """What observers reported, added to the status this pass wrote; no write when
        they reported nothing new (every pass but a finished run's record pass)."""
        uris = [result.record_uri for result in told if result.record_uri]
        if not uris or (written.get("record") or {}).get("uri") == uris[-1]:
            return
        status = dataclasses.replace(runstatus.RunStatus.from_json(written), record_uri=uris[-1])
        self._write({**run, "status": written}, status.to_json())

    # --- steps -------------------------------------------------------------------------

    def _recall_cache(
        self,
        run: Mapping[str, Any],
        pinned: Pinned,
        nodes: dict[NodeKey, NodeState],
        pods_by_key: Mapping[NodeKey, podstate.PodState],
    ) -> None:
        """The nodes the cache served in earlier passes join the observed ones (they have
        no pod), and tasks that succeeded since are stored in the cache. A retry's first
        pass reuses its original's succeeded tasks first (recorded before any launch)."""
        if self.cache is None:
            if pinned.retry_of:
                raise RunError("RetryNeedsStore", "spec.retryOf needs the operator's S3 store")
            return
        if pinned.retry_of and not self.cache.recorded(run):
            reused = self.cache.reuse(run, pinned.compiled, pinned.retry_of)
            if reused is None:
                raise _RetryPending(f"the record of run {pinned.retry_of} is not in S3 yet")
            if not self.cache.remember(run, reused, always=True):
                raise _RetryPending(f"reusing the tasks of run {pinned.retry_of}: S3 refused")
        counts = (run.get("status") or {}).get("taskCounts") or {}
        served_before = bool(pinned.retry_of) or bool(counts.get("cached"))
        for key, state in self.cache.served(run, load=served_before).items():
            nodes.setdefault(key, state)
        self.cache.store_results(run, pinned.compiled, nodes, pods_by_key)

    def _plan(
        self,
        run: Mapping[str, Any],
        pinned: Pinned,
        nodes: dict[NodeKey, NodeState],
        context: runcontext.RunContext,
        *,
        now: float,
        deadline_exceeded: bool,
    ) -> tuple[planner.Decision, runcache.Lookup]:
        """The planner's decision, after the cache served what it could of its launches:
        a served task ends at once, so what it unblocks is planned and looked up in the
        same pass (a fully cached run finishes in one pass, with one status write)."""

        def plan() -> planner.Decision:
            return planner.plan(
                pinned.compiled,
                nodes,
                context,
                now,
                cancel=bool(run.get("spec", {}).get("cancel")),
                deadline_exceeded=deadline_exceeded,
            )

        decision = plan()
        cached = runcache.Lookup()
        while self.cache is not None and decision.launches:
            found = self.cache.look_up(
                run,
                pinned.compiled,
                decision.launches,
                nodes,
                code=pinned.code,
                context=context,
                now=now,
            )
            cached.keys.update(found.keys)
            cached.misses += found.misses
            served = {key: hit.state for key, hit in found.hits.items()}
            if not found.hits or not self.cache.remember(run, served):
                break
            cached.hits.update(found.hits)
            nodes.update({key: hit.state for key, hit in found.hits.items()})
            decision = plan()
        return decision, cached

    def _pin(self, run: Mapping[str, Any], now: float) -> Pinned:
        """The pipeline spec this run keeps for life, stored once in a ConfigMap it owns."""
        metadata = run["metadata"]
        uid = metadata["uid"]
        if uid in self._pinned:
            return self._pinned[uid]
        namespace, name = metadata["namespace"], metadata["name"]
        config_name = conventions.pinned_config_name(name)
        stored = self._pinned_config(run, config_name)
        if stored is None:
            _await_handover(run, config_name, now)
            pin = self._resolve_pin(run)
            self.kube.create_config_map(
                namespace,
                {
                    "metadata": {
                        "name": config_name,
                        "labels": {
                            conventions.LABEL_RUN: name,
                            conventions.LABEL_MANAGED_BY: conventions.MANAGED_BY,
                        },
                        "ownerReferences": [_owner(run)],
                    },
                    "data": {conventions.PINNED_SPEC_KEY: json.dumps(pin)},
                },
            )
            stored = self._pinned_config(run, config_name)
        if stored is None:
            raise RunError("PinFailed", f"ConfigMap {config_name} holds no pinned spec")
        saved = json.loads(stored[conventions.PINNED_SPEC_KEY])
        spec_model = model.pipeline_spec_from_spec(saved["spec"])
        compiled, problems = compiler.compile_pipeline(spec_model)
        if compiled is None:
            shown = "; ".join(
                f"{documents.dotted(('spec', *p.path))}: {p.message}" for p in problems[:3]
            )
            raise RunError("InvalidPipeline", f"the pipeline is invalid: {shown}")
        # A retry runs with its original's params (pinned with it), whatever it says.
        given = saved["params"] if "params" in saved else run["spec"].get("params", {})
        values, param_problems = params.resolve(spec_model.params, given)
        if param_problems:
            raise RunError("InvalidParams", "; ".join(param_problems))
        refused = taskpolicy.problems(
            compiled, self.settings.policy, run["spec"].get("serviceAccountName")
        )
        if refused:
            raise RunError("NotAllowed", "; ".join(refused[:3]))
        pipeline = saved["pipeline"]
        code = runcache.RunCode(
            in_tree=bool(pipeline.get("source") and pipeline.get("commit")),
            digests=runcache.code_digests(saved.get("code")),
        )
        retry_of = str((saved.get("retryOf") or {}).get("name") or "")
        pinned = Pinned(compiled, values, pipeline, code, retry_of)
        self._pinned[uid] = pinned
        return pinned

    def _pinned_config(self, run: Mapping[str, Any], config_name: str) -> dict[str, str] | None:
        """The data of the ConfigMap pinning this very Run's spec; None when there is none
        yet. The name is predictable, so its owner decides whose it is: one owned by an
        earlier Run of this name is waited out (the garbage collector deletes it, as its
        owner is gone); one no Run owns (planted, made by hand, or orphaned by `kubectl
        delete --cascade=orphan`) fails the Run rather than run a spec it never pinned."""
        metadata = run["metadata"]
        found = self.kube.read_config_map(metadata["namespace"], config_name)
        if found is None:
            return None
        owner = pin_owner(found)
        if owner == metadata["uid"]:
            data: dict[str, str] = found.get("data") or {}
            return data if conventions.PINNED_SPEC_KEY in data else None
        if owner is not None:
            raise _PinPending(f"ConfigMap {config_name} of an earlier Run {metadata['name']}")
        raise RunError(
            "PinConflict",
            f"ConfigMap {config_name} exists but was not created by pipesync for this Run "
            "(no Run owns it): delete it, or give the Run another name",
        )

    def _resolve_pin(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """What the run pins: its spec, the version it is, the code digests of its cache
        paths; a retry pins its original's, with the original's params."""
        retry = (run["spec"].get("retryOf") or {}).get("name")
        if retry:
            return self._retry_pin(run, str(retry))
        spec, pipeline, digests = self._resolve_spec(run)
        return {"spec": spec, "pipeline": pipeline, "code": digests}

    def _retry_pin(self, run: Mapping[str, Any], name: str) -> dict[str, Any]:
        namespace = run["metadata"]["namespace"]
        original = self.kube.get_object(RUNS, namespace, name)
        if original is None:
            raise RunError(
                "RetryOfNotFound", f"spec.retryOf: run {name!r} does not exist: nothing to retry"
            )
        if (original.get("status") or {}).get("phase") not in FINISHED:
            raise RunError(
                "RetryOfNotFinished",
                f"spec.retryOf: run {name!r} has not finished: retry it once it has",
            )
        found = self._pinned_config(original, conventions.pinned_config_name(name))
        if found is None:
            raise RunError("RetryOfNotPinned", f"spec.retryOf: run {name!r} pinned no spec")
        saved: dict[str, Any] = json.loads(found[conventions.PINNED_SPEC_KEY])
        wanted = (run["spec"].get("pipelineRef") or {}).get("name")
        had = (saved.get("pipeline") or {}).get("name")
        if wanted and had and wanted != had:
            raise RunError(
                "RetryOfMismatch",
                f"spec.retryOf: run {name!r} ran pipeline {had!r}, not {wanted!r}",
            )
        params = saved["params"] if "params" in saved else original["spec"].get("params", {})
        return {**saved, "params": params, "retryOf": {"name": name}}

    def _resolve_spec(
        self, run: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
        """The spec to pin, the version it is, and the code digests of its cache paths."""
        spec = run["spec"]
        if "pipelineSpec" in spec:
            inline: dict[str, Any] = spec["pipelineSpec"]
            digest = conventions.spec_digest(inline)
            pinned = {"name": "", "version": digest[7:19], "digest": digest, "commit": ""}
            return inline, pinned, {}
        reference = spec["pipelineRef"]
        found = self.kube.get_object(PIPELINES, run["metadata"]["namespace"], reference["name"])
        if found is None:
            raise RunError("PipelineNotFound", f"pipeline {reference['name']!r} does not exist")
        digest = conventions.spec_digest(found["spec"])
        version = digest[7:19]
        wanted = reference.get("version")
        if wanted and wanted != version:
            raise RunError(
                "VersionNotAvailable",
                f"pipeline {reference['name']!r} is at version {version}, not {wanted}",
            )
        annotations = found["metadata"].get("annotations") or {}
        return (
            found["spec"],
            {
                "name": reference["name"],
                "version": version,
                "digest": digest,
                "commit": annotations.get(conventions.ANNOTATION_COMMIT, ""),
                "source": annotations.get(conventions.ANNOTATION_SOURCE, ""),
                "path": annotations.get(conventions.ANNOTATION_SOURCE_PATH, ""),
                "archiveSha256": annotations.get(conventions.ANNOTATION_ARCHIVE_DIGEST, ""),
            },
            runcache.code_digests(annotations.get(conventions.ANNOTATION_CODE_DIGESTS)),
        )

    def _observe(
        self,
        run: Mapping[str, Any],
        compiled: CompiledPipeline,
        known_pods: Sequence[podstate.PodState] | None,
    ) -> tuple[dict[NodeKey, NodeState], dict[NodeKey, podstate.PodState]]:
        """Each node's newest attempt, from its pod."""
        metadata = run["metadata"]
        found = (
            known_pods
            if known_pods is not None
            else [
                podstate.read_pod(pod)
                for pod in self.kube.list_pods(
                    metadata["namespace"], f"{conventions.LABEL_RUN}={metadata['name']}"
                )
            ]
        )
        nodes: dict[NodeKey, NodeState] = {}
        newest: dict[NodeKey, podstate.PodState] = {}
        for pod in found:
            if not pod.created_for(metadata["uid"]):
                continue  # a pod of an earlier Run with the same name, or a hand-made one
            observed = podstate.node_from_pod(pod, now=time.time())
            if observed is None:
                continue
            key, state = observed
            if pod.deleting and state.phase is not Phase.SUCCEEDED:
                # We stopped it (cancel or run timeout): not a failure to retry.
                state = NodeState(
                    Phase.CANCELLED,
                    attempts=state.attempts,
                    finished_at=state.finished_at,
                    failure=FailureKind.CANCELLED,
                    message="stopped: the run was cancelled or timed out",
                )
            if state.phase is Phase.SUCCEEDED:
                task = compiled.at(key)
                node = pods.node_prefix(
                    self.settings.s3,
                    pods.RunInfo(metadata["name"], metadata["namespace"], metadata["uid"]),
                    task.name,
                    None if key[1] == TASK else key[1],
                )
                state = self._complete_outputs(pod, state, node, task.task.output_parameters)
            if key not in nodes or state.attempts > nodes[key].attempts:
                nodes[key] = state
                newest[key] = pod
        return nodes, newest

    def _complete_outputs(
        self, pod: podstate.PodState, state: NodeState, node: str, declared: tuple[str, ...]
    ) -> NodeState:
        """Output parameters left out of the sidecar's message (too big), read from S3.

        `node` is derived from the Run and the task, never from the pod: a pod's
        annotations are whatever its creator wrote, and the operator's credentials reach
        every namespace's keys."""
        report = podstate.sidecar_report(pod)
        if report is None or not report.truncated or self.store is None:
            return state
        uid = pod.uid
        if uid not in self._outputs:
            outputs = dict(state.outputs)
            for name in declared:
                if name not in outputs:
                    key = layout.output_parameter_key(node, name)
                    outputs[name] = self.store.get_bytes(key).decode(errors="replace")
            self._outputs[uid] = outputs
        return dataclasses.replace(state, outputs=self._outputs[uid])

    def _act(
        self,
        run: Mapping[str, Any],
        pinned: Pinned,
        decision: planner.Decision,
        nodes: Mapping[NodeKey, NodeState],
        pods_by_key: Mapping[NodeKey, podstate.PodState],
        *,
        waiting: dict[NodeKey, str],
        observed: Mapping[NodeKey, NodeState] | None = None,
        cached: runcache.Lookup | None = None,
    ) -> tuple[tuple[str, str, str], ...]:
        """Launch and stop pods; the Events to tell. `observed`: the states read from the
        pods, before the planner's transitions (a retry launched at once replaces the
        failed attempt in `nodes`, but that failure is still news). A launch a full
        ResourceQuota refuses joins `waiting`; any other refused pod fails the run.
        `cached`: what the cache served this pass, and the keys of launches that run."""
        cached = cached or runcache.Lookup()
        metadata = run["metadata"]
        info = pods.RunInfo(
            name=metadata["name"],
            namespace=metadata["namespace"],
            uid=metadata["uid"],
            pipeline=pinned.pipeline.get("name") or None,
            experiment=(run["spec"].get("experimentRef") or {}).get("name"),
            workspace=_workspace(self.settings, metadata["namespace"], pinned.pipeline),
            service_account=run["spec"].get("serviceAccountName"),
        )
        collected = inputs.collected_instances(pinned.compiled, nodes)
        events: list[tuple[str, str, str]] = []
        reported = (run.get("status") or {}).get("tasks") or {}
        for key, state in _failures(nodes, observed or {}).items():
            name = pinned.compiled.node_name(key)
            before = reported.get(name) or {}
            # An event per failed attempt, not per pass: status remembers what was told,
            # or has moved on to a later attempt (a pod watch lagging behind a retry).
            told_attempts = before.get("attempts") or 0
            if told_attempts > state.attempts or (
                before.get("phase") == Phase.FAILED.value and told_attempts == state.attempts
            ):
                continue
            events.append(("Warning", "TaskFailed", f"{name}: {state.message}"[:1000]))
        if cached.hits:
            events.append(("Normal", "TasksCached", _cached_message(pinned.compiled, cached)))
        for launch in decision.launches:
            try:
                pod = pods.build_pod(
                    launch,
                    run=info,
                    settings=self.settings,
                    pipeline=pinned.compiled,
                    collected=collected,
                    cache_key=cached.keys.get(launch.key, ""),
                )
            except pods.PodBuildError as error:
                # What the task was given cannot be a pod (a resource from a parameter
                # that is no quantity): the run fails saying so, instead of every pass
                # raising the same error again.
                raise RunError("PodBuildFailed", str(error)) from None
            try:
                self.kube.create_pod(metadata["namespace"], pod)
            except PodRefused as refused:
                name = pinned.compiled.node_name(launch.key)
                if not refused.quota:
                    raise RunError(
                        "PodRefused", f"task {name}: the API server refused its pod: {refused}"
                    ) from None
                # A full ResourceQuota: the task waits, as for a node, and the next pass
                # tries again (pods ending elsewhere free the quota).
                waiting[launch.key] = refused.message
                continue
            if launch.attempt > 1:
                name = pinned.compiled.node_name(launch.key)
                events.append(("Normal", "TaskRetried", f"{name}: attempt {launch.attempt}"))
        for key in decision.stop:
            stopping = pods_by_key.get(key)
            if stopping is not None:
                self.kube.delete_pod(metadata["namespace"], stopping.name)
        for key, reason in waiting.items():
            name = pinned.compiled.node_name(key)
            before = reported.get(name) or {}
            # Once per pod: the status written last pass already says it waits (a changed
            # count of free nodes in the scheduler's message is no news).
            told = (
                before.get("phase") == Phase.PENDING.value
                and before.get("attempts") == nodes[key].attempts
                and before.get("message")
            )
            if not told:
                events.append(("Warning", "TaskUnschedulable", f"{name}: {reason}"[:1000]))
        return tuple(events)

    def _write(self, run: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        current = run.get("status") or {}
        if not same_status(status, current):
            metadata = run["metadata"]
            namespace, name = metadata["namespace"], metadata["name"]
            written = self.kube.patch_status(RUNS, namespace, name, status)
            if written is not None:
                self._written[(namespace, name)] = written

    def _current_run(
        self, namespace: str, name: str, known: Mapping[str, Any] | None
    ) -> Mapping[str, Any] | None:
        """The Run: read from the API server without a watch's view (a first pass, a
        resync), else the newer (by resourceVersion) of that view and this controller's
        last write of the same Run, which the watch may not have reported yet. A pass
        that follows a watch event needs no GET: the event carried the object."""
        if known is None:
            return self.kube.get_object(RUNS, namespace, name)
        written = self._written.get((namespace, name))
        uid = (known.get("metadata") or {}).get("uid")
        if written is None or (written.get("metadata") or {}).get("uid") != uid:
            return known
        return max((known, written), key=resource_version)


# --- pure helpers -------------------------------------------------------------------------


def summarise(
    run: Mapping[str, Any],
    pinned: Pinned,
    nodes: Mapping[NodeKey, NodeState],
    decision: planner.Decision,
    *,
    started: float,
    now: float,
    waiting: Mapping[NodeKey, str] | None = None,
    pods_by_key: Mapping[NodeKey, podstate.PodState] | None = None,
) -> dict[str, Any]:
    """The Run's status after a pass: phase, progress, per-task summary, conditions.

    `waiting`: launched tasks whose pod the scheduler cannot place yet, with its reason;
    they show as Pending with that reason, and so does the run's Reconciling condition.
    `pods_by_key`: the newest pod of each node, whose program's exit code the summary of
    a finished task carries."""
    waiting = waiting or {}
    previous = runstatus.RunStatus.from_json(run.get("status"))
    compiled = pinned.compiled
    generation = run["metadata"].get("generation")
    cancel = bool(run.get("spec", {}).get("cancel"))
    finished = decision.finished
    if finished is not None:
        phase = finished.phase.value
    elif cancel:
        phase = RunPhase.CANCELLING.value
    elif nodes:
        phase = RunPhase.RUNNING.value
    else:
        phase = RunPhase.PENDING.value
    counts = {
        "total": len(compiled.tasks),
        "pending": 0,
        "running": 0,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "cached": 0,
    }
    tasks: dict[str, runstatus.TaskStatus] = {}
    for task in compiled.tasks:
        state = nodes.get((task.index, TASK))
        bucket = summary.count_bucket(task, state)
        task_status = _task_summary(
            run,
            task,
            state,
            nodes,
            before=(previous.tasks or {}).get(task.name),
            pod=(pods_by_key or {}).get((task.index, TASK)),
            now=now,
        )
        reason = waiting.get((task.index, TASK))
        if reason:
            bucket = "pending"
            task_status = dataclasses.replace(
                task_status, phase=Phase.PENDING.value, message=reason
            )
        counts[bucket] += 1
        counts["cached"] += state is not None and state.phase is Phase.CACHED
        tasks[task.name] = task_status
    task_counts = runstatus.TaskCounts(**counts)
    truncated = previous.tasks_truncated
    if len(tasks) > MAX_TASKS_IN_STATUS:
        tasks = {name: kept for name, kept in tasks.items() if kept.phase not in _SETTLED}
        tasks = dict(list(tasks.items())[:MAX_TASKS_IN_STATUS])
        truncated = True
    finished_at = previous.finished_at
    if finished is not None and not finished_at:
        finished_at = timestamp(now)
    duration = ""
    if finished_at:
        end = times.instant(finished_at) or now
        duration = durations.format_seconds(max(end - started, 0.0))
    # else no duration: passes that only move the clock write nothing
    # (conditions.same_status), so a running duration would freeze at its first value:
    # STARTED shows the age instead.
    message = _waiting_message(compiled, waiting) if finished is None else ""
    status = dataclasses.replace(
        previous,
        observed_generation=generation,
        phase=phase,
        progress=summary.progress(task_counts),
        task_counts=task_counts,
        tasks=tasks,
        tasks_truncated=truncated,
        pipeline=dict(pinned.pipeline),
        started_at=previous.started_at or timestamp(started),
        finished_at=finished_at,
        duration=duration,
        message=message,
        conditions=tuple(
            _conditions(
                [dict(c) for c in previous.conditions],
                phase,
                finished,
                generation,
                now,
                message=message,
            )
        ),
    )
    return status.to_json()


def _failures(
    nodes: Mapping[NodeKey, NodeState], observed: Mapping[NodeKey, NodeState]
) -> dict[NodeKey, NodeState]:
    """Each task's failed attempt seen this pass, whether or not a retry followed at once."""
    found: dict[NodeKey, NodeState] = {}
    for key in {*nodes, *observed}:
        for state in (nodes.get(key), observed.get(key)):
            if key[1] == TASK and state is not None and state.phase is Phase.FAILED:
                found[key] = state
                break
    return found


def _waiting(
    nodes: Mapping[NodeKey, NodeState], pods_by_key: Mapping[NodeKey, podstate.PodState]
) -> dict[NodeKey, str]:
    """Running tasks whose pod the scheduler has not placed, with the scheduler's reason."""
    found: dict[NodeKey, str] = {}
    for key, pod in pods_by_key.items():
        state = nodes.get(key)
        if key[1] != TASK or state is None or state.phase is not Phase.RUNNING:
            continue
        reason = pod.scheduling
        if reason:
            found[key] = reason
    return found


def _waiting_message(compiled: CompiledPipeline, waiting: Mapping[NodeKey, str]) -> str:
    """One line for `kubectl get runs`: the first waiting task and how many more."""
    if not waiting:
        return ""
    key = min(waiting)
    more = len(waiting) - 1
    text = f"task {compiled.node_name(key)} cannot be scheduled: {waiting[key]}"
    return text + (f" (and {more} more task(s))" if more else "")


def _task_summary(
    run: Mapping[str, Any],
    task: compiler.CompiledTask,
    state: NodeState | None,
    nodes: Mapping[NodeKey, NodeState],
    *,
    before: runstatus.TaskStatus | None,
    pod: podstate.PodState | None,
    now: float,
) -> runstatus.TaskStatus:
    """`before`: the task as the last written status had it, which keeps the time its
    first attempt was launched; `pod`: the node's newest pod."""
    if state is None:
        return runstatus.TaskStatus(Phase.PENDING.value)
    launched = state.attempts > 0 and not task.fan_out  # a forEach aggregate has no pod
    # The pod's name follows from the node and attempt, so the pass that launches an
    # attempt already names it (no extra status write once the pod shows up).
    pod_name = (
        pods.pod_name(run["metadata"]["name"], task.name, None, state.attempts) if launched else ""
    )
    exit_code = None
    ended = state.phase in (Phase.SUCCEEDED, Phase.FAILED)
    # Only the latest attempt's: a retry launched this pass has no exit code yet.
    main = pod.ended(conventions.MAIN_CONTAINER) if pod is not None else None
    if pod is not None and main is not None and ended and pod.attempt == state.attempts:
        exit_code = main.exit_code
    return runstatus.TaskStatus(
        phase=state.phase.value,
        attempts=state.attempts,
        pod=pod_name,
        started_at=(before.started_at if before else "") or (timestamp(now) if launched else ""),
        finished_at=timestamp(state.finished_at) if state.finished_at is not None else "",
        exit_code=exit_code,
        message=state.message[:500],
        outputs=runstatus.small_outputs(state.outputs),
        instances=summary.instance_counts(task, nodes),
        cached_from={} if state.cached_from is None else state.cached_from.to_json(),
    )


def _conditions(
    conditions: list[dict[str, Any]],
    phase: str,
    finished: planner.Outcome | None,
    generation: int | None,
    now: float,
    *,
    message: str = "",
) -> list[dict[str, Any]]:
    """Reconciling while the run goes on, Ready once it succeeded, Stalled once it failed
    or was cancelled: what kstatus (Flux `wait`) and Argo CD read as its health."""
    stamp = timestamp(now)
    if finished is None:
        return set_health(
            conditions,
            Health.PROGRESSING,
            reason="TaskUnschedulable" if message else phase,
            message=message or f"the run is {phase.lower()}",
            generation=generation,
            now=stamp,
        )
    succeeded = finished.phase is RunPhase.SUCCEEDED
    result = set_health(
        conditions,
        Health.READY if succeeded else Health.STALLED,
        reason=finished.phase.value,
        message=finished.message,
        generation=generation,
        now=stamp,
    )
    return set_condition(
        result,
        type="Succeeded",
        status=succeeded,
        reason=finished.phase.value,
        message=finished.message,
        generation=generation,
        now=stamp,
    )


def _failed_status(
    run: Mapping[str, Any], status: Mapping[str, Any], error: RunError, now: float
) -> dict[str, Any]:
    generation = run["metadata"].get("generation")
    previous = runstatus.RunStatus.from_json(status)
    outcome = planner.Outcome(RunPhase.FAILED, str(error))
    conditions = set_condition(
        _conditions([dict(c) for c in previous.conditions], "Failed", outcome, generation, now),
        type="Succeeded",
        status=False,
        reason=error.reason,
        message=str(error),
        generation=generation,
        now=timestamp(now),
    )
    failed = dataclasses.replace(
        previous,
        phase=RunPhase.FAILED.value,
        observed_generation=generation,
        started_at=previous.started_at or timestamp(now),
        finished_at=timestamp(now),
        conditions=tuple(conditions),
    )
    return failed.to_json()


def run_context(
    run: Mapping[str, Any], pinned: Pinned, now: float, bounds: limits.Limits = limits.DEFAULT
) -> runcontext.RunContext:
    """What the planner is told about the run: names, params, the pipeline's parallelism,
    its times (the scheduled one when a RecurringRun made it) and its timeout."""
    metadata = run["metadata"]
    annotations = metadata.get("annotations") or {}
    return runcontext.run_context(
        pinned.compiled.spec,
        pinned.params,
        name=metadata["name"],
        namespace=metadata["namespace"],
        created_at=times.instant(metadata.get("creationTimestamp")) or now,
        scheduled_at=times.instant(annotations.get(conventions.ANNOTATION_SCHEDULED)),
        timeout=run.get("spec", {}).get("timeout"),
        cache=run.get("spec", {}).get("cache"),
        bounds=bounds,
    )


#: Task phases a truncated status leaves out first: nothing about them needs attention.
_SETTLED = frozenset({Phase.SUCCEEDED.value, Phase.CACHED.value, Phase.SKIPPED.value})


def _cached_message(compiled: CompiledPipeline, cached: runcache.Lookup) -> str:
    """One Event for the tasks a pass took from the cache: which, and whose results."""
    shown = [
        f"{compiled.node_name(key)} (from {hit.entry.run}/{hit.entry.task})"
        for key, hit in sorted(cached.hits.items())
    ]
    text = f"{len(shown)} task(s) served from the cache: " + ", ".join(shown)
    return text if len(text) <= 1000 else text[:997] + "..."


def _workspace(
    settings: pods.PodSettings, namespace: str, pipeline: Mapping[str, str]
) -> pods.Workspace | None:
    """A pipeline synced from git runs in its repository tree at the pinned commit."""
    source, commit = pipeline.get("source"), pipeline.get("commit")
    if not source or not commit:
        return None
    key = pods.workspace_key(settings.s3, namespace, source, commit)
    return pods.Workspace(
        archive_key=key,
        directory=pipeline.get("path") or "",
        sha256=pipeline.get("archiveSha256") or "",
    )


def pin_owner(config_map: Mapping[str, Any]) -> str | None:
    """The uid of the Run that controls a pinned-spec ConfigMap, if a Run does. The uid is
    what counts: labels and field managers are whatever the creator chose, but a Run's uid
    is unknown before the Run exists, so a ConfigMap planted in advance cannot carry it."""
    metadata = config_map.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or []:
        if (
            owner.get("kind") == "Run"
            and owner.get("apiVersion") == model.API_VERSION
            and owner.get("controller")
            and isinstance(owner.get("uid"), str)
        ):
            uid: str = owner["uid"]
            return uid
    return None


def _owner(run: Mapping[str, Any]) -> dict[str, Any]:
    metadata = run["metadata"]
    return {
        "apiVersion": model.API_VERSION,
        "kind": "Run",
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
