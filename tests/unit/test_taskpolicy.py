"""Which ServiceAccounts, Secrets and tolerations a pipeline's tasks may use."""

from __future__ import annotations

from pipesync.runtime.taskpolicy import TaskPolicy, problems, service_account
from tests.unit.pipelines import compile_yaml

PIPELINE = """
defaults: {serviceAccountName: trainer}
tasks:
  - name: a
    command: [x]
    env:
      - {name: TOKEN, valueFrom: {secretKeyRef: {name: hf-token, key: token}}}
    volumes:
      - {name: creds, mountPath: /creds, secret: {secretName: db-password}}
  - name: b
    command: [x]
    serviceAccountName: admin
    tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists}]
"""


def test_the_default_policy_allows_accounts_and_secrets_but_not_the_control_plane() -> None:
    found = problems(compile_yaml(PIPELINE), TaskPolicy())
    assert len(found) == 1 and "'b'" in found[0] and "control-plane" in found[0]


def test_patterns_restrict_service_accounts_and_secrets_each_named() -> None:
    policy = TaskPolicy(service_accounts=("train*",), secrets=("hf-*",), control_plane=True)
    found = problems(compile_yaml(PIPELINE), policy)
    assert any("'db-password' is not allowed" in p for p in found), found
    assert any("'admin' is not allowed" in p for p in found), found
    assert not any("hf-token" in p or "'trainer'" in p for p in found), found


def test_a_toleration_of_every_taint_counts_as_control_plane() -> None:
    pipeline = compile_yaml("tasks: [{name: a, command: [x], tolerations: [{operator: Exists}]}]")
    assert problems(pipeline, TaskPolicy()) != []
    assert problems(pipeline, TaskPolicy(control_plane=True)) == []


def test_the_runs_service_account_applies_to_tasks_naming_none_and_is_checked() -> None:
    pipeline = compile_yaml("tasks: [{name: a, command: [x]}]")
    task = pipeline.tasks[0].task
    assert service_account(task, "runner") == "runner"
    refused = problems(pipeline, TaskPolicy(service_accounts=()), run_service_account="runner")
    assert refused and "'runner'" in refused[0]
