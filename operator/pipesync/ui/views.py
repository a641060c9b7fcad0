"""Kubernetes objects and S3 run records turned into what the pages show (pure functions).

The shapes are the UI's JSON contract (docs/ui.md): one place decides what a row of the
runs list or a task of the run page holds, so the server and the tests agree on it.
`VIEWS` is the table of the endpoints of everything but runs: each entry is a kind, the
verb the person needs on it, and its view; `resourceroutes` makes its route and check.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

from pipesync.api import conventions, model, runstatus, times
from pipesync.engine import compiler, recurring, retryrun, state
from pipesync.kube import protocol as kube
from pipesync.ui import graph


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def conditions(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {key: c.get(key) for key in ("type", "status", "reason", "message", "lastTransitionTime")}
        for c in (obj.get("status") or {}).get("conditions") or []
    ]


def _ready(obj: Mapping[str, Any]) -> tuple[bool, str, str]:
    for condition in conditions(obj):
        if condition["type"] == "Ready":
            return (
                condition["status"] == "True",
                _text(condition["reason"]),
                _text(condition["message"]),
            )
    return False, "", ""


def watched_namespaces(existing: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The namespaces the operator's --namespace options name: plain names, or kopf's
    globs, comma lists and `!` exclusions (e.g. "*,!solo-*"); no option means all."""
    rules = [part.strip() for pattern in patterns for part in pattern.split(",") if part.strip()]
    include = [rule for rule in rules if not rule.startswith("!")] or ["*"]
    exclude = [rule[1:] for rule in rules if rule.startswith("!")]
    return sorted(
        name
        for name in existing
        if any(fnmatch.fnmatchcase(name, rule) for rule in include)
        and not any(fnmatch.fnmatchcase(name, rule) for rule in exclude)
    )


# --- runs ------------------------------------------------------------------------------


def run_row(run: Mapping[str, Any], *, archived: bool = False) -> dict[str, Any]:
    metadata, spec = _meta(run), run.get("spec") or {}
    status = run.get("status") or {}
    pinned = status.get("pipeline") or {}
    labels = metadata.get("labels") or {}
    return {
        "name": _text(metadata.get("name")),
        "namespace": _text(metadata.get("namespace")),
        "pipeline": _text(pinned.get("name") or (spec.get("pipelineRef") or {}).get("name")),
        "pipelineVersion": _text(pinned.get("version")),
        "experiment": _text((spec.get("experimentRef") or {}).get("name")),
        "phase": _text(status.get("phase") or "Pending"),
        "progress": _text(status.get("progress")),
        "startedAt": _text(status.get("startedAt")),
        "finishedAt": _text(status.get("finishedAt")),
        "duration": _text(status.get("duration")),
        "commit": _text(pinned.get("commit")),
        "source": _text(pinned.get("source")),
        "params": {str(k): _text(v) for k, v in (spec.get("params") or {}).items()},
        "createdAt": _text(metadata.get("creationTimestamp")),
        "archived": archived,
        "recurringRun": labels.get(conventions.LABEL_RECURRING_RUN),
    }


def filter_rows(
    rows: Iterable[Mapping[str, Any]],
    *,
    pipeline: str = "",
    experiment: str = "",
    phase: str = "",
    commit: str = "",
    query: str = "",
) -> list[Mapping[str, Any]]:
    """Rows matching every given filter, newest first."""
    chosen = [
        row
        for row in rows
        if (not pipeline or row["pipeline"] == pipeline)
        and (not experiment or row["experiment"] == experiment)
        and (not phase or row["phase"] == phase)
        and (not commit or str(row["commit"]).startswith(commit))
        and (not query or query in row["name"])
    ]
    chosen.sort(key=lambda row: (row["createdAt"], row["name"]), reverse=True)
    return chosen


