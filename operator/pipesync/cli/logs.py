"""`pipesync logs RUN [TASK] [-f]`: a cluster task's log, from its pod while the pod
exists, from S3 once it is gone.

Why two sources: pods are deleted (by the operator once a run ends, by node failures,
with the Run), while the S3 mirror keeps every attempt's log under the record's layout
(`engine.layout.log_key`). The pod is asked first because its log is live; the user's
RBAC decides what they may read there (get pods/log), their S3 credentials what they may
read in the bucket. The choice of source is a pure function of the pods found.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pipesync.api import conventions, runstatus
from pipesync.cli import cluster, flags, s3options
from pipesync.engine import layout
from pipesync.engine.state import Phase
from pipesync.kube.protocol import Kube
from pipesync.runtime import podstate, storage

_TASK = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)(\[(\d+)\])?$")
_ATTEMPT_LOG = re.compile(r"/logs/attempt-(\d+)\.log$")
#: While a followed task's container starts, its pod is asked again this often (seconds).
_START_POLL = (1.0, 2.0, 5.0)


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "logs",
        run,
        help="a cluster run's task logs: live from the pod, from S3 once it is gone",
        description="Print the log of the latest attempt of TASK (a forEach instance as "
        "TASK[INDEX]), or of every task when TASK is omitted: from the task's pod while it "
        "exists (your RBAC must allow get pods/log), else from the run's record in S3 "
        "(credentials from the environment, as for boto3). Exit 0 printed, 2 usage, not "
        "found or refused.",
    )
    parser.add_argument("name", metavar="RUN", help="the Run's name")
    parser.add_argument("task", metavar="TASK", nargs="?", help="the task (or TASK[INDEX])")
    parser.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="follow the log until the task's container ends (waiting for it to start)",
    )
    parser.add_argument(
        "-n", "--namespace", help="namespace (default: the kubeconfig context's namespace)"
    )
    s3options.add_arguments(parser)


def run(options: argparse.Namespace) -> int:
    return cluster.guarded("logs", lambda: _logs(options))


# --- pure: what to read ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Node:
    """A task, or one instance of a forEach task."""

    task: str
    instance: int | None = None

    def __str__(self) -> str:
        return self.task if self.instance is None else f"{self.task}[{self.instance}]"


def parse_node(text: str) -> Node:
    """TASK or TASK[INDEX]; Failure (usage) for anything else."""
    found = _TASK.match(text)
    if found is None:
        raise cluster.Failure(f"{text!r} is not a task name (TASK, or TASK[INDEX] for forEach)")
    return Node(found.group(1), None if found.group(4) is None else int(found.group(4)))


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a node's log is read: its newest attempt's pod, or (no pod) the archive."""

    pod: str = ""  # "" means the archive
    attempt: int = 0


def choose_source(pods: Iterable[podstate.PodState], run_uid: str, node: Node) -> Source:
    """The pod of the node's newest attempt that the operator made for this very Run (not
    an earlier Run of the same name, not a hand-made pod), else the archive."""
    mine = [
        pod
        for pod in pods
        if pod.created_for(run_uid)
        and pod.task == conventions.label_value(node.task)
        and pod.instance == node.instance
    ]
    if not mine:
        return Source()
    newest = max(mine, key=lambda pod: pod.attempt)
    return Source(newest.name, newest.attempt)


def latest_log_key(keys: Iterable[str]) -> str | None:
    """Of the keys under a node's folder, its newest attempt's log."""
    attempts = [(int(found.group(1)), key) for key in keys if (found := _ATTEMPT_LOG.search(key))]
    return max(attempts)[1] if attempts else None


def selector(run_name: str, node: Node) -> str:
    """The label selector of a node's pods (a forEach task's instances filtered later)."""
    parts = [
        f"{conventions.LABEL_RUN}={conventions.label_value(run_name)}",
        f"{conventions.LABEL_TASK}={conventions.label_value(node.task)}",
    ]
    if node.instance is not None:
        parts.append(f"{conventions.LABEL_INSTANCE}={node.instance}")
    return ",".join(parts)


def nodes_to_show(status: runstatus.RunStatus, wanted: Node | None, run_name: str) -> list[Node]:
    """The nodes whose logs the command prints; Failure when TASK is no task of the run,
    or a forEach task without its instance."""
    tasks = status.tasks or {}
    if wanted is not None:
        known = tasks.get(wanted.task)
        if known is None and tasks and not status.tasks_truncated:
            names = ", ".join(tasks)
            raise cluster.Failure(f"run {run_name} has no task {wanted.task} (tasks: {names})")
        if known is not None and known.instances is not None and wanted.instance is None:
            raise cluster.Failure(
                f"{wanted.task} is a forEach task of {known.instances.total} instance(s): "
                f"give one, e.g. {wanted.task}[0]"
            )
        return [wanted]
    return [Node(name) for name, task in tasks.items() if task.instances is None and task.attempts]


# --- reading --------------------------------------------------------------------------------


