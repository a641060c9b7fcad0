"""The pod builder: names, labels, owner, placement, resources, the three containers, and
the /bin/sh wrapper (run for real with this machine's /bin/sh)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import model
from pipesync.engine import planner
from pipesync.engine.compiler import CompiledPipeline
from pipesync.engine.state import TASK, NodeKey, NodeState, Phase
from pipesync.runtime import pods, podstate
from pipesync.runtime.placement import GPU_TOLERATION, PoolSettings
from pipesync.runtime.pods import PodBuildError, PodSettings, RunInfo, S3Settings
from tests.unit.pipelines import compile_yaml

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RUN = RunInfo(
    name="digits-manual-1",
    namespace="ml",
    uid="0b8c2a4e-1111-2222-3333-444455556666",
    pipeline="digits",
    experiment="tuning",
)
S3 = S3Settings(bucket="art", endpoint="http://s3.local:9000", prefix="pipesync/")
SETTINGS = PodSettings(image="ghcr.io/pipesync/pipesync:1.0", s3=S3)

PIPELINE = f"""
params:
  - {{name: text, type: string, default: plain}}
tasks:
  - name: prepare
    image: python:3.12-slim
    command: [python, prepare.py, "{{{{outputs.artifacts.dataset}}}}"]
    outputs: {{artifacts: [dataset]}}
  - name: sweep
    image: busybox
    forEach: {{items: [a, b, c], parallelism: 2}}
    command: [sh, -c, 'echo "$1" > "$2"', sweep, "{{{{item}}}}", "{{{{outputs.artifacts.part}}}}"]
    outputs: {{artifacts: [part]}}
  - name: train
    image: trainer:1
    pool: gpu
    resources: {{cpu: "2", memory: 4Gi, gpu: 1}}
    timeout: 90.5s
    serviceAccountName: trainer
    workingDir: steps/train
    env: [{{name: TEXT, value: "text={{{{params.text}}}}"}}]
    inputs:
      artifacts:
        dataset: {{from: "{{{{tasks.prepare.outputs.artifacts.dataset}}}}"}}
        parts: {{from: "{{{{tasks.sweep.outputs.artifacts.part}}}}", optional: true}}
    command: [python, train.py, --data, "{{{{inputs.artifacts.dataset}}}}",
              --parts, "{{{{inputs.artifacts.parts}}}}", --text, "{{{{params.text}}}}",
              --acc, "{{{{outputs.parameters.accuracy}}}}",
              --model, "{{{{outputs.artifacts.model}}}}"]
    outputs: {{parameters: [accuracy], artifacts: [model]}}
  - name: echo
    image: python:3.12-slim
    command: [{json.dumps(sys.executable)}, -c,
              "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))",
              "{{{{outputs.parameters.argv}}}}",
              "{{{{params.text}}}}", "pre {{{{params.text}}}} post"]
    outputs: {{parameters: [argv]}}
onExit:
  name: notify
  image: busybox
  inputs:
    artifacts:
      model: {{from: "{{{{tasks.train.outputs.artifacts.model}}}}"}}
  command: [sh, -c, 'echo "$1"', notify, "{{{{run.status}}}}"]
"""


def compiled() -> CompiledPipeline:
    return compile_yaml(PIPELINE)


def launch_of(
    pipeline: CompiledPipeline,
    name: str,
    *,
    instance: int = TASK,
    text: str = "plain",
    done: tuple[str, ...] = (),
    attempt: int = 1,
) -> planner.Launch:
    """The planner's own launch of `name` once the tasks in `done` succeeded."""
    nodes: dict[NodeKey, NodeState] = {}
    for other in done:
        nodes[(pipeline.task(other).index, TASK)] = NodeState(Phase.SUCCEEDED, attempts=1)
    if instance != TASK:  # earlier instances are done, so the parallelism cap lets it start
        index = pipeline.task(name).index
        nodes[(index, TASK)] = NodeState(Phase.RUNNING)
        for earlier in range(instance):
            nodes[(index, earlier)] = NodeState(Phase.SUCCEEDED, attempts=1)
    if name == "notify":
        for task in pipeline.tasks:
            nodes[(task.index, TASK)] = NodeState(Phase.SUCCEEDED, attempts=1)
    context = planner.RunContext(RUN.name, RUN.namespace, {"text": text})
    for launch in planner.plan(pipeline, nodes, context, now=0.0).launches:
        if launch.task.name == name and launch.key[1] == instance:
            return dataclasses.replace(launch, attempt=attempt)
    raise AssertionError(f"{name}[{instance}] was not launched")


