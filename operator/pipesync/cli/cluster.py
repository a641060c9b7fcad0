"""What the cluster commands (get, wait, logs, submit, retry) share: a client with the
user's own kubeconfig and RBAC, one line for every way the API can fail, and one Run
followed by a watch until it finishes.

Why one place: each of these commands can meet the same failures (no kubeconfig, a
cluster that does not answer, a 403 from the user's RBAC, CRDs not installed), and each
must say in one line what to do, never print a traceback. The Kubernetes client is
imported only when a command talks to the cluster: it is slow to load, and every task pod
starts `pipesync agent`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pipesync.cli import run as local_run
from pipesync.engine.state import FINISHED, RunPhase

if TYPE_CHECKING:
    from pipesync.kube.protocol import Kube

#: As `pipesync run` ends: the run succeeded; failed or was cancelled; usage (here also:
#: not found, or the cluster refused).
EXIT_SUCCEEDED, EXIT_FAILED = local_run.EXIT_SUCCEEDED, local_run.EXIT_FAILED
EXIT_USAGE = local_run.EXIT_USAGE
#: `pipesync wait` / `--watch`: the run had not finished when --timeout passed.
EXIT_TIMEOUT = 3
#: The resource the commands name in messages and in `kubectl auth can-i`.
RUNS_RESOURCE = "runs.pipesync.io"
#: The longest one watch request stays open: the server ends it, and the Run is read
#: again, so a missed event costs at most this long.
WATCH_SECONDS = 300


class Failure(Exception):
    """What the command could not do, as its one line; the exit code to end with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclasses.dataclass(frozen=True)
class Doing:
    """A request as the user would ask for it: `get runs.pipesync.io NAME` in a namespace
    ("" for every namespace)."""

    verb: str
    resource: str
    namespace: str
    name: str = ""

    def __str__(self) -> str:
        what = f"{self.verb} {self.resource}" + (f" {self.name}" if self.name else "")
        where = f"in namespace {self.namespace}" if self.namespace else "in any namespace"
        return f"{what} {where}"

    @property
    def can_i(self) -> str:
        where = f"-n {self.namespace}" if self.namespace else "-A"
        return f"kubectl auth can-i {self.verb} {self.resource} {where}"


def api_message(status: int, reason: str, detail: str, doing: Doing) -> str:
    """The one line for an answer of the API server that is not what was asked for."""
    if status == 401:
        return (
            f"cannot {doing}: the API server does not accept your credentials (401): log in "
            "again or refresh your kubeconfig"
        )
    if status == 403:
        return (
            f"cannot {doing}: forbidden by your RBAC (403); check with `{doing.can_i}` and "
            "ask your cluster admin for a Role that allows it"
        )
    if status == 404 and doing.resource == RUNS_RESOURCE and not doing.name:
        return (
            f"cannot {doing}: the API server has no {RUNS_RESOURCE} (404): pipesync's CRDs "
            "are not installed in this cluster (see docs/install.md)"
        )
    said = f": {detail}" if detail and detail != reason else ""
    return f"cannot {doing}: the API server answered {status} {reason}{said}"


def unreachable_message(server: str, reason: str) -> str:
    return (
        f"cannot reach Kubernetes at {server}: {reason}; check the kubeconfig's current "
        "context (kubectl config current-context) and that the cluster is up"
    )


def no_credentials_message(reason: str) -> str:
    return (
        "no Kubernetes credentials: no usable kubeconfig (KUBECONFIG or ~/.kube/config) and "
        f"not in a cluster: {reason}"
    )


def one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else type(error).__name__


def connect() -> Kube:
    """A client with the user's kubeconfig (in a pod: its service account)."""
    from pipesync.kube import client  # noqa: PLC0415 - slow to load; only cluster commands

    try:
        return client.KubeClient(client.connect(4))
    except client.ConfigException as error:
        raise Failure(no_credentials_message(one_line(error))) from None


def default_namespace() -> str:
    from pipesync.kube import client  # noqa: PLC0415

    return client.default_namespace()