def _spec_graph(spec: Mapping[str, Any] | None) -> tuple[list[dict[str, Any]], list[Any]]:
    """Tasks (in order, with the model's fields) and dependency edges of a pipeline spec;
    ([], []) when it does not compile (the run page then lists tasks without edges)."""
    if not spec:
        return [], []
    try:
        compiled, _ = compiler.compile_pipeline(model.pipeline_spec_from_spec(spec))
    except (KeyError, TypeError, ValueError):
        return [], []
    if compiled is None:
        return [], []
    everything = list(compiled.tasks)
    if compiled.on_exit is not None:
        everything.append(compiled.on_exit)
    tasks: list[dict[str, Any]] = [
        {
            "name": t.name,
            "description": t.task.description,
            "image": _text(t.task.image),
            "pool": _text(t.task.pool),
            "exit": t.is_exit,
            "outputArtifacts": list(t.task.output_artifacts),
            "upstream": [compiled.tasks[i].name for i in t.upstream],
        }
        for t in everything
    ]
    edges = [(str(parent), str(t["name"])) for t in tasks for parent in t["upstream"]]
    return tasks, edges


def _instance_views(detail: runstatus.NodeDetail) -> list[dict[str, Any]]:
    return [
        {"index": i.index or 0, "phase": i.phase, "attempts": i.attempts}
        for i in detail.instances or ()
    ]


def _logs(phase: str, attempts: int, instances: Sequence[Mapping[str, Any]]) -> list[Any]:
    if instances:
        return [
            {"instance": i["index"], "attempt": attempt}
            for i in instances
            for attempt in range(1, int(i["attempts"]) + 1)
        ]
    return [{"instance": None, "attempt": a} for a in range(1, attempts + 1)]


def run_detail(
    run: Mapping[str, Any],
    spec: Mapping[str, Any] | None,
    record: Mapping[str, Any] | None,
    *,
    archived: bool = False,
    can_cancel: bool = False,
    can_rerun: bool = False,
    can_retry: bool = False,
) -> dict[str, Any]:
    """The run page: the row, conditions, the DAG with task states, and per-task detail.
    Task state comes from the Run's status, and from the S3 record where the status
    was cut (big runs) or the Run is gone (archived). `can_rerun` / `can_retry`: the
    person may create Runs; a retry is offered for a run in the cluster that ended
    without succeeding (the operator retries from the original Run and its pin)."""
    status = run.get("status") or {}
    summaries = runstatus.RunStatus.from_json(status).tasks or {}
    recorded = runstatus.RunRecord.from_json(record) if record is not None else None
    details = recorded.tasks if recorded is not None else {}
    spec_tasks, edges = _spec_graph(spec)
    names = [t["name"] for t in spec_tasks] or sorted({*summaries, *details})
    by_name = {t["name"]: t for t in spec_tasks}
    tasks: dict[str, Any] = {}
    nodes: list[dict[str, Any]] = []
    for name in names:
        # Empty stand-ins where status or record lacks the task: each field falls back.
        summary = summaries.get(name) or runstatus.TaskStatus(phase="")
        detail = details.get(name) or runstatus.NodeDetail(phase="")
        shape = by_name.get(name, {})
        phase = summary.phase or detail.phase or "Pending"
        attempts = summary.attempts or detail.attempts
        instances = _instance_views(detail)
        counts = summary.instances.to_json() if summary.instances else None
        if counts is None and instances:
            counts = {
                "total": len(instances),
                # a cached instance succeeded too, in the run it came from
                "succeeded": sum(i["phase"] in ("Succeeded", "Cached") for i in instances),
                "failed": sum(i["phase"] == "Failed" for i in instances),
                "running": sum(i["phase"] == "Running" for i in instances),
            }
        outputs = {**detail.outputs, **summary.outputs}
        artifacts = [
            {"name": artifact, "instance": None} for artifact in shape.get("outputArtifacts", [])
        ]
        if instances and artifacts:
            artifacts = [
                {"name": a["name"], "instance": i["index"]} for i in instances for a in artifacts
            ]
        tasks[name] = {
            "name": name,
            "phase": phase,
            "attempts": attempts,
            "startedAt": summary.started_at or detail.main_started_at or detail.started_at,
            "finishedAt": summary.finished_at or detail.finished_at,
            "exitCode": detail.exit_code if summary.exit_code is None else summary.exit_code,
            "message": summary.message or detail.message,
            "description": _text(shape.get("description")),
            "image": _text(shape.get("image")),
            "pool": _text(shape.get("pool")),
            "outputs": {"parameters": outputs, "artifacts": artifacts},
            "instances": instances,
            "logs": _logs(phase, attempts, instances),
            # a Cached task: the run and task its results came from (the page links it)
            "cachedFrom": dict(summary.cached_from or detail.cached_from) or None,
        }
        nodes.append(
            {
                "id": name,
                "label": name,
                "phase": phase,
                "attempts": attempts,
                "forEach": counts,
                "exit": bool(shape.get("exit")),
            }
        )
    ready = [c for c in conditions(run) if c["type"] == "Succeeded"]
    return {
        "run": run_row(run, archived=archived),
        "conditions": conditions(run),
        "message": _text(ready[0]["message"]) if ready else "",
        "graph": graph.layout(nodes, edges),
        "tasks": tasks,
        "archived": archived,
        "canCancel": can_cancel and not archived and status.get("phase") not in state.FINISHED,
        "canRerun": can_rerun,
        "canRetry": can_retry and not archived and status.get("phase") in retryrun.OFFERED,
    }