def build(
    name: str,
    *,
    settings: PodSettings = SETTINGS,
    run: RunInfo = RUN,
    sizes: Mapping[int, list[int]] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    pipeline = compiled()
    done = ("prepare", "sweep") if name == "train" else ()
    launch = launch_of(pipeline, name, done=done, **kwargs)
    if sizes is None:
        sizes = {pipeline.task("sweep").index: [0, 1, 2]}
    return pods.build_pod(launch, run=run, settings=settings, pipeline=pipeline, collected=sizes)


def container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod["spec"]
    found = [c for c in spec["initContainers"] + spec["containers"] if c["name"] == name]
    assert len(found) == 1
    return found[0]


def env_of(entry: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in entry["env"]}


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "prefix"),
    [
        (("digits-manual-1", "train", None, 1), "digits-manual-1-train-1-"),
        (("digits-manual-1", "sweep", 7, 2), "digits-manual-1-sweep-7-2-"),
        (("r", "a", None, 12), "r-a-12-"),
    ],
)
def test_pod_names_read_run_task_instance_attempt(
    parts: tuple[str, str, int | None, int], prefix: str
) -> None:
    name = pods.pod_name(*parts)
    assert name.startswith(prefix)
    assert len(name) == len(prefix) + 8
    assert DNS_LABEL.match(name)
    assert pods.pod_name(*parts) == name  # deterministic


def test_long_names_are_truncated_and_stay_valid_and_distinct() -> None:
    run, task = "r" * 63, "t" * 63
    names = {pods.pod_name(run, task, i, a) for i in (None, 0, 1, 999) for a in (1, 2, 10)}
    assert len(names) == 12
    for name in names:
        assert len(name) <= 63 and DNS_LABEL.match(name), name
    assert re.search(r"^r+-t+-999-10-[a-z2-7]{8}$", pods.pod_name(run, task, 999, 10))
    # Run names that differ only after the truncation point still get distinct pods.
    assert pods.pod_name("x" * 60 + "a", task, None, 1) != pods.pod_name(
        "x" * 60 + "b", task, None, 1
    )


def test_keys_whose_dashed_forms_coincide_get_different_names() -> None:
    """`r-a-1-2` could be task `a-1` attempt 2 or task `a` instance 1 attempt 2."""
    ambiguous = [
        ("r", "a-1", None, 2),
        ("r", "a", 1, 2),
        ("x-a", "b", None, 1),
        ("x", "a-b", None, 1),
    ]
    names = [pods.pod_name(*parts) for parts in ambiguous]
    assert len(set(names)) == len(names)
    every = {
        pods.pod_name(run, task, instance, attempt)
        for run in ("r", "r-a", "a")
        for task in ("a", "a-1", "1", "r-a")
        for instance in (None, 0, 1, 11)
        for attempt in (1, 2, 11)
    }
    assert len(every) == 3 * 4 * 4 * 3


def test_node_keys_round_trip() -> None:
    for key in [(0, TASK), (3, 0), (12, 41)]:
        assert pods.parse_node_key(pods.format_node_key(key)) == key
    for text in ["", "3", "a/b", "-1/-1", "2/-2"]:
        assert pods.parse_node_key(text) is None


# --- metadata -------------------------------------------------------------------------------


