"""One planner `Launch` as one Kubernetes Pod manifest (a plain dict), built without I/O.

Why this shape (see the pod contract in the project docs): the user's image needs only
/bin/sh. Three containers share an emptyDir mounted at /pipesync:

- init `pipesync-inputs` (operator image): `pipesync agent fetch` downloads the input
  artifacts from S3 into /pipesync/inputs/ and prepares /pipesync/outputs/;
- `main` (user image): the task's argv behind a small /bin/sh wrapper that records the
  program's exit code in /pipesync/.exit (the sidecar's signal that outputs are final);
- `pipesync-outputs` (operator image): `pipesync agent upload` waits for /pipesync/.exit,
  uploads the declared outputs and reports them in its termination message, which
  `pipesync.runtime.podstate` reads back.

The build is a pure function of the launch and settings, so the controller can rebuild
the same manifest after a restart and rely on the deterministic pod name for idempotency.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from pipesync.api import conventions
from pipesync.api.model import API_VERSION, Resources, Task
from pipesync.engine import attempt, inputs, layout
from pipesync.engine import resources as task_resources
from pipesync.engine.compiler import CompiledPipeline, CompiledTask
from pipesync.engine.planner import Launch
from pipesync.engine.state import TASK, NodeKey
from pipesync.engine.templating import RefKind
from pipesync.runtime import placement, taskpolicy
from pipesync.runtime.placement import PoolSettings

VOLUME = "pipesync"
#: The task's own volumes are named with this prefix in the pod, so none can clash with
#: pipesync's volume, whatever the user named them.
USER_VOLUME_PREFIX = "v-"
MOUNT_PATH = "/pipesync"
WRAPPER_NAME = "pipesync-wrapper"  # $0 of the wrapper script: shows up in `ps` and errors

MAX_NAME = 63  # pod names double as hostnames, which are DNS-1123 labels
_HASH_CHARS = 8

#: The /bin/sh wrapper around the user's argv. Arguments: $1 is the mount path, the rest is
#: the argv, passed as positional parameters so no value is ever parsed by the shell.
#: Why not `exec`: the exit code must be written after the program ends. Why the program
#: runs in the background: a shell blocked in a foreground child runs no traps, and as
#: PID 1 of a container it would ignore SIGTERM entirely; here TERM (deletion,
#: activeDeadlineSeconds) is forwarded to the program, which can shut down cleanly.
#: A TERM arriving while the program is being started is remembered and forwarded once
#: its pid is known. The marker is written to a temporary file and renamed, so the
#: sidecar never reads half a number (falling back to a direct write without `mv`).
WRAPPER_SCRIPT = (
    'm=$1; shift; child=""; term=""; '
    'trap \'term=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null\' TERM; '
    '"$@" & child=$!; '
    # A TERM that came before $! was known is forwarded now, not lost.
    '[ -n "$term" ] && kill -TERM "$child" 2>/dev/null; '
    'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done; '
    # A wait cut short by the TERM trap says 143 even when the program then exited with
    # its own code; asking once more gets that code (127: it was already collected).
    'if [ -n "$term" ] && [ "$code" -gt 128 ]; then '
    'wait "$child"; again=$?; [ "$again" -ne 127 ] && code=$again; fi; '
    '{ printf %s "$code" > "$m/.exit.tmp" && mv -f "$m/.exit.tmp" "$m/.exit"; } 2>/dev/null '
    '|| printf %s "$code" > "$m/.exit"; '
    'exit "$code"'
)

#: Pod Security Admission `restricted` (what a shared cluster enforces on tenant
#: namespaces): no root, no privilege escalation, no capabilities, the runtime's seccomp
#: profile. The uid is fixed because runAsNonRoot alone refuses every image whose USER is
#: root (most of them); the shared emptyDir is world-writable, so any uid can use it.
TASK_UID = 65532
POD_SECURITY_CONTEXT: Mapping[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": TASK_UID,
    "runAsGroup": TASK_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: Mapping[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
}

_NOT_DNS = re.compile(r"[^a-z0-9-]+")


class PodBuildError(ValueError):
    """The launch cannot become a pod (e.g. no image, or a forEach producer's size unknown)."""


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """The Run a pod belongs to (its owner)."""

    name: str
    namespace: str
    uid: str
    pipeline: str | None = None
    experiment: str | None = None
    #: The pipeline came from git: its repository tree at the pinned commit, unpacked as the
    #: tasks' working directory (so pods need no git credentials).
    workspace: Workspace | None = None
    #: The Run's spec.serviceAccountName: for tasks that (and whose defaults) name none.
    service_account: str | None = None


@dataclasses.dataclass(frozen=True)
class Workspace:
    archive_key: str  # the tar.gz in S3, operator prefix included (see workspace_key)
    directory: str = ""  # the GitSource's path: the folder holding pipelines/
    sha256: str = ""  # the archive's digest, recorded by the operator when it uploaded it


@dataclasses.dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint: str | None = None  # e.g. http://minio.storage:9000; None: AWS
    region: str = "us-east-1"
    prefix: str = ""  # optional key prefix before `<namespace>/runs/...`
    credentials_secret: str | None = None  # a Secret with AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY
    access_key_id: str | None = None  # literal credentials: tests and local stacks only
    secret_access_key: str | None = None


@dataclasses.dataclass(frozen=True)
class PodSettings:
    image: str  # the operator image (has `pipesync` on PATH)
    s3: S3Settings
    agent_command: tuple[str, ...] = ("pipesync",)
    pools: PoolSettings = dataclasses.field(default_factory=PoolSettings)
    mount_path: str = MOUNT_PATH  # tests point the wrapper at a temporary directory
    default_task_image: str | None = None  # for tasks (and defaults) that name no image
    image_pull_policy: str | None = None  # of the operator image's containers
    s3_patience_seconds: float | None = None  # the sidecar's S3 retry budget
    #: Which ServiceAccounts, Secrets and tolerations tasks may use (runs check it first).
    policy: taskpolicy.TaskPolicy = dataclasses.field(default_factory=taskpolicy.TaskPolicy)


def build_pod(
    launch: Launch,
    *,
    run: RunInfo,
    settings: PodSettings,
    pipeline: CompiledPipeline,
    collected: Mapping[int, Sequence[int]] | None = None,
    cache_key: str = "",
) -> dict[str, Any]:
    """The Pod manifest for one attempt of one task or forEach instance.

    `pipeline` names the producers of input artifacts; `collected` gives, for each forEach
    producer a task reads artifacts from (by task index), the instances that ran (not
    skipped), whose artifacts are collected into one directory. `cache_key`: the
    attempt's key when its results go into the task cache.
    """
    compiled = launch.task
    task = compiled.task
    index, instance = launch.key
    position = None if instance == TASK else instance
    mount = settings.mount_path.rstrip("/") or "/"
    node = node_prefix(settings.s3, run, compiled.name, position)
    image = task.image or settings.default_task_image
    if not image:
        raise PodBuildError(f"task {compiled.name!r} names no image and no default is set")

    account = taskpolicy.service_account(task, run.service_account)
    labels = {
        conventions.LABEL_RUN: conventions.label_value(run.name),
        conventions.LABEL_TASK: conventions.label_value(compiled.name),
        conventions.LABEL_ATTEMPT: str(launch.attempt),
        conventions.LABEL_MANAGED_BY: conventions.MANAGED_BY,
    }
    if run.pipeline:
        labels[conventions.LABEL_PIPELINE] = conventions.label_value(run.pipeline)
    if run.experiment:
        labels[conventions.LABEL_EXPERIMENT] = conventions.label_value(run.experiment)
    if position is not None:
        labels[conventions.LABEL_INSTANCE] = str(position)

    try:
        resources = attempt.resources(launch)
    except task_resources.ResourceError as error:
        raise PodBuildError(str(error)) from None
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # Task pods talk to nothing in the cluster: no service env vars, no API token
        # unless the task asks for a service account.
        "enableServiceLinks": False,
        "automountServiceAccountToken": bool(account),
        "securityContext": _copy(POD_SECURITY_CONTEXT),
        "volumes": [{"name": VOLUME, "emptyDir": {}}, *user_volumes(launch.task.task)],
        "initContainers": [
            _inputs_container(
                launch,
                pipeline=pipeline,
                settings=settings,
                run=run,
                mount=mount,
                collected=collected,
            )
        ],
        "containers": [
            _main_container(launch, run, settings, image, mount, resources=resources),
            _outputs_container(compiled, settings, node, mount),
        ],
    }
    for container in [*spec["initContainers"], *spec["containers"]]:
        container["securityContext"] = _copy(CONTAINER_SECURITY_CONTEXT)
    if task.timeout_seconds is not None:
        spec["activeDeadlineSeconds"] = max(1, math.ceil(task.timeout_seconds))
    if account:
        spec["serviceAccountName"] = account
    spec.update(placement.place(task, settings.pools, resources).as_pod_spec())

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(run.name, compiled.name, position, launch.attempt),
            "namespace": run.namespace,
            "labels": labels,
            "annotations": {
                conventions.ANNOTATION_NODE_KEY: format_node_key((index, instance)),
                conventions.ANNOTATION_NODE_PREFIX: node,
                **({conventions.ANNOTATION_CACHE_KEY: cache_key} if cache_key else {}),
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Run",
                    "name": run.name,
                    "uid": run.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


# --- names and keys ---------------------------------------------------------------------


def pod_name(run: str, task: str, instance: int | None, attempt: int) -> str:
    """`<run>-<task>[-<instance>]-<attempt>-<hash>`, a DNS-1123 label of at most 63 chars.

    The hash of the exact parts is always there because the dashed form alone is
    ambiguous: run `r`, task `a-1`, attempt 2 and run `r`, task `a` instance 1, attempt 2
    would both be `r-a-1-2` (and run `x-a` task `b` meets run `x` task `a-b`). When the
    readable part is too long, run and task are truncated (the task keeps at least half
    the room); instance, attempt and hash stay intact.
    """
    parts = [run, task, "" if instance is None else str(instance), str(attempt)]
    digest = _digest("\x00".join(parts))
    tail = ("" if instance is None else f"-{instance}") + f"-{attempt}-{digest}"
    run_part, task_part = (_NOT_DNS.sub("-", p.lower()).strip("-") for p in (run, task))
    budget = MAX_NAME - len(tail) - 1  # one dash between run and task
    if len(run_part) + len(task_part) > budget:
        # Both stay recognisable: the task keeps at least half of the room.
        task_part = task_part[: max(budget - len(run_part), budget // 2)].rstrip("-")
        run_part = run_part[: budget - len(task_part)].rstrip("-")
    readable = "-".join(p for p in (run_part, task_part) if p) or "task"
    return readable + tail


def format_node_key(key: NodeKey) -> str:
    return f"{key[0]}/{key[1]}"


def parse_node_key(text: str) -> NodeKey | None:
    head, sep, tail = text.partition("/")
    try:
        key = (int(head), int(tail)) if sep else None
    except ValueError:
        return None
    if key is None or key[0] < 0 or key[1] < TASK:
        return None
    return key


def node_prefix(s3: S3Settings, run: RunInfo, task: str, instance: int | None) -> str:
    """The S3 key prefix of one node, with the operator's optional global prefix."""
    key = layout.node_prefix(run.namespace, run.name, task, instance)
    prefix = s3.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def _copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh copy of a constant (kubernetes clients may mutate what they are given)."""
    copied: dict[str, Any] = json.loads(json.dumps(value))
    return copied


def _digest(text: str) -> str:
    raw = hashlib.sha256(text.encode()).digest()
    return base64.b32encode(raw).decode().lower()[:_HASH_CHARS]


# --- containers -------------------------------------------------------------------------


def _inputs_container(
    launch: Launch,
    *,
    pipeline: CompiledPipeline,
    settings: PodSettings,
    run: RunInfo,
    mount: str,
    collected: Mapping[int, Sequence[int]] | None,
) -> dict[str, Any]:
    args = ["agent", "fetch"]
    if run.workspace is not None:
        args += ["--workspace", run.workspace.archive_key]
        if run.workspace.sha256:
            args += ["--workspace-sha256", run.workspace.sha256]
    try:
        read = inputs.input_sources(launch, pipeline, collected)
    except inputs.MissingInstances as missing:
        raise PodBuildError(str(missing)) from None
    for each in read:
        target = f"{mount}/inputs/{each.binding.name}"
        # onExit runs whatever happened, so its producers may never have written anything.
        optional = each.binding.optional or launch.task.is_exit
        for source in each.sources:
            index, instance = source.node
            position = None if instance == TASK else instance
            node = node_prefix(settings.s3, run, pipeline.tasks[index].name, position)
            key = layout.output_artifact_key(node, source.artifact)
            path = f"{target}/{source.inside}" if source.inside else target
            args += ["--get", f"{key}={path}"]
            if optional:
                args += ["--optional", key]
    container = _agent_container(conventions.INPUTS_CONTAINER, args, settings, mount)
    # Its error (a missing input or archive, named by key) becomes the task's message.
    container["terminationMessagePolicy"] = "FallbackToLogsOnError"
    return container


def _outputs_container(
    compiled: CompiledTask, settings: PodSettings, node: str, mount: str
) -> dict[str, Any]:
    args = ["agent", "upload", "--wait", f"{mount}/.exit", "--node-prefix", node]
    for name in compiled.task.output_parameters:
        args += ["--parameter", name]
    for name in compiled.task.output_artifacts:
        args += ["--artifact", name]
    if settings.s3_patience_seconds is not None:
        args += ["--s3-patience", _number(settings.s3_patience_seconds)]
    container = _agent_container(conventions.OUTPUTS_CONTAINER, args, settings, mount)
    container["terminationMessagePath"] = "/dev/termination-log"
    container["terminationMessagePolicy"] = "File"  # the JSON report, never log lines
    return container


def _agent_container(
    name: str, args: list[str], settings: PodSettings, mount: str
) -> dict[str, Any]:
    if mount != MOUNT_PATH:  # the agent refuses paths outside its root (/pipesync)
        args = [*args, "--root", mount]
    container: dict[str, Any] = {
        "name": name,
        "image": settings.image,
        "command": [*settings.agent_command, *args],
        "env": _s3_env(settings.s3),
        "volumeMounts": [{"name": VOLUME, "mountPath": mount}],
    }
    if settings.image_pull_policy:
        container["imagePullPolicy"] = settings.image_pull_policy
    return container


def _s3_env(s3: S3Settings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "PIPESYNC_S3_BUCKET", "value": s3.bucket},
        {"name": "PIPESYNC_S3_REGION", "value": s3.region},
    ]
    if s3.endpoint:
        env.append({"name": "PIPESYNC_S3_ENDPOINT", "value": s3.endpoint})
    for variable, literal in (
        ("AWS_ACCESS_KEY_ID", s3.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", s3.secret_access_key),
    ):
        if s3.credentials_secret:
            source = {"secretKeyRef": {"name": s3.credentials_secret, "key": variable}}
            env.append({"name": variable, "valueFrom": source})
        elif literal is not None:
            env.append({"name": variable, "value": literal})
        # Neither: the SDK's own chain (e.g. a workload identity) provides credentials.
    return env


#: Where in the pod's volume the files a placeholder names are.
_FILE_DIRS = {
    RefKind.OUTPUT_ARTIFACT: "outputs/artifacts",
    RefKind.OUTPUT_PARAMETER: "outputs/parameters",
    RefKind.INPUT_ARTIFACT: "inputs",
}


def _main_container(
    launch: Launch,
    run: RunInfo,
    settings: PodSettings,
    image: str,
    mount: str,
    *,
    resources: Resources,
) -> dict[str, Any]:
    compiled = launch.task
    task = compiled.task

    def path_of(kind: RefKind, name: str) -> str:
        return f"{mount}/{_FILE_DIRS[kind]}/{name}"

    ran = attempt.program(launch, run=run.name, namespace=run.namespace, path_of=path_of)
    argv, env = list(ran.argv), ran.env
    container: dict[str, Any] = {
        "name": conventions.MAIN_CONTAINER,
        "image": image,
        "command": wrapper_command(argv, mount),
        "env": [{"name": name, "value": value} for name, value in env.items()]
        + [
            {
                "name": ref.name,
                "valueFrom": {
                    ref.kind: {"name": ref.source, "key": ref.key, "optional": ref.optional}
                },
            }
            for ref in task.env_refs
        ],
        "volumeMounts": [{"name": VOLUME, "mountPath": mount}, *user_mounts(task)],
        # A failing program's last log lines become the status message.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    limits = pod_resources(resources)
    if limits:
        container["resources"] = limits
    if run.workspace is not None:
        # Without a workspace the image's own working directory stays: Kubernetes needs an
        # absolute workingDir, and a relative one has nothing to be relative to.
        container["workingDir"] = workspace_directory(
            mount, run.workspace.directory, ran.working_dir
        )
    return container


def user_mounts(task: Task) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{USER_VOLUME_PREFIX}{v.name}",
            "mountPath": v.mount_path,
            "readOnly": v.read_only,
        }
        for v in task.volumes
    ]


def user_volumes(task: Task) -> list[dict[str, Any]]:
    """The pod volumes of the task's `volumes` (mounted into `main` only)."""
    found = []
    for volume in task.volumes:
        source = dict(volume.source)
        if volume.kind == "persistentVolumeClaim" and volume.read_only:
            source["readOnly"] = True
        found.append({"name": f"{USER_VOLUME_PREFIX}{volume.name}", volume.kind: source})
    return found


def workspace_key(s3: S3Settings, namespace: str, source: str, commit: str) -> str:
    """The repository archive's S3 key, with the operator's optional global prefix."""
    key = layout.source_archive_key(namespace, source, commit)
    prefix = s3.prefix.strip("/")
    return f"{prefix}/{key}" if prefix else key


def workspace_directory(mount: str, source_path: str, working_dir: str) -> str:
    """<mount>/workspace/<source path>/<task workingDir>, refusing any way out of it."""
    parts: list[str] = []
    for relative in (source_path, working_dir):
        for part in PurePosixPath(relative).parts:
            if part in ("/", "."):
                continue
            if part == "..":
                raise PodBuildError(f"working directory {relative!r} leaves the repository")
            parts.append(part)
    return "/".join([f"{mount.rstrip('/')}/workspace", *parts])


def wrapper_command(argv: list[str], mount: str = MOUNT_PATH) -> list[str]:
    """The `main` container's command: the wrapper script, then the argv untouched."""
    return ["/bin/sh", "-c", WRAPPER_SCRIPT, WRAPPER_NAME, mount, *argv]


def pod_resources(resources: Resources) -> dict[str, dict[str, str]]:
    """Requests equal limits for cpu, memory and ephemeral storage; accelerators (GPUs,
    TPUs) as a limit of their extended resource."""
    requests: dict[str, str] = {}
    for name, value in (
        ("cpu", resources.cpu),
        ("memory", resources.memory),
        ("ephemeral-storage", resources.ephemeral_storage),
    ):
        if value:
            requests[name] = value
    limits = dict(requests)
    if resources.gpu > 0:
        # Extended resources are limits only; the API server copies them into requests.
        limits[placement.accelerator(resources)] = str(resources.gpu)
    result: dict[str, dict[str, str]] = {}
    if requests:
        result["requests"] = requests
    if limits:
        result["limits"] = limits
    return result


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