def record_as_run(record: Mapping[str, Any]) -> dict[str, Any]:
    """A run record (the S3 mirror's, or a local run's: one format) seen as a Run object
    (its metadata, spec and status); an object that is no record is an empty Run."""
    typed = runstatus.RunRecord.from_json(record)
    if typed is None:
        return {"metadata": {}, "spec": {}, "status": {}}
    return {
        "metadata": dict(typed.metadata),
        "spec": dict(typed.spec),
        "status": typed.status.to_json(),
    }


def rerun_body(
    run: Mapping[str, Any], new_name: str, pinned: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A new Run with the same pipeline, parameters, experiment and limits. A reference
    names the version the original ran (from its pin, else its status), so the re-run
    never silently takes a newer one: the operator refuses a version it no longer has."""
    spec = run.get("spec") or {}
    keep = ("pipelineRef", "pipelineSpec", "experimentRef", "params", "timeout")
    body: dict[str, Any] = {key: spec[key] for key in keep if key in spec}
    ran = (pinned or {}).get("pipeline") or (run.get("status") or {}).get("pipeline") or {}
    if "pipelineRef" in body and ran.get("version"):
        body["pipelineRef"] = {**body["pipelineRef"], "version": _text(ran["version"])}
    annotations = {conventions.ANNOTATION_RERUN_OF: _text(_meta(run).get("name"))}
    if pinned is not None:
        # rerun_pin follows the Run: the operator waits for it instead of pinning first
        annotations[conventions.ANNOTATION_PIN_HANDOVER] = "ui"
    return {
        "apiVersion": f"{model.GROUP}/{model.VERSION}",
        "kind": "Run",
        "metadata": {
            "name": new_name,
            "annotations": annotations,
        },
        "spec": body,
    }


def rerun_pin(created: Mapping[str, Any], pinned: Mapping[str, Any]) -> dict[str, Any]:
    """The re-run's `<run>-pipeline` ConfigMap, as the operator writes it when it pins a
    run (runs.RunController._pin), holding the original's pinned spec and pipeline (its
    commit, source and path): the operator then runs exactly what the original ran, in
    the repository tree at the same commit. Owned by the new Run, so it goes with it."""
    meta = _meta(created)
    return {
        "metadata": {
            "name": conventions.pinned_config_name(_text(meta.get("name"))),
            "labels": {conventions.LABEL_RUN: _text(meta.get("name"))},
            "ownerReferences": [
                {
                    "apiVersion": model.API_VERSION,
                    "kind": "Run",
                    "name": _text(meta.get("name")),
                    "uid": _text(meta.get("uid")),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {
            conventions.PINNED_SPEC_KEY: json.dumps(
                {"spec": pinned["spec"], "pipeline": dict(pinned.get("pipeline") or {})}
            )
        },
    }


# --- compare ---------------------------------------------------------------------------


def _table(names: Sequence[str], columns: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        values = [column.get(name) for column in columns]
        rows.append({"name": name, "values": values, "differs": len({repr(v) for v in values}) > 1})
    return rows


def compare(
    rows: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    metrics: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """Runs side by side: parameters, metric values and output parameters, one column per
    run, `differs` set where the runs disagree (a value missing in one counts)."""
    params = [row["params"] for row in rows]
    return {
        "runs": list(rows),
        "params": _table(sorted({k for p in params for k in p}), params),
        "metrics": _table(sorted({k for m in metrics for k in m}), metrics),
        "outputs": _table(sorted({k for o in outputs for k in o}), outputs),
    }


def output_parameters(detail: Mapping[str, Any]) -> dict[str, Any]:
    """`<task>.<param>` -> value of a run detail, for compare."""
    return {
        f"{task}.{name}": value
        for task, view in detail["tasks"].items()
        for name, value in view["outputs"]["parameters"].items()
    }


# --- the other resources ---------------------------------------------------------------


def experiment_row(experiment: Mapping[str, Any], runs: int) -> dict[str, Any]:
    status = experiment.get("status") or {}
    return {
        "name": _text(_meta(experiment).get("name")),
        "description": _text((experiment.get("spec") or {}).get("description")),
        "runs": runs,
        "lastRun": status.get("lastRun") or None,
        "createdAt": _text(_meta(experiment).get("creationTimestamp")),
    }


def pipeline_row(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    status = pipeline.get("status") or {}
    ready, _, message = _ready(pipeline)
    versions = status.get("versions") or []
    sources = [v.get("source") for v in versions if v.get("source")]
    return {
        "name": _text(_meta(pipeline).get("name")),
        "latestVersion": _text(status.get("latestVersion")),
        "versions": len(versions),
        "taskCount": int(status.get("taskCount") or 0),
        "source": _text(sources[-1] if sources else ""),
        "ready": ready,
        "message": message,
    }


_SCP_URL = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")


def web_url(repository: str) -> str | None:
    """The https address of a repository on a forge, from its clone URL (https or ssh);
    None when it does not look like one. Credentials in the URL are dropped."""
    url = repository.strip()
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("https", "http", "ssh") and parsed.hostname:
        path = parsed.path
        host = parsed.hostname
    else:
        match = _SCP_URL.match(url)
        if match is None or "://" in url:
            return None
        host, path = match["host"], "/" + match["path"]
    path = path.removesuffix("/").removesuffix(".git").strip("/")
    if path.count("/") < 1:
        return None
    return f"https://{host}/{path}"


def file_url(repository: str, commit: str, path: str) -> str | None:
    """A link to the file at that commit (GitHub, GitLab and Gitea all accept
    `<repo>/blob/<sha>/<path>`)."""
    base = web_url(repository)
    if base is None or not re.fullmatch(r"[0-9a-f]{7,64}", commit or ""):
        return None
    clean = "/".join(urllib.parse.quote(part) for part in path.split("/") if part not in ("", "."))
    return f"{base}/blob/{commit}/{clean}"


def version_file(source: str) -> tuple[str, str]:
    """ "GitSource/ml-repo:pipelines/digits.yaml" -> ("ml-repo", "pipelines/digits.yaml")."""
    kind, _, rest = source.partition("/")
    name, _, path = rest.partition(":")
    if kind != "GitSource" or not name or not path:
        return "", ""
    return name, path


def pipeline_detail(pipeline: Mapping[str, Any], repositories: Mapping[str, str]) -> dict[str, Any]:
    """`repositories`: GitSource name -> clone URL, for the links to the file."""
    spec = pipeline.get("spec") or {}
    # The file the GitSource applied it from (written by gitops.sync).
    current_file = _text(
        (_meta(pipeline).get("annotations") or {}).get(conventions.ANNOTATION_FILE)
    )
    versions = []
    for version in reversed((pipeline.get("status") or {}).get("versions") or []):
        source_name, path = version_file(_text(version.get("source")))
        if not source_name:  # the usual form: the GitSource's name alone
            source_name, path = _text(version.get("source")), current_file
        link = None
        if source_name in repositories:
            link = file_url(repositories[source_name], _text(version.get("commit")), path)
        versions.append(
            {
                **{
                    key: _text(version.get(key))
                    for key in ("id", "digest", "commit", "source", "createdAt")
                },
                "fileUrl": link,
            }
        )
    tasks, edges = _spec_graph(spec)
    nodes = [
        {
            "id": t["name"],
            "label": t["name"],
            "phase": "",
            "attempts": 0,
            "forEach": None,
            "exit": t["exit"],
        }
        for t in tasks
    ]
    return {
        "pipeline": pipeline_row(pipeline),
        "description": _text(spec.get("description")),
        "params": [
            {"name": p.get("name"), "type": p.get("type", "string"), "default": p.get("default")}
            for p in spec.get("params") or []
        ],
        "versions": versions,
        "graph": graph.layout(nodes, edges),
        "conditions": conditions(pipeline),
    }


def recurring_row(recurring_run: Mapping[str, Any]) -> dict[str, Any]:
    spec, status = recurring_run.get("spec") or {}, recurring_run.get("status") or {}
    schedule = spec.get("schedule") or {}
    return {
        "name": _text(_meta(recurring_run).get("name")),
        "pipeline": _text((spec.get("pipelineRef") or {}).get("name")),
        "schedule": _text(
            schedule.get("cron")
            or (f"every {schedule['interval']}" if schedule.get("interval") else "")
        ),
        "timeZone": _text(schedule.get("timezone") or "UTC"),
        "suspended": bool(spec.get("suspend")),
        "lastScheduleTime": _text(status.get("lastScheduleTime")),
        "nextScheduleTime": _text(status.get("nextScheduleTime")),
        "active": int(status.get("activeCount") or 0),
    }


def next_fire_times(recurring_run: Mapping[str, Any], now: float, count: int = 5) -> list[str]:
    """The next `count` scheduled times after `now` (none when suspended or invalid)."""
    spec = recurring_run.get("spec") or {}
    created = times.instant(_meta(recurring_run).get("creationTimestamp")) or now
    try:
        parsed = recurring.parse_spec(spec, int(created))
    except recurring.ScheduleError:
        return []
    if parsed.suspend:
        return []
    return [times.timestamp(float(t)) for t in recurring.upcoming(parsed, int(now), count)]


def recurring_detail(
    recurring_run: Mapping[str, Any], history: Sequence[Mapping[str, Any]], now: float
) -> dict[str, Any]:
    spec, status = recurring_run.get("spec") or {}, recurring_run.get("status") or {}
    return {
        "recurringRun": recurring_row(recurring_run),
        "concurrencyPolicy": _text(spec.get("concurrencyPolicy") or "Forbid"),
        "nextFireTimes": next_fire_times(recurring_run, now),
        "counts": dict(status.get("counts") or {}),
        "conditions": conditions(recurring_run),
        "history": list(history),
    }


def safe_url(url: str) -> str:
    """A clone URL without user name or password."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme and (parsed.username or parsed.password):
        host = parsed.hostname or ""
        netloc = f"{host}:{parsed.port}" if parsed.port else host
        return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    return url