@contextlib.contextmanager
def asking(kube: Kube, doing: Doing) -> Iterator[None]:
    """Turns every failure of the requests made inside into a Failure saying what to do."""
    import urllib3.exceptions  # noqa: PLC0415

    from pipesync.kube import client  # noqa: PLC0415

    try:
        yield
    except client.ApiException as error:
        status = int(error.status or 0)
        reason = str(error.reason or "")
        raise Failure(api_message(status, reason, _detail(error.body), doing)) from None
    except urllib3.exceptions.HTTPError as error:
        reason = one_line(getattr(error, "reason", None) or error)
        raise Failure(unreachable_message(kube.server_url, reason)) from None


def _detail(body: Any) -> str:
    """The API server's own message from a Status body, else ""."""
    import json  # noqa: PLC0415

    try:
        found = json.loads(body or "")
    except (TypeError, ValueError):
        return ""
    return str(found.get("message") or "")[:300] if isinstance(found, dict) else ""


def guarded(command: str, body: Callable[[], int]) -> int:
    """Runs a command's body; every Failure is one line `pipesync COMMAND: ...`."""
    try:
        return body()
    except Failure as failure:
        print(f"pipesync {command}: {failure.message}", file=sys.stderr)
        return failure.code
    except KeyboardInterrupt:
        print(f"pipesync {command}: interrupted", file=sys.stderr)
        return 130


# --- a Run and its outcome ------------------------------------------------------------------


def phase_of(run: dict[str, Any]) -> str:
    return str((run.get("status") or {}).get("phase") or "")


def exit_code(phase: str) -> int | None:
    """The exit code of a finished run, as `pipesync run` ends (None: not finished)."""
    if phase not in FINISHED:
        return None
    return EXIT_SUCCEEDED if phase == RunPhase.SUCCEEDED.value else EXIT_FAILED


def get_run(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    with asking(kube, Doing("get", RUNS_RESOURCE, namespace, name)):
        found = kube.get_object("runs", namespace, name)
    if found is None:
        raise Failure(f"run {name} not found in namespace {namespace} (pipesync get runs -n ...)")
    return found


def create_run(kube: Kube, namespace: str, body: dict[str, Any]) -> None:
    """Creates the Run; Failure when its name is taken."""
    name = body["metadata"]["name"]
    with asking(kube, Doing("create", RUNS_RESOURCE, namespace)):
        created = kube.create_object("runs", namespace, body)
    if not created:
        raise Failure(
            f"a run named {name} exists already in namespace {namespace}: give --run-name"
        )


def follow(
    kube: Kube,
    namespace: str,
    name: str,
    *,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[dict[str, Any]]:
    """The Run now, then each new version of it as a watch reports it, until its phase is
    finished (the last one yielded). Failure when it does not exist or is deleted; with
    code EXIT_TIMEOUT when `timeout` seconds pass first. Never polls: each watch request
    stays open until the server ends it (at most WATCH_SECONDS), then the Run is read
    once again (its resourceVersion may be too old to watch from: 410)."""
    from pipesync.kube import client  # noqa: PLC0415

    deadline = None if timeout is None else clock() + timeout
    run = get_run(kube, namespace, name)
    yield run
    seen = _version(run)
    selector = f"metadata.name={name}"
    doing = Doing("watch", RUNS_RESOURCE, namespace, name)
    while exit_code(phase_of(run)) is None:
        remaining = WATCH_SECONDS if deadline is None else deadline - clock()
        if remaining <= 0:
            raise Failure(f"run {name} is still {phase_of(run) or 'Pending'}", EXIT_TIMEOUT)
        seconds = max(1, math.ceil(min(remaining, WATCH_SECONDS)))
        with asking(kube, doing):
            try:
                for event in kube.watch_objects("runs", namespace, seen, seconds, selector):
                    kind, body = event.get("type"), event.get("object") or {}
                    if kind == "DELETED":
                        raise Failure(f"run {name} was deleted in namespace {namespace}")
                    if kind == "ERROR":
                        break  # e.g. 410 Expired: read the Run again, watch from there
                    seen = _version(body) or seen
                    if kind in ("ADDED", "MODIFIED"):
                        run = body
                        yield run
                        if exit_code(phase_of(run)) is not None:
                            return
                    if deadline is not None and clock() >= deadline:
                        break
            except client.ApiException as error:
                if error.status != 410:  # the version is too old to watch from
                    raise
        fresh = get_run(kube, namespace, name)
        if _version(fresh) != _version(run):
            run = fresh
            yield run
        seen = _version(fresh)


def _version(run: dict[str, Any]) -> str:
    return str((run.get("metadata") or {}).get("resourceVersion") or "")