def test_metadata_labels_annotations_and_owner() -> None:
    pod = build("sweep", instance=1, attempt=2)
    meta = pod["metadata"]
    index = compiled().task("sweep").index
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert meta["name"] == pods.pod_name(RUN.name, "sweep", 1, 2)
    assert meta["namespace"] == "ml"
    assert meta["labels"] == {
        "pipesync.io/run": "digits-manual-1",
        "pipesync.io/task": "sweep",
        "pipesync.io/pipeline": "digits",
        "pipesync.io/experiment": "tuning",
        "pipesync.io/instance": "1",
        "pipesync.io/attempt": "2",
        "app.kubernetes.io/managed-by": "pipesync",
    }
    assert meta["annotations"] == {
        "pipesync.io/node-key": f"{index}/1",
        "pipesync.io/node-prefix": "pipesync/ml/runs/digits-manual-1/sweep/1",
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "pipesync.io/v1alpha1",
            "kind": "Run",
            "name": "digits-manual-1",
            "uid": RUN.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_only_pods_built_for_the_run_count_as_its_pods() -> None:
    pod = build("sweep", instance=1, attempt=2)
    assert podstate.read_pod(pod).created_for(RUN.uid)
    assert not podstate.read_pod(pod).created_for("the-uid-of-an-earlier-run")
    unlabelled = json.loads(json.dumps(pod))
    del unlabelled["metadata"]["labels"]["app.kubernetes.io/managed-by"]
    assert not podstate.read_pod(unlabelled).created_for(RUN.uid)
    not_controlling = json.loads(json.dumps(pod))
    not_controlling["metadata"]["ownerReferences"][0]["controller"] = False
    assert not podstate.read_pod(not_controlling).created_for(RUN.uid)
    other_kind = json.loads(json.dumps(pod))
    other_kind["metadata"]["ownerReferences"][0]["kind"] = "Job"
    assert not podstate.read_pod(other_kind).created_for(RUN.uid)


def test_plain_task_without_experiment_or_pipeline_labels() -> None:
    run = RunInfo(name="adhoc", namespace="ml", uid="u")
    pod = build("prepare", run=run)
    labels = pod["metadata"]["labels"]
    assert "pipesync.io/experiment" not in labels
    assert "pipesync.io/pipeline" not in labels
    assert "pipesync.io/instance" not in labels
    index = compiled().task("prepare").index
    assert pod["metadata"]["annotations"]["pipesync.io/node-key"] == f"{index}/-1"


# --- pod spec -------------------------------------------------------------------------------


def test_gpu_task_spec_placement_resources_timeout_and_account() -> None:
    spec = build("train")["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] == 91  # 90.5 s rounded up: never cut a task short
    assert spec["serviceAccountName"] == "trainer"
    assert spec["automountServiceAccountToken"] is True
    assert spec["nodeSelector"] == {"pipesync.io/pool": "gpu"}
    assert spec["tolerations"] == [dict(GPU_TOLERATION)]
    assert "affinity" not in spec
    assert spec["volumes"] == [{"name": "pipesync", "emptyDir": {}}]
    main = container({"spec": spec}, "main")
    assert main["image"] == "trainer:1"
    assert main["resources"] == {
        "requests": {"cpu": "2", "memory": "4Gi"},
        "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
    }


def test_cpu_task_spec_has_no_deadline_gpu_or_token() -> None:
    spec = build("prepare")["spec"]
    assert "activeDeadlineSeconds" not in spec
    assert "serviceAccountName" not in spec
    assert spec["automountServiceAccountToken"] is False
    assert "tolerations" not in spec
    assert "nodeSelector" not in spec  # no pool named and no default pool
    assert "resources" not in container({"spec": spec}, "main")


def test_pool_settings_and_task_fields_reach_the_spec() -> None:
    settings = PodSettings(image="op", s3=S3, pools=PoolSettings.from_dict({"defaultPool": "cpu"}))
    assert build("prepare", settings=settings)["spec"]["nodeSelector"] == {
        "pipesync.io/pool": "cpu"
    }


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, {}),
        ({"gpu": 2}, {"limits": {"nvidia.com/gpu": "2"}}),
        (
            {"cpu": "500m", "ephemeralStorage": "1Gi"},
            {
                "requests": {"cpu": "500m", "ephemeral-storage": "1Gi"},
                "limits": {"cpu": "500m", "ephemeral-storage": "1Gi"},
            },
        ),
    ],
)
def test_resources(resources: dict[str, Any], expected: dict[str, Any]) -> None:
    task = model.task_from_spec({"name": "t", "command": ["x"], "resources": resources})
    assert pods.pod_resources(task.resources) == expected


# --- containers -----------------------------------------------------------------------------


