"""The local executor: a run's tasks as subprocesses of this machine, driven by the same
planner as the cluster. Outputs, artifacts and logs land in a work directory laid out
like the S3 keys (see `pipesync.engine.layout`)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pipesync.api import durations, runstatus, times
from pipesync.api.runstatus import NodeDetail
from pipesync.engine import attempt, layout, planner, summary
from pipesync.engine import cache as taskcache
from pipesync.engine import context as runcontext
from pipesync.engine import resources as task_resources
from pipesync.engine.compiler import CompiledPipeline, CompiledTask
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, CacheSource, NodeKey, NodeState, Phase, RunPhase
from pipesync.engine.templating import RefKind
from pipesync.runtime import cachestore, digests
from pipesync.runtime.processes import ProcessResult, TaskProcess

#: Output parameters are small values; bigger results belong in artifacts.
MAX_PARAMETER_BYTES = 256 * 1024


class Reporter(Protocol):
    """Hears what happens during a run (a live view, plain lines, or nothing)."""

    def node_changed(self, run: LocalRun, key: NodeKey, state: NodeState) -> None: ...

    def run_finished(self, run: LocalRun, outcome: planner.Outcome) -> None: ...


@dataclasses.dataclass
class NodeRecord:
    """Everything the executor knows about one task or forEach instance."""

    state: NodeState = dataclasses.field(default_factory=NodeState)
    started_at: float | None = None  # the latest attempt's start
    first_started_at: float | None = None
    exit_code: int | None = None
    item: Any = None
    log: Path | None = None


@dataclasses.dataclass(frozen=True)
class Reuse:
    """An earlier run's nodes a retry of it starts with (engine.resume.reused_nodes),
    and that run's folder, where their artifacts are."""

    run_dir: Path
    nodes: Mapping[NodeKey, NodeState]
    run: str  # the earlier run's name (the record's spec.retryOf)


@dataclasses.dataclass(frozen=True)
class _Finished:
    key: NodeKey
    launch: planner.Launch
    result: ProcessResult
    outputs: Mapping[str, str]
    problem: str  # a missing output turns success into failure
    cached: taskcache.CacheEntry | None = None  # served from this entry: nothing ran