def gitsource_row(source: Mapping[str, Any]) -> dict[str, Any]:
    spec, status = source.get("spec") or {}, source.get("status") or {}
    ready, reason, message = _ready(source)
    ref = spec.get("ref") or {}
    return {
        "name": _text(_meta(source).get("name")),
        "url": safe_url(_text(spec.get("url"))),
        "ref": _text(ref.get("branch") or ref.get("tag") or ref.get("commit")),
        "revision": _text(status.get("lastAppliedRevision")),
        "ready": ready,
        "reason": reason,
        "message": message,
        "errors": len(status.get("errors") or []),
    }


def gitsource_detail(source: Mapping[str, Any]) -> dict[str, Any]:
    status = source.get("status") or {}
    inventory = status.get("inventory") or []
    return {
        "gitSource": gitsource_row(source),
        "conditions": conditions(source),
        "inventory": [f"{entry.get('kind')}/{entry.get('name')}" for entry in inventory],
        "errors": [
            {key: error.get(key) for key in ("file", "line", "column", "message")}
            for error in status.get("errors") or []
        ],
        "lastAttemptedRevision": _text(status.get("lastAttemptedRevision")),
    }


# --- the views of the other resources, as a table --------------------------------------


@dataclasses.dataclass(frozen=True)
class Reads:
    """What a view is made of besides its own objects. `kinds`: for each kind its View
    reads that the person may list in the namespace, that kind's objects there (runs:
    their rows, `run_row`, from the live run sources); a kind they may not list is absent,
    and the view shows less (no counts, links or history) instead of failing. `now`: the
    clock, for times to come."""

    now: float
    kinds: Mapping[str, Sequence[Mapping[str, Any]]] = dataclasses.field(default_factory=dict)

    def of(self, kind: str) -> Sequence[Mapping[str, Any]]:
        return self.kinds.get(kind, ())


