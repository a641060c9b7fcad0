"""Env from Secrets and ConfigMaps, and volumes: schema, model, checks and the pod."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pipesync.api import conventions, schemas
from pipesync.engine import planner
from pipesync.engine.state import TASK
from pipesync.runtime import pods
from tests.unit.pipelines import compile_yaml, problems_of, spec
from tests.unit.test_pods import RUN, SETTINGS, container

PIPELINE = """
defaults:
  env:
    - {name: REGION, value: eu}
    - name: TOKEN
      valueFrom: {secretKeyRef: {name: api, key: token}}
tasks:
  - name: train
    image: trainer:1
    command: [python, train.py]
    env:
      - {name: TOKEN, value: overridden-by-the-task}
      - name: DB_PASSWORD
        valueFrom: {secretKeyRef: {name: db, key: password, optional: true}}
      - name: MODE
        valueFrom: {configMapKeyRef: {name: settings, key: mode}}
    volumes:
      - {name: creds, mountPath: /etc/creds, readOnly: true, secret: {secretName: gcp}}
      - {name: conf, mountPath: /etc/app, configMap: {name: app-config}}
      - {name: data, mountPath: /data, persistentVolumeClaim: {claimName: datasets}, readOnly: true}
      - {name: scratch, mountPath: /scratch, emptyDir: {medium: Memory, sizeLimit: 1Gi}}
  - name: plain
    image: busybox
    command: [env]
"""


def _pod(name: str) -> dict[str, Any]:
    pipeline = compile_yaml(PIPELINE)
    context = planner.RunContext(RUN.name, RUN.namespace, {})
    launch = next(
        launch
        for launch in planner.plan(pipeline, {}, context, now=0.0).launches
        if launch.task.name == name and launch.key[1] == TASK
    )
    return pods.build_pod(launch, run=RUN, settings=SETTINGS, pipeline=pipeline, collected={})


def test_env_refs_and_volumes_reach_the_main_container_only() -> None:
    pod = _pod("train")
    main = container(pod, conventions.MAIN_CONTAINER)
    env = {e["name"]: e for e in main["env"]}
    assert env["TOKEN"] == {"name": "TOKEN", "value": "overridden-by-the-task"}
    assert env["REGION"]["value"] == "eu"
    assert env["DB_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "db", "key": "password", "optional": True}
    }
    assert env["MODE"]["valueFrom"] == {
        "configMapKeyRef": {"name": "settings", "key": "mode", "optional": False}
    }
    mounts = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounts["/etc/creds"] == {"name": "v-creds", "mountPath": "/etc/creds", "readOnly": True}
    assert mounts["/scratch"]["readOnly"] is False
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["v-creds"] == {"name": "v-creds", "secret": {"secretName": "gcp"}}
    assert volumes["v-conf"]["configMap"] == {"name": "app-config"}
    assert volumes["v-data"]["persistentVolumeClaim"] == {"claimName": "datasets", "readOnly": True}
    assert volumes["v-scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    for side in (conventions.INPUTS_CONTAINER, conventions.OUTPUTS_CONTAINER):
        helper = container(pod, side)
        assert not any(m["name"].startswith("v-") for m in helper["volumeMounts"])
        assert "DB_PASSWORD" not in {e["name"] for e in helper.get("env", [])}


def test_defaults_env_refs_reach_tasks_that_do_not_override_them() -> None:
    env = {e["name"]: e for e in container(_pod("plain"), conventions.MAIN_CONTAINER)["env"]}
    assert env["TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "api"
    assert not [v for v in _pod("plain")["spec"]["volumes"] if v["name"].startswith("v-")]


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ("{name: x, mountPath: /pipesync/x, emptyDir: {}}", "outside /pipesync"),
        ("{name: x, mountPath: /pipesync, emptyDir: {}}", "outside /pipesync"),
        ("{name: x, mountPath: /a/../pipesync, emptyDir: {}}", "without '..'"),
        ("{name: pipesync, mountPath: /x, emptyDir: {}}", "reserved or repeated"),
    ],
)
def test_volumes_cannot_take_pipesyncs_own_mount(volume: str, message: str) -> None:
    text = f"tasks:\n  - {{name: a, command: [x], volumes: [{volume}]}}\n"
    found = problems_of(text)
    assert any(message in p.message for p in found), found


def test_two_volumes_on_one_path_are_refused() -> None:
    text = (
        "tasks:\n  - {name: a, command: [x], volumes: ["
        "{name: x, mountPath: /d, emptyDir: {}}, {name: y, mountPath: /d/, emptyDir: {}}]}\n"
    )
    assert any("two volumes are mounted at '/d'" in p.message for p in problems_of(text))


@pytest.mark.parametrize(
    "entry",
    [
        "{name: A, value: x, valueFrom: {secretKeyRef: {name: s, key: k}}}",
        "{name: A, valueFrom: {secretKeyRef: {name: s}}}",
        "{name: A, valueFrom: {secretKeyRef: {name: s, key: k},"
        " configMapKeyRef: {name: c, key: k}}}",
        "{name: A, valueFrom: {fieldRef: {fieldPath: metadata.name}}}",
        "{name: A, valueFrom: {secretKeyRef: {name: Not_A_Name, key: k}}}",
    ],
)
def test_the_schema_refuses_malformed_env_refs(entry: str) -> None:
    document = yaml.safe_load(
        "apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\n"
        f"spec:\n  tasks:\n    - {{name: a, command: [x], env: [{entry}]}}\n"
    )
    assert list(schemas.validator("Pipeline").iter_errors(document)), entry


def test_the_schema_refuses_a_volume_with_no_or_two_sources() -> None:
    for volume in (
        "{name: x, mountPath: /x}",
        "{name: x, mountPath: /x, emptyDir: {}, secret: {secretName: s}}",
        "{name: x, mountPath: relative, emptyDir: {}}",
    ):
        document = yaml.safe_load(
            "apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\n"
            f"spec:\n  tasks:\n    - {{name: a, command: [x], volumes: [{volume}]}}\n"
        )
        assert list(schemas.validator("Pipeline").iter_errors(document)), volume


def test_the_model_keeps_refs_apart_from_values() -> None:
    task = spec(PIPELINE).tasks[0]
    assert dict(task.env)["TOKEN"] == "overridden-by-the-task"
    assert {ref.name for ref in task.env_refs} == {"DB_PASSWORD", "MODE"}
    assert [v.kind for v in task.volumes] == [
        "secret", "configMap", "persistentVolumeClaim", "emptyDir"
    ]  # fmt: skip
