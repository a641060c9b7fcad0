"""`pipesync run FILE`: one pipeline on this machine, tasks as subprocesses, live progress."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.text import Text

from pipesync.api import conventions, durations, model, runstatus
from pipesync.api.diagnostics import has_errors
from pipesync.api.documents import Resource
from pipesync.cli import flags, pipelinefile, progress
from pipesync.cli.pipelinefile import Usage
from pipesync.engine import checks, compiler, loading, params, resume
from pipesync.engine import context as runcontext
from pipesync.engine.state import RunPhase
from pipesync.gitops import codeids
from pipesync.runtime import cachestore
from pipesync.runtime.local import LocalRun, Reuse

EXIT_SUCCEEDED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "run",
        run,
        help="run one pipeline locally, tasks as subprocesses",
        description="Run a pipeline on this machine: tasks run as subprocesses in the current "
        "environment (images are ignored), in the repository's directory, with outputs, "
        "artifacts and logs under the work directory. Exit 0 when the run succeeded, "
        "1 when it failed or was cancelled, 2 on usage errors or invalid files.",
    )
    parser.add_argument("file", metavar="FILE", nargs="?", help="a file with a Pipeline (or a Run)")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="retry an earlier local run from failure: its pipeline and parameters, its "
        "succeeded tasks reused, the rest run (instead of FILE)",
    )
    flags.add_params_argument(parser)
    parser.add_argument("--workdir", metavar="DIR", help="work directory (default: ./.pipesync)")
    parser.add_argument("--pipeline", metavar="NAME", help="which pipeline, if FILE holds several")
    parser.add_argument(
        "--parallelism",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="most tasks running at once (default: the number of CPUs)",
    )
    parser.add_argument(
        "--root",
        metavar="DIR",
        help="the repository root tasks run in (default: the folder holding pipelines/, "
        "else the git top level, else FILE's folder)",
    )
    parser.add_argument("--run-name", metavar="NAME", help="the run's name (default: generated)")
    parser.add_argument("--timeout", metavar="DURATION", help="stop the run after this long")
    parser.add_argument(
        "--plain", action="store_true", help="plain progress lines even on a terminal"
    )
    caching = parser.add_mutually_exclusive_group()
    caching.add_argument(
        "--no-cache",
        dest="cache",
        action="store_const",
        const=model.CacheMode.DISABLED.value,
        help="neither reuse nor store cached task results",
    )
    caching.add_argument(
        "--refresh",
        dest="cache",
        action="store_const",
        const=model.CacheMode.REFRESH.value,
        help="run every task, and store the results of those whose cache is enabled",
    )


def run(options: argparse.Namespace) -> int:
    console = Console(stderr=False, highlight=False)
    errors = Console(stderr=True, highlight=False)
    try:
        local_run = _prepare(options)
    except Usage as error:
        errors.print(f"pipesync run: {error}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_USAGE
    with _reporter(console, plain=options.plain) as reporter:
        local_run.reporter = reporter
        with _cancel_on_interrupt(local_run, errors):
            outcome = local_run.execute()
    if console.is_terminal and not options.plain:
        console.print(progress.summary_table(local_run))
    else:
        print(progress.summary_text(local_run), flush=True)
    elapsed = durations.format_seconds(
        (local_run.finished_at or time.time()) - local_run.started_at
    )
    lines = [
        *progress.failure_details(local_run),
        *progress.artifact_lines(local_run),
        f"{outcome.phase.value} in {elapsed}: {outcome.message}",
        f"outputs, artifacts and logs: {local_run.run_dir}",
    ]
    if console.is_terminal:
        style = "green" if outcome.phase is RunPhase.SUCCEEDED else "red"
        for line in lines:  # log lines and paths are text, never markup
            shown = Text(line, style=style if line is lines[-2] else "")
            console.print(shown, highlight=False, soft_wrap=True)
    else:
        # Not a terminal (a pipe, a CI log): plain lines, never wrapped or padded, so a
        # path can be copied and grepped whole.
        print("\n".join(lines), flush=True)
    return EXIT_SUCCEEDED if outcome.phase is RunPhase.SUCCEEDED else EXIT_FAILED


def _prepare(options: argparse.Namespace) -> LocalRun:
    if options.parallelism < 1:
        raise Usage("--parallelism must be at least 1")
    if (options.file is None) == (options.resume is None):
        raise Usage("give FILE, or --resume RUN_DIR (not both)")
    if options.resume is not None:
        return _resumed(options)
    path = Path(options.file)
    workdir = Path(options.workdir) if options.workdir else Path.cwd() / ".pipesync"
    if workdir.exists() and not workdir.is_dir():
        raise Usage(f"--workdir {workdir}: not a directory")
    root = Path(options.root) if options.root else pipelinefile.repository_root(path)
    loaded = pipelinefile.load(path, options.pipeline, root)
    spec, run_resource = loaded.spec, loaded.run
    given = pipelinefile.given_params(spec, run_resource, options.param)
    values = pipelinefile.resolved_params(spec, given)
    name = options.run_name or _run_name(loaded.pipeline, run_resource)
    if not _NAME.match(name) or len(name) > 63:
        raise Usage(f"run name {name!r} is not a DNS-1123 label")
    context = _context(options, spec, values, name, run_resource)
    pipeline = (loaded.pipeline_name, loaded.spec_data)
    return _local_run(loaded.compiled, context, root, workdir, pipeline)


def _local_run(  # noqa: PLR0917 - what a run is made of, named once
    compiled: compiler.CompiledPipeline,
    context: runcontext.RunContext,
    root: Path,
    workdir: Path,
    pipeline: tuple[str, dict[str, Any]],
    reuse: Reuse | None = None,
) -> LocalRun:
    """The run, with the work directory's task cache and the code of the tree at root."""
    name, spec_data = pipeline
    cache = cachestore.LocalCache(
        cachestore.LocalCacheStore(workdir.resolve(), context.namespace),
        codeids.WorkingTree(root, exclude=[workdir]).digest,
    )
    return LocalRun(
        compiled,
        context,
        repo_root=root,
        workdir=workdir,
        timeout=context.timeout_seconds,
        pipeline_name=name,
        pipeline_spec=spec_data,
        cache=cache,
        reuse=reuse,
    )