class LocalRun:
    """One run of a compiled pipeline on this machine."""

    def __init__(
        self,
        pipeline: CompiledPipeline,
        context: runcontext.RunContext,
        *,
        repo_root: Path,
        workdir: Path,
        timeout: float | None = None,
        reporter: Reporter | None = None,
        poll_seconds: float = 0.2,
        pipeline_name: str = "",
        pipeline_spec: Mapping[str, Any] | None = None,
        cache: cachestore.LocalCache | None = None,
        reuse: Reuse | None = None,
    ) -> None:
        """`pipeline_name`: the Pipeline the run's record names (empty: an inline spec),
        `pipeline_spec` its spec as written (kept in the record, so a retry from failure
        runs exactly it);
        `cache`: where tasks whose cache is enabled are looked up and stored (None: no
        caching); `reuse`: the nodes of an earlier run this one starts with (a retry
        from failure)."""
        self.pipeline = pipeline
        self.pipeline_name = pipeline_name
        self.pipeline_spec = pipeline_spec
        self.context = context
        self.repo_root = repo_root.resolve()
        self.workdir = workdir.resolve()
        self.timeout = timeout
        self.reporter = reporter
        self.poll_seconds = poll_seconds
        self.records: dict[NodeKey, NodeRecord] = {}
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.outcome: planner.Outcome | None = None
        self._cancel = threading.Event()
        self._done: queue.Queue[_Finished] = queue.Queue()
        self._running: dict[NodeKey, TaskProcess] = {}
        self.cache = cache
        self.reuse = reuse
        self._cache_keys: dict[NodeKey, str] = {}  # of the nodes that store their results
        self._digests: dict[Path, str] = {}  # see _digest

    # --- public -----------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.workdir / layout.run_prefix(self.context.namespace, self.context.name)

    def cancel(self) -> None:
        """Ask the run to stop: running tasks are stopped, onExit still runs."""
        self._cancel.set()

    def abort(self) -> None:
        """Stop every running process now (SIGKILL, no grace period), onExit included."""
        self._cancel.set()
        for process in list(self._running.values()):
            process.kill()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def task_name(self, key: NodeKey) -> str:
        return self.pipeline.node_name(key)

    def execute(self) -> planner.Outcome:
        """Runs until finished; returns the outcome."""
        _prepare_workdir(self.workdir)
        # A reused run name starts clean: stale outputs must never feed a new run.
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.run_dir.mkdir(parents=True)
        if self.reuse is not None:
            self._take_over(self.reuse)
        try:
            self._loop()
        finally:
            # Left only by an exception (a signal pipesync does not handle, a bug): no
            # task's process group may outlive pipesync.
            for process in list(self._running.values()):
                process.kill()
        self.finished_at = time.time()
        self._write_record()
        assert self.outcome is not None  # noqa: S101 - the loop ends only with an outcome
        if self.reporter is not None:
            self.reporter.run_finished(self, self.outcome)
        return self.outcome

    def artifacts(self) -> list[tuple[str, str, Path]]:
        """(task, artifact, path) of every output artifact written, in pipeline order."""
        found = []
        for key in sorted(self.records):
            outputs = self._node_dir(key) / "outputs" / "artifacts"
            for name in self._compiled(key[0]).task.output_artifacts:
                if (outputs / name).exists():
                    found.append((self.task_name(key), name, outputs / name))
        return found

    # --- the loop ---------------------------------------------------------------------

    def _loop(self) -> None:
        deadline = None if self.timeout is None else self.started_at + self.timeout
        while True:
            now = time.time()
            decision = planner.plan(
                self.pipeline,
                {key: record.state for key, record in self.records.items()},
                self.context,
                now,
                cancel=self._cancel.is_set(),
                deadline_exceeded=deadline is not None and now >= deadline,
            )
            # A launch the cache serves is never shown Running: nothing runs.
            served = {launch.key for launch in decision.launches if self._served(launch)}
            for transition in decision.transitions:
                if transition.key not in served:
                    self._set(transition.key, transition.state)
            for key in decision.stop:
                process = self._running.get(key)
                if process is not None:
                    process.stop()
            for launch in decision.launches:
                if launch.key not in served:
                    self._start(launch)
            if decision.finished is not None and not self._running:
                self.outcome = decision.finished
                return
            self._wait(decision, deadline)

    def _wait(self, decision: planner.Decision, deadline: float | None) -> None:
        """Blocks until a task ends, a retry is due, or it is time to look again.

        One planning pass already follows every consequence of the state it saw (skips
        flow downstream in topological order), so nothing new can be decided before a
        task ends, a retry falls due, the deadline passes or a cancel arrives.
        """
        timeout = self.poll_seconds
        for moment in (decision.wake_at, deadline):
            if moment is not None:
                timeout = min(timeout, max(moment - time.time(), 0.0))
        try:
            finished = self._done.get(timeout=timeout) if timeout > 0 else self._done.get_nowait()
        except queue.Empty:
            return
        self._finish(finished)
        while True:  # drain whatever else ended meanwhile, then plan once for all of them
            try:
                self._finish(self._done.get_nowait())
            except queue.Empty:
                return

    def _set(self, key: NodeKey, state: NodeState) -> None:
        record = self.records.setdefault(key, NodeRecord())
        record.state = state
        if self.reporter is not None:
            self.reporter.node_changed(self, key, state)

    def _start(self, launch: planner.Launch) -> None:
        key = launch.key
        record = self.records.setdefault(key, NodeRecord())
        record.item = launch.item if launch.has_item else None
        record.started_at = time.time()
        if record.first_started_at is None:
            record.first_started_at = record.started_at
        node_dir = self._node_dir(key)
        if launch.attempt > 1:
            shutil.rmtree(node_dir / "outputs", ignore_errors=True)
        task = launch.task.task
        for kind, names in (
            ("parameters", task.output_parameters),
            ("artifacts", task.output_artifacts),
        ):
            if names:  # only what the task declares: directory calls cost per task
                (node_dir / "outputs" / kind).mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / layout.log_key(self._node_key(key), launch.attempt)
        record.log = log_path
        try:
            argv, env, cwd = self._render(launch, node_dir)
        except _RenderError as error:
            self._done.put(
                _Finished(
                    key,
                    launch,
                    ProcessResult(None, FailureKind.ERROR, str(error), time.time(), time.time()),
                    {},
                    "",
                )
            )
            return
        process = TaskProcess(
            argv, cwd=cwd, env=env, log_path=log_path, timeout=launch.task.task.timeout_seconds
        )
        self._running[key] = process
        threading.Thread(
            target=self._supervise, args=(launch, process, node_dir), daemon=True
        ).start()

    def _supervise(self, launch: planner.Launch, process: TaskProcess, node_dir: Path) -> None:
        result = process.run()
        outputs: dict[str, str] = {}
        problem = ""
        if result.failure is None:
            outputs, problem = _collect_outputs(launch.task, node_dir)
        self._done.put(_Finished(launch.key, launch, result, outputs, problem))

    def _finish(self, finished: _Finished) -> None:
        self._running.pop(finished.key, None)
        record = self.records.setdefault(finished.key, NodeRecord())
        result = finished.result
        record.exit_code = result.exit_code
        attempts = finished.launch.attempt
        if result.failure is None and not finished.problem:
            state = NodeState(
                Phase.SUCCEEDED,
                attempts=attempts,
                finished_at=result.finished_at,
                outputs=finished.outputs,
            )
        elif result.failure is FailureKind.CANCELLED:
            state = NodeState(
                Phase.CANCELLED,
                attempts=attempts,
                finished_at=result.finished_at,
                failure=FailureKind.CANCELLED,
                message="stopped: the run was cancelled or timed out",
            )
        else:
            state = NodeState(
                Phase.FAILED,
                attempts=attempts,
                finished_at=result.finished_at,
                failure=result.failure or FailureKind.FAILED,
                message=finished.problem or result.message,
            )
        if finished.cached is not None:
            entry = finished.cached
            state = NodeState(
                Phase.CACHED,
                finished_at=result.finished_at,
                outputs=dict(entry.outputs),
                message=f"from run {entry.run}, task {entry.task}",
                cached_from=CacheSource(entry.run, entry.task),
            )
        elif state.phase is Phase.SUCCEEDED:
            self._store_in_cache(finished, record)
        self._set(finished.key, state)

    # --- retry from failure -----------------------------------------------------------

    def _take_over(self, reuse: Reuse) -> None:
        """Starts from the reused nodes, with their artifacts linked into this run."""
        for key, state in reuse.nodes.items():
            index, instance = key
            name = self._compiled(index).name
            node = layout.node_path(name, None if instance == TASK else instance)
            artifacts = reuse.run_dir / node / "outputs" / "artifacts"
            if artifacts.is_dir():
                target = self._node_dir(key) / "outputs" / "artifacts"
                for item in artifacts.iterdir():
                    cachestore.restore(item, target / item.name)
            self.records[key] = NodeRecord(state=state)

    # --- the cache --------------------------------------------------------------------

    def _served(self, launch: planner.Launch) -> bool:
        """Looks the attempt up in the cache (when its task caches): on a hit, its
        artifacts are put in place and its end is queued as Cached. Remembers the key
        of an attempt that runs, to store its results if it succeeds."""
        compiled = launch.task
        mode = self.context.cache_mode
        if self.cache is None or not taskcache.applies(compiled, mode):
            return False
        inputs = {
            binding.name: self._digest(self._input_path(launch, binding.name))
            for binding in compiled.inputs
        }
        code = self.cache.code_digest(compiled.task.cache.paths)
        key = taskcache.cache_key(launch, input_digests=inputs, code_digest=code)
        entry = self._hit(launch, key) if taskcache.looks_up(compiled, mode) else None
        if entry is None:
            self._cache_keys[launch.key] = key
            return False
        outputs = self._node_dir(launch.key) / "outputs" / "artifacts"
        for name in compiled.task.output_artifacts:
            stored = entry.artifacts[name]
            source = self.cache.store.path(stored)
            assert source is not None  # noqa: S101 - _hit found it intact
            cachestore.restore(source, outputs / name)
            self._digests[outputs / name] = stored.sha256
        now = time.time()
        result = ProcessResult(None, None, "", now, now)
        self._done.put(_Finished(launch.key, launch, result, {}, "", cached=entry))
        return True

    def _hit(self, launch: planner.Launch, key: str) -> taskcache.CacheEntry | None:
        """The entry that serves `key`: fresh, complete, with every artifact intact (one
        gone or changed is a miss: the task runs)."""
        assert self.cache is not None  # noqa: S101 - only asked when caching
        store = self.cache.store
        entry = store.get(key)
        task = launch.task.task
        if entry is None or not taskcache.serves(
            entry, launch, key, time.time(), task.cache.max_age_seconds
        ):
            return None
        intact = all(store.intact(entry.artifacts[name]) for name in task.output_artifacts)
        return entry if intact else None

    def _digest(self, path: Path) -> str:
        """An artifact's content digest, read once per run: a finished task's outputs do
        not change, and each is digested when stored and again by every reader."""
        if path not in self._digests:
            self._digests[path] = digests.content_digest(path)
        return self._digests[path]

    def _store_in_cache(self, finished: _Finished, record: NodeRecord) -> None:
        key = self._cache_keys.pop(finished.key, None)
        if self.cache is None or key is None:
            return
        node_dir = self._node_dir(finished.key)
        task = finished.launch.task.task
        store = self.cache.store
        started = record.started_at or finished.result.finished_at
        try:
            artifacts = {}
            for name in task.output_artifacts:
                path = node_dir / "outputs" / "artifacts" / name
                artifacts[name] = store.keep(path, self._digest(path))
        except OSError:  # a full disk: the run goes on, the next one runs this task again
            return
        with contextlib.suppress(OSError):
            store.put(
                taskcache.CacheEntry(
                    key=key,
                    created_at=finished.result.finished_at,
                    run=self.context.name,
                    task=self.task_name(finished.key),
                    outputs=dict(finished.outputs),
                    artifacts=artifacts,
                    duration_seconds=max(finished.result.finished_at - started, 0.0),
                    gpus=task.resources.gpu,
                )
            )

    # --- rendering --------------------------------------------------------------------

    def _render(
        self, launch: planner.Launch, node_dir: Path
    ) -> tuple[list[str], dict[str, str], Path]:
        def path_of(kind: RefKind, name: str) -> str:
            if kind is RefKind.INPUT_ARTIFACT:
                return str(self._input_path(launch, name))
            folder = "artifacts" if kind is RefKind.OUTPUT_ARTIFACT else "parameters"
            return str(node_dir / "outputs" / folder / name)

        ran = attempt.program(
            launch, run=self.context.name, namespace=self.context.namespace, path_of=path_of
        )
        try:
            # A laptop has no pools or GPUs to hand out; a value no pod could be given
            # still fails the attempt, as it would in the cluster.
            attempt.resources(launch)
        except task_resources.ResourceError as error:
            raise _RenderError(str(error)) from None
        env = dict(os.environ)
        # `python` in a task means the interpreter pipesync runs on, with its packages.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.update(ran.env)
        cwd = (self.repo_root / (ran.working_dir or ".")).resolve()
        if not cwd.is_relative_to(self.repo_root):
            raise _RenderError(f"workingDir {ran.working_dir!r} leaves the repository")
        cwd.mkdir(parents=True, exist_ok=True)
        return list(ran.argv), env, cwd

    def _input_path(self, launch: planner.Launch, name: str) -> Path:
        compiled = launch.task
        binding = next(b for b in compiled.inputs if b.name == name)
        producer_index, artifact = launch.source(binding)
        producer = self.pipeline.tasks[producer_index]
        if producer.index in launch.positions:  # a paired forEach instance's own artifact
            node = self._node_dir((producer.index, launch.positions[producer.index]))
            return node / "outputs" / "artifacts" / artifact
        if producer.index in launch.slices:  # the instances nested under this one
            gathered = self._node_dir(launch.key) / "nested" / name
            gathered.mkdir(parents=True, exist_ok=True)
            under = launch.slices[producer.index]
            for i in under:
                link = gathered / str(i - under[0])
                if not link.is_symlink():
                    node = self._node_dir((producer.index, i))
                    link.symlink_to(node / "outputs" / "artifacts" / artifact)
            return gathered
        if not producer.fan_out:
            return self._node_dir((producer.index, TASK)) / "outputs" / "artifacts" / artifact
        # A forEach task's artifact is a directory with one entry per instance that ran, in
        # item order (a skipped instance has none).
        collected = self._node_dir((producer.index, TASK)) / "collected" / artifact
        if not collected.exists():  # built once per run: the producer has finished by now
            collected.mkdir(parents=True)
            instance = 0
            while (producer.index, instance) in self.records:
                record = self.records[(producer.index, instance)]
                if record.state.phase is not Phase.SKIPPED:
                    source = self._node_dir((producer.index, instance)) / "outputs" / "artifacts"
                    (collected / str(instance)).symlink_to(source / artifact)
                instance += 1
        return collected

    def _node_key(self, key: NodeKey) -> str:
        index, instance = key
        return layout.node_prefix(
            self.context.namespace,
            self.context.name,
            self._compiled(index).name,
            None if instance == TASK else instance,
        )

    def _node_dir(self, key: NodeKey) -> Path:
        return self.workdir / self._node_key(key)

    def _compiled(self, index: int) -> CompiledTask:
        return self.pipeline.at((index, TASK))

    # --- the record -------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        """One row per task and instance, in pipeline order."""
        rows = []
        for key in sorted(self.records):
            record = self.records[key]
            state = record.state
            rows.append(
                {
                    "task": self.task_name(key),
                    "phase": state.phase.value,
                    "attempts": state.attempts,
                    "startedAt": record.started_at,
                    "finishedAt": state.finished_at,
                    "exitCode": record.exit_code,
                    "message": state.message,
                    "outputs": dict(state.outputs),
                    "log": None if record.log is None else str(record.log),
                }
            )
        return rows

    def _write_record(self) -> None:
        path = self.workdir / layout.record_key(self.context.namespace, self.context.name)
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(self.record().to_json(), indent=1, sort_keys=True))
        temporary.replace(path)  # atomic: a reader never sees half a record

    def record(self) -> runstatus.RunRecord:
        """The run record, in the format the operator's S3 mirror writes for cluster runs,
        so `pipesync history --local` and the UI read local runs as they read those."""
        outcome = self.outcome
        nodes = {key: record.state for key, record in self.records.items()}
        counts = summary.task_counts(self.pipeline, nodes)
        started = times.timestamp(self.started_at)
        finished = "" if self.finished_at is None else times.timestamp(self.finished_at)
        pipeline = {"name": self.pipeline_name}
        spec: dict[str, Any] = {"params": dict(self.context.params)}
        if self.pipeline_name:
            spec["pipelineRef"] = {"name": self.pipeline_name}
        if self.reuse is not None:
            spec["retryOf"] = {"name": self.reuse.run}
        status = runstatus.RunStatus(
            phase=RunPhase.RUNNING.value if outcome is None else outcome.phase.value,
            conditions=() if outcome is None else (self._outcome_condition(outcome, finished),),
            started_at=started,
            finished_at=finished,
            duration=""
            if self.finished_at is None
            else durations.format_seconds(max(self.finished_at - self.started_at, 0.0)),
            progress=summary.progress(counts),
            pipeline=pipeline,
            tasks={
                task.name: self._task_status(task, nodes.get((task.index, TASK)), nodes)
                for task in self.pipeline.tasks
            },
            task_counts=counts,
        )
        everything = list(self.pipeline.tasks)
        if self.pipeline.on_exit is not None:
            everything.append(self.pipeline.on_exit)
        return runstatus.RunRecord(
            metadata={
                "name": self.context.name,
                "namespace": self.context.namespace,
                "creationTimestamp": started,
            },
            spec=spec,
            status=status,
            pipeline=pipeline
            if self.pipeline_spec is None
            else {**pipeline, "spec": dict(self.pipeline_spec)},
            tasks={task.name: self._task_detail(task) for task in everything},
        )

    @staticmethod
    def _outcome_condition(outcome: planner.Outcome, finished: str) -> dict[str, Any]:
        """`Succeeded` tells the outcome and its message, as on a Run in the cluster."""
        succeeded = outcome.phase is RunPhase.SUCCEEDED
        return {
            "type": "Succeeded",
            "status": "True" if succeeded else "False",
            "reason": outcome.phase.value,
            "message": outcome.message,
            "lastTransitionTime": finished,
        }

    def _task_status(
        self, task: CompiledTask, state: NodeState | None, nodes: Mapping[NodeKey, NodeState]
    ) -> runstatus.TaskStatus:
        record = self.records.get((task.index, TASK))
        if state is None or record is None:
            return runstatus.TaskStatus(Phase.PENDING.value)
        ended = state.phase in (Phase.SUCCEEDED, Phase.FAILED)
        return runstatus.TaskStatus(
            phase=state.phase.value,
            attempts=state.attempts,
            started_at=_stamp(record.first_started_at, precise=False),
            finished_at=_stamp(state.finished_at, precise=False),
            exit_code=record.exit_code if ended else None,
            message=state.message[:500],
            outputs=runstatus.small_outputs(state.outputs),
            instances=summary.instance_counts(task, nodes),
            cached_from={} if state.cached_from is None else state.cached_from.to_json(),
        )

    def _task_detail(self, task: CompiledTask) -> NodeDetail:
        detail = dataclasses.replace(
            self._node_detail(self.records.get((task.index, TASK))), on_exit=task.is_exit
        )
        if not task.fan_out:
            return detail
        instances = sorted(i for index, i in self.records if index == task.index and i != TASK)
        return dataclasses.replace(
            detail,
            instances=tuple(
                dataclasses.replace(self._node_detail(self.records[(task.index, i)]), index=i)
                for i in instances
            ),
        )

    @staticmethod
    def _node_detail(record: NodeRecord | None) -> NodeDetail:
        if record is None:
            return NodeDetail()
        state = record.state
        return NodeDetail(
            phase=state.phase.value,
            attempts=state.attempts,
            message=state.message,
            outputs=dict(state.outputs),
            failure="" if state.failure is None else str(state.failure.value),
            started_at=_stamp(record.started_at),
            finished_at=_stamp(state.finished_at),
            exit_code=record.exit_code,
            log="" if record.log is None else str(record.log),
            cached_from={} if state.cached_from is None else state.cached_from.to_json(),
        )