@dataclasses.dataclass(frozen=True)
class View:
    """One endpoint of the JSON API and what it answers, once the person may `verb` the
    `kind` in the namespace. Verb "list": `GET namespaces/<ns>/<kind>` answers
    `to_view(the objects, reads)`; verb "get": `GET namespaces/<ns>/<kind>/<name>`
    answers `to_view(the object, reads)` (404 when there is none). `reads`: the other
    kinds it shows something of (see Reads). `name`: the page that draws it (pages.js)."""

    name: str
    kind: str
    verb: Literal["list", "get"]
    to_view: Callable[[Any, Reads], dict[str, Any]]
    reads: tuple[str, ...] = ()


Row = Callable[[Mapping[str, Any]], dict[str, Any]]


def _rows(row: Row) -> Callable[[Sequence[Mapping[str, Any]], Reads], dict[str, Any]]:
    """The view of a list that shows each object as its `row`, and nothing else."""

    def view(items: Sequence[Mapping[str, Any]], reads: Reads) -> dict[str, Any]:
        return {"items": [row(item) for item in items]}

    return view


def _alone(detail: Row) -> Callable[[Mapping[str, Any], Reads], dict[str, Any]]:
    """The view of one object that shows it alone."""

    def view(found: Mapping[str, Any], reads: Reads) -> dict[str, Any]:
        return detail(found)

    return view


