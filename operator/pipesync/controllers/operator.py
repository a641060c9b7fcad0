"""The kopf wiring: handlers registered on a registry made per operator (no import-time
global state), each a thin shell over the pure controller logic in this package."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from pipesync.api import conventions, model, times
from pipesync.controllers import (
    conditions,
    driver,
    experiments,
    gitsources_handlers,
    leadership,
    pipelines,
    recurringruns_handlers,
    runcache,
    runs,
    teardown,
)
from pipesync.controllers.settings import OperatorSettings, Timer, timer
from pipesync.engine import state
from pipesync.kube.client import KubeClient, connect
from pipesync.kube.protocol import EXPERIMENTS, RUNS, Kube, resource_version
from pipesync.observe.records import RunRecorder
from pipesync.observe.run_metrics import RunMetrics
from pipesync.runtime import cachestore, podstate


def _finished(body: Mapping[str, Any], **_: Any) -> bool:
    return (body.get("status") or {}).get("phase") in state.FINISHED


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kube = KubeClient(connect(settings.pass_workers + 4))
    if settings.metrics is not None:
        settings.metrics.passes.watch_requests(kube)
    _register_plumbing(registry, settings.pass_workers)
    _register_pipelines(
        registry, timer(settings), settings.metrics.runs if settings.metrics is not None else None
    )
    _register_experiments(registry, kube)
    controller = _register_runs(registry, kube, settings)
    recurringruns_handlers.register(registry, kube, settings)
    gitsources_handlers.register(registry, kube, settings)
    teardown.register(registry, kube, settings.namespaces, conventions.FINALIZER)
    if settings.records is not None:
        _register_records(registry, kube, settings.records, controller)
    return registry


def _register_records(
    registry: kopf.OperatorRegistry,
    kube: Kube,
    records: RunRecorder,
    controller: runs.RunController,
) -> None:
    def recorded(namespace: str, name: str) -> None:
        # The mirror's worker thread: the final record is written, and the controller
        # (the one writer of Run status) takes its URI from the mirror's pass result.
        controller.reconcile(namespace, name)

    records.start(kube, on_recorded=recorded)

    def unrecorded(body: Mapping[str, Any], **_: Any) -> bool:
        return _finished(body) and not ((body.get("status") or {}).get("record") or {}).get("uri")

    @kopf.on.resume(model.GROUP, model.VERSION, "runs", registry=registry, when=unrecorded)
    def recover_record(body: Mapping[str, Any], **_: Any) -> None:
        # The operator may have died between a run's finished status and its S3 record.
        records.recover(body)


def _register_plumbing(registry: kopf.OperatorRegistry, workers: int) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster service account, else KUBECONFIG / ~/.kube/config (kubernetes client).
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Status holds only what the schemas allow: kopf keeps its own bookkeeping in
        # annotations, where pruning cannot eat it (a known kopf pitfall).
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix="kopf.pipesync.io"
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix="kopf.pipesync.io", key="last-handled-configuration"
        )
        # kopf puts a finalizer on objects while a daemon drives them (unfinished Runs,
        # GitSources, RecurringRuns) so the daemon stops before they go: name it as ours.
        settings.persistence.finalizer = conventions.FINALIZER
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        # Sync handlers (Pipeline and Experiment passes) run in kopf's thread pool; its
        # default of cpu_count + 4 threads is too few when many runs change at once.
        settings.execution.max_workers = workers


def _register_pipelines(
    registry: kopf.OperatorRegistry, timed: Timer, metrics: RunMetrics | None
) -> None:
    group, version = model.GROUP, model.VERSION

    @kopf.on.resume(group, version, "pipelines", registry=registry)
    @kopf.on.create(group, version, "pipelines", registry=registry)
    @kopf.on.update(group, version, "pipelines", registry=registry)
    def reconcile_pipeline(body: Mapping[str, Any], patch: kopf.Patch, **_: Any) -> None:
        if metrics is not None:  # its run series at 0 before its first run
            metadata = body.get("metadata") or {}
            metrics.pipeline_seen(str(metadata.get("namespace")), str(metadata.get("name")))
        with timed("pipelines"):
            current = dict(body.get("status") or {})
            desired = pipelines.desired_status(body, times.timestamp())
            if not conditions.same_status(desired, current):
                patch.status.update(desired)


def _register_experiments(registry: kopf.OperatorRegistry, kube: Kube) -> None:
    group, version = model.GROUP, model.VERSION

    def count_experiment_runs(namespace: str, experiment: str) -> None:
        body = kube.get_object(EXPERIMENTS, namespace, experiment)
        if body is None:
            return
        found = kube.list_objects(RUNS, namespace, f"spec.experimentRef.name={experiment}")
        desired = experiments.desired_status(body, found, times.timestamp())
        if not conditions.same_status(desired, body.get("status") or {}):
            kube.patch_status(EXPERIMENTS, namespace, experiment, desired)

    @kopf.on.resume(group, version, "experiments", registry=registry)
    @kopf.on.create(group, version, "experiments", registry=registry)
    def reconcile_experiment(**kwargs: Any) -> None:
        count_experiment_runs(kwargs["namespace"], kwargs["name"])

    @kopf.on.field(group, version, "runs", field="status.phase", registry=registry)
    @kopf.on.create(group, version, "runs", registry=registry)
    @kopf.on.delete(group, version, "runs", registry=registry, optional=True)
    def run_changed(**kwargs: Any) -> None:
        # optional=True: no finalizer; a Run deleted while the operator is down is
        # counted out at the next change of its experiment's runs.
        experiment = (kwargs["spec"].get("experimentRef") or {}).get("name")
        if experiment:
            count_experiment_runs(kwargs["namespace"], experiment)


def _register_runs(
    registry: kopf.OperatorRegistry, kube: Kube, settings: OperatorSettings
) -> runs.RunController:
    group, version = model.GROUP, model.VERSION
    cache = (
        None
        if settings.store is None
        else runcache.RunCache(
            cachestore.ObjectCacheStore(settings.store, settings.pods.s3.prefix), settings.pods
        )
    )
    controller = runs.RunController(
        kube, settings.pods, settings.observers, settings.store, settings.limits, cache=cache
    )
    wakeups = driver.Wakeups()
    timed = timer(settings)

    pod_cache = _PodCache()
    run_cache = _RunCache()
    # Not asyncio.to_thread: its default pool has cpu_count + 4 threads, so a few hundred
    # runs starting together would queue behind each other's API calls.
    passes = concurrent.futures.ThreadPoolExecutor(
        max_workers=settings.pass_workers, thread_name_prefix="run-pass"
    )

    def reconcile(namespace: str, name: str, refresh: bool) -> runs.PassResult:
        key = (namespace, name)
        with timed("runs"):
            known = None if refresh else pod_cache.known(key)
            if known is None:
                # The first pass of a run in this process, and every resync, lists its
                # pods; between them the pod watch keeps the view current for free.
                selector = f"{conventions.LABEL_RUN}={name}"
                pod_cache.expect(key)
                pod_cache.prime(key, kube.list_pods(namespace, selector))
                known = pod_cache.known(key)
            run = None if refresh else run_cache.get(key)
            return controller.reconcile(namespace, name, known_pods=known, known_run=run)

    @kopf.daemon(
        group,
        version,
        "runs",
        registry=registry,
        when=lambda body, **_: not _finished(body),
        cancellation_timeout=10,
    )
    async def drive_run(**kwargs: Any) -> None:
        """Runs a Run to its end; restarted for unfinished runs when the operator restarts."""
        name, namespace, body = kwargs["name"], kwargs["namespace"], kwargs["body"]
        loop = asyncio.get_running_loop()

        async def run_pass(trigger: driver.Trigger) -> driver.Next:
            # The first pass, a resync and a retry list the run's pods afresh; a wake-up
            # or a due retry of a task trusts the watch's view.
            refresh = trigger in (driver.Trigger.START, driver.Trigger.RESYNC, driver.Trigger.RETRY)
            result = await loop.run_in_executor(passes, reconcile, namespace, name, refresh)
            for kind, reason, message in result.events:
                kopf.event(body, type=kind, reason=reason, message=message)
            if result.finished:
                return driver.Next(done=True)
            if result.wake_at is None:
                return driver.Next()
            return driver.Next(after=min(settings.resync_seconds, result.wake_at - time.time()))

        try:
            await driver.drive(
                run_pass,
                wakeup=lambda: wakeups.event((namespace, name)),
                resync=settings.resync_seconds,
                stopped=kwargs["stopped"],
                logger=kwargs["logger"],
                settle=0.05,  # let a burst of pod events settle into one pass
            )
        finally:
            wakeups.forget((namespace, name))
            pod_cache.forget((namespace, name))
            run_cache.forget((namespace, name))

    @kopf.on.event(
        "", "v1", "pods", labels={conventions.LABEL_RUN: kopf.PRESENT}, registry=registry
    )
    async def pod_changed(**kwargs: Any) -> None:
        # async, so it runs in the event loop: an asyncio.Event set from kopf's handler
        # threads would not wake its waiter until something else woke the loop.
        key = (kwargs["namespace"], kwargs["labels"][conventions.LABEL_RUN])
        event = kwargs["event"]
        pod_cache.update(key, str(event.get("type")), kwargs["body"])
        wakeups.wake(key)

    @kopf.on.event(group, version, "runs", registry=registry)
    async def run_changed(**kwargs: Any) -> None:
        # Keeps each Run as the watch reports it: its passes read it from here (no GET).
        key = (kwargs["namespace"], kwargs["name"])
        run_cache.update(key, str(kwargs["event"].get("type")), kwargs["body"])

    @kopf.on.update(group, version, "runs", field="spec.cancel", registry=registry)
    async def cancel_requested(**kwargs: Any) -> None:
        wakeups.wake((kwargs["namespace"], kwargs["name"]))

    return controller


class _RunCache:
    """Each Run as the watch last reported it (the newest resourceVersion wins). Only
    Runs a daemon drives are read from it; finished ones drop out when their daemon
    ends, and a Run the watch has not reported yet is read from the API server."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        with self._lock:
            return self._runs.get(key)

    def update(self, key: tuple[str, str], kind: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            if kind == "DELETED":
                self._runs.pop(key, None)
                return
            if (body.get("status") or {}).get("phase") in state.FINISHED:
                self._runs.pop(key, None)  # nothing drives it any more: not kept
                return
            run = copy.deepcopy(dict(body))
            old = self._runs.get(key)
            if old is None or resource_version(run) >= resource_version(old):
                self._runs[key] = run

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._runs.pop(key, None)


class _PodCache:
    """Each running Run's pods as the watch reports them, after one list per run.

    Only runs a daemon drives are kept (from just before their first list until the
    daemon ends): pods of finished runs, which the watch still reports, cost nothing.
    Each pod is kept as the PodState its event reads to (what a pass reads of a pod, so
    memory grows with pods, not with their specs), read once per event, not per pass.
    Entries keep the newest resourceVersion seen, so an event racing a list never rolls
    a pod back; a view that lags (a pod just created, not yet reported) is harmless: the
    pass re-creates it and the API server answers that it exists.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], dict[str, podstate.PodState]] = {}
        self._primed: set[tuple[str, str]] = set()

    def expect(self, key: tuple[str, str]) -> None:
        """From now on events for this run are kept, also those racing its first list."""
        with self._lock:
            self._pods.setdefault(key, {})

    def known(self, key: tuple[str, str]) -> list[podstate.PodState] | None:
        with self._lock:
            if key not in self._primed:
                return None
            return list(self._pods.get(key, {}).values())

    def prime(self, key: tuple[str, str], listed: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            for pod in listed:
                self._merge(key, podstate.read_pod(pod))
            self._primed.add(key)

    def update(self, key: tuple[str, str], kind: str, body: Mapping[str, Any]) -> None:
        with self._lock:
            pods_of_run = self._pods.get(key)
            if pods_of_run is None:
                return  # no daemon drives this run here
            pod = podstate.read_pod(body)
            if kind == "DELETED":
                pods_of_run.pop(pod.uid, None)
            else:
                self._merge(key, pod)

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._pods.pop(key, None)
            self._primed.discard(key)

    def _merge(self, key: tuple[str, str], pod: podstate.PodState) -> None:
        pods_of_run = self._pods.setdefault(key, {})
        old = pods_of_run.get(pod.uid)
        if old is None or pod.resource_version >= old.resource_version:
            pods_of_run[pod.uid] = pod


def run(settings: OperatorSettings, election: leadership.Election | None = None) -> None:
    leader = None
    if election is not None:
        # A standby blocks here: its /metrics and /healthz (served by the CLI) stay up;
        # it builds no registry and starts no controller until it holds the Lease.
        # A client of its own: renewals never queue behind the passes' requests.
        leases = KubeClient(connect(2))
        if settings.metrics is not None:
            settings.metrics.passes.watch_requests(leases)
        leader = leadership.lead(leases, election)
    registry = build_registry(settings)
    try:
        kopf.run(
            registry=registry,
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=settings.liveness_endpoint,
        )
    finally:
        if leader is not None:
            leader.release()  # a clean stop hands over at once, not after the lease expires