def _stamp(moment: float | None, *, precise: bool = True) -> str:
    """Node times to the millisecond (two quick tasks stay in order); status times in
    whole seconds, as Kubernetes writes them."""
    if moment is None:
        return ""
    return runstatus.precise_timestamp(moment) if precise else times.timestamp(moment)


class _RenderError(Exception):
    pass


#: In the work directory: git ignores it and everything in it.
GITIGNORE = "# written by pipesync run: runs' outputs and logs are not source\n*\n"


def _prepare_workdir(workdir: Path) -> None:
    """Create the work directory with a `.gitignore` of `*`, so `.pipesync/` in a
    repository never shows in `git status`. A directory that holds anything but earlier
    runs (a folder the user chose) is left as it is."""
    if workdir.is_dir() and not set(os.listdir(workdir)) <= {"local"}:
        return
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".gitignore").write_text(GITIGNORE)


def _collect_outputs(compiled: CompiledTask, node_dir: Path) -> tuple[dict[str, str], str]:
    """The output parameters a successful attempt wrote, or why it did not fulfil them."""
    outputs: dict[str, str] = {}
    for name in compiled.task.output_parameters:
        path = node_dir / "outputs" / "parameters" / name
        if not path.is_file():
            return (
                {},
                f"did not write output parameter {name!r} (to {{{{outputs.parameters.{name}}}}})",
            )
        if path.stat().st_size > MAX_PARAMETER_BYTES:
            return {}, (
                f"output parameter {name!r} is larger than {MAX_PARAMETER_BYTES} bytes; "
                "write big results as artifacts"
            )
        text = path.read_text(errors="replace")
        outputs[name] = text[:-1] if text.endswith("\n") else text
    for name in compiled.task.output_artifacts:
        if not (node_dir / "outputs" / "artifacts" / name).exists():
            return (
                {},
                f"did not write output artifact {name!r} (to {{{{outputs.artifacts.{name}}}}})",
            )
    return outputs, ""