def _logs(options: argparse.Namespace) -> int:
    wanted = None if options.task is None else parse_node(options.task)
    kube = cluster.connect()
    namespace = options.namespace or cluster.default_namespace()
    found = cluster.get_run(kube, namespace, options.name)
    status = runstatus.RunStatus.from_json(found.get("status"))
    nodes = nodes_to_show(status, wanted, options.name)
    if options.follow:
        if len(nodes) != 1:
            names = ", ".join(str(node) for node in nodes) or "none started yet"
            raise cluster.Failure(f"-f follows one task: give TASK ({names})")
        _follow(_Reader(kube, namespace, found, options), nodes[0])
        return 0
    if not nodes:
        print(f"run {options.name}: no task has started yet", file=sys.stderr)
        return 0
    reader = _Reader(kube, namespace, found, options)
    for node in nodes:
        if len(nodes) > 1:
            _text(f"==> {node} <==\n")
        if not reader.show(node) and len(nodes) == 1:
            raise cluster.Failure(f"no log yet for {node} of run {options.name}")
    return 0


class _Reader:
    """Reads nodes' logs, asking the pods first and S3 (opened on first need) after."""

    def __init__(
        self, kube: Kube, namespace: str, found: Mapping[str, Any], options: argparse.Namespace
    ) -> None:
        self.kube, self.namespace, self.options = kube, namespace, options
        self.run_name = str(found["metadata"]["name"])
        self.run_uid = str(found["metadata"].get("uid") or "")
        self.store: storage.ObjectStore | None = None

    def pod_source(self, node: Node) -> Source:
        doing = cluster.Doing("list", "pods", self.namespace)
        with cluster.asking(self.kube, doing):
            pods = self.kube.list_pods(self.namespace, selector(self.run_name, node))
        return choose_source([podstate.read_pod(pod) for pod in pods], self.run_uid, node)

    def show(self, node: Node) -> bool:
        """Prints the node's newest log; False when there is none anywhere yet."""
        source = self.pod_source(node)
        if source.pod:
            doing = cluster.Doing("get", "pods/log", self.namespace, source.pod)
            with cluster.asking(self.kube, doing):
                data = self.kube.read_pod_log(
                    self.namespace, source.pod, conventions.MAIN_CONTAINER
                )
            if data is not None:
                _write(data)
                return True
        return self.show_archived(node)

    def show_archived(self, node: Node) -> bool:
        prefix = layout.node_prefix(self.namespace, self.run_name, node.task, node.instance)
        store = self._store()
        try:
            key = latest_log_key(store.list_prefix(f"{prefix}/logs/"))
            if key is None:
                return False
            for chunk in store.get_chunks(key):
                _write(chunk)
        except storage.NotFound:
            return False
        except storage.StoreError as error:
            raise cluster.Failure(f"cannot read the log of {node} from S3: {error}") from None
        return True

    def _store(self) -> storage.ObjectStore:
        if self.store is None:
            self.store = s3options.store(self.options, patience=10.0)
        return self.store


def _follow(reader: _Reader, node: Node) -> None:
    """The node's log as it is written, until its container ends. A task not started
    yet is waited for on the Run's watch; a finished one is printed from wherever its
    log is (the archive once the pod is gone)."""
    kube, namespace = reader.kube, reader.namespace
    for current in cluster.follow(kube, namespace, reader.run_name):
        if _task_phase(current, node) != Phase.PENDING.value:
            break
    for pause in _pauses():
        source = reader.pod_source(node)
        if source.pod:
            doing = cluster.Doing("get", "pods/log", namespace, source.pod)
            with cluster.asking(kube, doing):
                stream = kube.stream_pod_log(namespace, source.pod, conventions.MAIN_CONTAINER)
                if stream is not None:
                    for chunk in stream:
                        _write(chunk)
                    return
        elif reader.show_archived(node):
            return
        phase = _task_phase(cluster.get_run(kube, namespace, reader.run_name), node)
        if phase not in (Phase.PENDING.value, Phase.RUNNING.value) and not source.pod:
            raise cluster.Failure(f"{node} of run {reader.run_name} is {phase} and left no log")
        time.sleep(pause)  # the container is starting: no event says when it has


def _task_phase(found: Mapping[str, Any], node: Node) -> str:
    """The node's task's phase in the Run's status (Pending while not listed)."""
    status = runstatus.RunStatus.from_json(found.get("status"))
    task = (status.tasks or {}).get(node.task)
    ended = cluster.exit_code(status.phase) is not None
    if task is None or (ended and task.phase in (Phase.PENDING.value, Phase.RUNNING.value)):
        return f"not run (the run is {status.phase})" if ended else Phase.PENDING.value
    return task.phase


def _pauses() -> Iterator[float]:
    """Growing pauses between asks while a container starts (then every few seconds)."""
    yield from _START_POLL
    while True:
        yield _START_POLL[-1]


def _text(line: str) -> None:
    sys.stdout.write(line)
    sys.stdout.flush()


def _write(data: bytes) -> None:
    """Raw log bytes as the program printed them (a log is any bytes, not text)."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