def _resumed(options: argparse.Namespace) -> LocalRun:
    """A retry of the run in RUN_DIR: the pipeline spec and parameters its record holds,
    its succeeded tasks and instances reused (engine.resume), the rest run again."""
    run_dir = Path(options.resume)
    record_file = run_dir / "run.json"
    try:
        data = json.loads(record_file.read_text())
    except (OSError, ValueError) as error:
        raise Usage(f"--resume {run_dir}: no readable run record ({error})") from None
    record = runstatus.RunRecord.from_json(data) if isinstance(data, dict) else None
    spec_data = (record.pipeline or {}).get("spec") if record is not None else None
    if record is None or not isinstance(spec_data, dict):
        raise Usage(
            f"--resume {run_dir}: its run.json holds no pipeline spec (runs before this "
            "release kept none): run the pipeline's file again instead"
        )
    pipeline_name = str((record.pipeline or {}).get("name") or "")
    document = {
        "apiVersion": model.API_VERSION,
        "kind": "Pipeline",
        "metadata": {"name": pipeline_name or "resumed"},
        "spec": spec_data,
    }
    resources, problems = loading.load(json.dumps(document).encode(), str(record_file))
    if has_errors(problems) or len(resources) != 1:
        raise Usage("\n".join(p.format() for p in sorted(problems)) or "not a pipeline")
    spec, found = checks.pipeline_problems(resources[0], spec_data, ("spec",))
    if spec is None:
        raise Usage("\n".join(p.format() for p in found))
    compiled, _ = compiler.compile_pipeline(spec)
    assert compiled is not None  # noqa: S101 - pipeline_problems compiled it already
    values, wrong = params.resolve(spec.params, dict(resume.params_of(record)))
    if wrong:
        raise Usage(f"--resume {run_dir}: " + "; ".join(wrong))
    # <workdir>/<namespace>/runs/<run>: the same work directory, unless told otherwise
    workdir = Path(options.workdir) if options.workdir else run_dir.resolve().parents[2]
    root = (
        Path(options.root)
        if options.root
        else pipelinefile.repository_root(Path.cwd() / "run.json")
    )
    name = options.run_name or conventions.local_run_name(
        pipeline_name or None, time.time(), secrets.token_hex(2)
    )
    if not _NAME.match(name) or len(name) > 63 or name == record.name:
        raise Usage(f"run name {name!r} is not a DNS-1123 label other than the original's")
    context = _context(options, spec, values, name, None)
    reuse = Reuse(run_dir.resolve(), resume.reused_nodes(compiled, record), record.name)
    return _local_run(compiled, context, root, workdir, (pipeline_name, spec_data), reuse)


def _run_name(pipeline_resource: Resource | None, run_resource: Resource | None) -> str:
    if run_resource is not None:
        return run_resource.name
    pipeline = pipeline_resource.name if pipeline_resource is not None else None
    return conventions.local_run_name(pipeline, time.time(), secrets.token_hex(2))


def _context(
    options: argparse.Namespace,
    spec: model.PipelineSpec,
    values: dict[str, Any],
    name: str,
    run_resource: Resource | None,
) -> runcontext.RunContext:
    """The run as the planner sees it (engine.planner.run_context, as the operator builds
    it): --timeout, else the Run document's timeout, else the pipeline's."""
    timeout = options.timeout
    if timeout is None and run_resource is not None:
        timeout = run_resource.spec.get("timeout")
    cache = options.cache
    if cache is None and run_resource is not None:
        cache = run_resource.spec.get("cache")
    try:
        return runcontext.run_context(
            spec,
            values,
            name=name,
            namespace=runstatus.LOCAL_NAMESPACE,
            created_at=time.time(),
            max_running=options.parallelism,
            timeout=timeout,
            cache=cache,
        )
    except ValueError as error:
        where = "--timeout" if options.timeout is not None else "spec.timeout"
        raise Usage(f"{where}: {error}") from None


@contextlib.contextmanager
def _reporter(console: Console, *, plain: bool) -> Iterator[Any]:
    if console.is_terminal and not plain:
        with progress.LiveReporter(console) as live:
            yield live
    else:
        yield progress.PlainReporter(sys.stdout)


@contextlib.contextmanager
def _cancel_on_interrupt(local_run: LocalRun, errors: Console) -> Iterator[None]:
    """Ctrl-C cancels the run cleanly (onExit still runs); a second one stops everything."""

    def handle(signum: int, frame: FrameType | None) -> None:
        if local_run.cancelled:
            errors.print("stopping everything now", markup=False)
            local_run.abort()
            return
        errors.print("cancelling: stopping tasks, onExit will run (Ctrl-C again to stop now)")
        local_run.cancel()

    # SIGHUP (the terminal closed) too: the tasks run in their own sessions and would not
    # hear it, so without a handler pipesync would die and leave them running.
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, handle) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