def experiments_view(items: Sequence[Mapping[str, Any]], reads: Reads) -> dict[str, Any]:
    """Each experiment with the number of live runs in it (0 without the runs)."""
    counts: dict[str, int] = {}
    for row in reads.of(kube.RUNS):
        counts[row["experiment"]] = counts.get(row["experiment"], 0) + 1
    return {"items": [experiment_row(e, counts.get(e["metadata"]["name"], 0)) for e in items]}


def pipeline_view(found: Mapping[str, Any], reads: Reads) -> dict[str, Any]:
    """With the repository URL of each GitSource, for links to the pipeline's files
    (none without the namespace's git sources)."""
    repositories = {
        source["metadata"]["name"]: str((source.get("spec") or {}).get("url") or "")
        for source in reads.of(kube.GIT_SOURCES)
    }
    return pipeline_detail(found, repositories)


def recurring_view(found: Mapping[str, Any], reads: Reads) -> dict[str, Any]:
    """With the Runs it started, newest first (none without the runs), and its next
    fire times."""
    name = _meta(found).get("name")
    history = filter_rows([row for row in reads.of(kube.RUNS) if row["recurringRun"] == name])
    return recurring_detail(found, history, reads.now)


#: The endpoints of everything but runs, in the order their routes are tried; a new
#: view is an entry here and its page in static/pages.js.
VIEWS: tuple[View, ...] = (
    View("experiments", kube.EXPERIMENTS, "list", experiments_view, reads=(kube.RUNS,)),
    View("pipelines", kube.PIPELINES, "list", _rows(pipeline_row)),
    View("pipelines-detail", kube.PIPELINES, "get", pipeline_view, reads=(kube.GIT_SOURCES,)),
    View("recurringruns", kube.RECURRING_RUNS, "list", _rows(recurring_row)),
    View("recurringruns-detail", kube.RECURRING_RUNS, "get", recurring_view, reads=(kube.RUNS,)),
    View("gitsources", kube.GIT_SOURCES, "list", _rows(gitsource_row)),
    View("gitsources-detail", kube.GIT_SOURCES, "get", _alone(gitsource_detail)),
)