def test_inputs_container_fetches_each_producer_key_and_instance() -> None:
    init = container(build("train"), "pipesync-inputs")
    assert init["image"] == SETTINGS.image
    assert init["volumeMounts"] == [{"name": "pipesync", "mountPath": "/pipesync"}]
    base = "pipesync/ml/runs/digits-manual-1"
    parts = [f"{base}/sweep/{i}/outputs/artifacts/part" for i in range(3)]
    assert init["command"] == [
        "pipesync",
        "agent",
        "fetch",
        "--get",
        f"{base}/prepare/outputs/artifacts/dataset=/pipesync/inputs/dataset",
        "--get",
        f"{parts[0]}=/pipesync/inputs/parts/0",
        "--optional",
        parts[0],
        "--get",
        f"{parts[1]}=/pipesync/inputs/parts/1",
        "--optional",
        parts[1],
        "--get",
        f"{parts[2]}=/pipesync/inputs/parts/2",
        "--optional",
        parts[2],
    ]


def test_on_exit_inputs_are_optional_and_see_the_run_status() -> None:
    pod = build("notify")
    fetch = container(pod, "pipesync-inputs")["command"]
    key = "pipesync/ml/runs/digits-manual-1/train/outputs/artifacts/model"
    assert fetch[3:] == ["--get", f"{key}=/pipesync/inputs/model", "--optional", key]
    assert container(pod, "main")["command"][-1] == "Succeeded"


def test_a_forEach_producer_needs_its_size() -> None:
    with pytest.raises(PodBuildError, match="forEach task 'sweep'"):
        build("train", sizes={})


def test_an_empty_forEach_producer_fetches_nothing() -> None:
    init = container(build("train", sizes={compiled().task("sweep").index: []}), "pipesync-inputs")
    assert [a for a in init["command"] if "/sweep/" in a] == []


def test_outputs_sidecar_waits_for_the_marker_and_uploads_declared_outputs() -> None:
    sidecar = container(build("train"), "pipesync-outputs")
    assert sidecar["command"] == [
        "pipesync",
        "agent",
        "upload",
        "--wait",
        "/pipesync/.exit",
        "--node-prefix",
        "pipesync/ml/runs/digits-manual-1/train",
        "--parameter",
        "accuracy",
        "--artifact",
        "model",
    ]
    assert sidecar["terminationMessagePath"] == "/dev/termination-log"
    assert sidecar["terminationMessagePolicy"] == "File"


def test_agent_settings_command_patience_and_pull_policy() -> None:
    settings = PodSettings(
        image="op:dev",
        s3=S3Settings(bucket="b"),
        agent_command=("/venv/bin/python", "-m", "pipesync"),
        s3_patience_seconds=30,
        image_pull_policy="IfNotPresent",
    )
    pod = build("prepare", settings=settings)
    sidecar = container(pod, "pipesync-outputs")
    assert sidecar["command"][:5] == ["/venv/bin/python", "-m", "pipesync", "agent", "upload"]
    assert sidecar["command"][-2:] == ["--s3-patience", "30"]
    assert sidecar["imagePullPolicy"] == "IfNotPresent"
    assert "imagePullPolicy" not in container(pod, "main")
    # No S3 prefix: keys start at the namespace.
    assert "ml/runs/digits-manual-1/prepare" in sidecar["command"]


