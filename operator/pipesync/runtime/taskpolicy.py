"""What a pipeline may ask of the cluster: the operator creates its task pods, so without
these rules whoever can push to a synced repository could run pods as any ServiceAccount
of the namespace, with any of its Secrets, on control-plane nodes (docs/install.md, "Trust
model"). Checked once per run, before any pod exists; a refusal fails the Run."""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

from pipesync.api.model import Task
from pipesync.engine.compiler import CompiledPipeline

#: Taints that keep workloads off control-plane nodes (current and legacy names).
CONTROL_PLANE_TAINTS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


@dataclasses.dataclass(frozen=True)
class TaskPolicy:
    #: Glob patterns of ServiceAccount names task pods may run as; None: any.
    service_accounts: tuple[str, ...] | None = None
    #: Glob patterns of Secret names tasks may read (env and volumes); None: any.
    secrets: tuple[str, ...] | None = None
    #: Whether a task may tolerate the control-plane taints.
    control_plane: bool = False


def problems(
    pipeline: CompiledPipeline, policy: TaskPolicy, run_service_account: str | None = None
) -> list[str]:
    """Why this pipeline's tasks may not run here (empty: they may)."""
    found: list[str] = []
    tasks = [compiled.task for compiled in pipeline.tasks]
    if pipeline.on_exit is not None:
        tasks.append(pipeline.on_exit.task)
    for task in tasks:
        found.extend(
            f"task {task.name!r}: {p}" for p in _task_problems(task, policy, run_service_account)
        )
    return found


def service_account(task: Task, run_service_account: str | None) -> str | None:
    """The ServiceAccount a task's pods run as: the task's (or the pipeline defaults'),
    then the Run's spec.serviceAccountName; None: the namespace default."""
    return task.service_account_name or run_service_account or None


def _task_problems(
    task: Task, policy: TaskPolicy, run_service_account: str | None
) -> Iterator[str]:
    account = service_account(task, run_service_account)
    if account and not _allowed(account, policy.service_accounts):
        yield (
            f"serviceAccountName {account!r} is not allowed here (allowed: "
            f"{_shown(policy.service_accounts)}; the operator's tasks.allowedServiceAccounts)"
        )
    for secret in _secrets(task):
        if not _allowed(secret, policy.secrets):
            yield (
                f"Secret {secret!r} is not allowed here (allowed: {_shown(policy.secrets)}; "
                "the operator's tasks.allowedSecrets)"
            )
    if not policy.control_plane and any(_tolerates_control_plane(t) for t in task.tolerations):
        yield (
            "a toleration lets it onto control-plane nodes, which this operator does not "
            "allow (tasks.allowControlPlaneTolerations)"
        )


def _secrets(task: Task) -> Iterator[str]:
    for ref in task.env_refs:
        if ref.kind == "secretKeyRef":
            yield ref.source
    for volume in task.volumes:
        if volume.kind == "secret":
            name = volume.source.get("secretName")
            if isinstance(name, str):
                yield name


def _tolerates_control_plane(toleration: Mapping[str, Any]) -> bool:
    key = toleration.get("key")
    if not key:  # an empty key with operator Exists tolerates every taint
        return toleration.get("operator") == "Exists"
    return key in CONTROL_PLANE_TAINTS


def _allowed(name: str, patterns: tuple[str, ...] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _shown(patterns: tuple[str, ...] | None) -> str:
    return ", ".join(patterns) if patterns else "none"