@pytest.mark.parametrize(
    ("s3", "expected"),
    [
        (
            S3Settings(bucket="b", credentials_secret="s3-creds"),
            {
                "PIPESYNC_S3_BUCKET": "b",
                "PIPESYNC_S3_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": {
                    "secretKeyRef": {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
                },
                "AWS_SECRET_ACCESS_KEY": {
                    "secretKeyRef": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
                },
            },
        ),
        (
            S3Settings(
                bucket="b",
                endpoint="http://127.0.0.1:9",
                region="eu-west-1",
                access_key_id="AK",
                secret_access_key="SK",
            ),
            {
                "PIPESYNC_S3_BUCKET": "b",
                "PIPESYNC_S3_REGION": "eu-west-1",
                "PIPESYNC_S3_ENDPOINT": "http://127.0.0.1:9",
                "AWS_ACCESS_KEY_ID": "AK",
                "AWS_SECRET_ACCESS_KEY": "SK",
            },
        ),
        (S3Settings(bucket="b"), {"PIPESYNC_S3_BUCKET": "b", "PIPESYNC_S3_REGION": "us-east-1"}),
    ],
)
def test_s3_env_only_in_agent_containers(s3: S3Settings, expected: dict[str, Any]) -> None:
    pod = build("prepare", settings=PodSettings(image="op", s3=s3))
    assert env_of(container(pod, "pipesync-inputs")) == expected
    assert env_of(container(pod, "pipesync-outputs")) == expected
    main_env = env_of(container(pod, "main"))
    assert not any(name.startswith(("AWS_", "PIPESYNC_S3")) for name in main_env)


def test_main_renders_argv_env_and_paths() -> None:
    main = container(build("train", text="hello world", attempt=3), "main")
    assert main["command"][:5] == [
        "/bin/sh",
        "-c",
        pods.WRAPPER_SCRIPT,
        "pipesync-wrapper",
        "/pipesync",
    ]
    assert main["command"][5:] == [
        "python",
        "train.py",
        "--data",
        "/pipesync/inputs/dataset",
        "--parts",
        "/pipesync/inputs/parts",
        "--text",
        "hello world",
        "--acc",
        "/pipesync/outputs/parameters/accuracy",
        "--model",
        "/pipesync/outputs/artifacts/model",
    ]
    assert env_of(main) == {
        "TEXT": "text=hello world",
        "PIPESYNC_RUN": "digits-manual-1",
        "PIPESYNC_NAMESPACE": "ml",
        "PIPESYNC_TASK": "train",
        "PIPESYNC_ATTEMPT": "3",
    }
    assert main["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "workingDir" not in main  # no workspace yet: the image's working directory


def test_forEach_instances_get_their_item_and_index() -> None:
    main = container(build("sweep", instance=2), "main")
    assert main["command"][-3:] == ["sweep", "c", "/pipesync/outputs/artifacts/part"]
    assert env_of(main)["PIPESYNC_ITEM_INDEX"] == "2"


@pytest.mark.parametrize(
    ("task", "source_path", "working_dir"),
    [
        ("train", "", "/pipesync/workspace/steps/train"),
        ("prepare", "./", "/pipesync/workspace"),
        ("train", "ml/project/", "/pipesync/workspace/ml/project/steps/train"),
    ],
)
def test_a_run_from_git_works_in_its_repository_tree(
    task: str, source_path: str, working_dir: str
) -> None:
    key = pods.workspace_key(S3, "ml", "ml-repo", "ab" * 20)
    assert key == f"pipesync/ml/sources/ml-repo/{'ab' * 20}.tar.gz"
    run = dataclasses.replace(RUN, workspace=pods.Workspace(key, source_path))
    pod = build(task, run=run)
    assert container(pod, "main")["workingDir"] == working_dir
    fetch = container(pod, "pipesync-inputs")["command"]
    assert fetch[fetch.index("--workspace") + 1] == key
    assert "--workspace-sha256" not in fetch  # nothing recorded (applied by hand): no check


def test_the_recorded_archive_digest_reaches_the_agent() -> None:
    run = dataclasses.replace(RUN, workspace=pods.Workspace("k.tar.gz", "", sha256="ab" * 32))
    fetch = container(build("train", run=run), "pipesync-inputs")["command"]
    assert fetch[fetch.index("--workspace-sha256") + 1] == "ab" * 32


@pytest.mark.parametrize("source_path", ["../elsewhere", "ml/../../etc"])
def test_a_source_path_cannot_climb_out_of_the_workspace(source_path: str) -> None:
    run = dataclasses.replace(RUN, workspace=pods.Workspace("k.tar.gz", source_path))
    with pytest.raises(PodBuildError, match="leaves the repository"):
        build("train", run=run)


def test_without_git_there_is_no_workspace() -> None:
    pod = build("train")
    assert "workingDir" not in container(pod, "main")
    assert "--workspace" not in container(pod, "pipesync-inputs")["command"]


def test_image_falls_back_to_the_default_or_fails() -> None:
    pipeline = compile_yaml("tasks: [{name: t, command: [echo, hi]}]")
    launch = planner.plan(pipeline, {}, planner.RunContext("r", "ns", {}), 0.0).launches[0]
    with pytest.raises(PodBuildError, match="no image"):
        pods.build_pod(launch, run=RUN, settings=SETTINGS, pipeline=pipeline)
    settings = PodSettings(image="op", s3=S3, default_task_image="busybox:1")
    pod = pods.build_pod(launch, run=RUN, settings=settings, pipeline=pipeline)
    assert container(pod, "main")["image"] == "busybox:1"


def test_the_manifest_is_plain_json() -> None:
    pod = build("train")
    assert json.loads(json.dumps(pod)) == pod


# --- the wrapper, run for real --------------------------------------------------------------

NASTY = [
    "plain",
    "",
    "two words",
    "semi; echo injected",
    "$(echo injected)",
    "`echo injected`",
    "'single' \"double\" \\back",
    "*",
    "-n",
    "$@ $1 ${HOME}",
    "line\nbreak\ttab",
    "|& > /tmp/x <",
    "ünï 😀",
]


def run_main(pod: dict[str, Any], mount: Path) -> subprocess.CompletedProcess[str]:
    """Runs the pod's `main` command here, as the container would (outputs prepared)."""
    (mount / "outputs" / "parameters").mkdir(parents=True, exist_ok=True)
    (mount / "outputs" / "artifacts").mkdir(parents=True, exist_ok=True)
    main = container(pod, "main")
    env = {"PATH": os.environ["PATH"], **env_of(main)}
    return subprocess.run(
        main["command"], check=False, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("value", NASTY)
def test_parameter_values_stay_single_argv_elements_through_the_wrapper(
    value: str, tmp_path: Path
) -> None:
    settings = PodSettings(image="op", s3=S3, mount_path=str(tmp_path))
    pod = build("echo", settings=settings, text=value)
    result = run_main(pod, tmp_path)
    assert result.returncode == 0, result.stderr
    argv = json.loads((tmp_path / "outputs" / "parameters" / "argv").read_text())
    assert argv == [value, f"pre {value} post"]
    assert (tmp_path / ".exit").read_text() == "0"
    assert not (tmp_path / ".exit.tmp").exists()
    assert "injected" not in result.stdout + result.stderr


@pytest.mark.parametrize("code", [1, 3, 42, 255])
def test_the_wrapper_records_and_returns_the_exit_code(code: int, tmp_path: Path) -> None:
    argv = [sys.executable, "-c", f"import sys; sys.exit({code})"]
    result = subprocess.run(pods.wrapper_command(argv, str(tmp_path)), check=False, timeout=60)
    assert result.returncode == code
    assert (tmp_path / ".exit").read_text() == str(code)


def test_a_missing_program_is_exit_code_127(tmp_path: Path) -> None:
    command = pods.wrapper_command(["/nonexistent/program", "x"], str(tmp_path))
    result = subprocess.run(command, check=False, capture_output=True, timeout=60)
    assert result.returncode == 127
    assert (tmp_path / ".exit").read_text() == "127"


def test_the_wrapper_forwards_sigterm_and_still_records_the_code(tmp_path: Path) -> None:
    """Deletion and activeDeadlineSeconds send TERM to the wrapper: the program must hear it."""
    ready, heard = tmp_path / "ready", tmp_path / "heard"
    program = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(heard)!r}, 'w').write('TERM')\n"
        "    sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        f"open({str(ready)!r}, 'w').write('1')\n"
        "while True:\n"
        "    time.sleep(0.05)\n"
    )
    process = subprocess.Popen(pods.wrapper_command([sys.executable, "-c", program], str(tmp_path)))
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, "the program ended early"
            assert time.monotonic() < deadline, "the program never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 7
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert heard.read_text() == "TERM"
    assert (tmp_path / ".exit").read_text() == "7"


def test_every_task_pod_meets_pod_security_restricted() -> None:
    # The checks of the `restricted` level that a pod spec decides (the e2e test has the
    # API server enforce them): non-root, seccomp, no escalation, no capabilities.
    pod = build("train")
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    every = [*spec["initContainers"], *spec["containers"]]
    assert {c["name"] for c in every} == {"pipesync-inputs", "main", "pipesync-outputs"}
    for each in every:
        assert each["securityContext"]["allowPrivilegeEscalation"] is False
        assert each["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "hostNetwork" not in spec and "hostPID" not in spec


def test_the_runs_service_account_is_used_when_the_task_names_none() -> None:
    pod = build("prepare", run=dataclasses.replace(RUN, service_account="runner"))
    assert pod["spec"]["serviceAccountName"] == "runner"
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert "serviceAccountName" not in build("prepare")["spec"]
