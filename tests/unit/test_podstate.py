"""Reading a task pod back: the PodState every reader takes, and the planner's NodeState
derived from it (pure, table-driven).

The pods are built by `build_pod` and given the statuses a kubelet reports at each stage.
"""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

import pytest

from pipesync.api import conventions
from pipesync.engine import planner
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import TASK, Phase
from pipesync.runtime import pods
from pipesync.runtime.pods import PodSettings, RunInfo, S3Settings
from pipesync.runtime.podstate import (
    ContainerEnd,
    node_from_pod,
    read_pod,
    sidecar_report,
    unschedulable,
)
from tests.unit.pipelines import compile_yaml

JSON = dict[str, Any]
START = "2026-03-01T10:00:00Z"
MAIN_END = "2026-03-01T10:05:00Z"
SIDECAR_END = "2026-03-01T10:05:02Z"


def ts(text: str) -> float:
    return datetime.datetime.fromisoformat(text).timestamp()


PIPELINE = compile_yaml(
    """
    tasks:
      - name: first
        image: busybox
        command: [sh, -c, "echo 0.9 > {{outputs.parameters.accuracy}}"]
        outputs: {parameters: [accuracy]}
      - name: train
        image: busybox
        command: [sh, -c, "echo 0.9 > {{outputs.parameters.accuracy}}"]
        outputs: {parameters: [accuracy], artifacts: [model]}
    """.replace("\n    ", "\n")
)


def base_pod(attempt: int = 2) -> JSON:
    launch = next(
        launch
        for launch in planner.plan(PIPELINE, {}, planner.RunContext("r", "ns", {}), 0.0).launches
        if launch.task.name == "train"
    )
    launch = planner.Launch(launch.key, launch.task, attempt, values=launch.values)
    settings = PodSettings(image="op", s3=S3Settings(bucket="b"))
    return pods.build_pod(
        launch, run=RunInfo("r", "ns", "uid"), settings=settings, pipeline=PIPELINE
    )


TRAIN = (PIPELINE.task("train").index, TASK)


def waiting(name: str, reason: str, message: str = "") -> JSON:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


def running(name: str) -> JSON:
    return {"name": name, "state": {"running": {"startedAt": START}}}


def terminated(
    name: str, code: int, *, message: str = "", reason: str | None = None, end: str = MAIN_END
) -> JSON:
    state: JSON = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": START,
        "finishedAt": end,
    }
    if message:
        state["message"] = message
    return {"name": name, "state": {"terminated": state}}


def report(**fields: Any) -> str:
    data = {"exitCode": 0, "parameters": {}, "missing": [], "uploaded": 0, "truncated": False}
    return json.dumps(data | fields) + "\n"


INIT_OK = terminated("pipesync-inputs", 0, end=START)


def pod_with(
    phase: str,
    init: list[JSON] | None = None,
    containers: list[JSON] | None = None,
    **status: Any,
) -> JSON:
    pod = base_pod()
    pod["status"] = {"phase": phase, "startTime": START, **status}
    if init is not None:
        pod["status"]["initContainerStatuses"] = init
    if containers is not None:
        pod["status"]["containerStatuses"] = containers
    return pod


CASES: list[tuple[str, JSON, Phase, FailureKind | None, str]] = [
    ("just created", pod_with("Pending"), Phase.RUNNING, None, ""),
    (
        "fetching inputs",
        pod_with(
            "Pending",
            [running("pipesync-inputs")],
            [waiting("main", "PodInitializing"), waiting("pipesync-outputs", "PodInitializing")],
        ),
        Phase.RUNNING,
        None,
        "",
    ),
    (
        "an input is missing",
        pod_with(
            "Failed",
            [terminated("pipesync-inputs", 1, message="no object at ns/runs/r/first/x")],
            [waiting("main", "PodInitializing"), waiting("pipesync-outputs", "PodInitializing")],
        ),
        Phase.FAILED,
        FailureKind.ERROR,
        "fetching the input artifacts failed: no object at ns/runs/r/first/x",
    ),
    (
        "the program runs",
        pod_with("Running", [INIT_OK], [running("main"), running("pipesync-outputs")]),
        Phase.RUNNING,
        None,
        "",
    ),
    (
        "outputs are being uploaded",
        pod_with("Running", [INIT_OK], [terminated("main", 0), running("pipesync-outputs")]),
        Phase.RUNNING,
        None,
        "",
    ),
    (
        "succeeded",
        pod_with(
            "Succeeded",
            [INIT_OK],
            [
                terminated("main", 0),
                terminated(
                    "pipesync-outputs",
                    0,
                    message=report(parameters={"accuracy": "0.94"}, uploaded=2),
                    end=SIDECAR_END,
                ),
            ],
        ),
        Phase.SUCCEEDED,
        None,
        "",
    ),
    (
        "succeeded, parameters too big for the status",
        pod_with(
            "Succeeded",
            [INIT_OK],
            [
                terminated("main", 0),
                terminated("pipesync-outputs", 0, message=report(truncated=True), end=SIDECAR_END),
            ],
        ),
        Phase.SUCCEEDED,
        None,
        "read them from S3",
    ),
    (
        "exit 0 but an output is missing",
        pod_with(
            "Succeeded",
            [INIT_OK],
            [
                terminated("main", 0),
                terminated(
                    "pipesync-outputs",
                    0,
                    message=report(missing=["artifacts/model", "parameters/accuracy"]),
                ),
            ],
        ),
        Phase.FAILED,
        FailureKind.FAILED,
        "did not write declared output artifact 'model', output parameter 'accuracy'",
    ),
    (
        "the program failed",
        pod_with(
            "Failed",
            [INIT_OK],
            [
                terminated("main", 3, message="Traceback ...\nValueError: bad data\n"),
                terminated("pipesync-outputs", 0, message=report(exitCode=3)),
            ],
        ),
        Phase.FAILED,
        FailureKind.FAILED,
        "exit code 3: Traceback ... ValueError: bad data",
    ),
    (
        "the program was OOM-killed",
        pod_with(
            "Failed",
            [INIT_OK],
            [
                terminated("main", 137, reason="OOMKilled"),
                terminated("pipesync-outputs", 0, message=report(exitCode=137)),
            ],
        ),
        Phase.FAILED,
        FailureKind.FAILED,
        "exit code 137 (OOMKilled)",
    ),
    (
        "past its timeout",
        pod_with(
            "Failed",
            [INIT_OK],
            [terminated("main", 143), terminated("pipesync-outputs", 143)],
            reason="DeadlineExceeded",
            message="Pod was active on the node longer than the specified deadline",
        ),
        Phase.FAILED,
        FailureKind.TIMED_OUT,
        "the task ran past its timeout",
    ),
    (
        "timed out while still fetching inputs",
        pod_with("Failed", [running("pipesync-inputs")], reason="DeadlineExceeded"),
        Phase.FAILED,
        FailureKind.TIMED_OUT,
        "the task ran past its timeout",
    ),
    (
        "S3 down for longer than the sidecar's patience",
        pod_with(
            "Failed",
            [INIT_OK],
            [
                terminated("main", 0),
                terminated(
                    "pipesync-outputs",
                    2,
                    message=report(error="Could not connect to the endpoint URL"),
                ),
            ],
        ),
        Phase.FAILED,
        FailureKind.ERROR,
        "S3 stayed unreachable: Could not connect to the endpoint URL",
    ),
    (
        "S3 refused the namespace's keys (another team's, or a policy that does not allow)",
        pod_with(
            "Failed",
            [INIT_OK],
            [
                terminated("main", 0),
                terminated("pipesync-outputs", 3, message=report(error="AccessDenied: denied")),
            ],
        ),
        Phase.FAILED,
        FailureKind.ERROR,
        "S3 refused the task's credentials (the namespace's S3 Secret or its policy: see "
        "docs/install.md, Tenancy): AccessDenied: denied",
    ),
    (
        "the sidecar crashed without a report",
        pod_with("Failed", [INIT_OK], [terminated("main", 0), terminated("pipesync-outputs", 1)]),
        Phase.FAILED,
        FailureKind.ERROR,
        "the outputs sidecar failed with exit code 1: Error",
    ),
    (
        "the sidecar wrote something that is not its report",
        pod_with(
            "Succeeded",
            [INIT_OK],
            [terminated("main", 0), terminated("pipesync-outputs", 0, message="hello")],
        ),
        Phase.FAILED,
        FailureKind.ERROR,
        "no readable report: hello",
    ),
    (
        "evicted before the program ran",
        pod_with(
            "Failed",
            reason="Evicted",
            message="The node was low on resource: memory.",
        ),
        Phase.FAILED,
        FailureKind.ERROR,
        "Evicted: The node was low on resource: memory.",
    ),
]


@pytest.mark.parametrize(
    ("pod", "phase", "failure", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_pod_status_to_node_state(
    pod: JSON, phase: Phase, failure: FailureKind | None, message: str
) -> None:
    result = node_from_pod(pod)
    assert result is not None
    key, state = result
    assert key == TRAIN
    assert state.phase is phase
    assert state.failure is failure
    assert state.attempts == 2
    assert message in state.message
    if phase is Phase.RUNNING:
        assert state.finished_at is None


def test_success_carries_outputs_and_the_programs_end() -> None:
    pod = next(case[1] for case in CASES if case[0] == "succeeded")
    result = node_from_pod(pod)
    assert result is not None
    state = result[1]
    assert dict(state.outputs) == {"accuracy": "0.94"}
    assert state.finished_at == ts(MAIN_END)  # the program's end, not the upload's
    assert state.message == ""


def test_failed_states_carry_the_program_end() -> None:
    pod = next(case[1] for case in CASES if case[0] == "the program failed")
    result = node_from_pod(pod)
    assert result is not None and result[1].finished_at == ts(MAIN_END)


@pytest.mark.parametrize(
    "reason", ["ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError"]
)
def test_stuck_containers_become_errors_only_after_a_while(reason: str) -> None:
    pod = pod_with(
        "Pending",
        [INIT_OK],
        [waiting("main", reason, "secret missing"), running("pipesync-outputs")],
    )
    for now, phase in [
        (None, Phase.RUNNING),
        (ts(START) + 60, Phase.RUNNING),
        (ts(START) + 301, Phase.FAILED),
    ]:
        result = node_from_pod(pod, now=now)
        assert result is not None
        assert result[1].phase is phase, now
    result = node_from_pod(pod, now=ts(START) + 30, stuck_seconds=10)
    assert result is not None
    assert result[1].failure is FailureKind.ERROR
    assert result[1].message == f"container 'main': {reason}: secret missing"


def test_pods_that_are_not_task_pods_are_ignored() -> None:
    pod = base_pod()
    del pod["metadata"]["annotations"][conventions.ANNOTATION_NODE_KEY]
    assert node_from_pod(pod) is None
    pod["metadata"]["annotations"][conventions.ANNOTATION_NODE_KEY] = "garbage"
    assert node_from_pod(pod) is None
    assert node_from_pod({}) is None


def test_attempt_comes_from_the_label() -> None:
    pod = copy.deepcopy(base_pod(attempt=5))
    result = node_from_pod(pod)
    assert result is not None and result[1].attempts == 5


def test_sidecar_report_parsing() -> None:
    assert sidecar_report(base_pod()) is None
    pod = pod_with(
        "Succeeded",
        [INIT_OK],
        [
            terminated("main", 0),
            terminated(
                "pipesync-outputs",
                0,
                message=report(parameters={"a": "1", "n": 2}, uploaded=3, missing=[]),
            ),
        ],
    )
    parsed = sidecar_report(pod)
    assert parsed is not None
    assert parsed.exit_code == 0
    assert dict(parsed.parameters) == {"a": "1", "n": "2"}
    assert parsed.uploaded == 3
    assert parsed.readable


UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
}


def test_an_unplaced_pod_waits_with_the_schedulers_reason() -> None:
    pod = base_pod()
    pod["status"] = {"phase": "Pending", "conditions": [UNSCHEDULABLE]}
    assert unschedulable(pod) == (
        "Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    )
    # still launched for the planner: it must not be created again or counted as failed
    observed = node_from_pod(pod, now=ts(START) + 3600)
    assert observed is not None and observed[1].phase is Phase.RUNNING
    placed = copy.deepcopy(pod)
    placed["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"}]
    assert unschedulable(placed) == ""
    assert unschedulable(base_pod()) == ""


def test_the_reader_keeps_what_the_operator_labelled_and_the_kubelet_reported() -> None:
    pod = pod_with(
        "Succeeded",
        [INIT_OK],
        [terminated("main", 3, message="boom"), terminated("pipesync-outputs", 0, end=SIDECAR_END)],
    )
    pod["metadata"].update(uid="pod-uid", resourceVersion="42", creationTimestamp=START)
    pod["spec"]["nodeName"] = "gpu-1"
    state = read_pod(pod)
    assert (state.name, state.namespace, state.uid) == (pod["metadata"]["name"], "ns", "pod-uid")
    assert (state.resource_version, state.run, state.task, state.attempt) == (42, "r", "train", 2)
    assert state.instance is None and state.names_a_node
    assert state.node_key == TRAIN
    assert state.created_for("uid") and not state.created_for("another-run")
    assert (state.phase, state.over, state.pending, state.deleting) == (
        "Succeeded", True, False, False,
    )  # fmt: skip
    assert state.created_at == state.started_at == ts(START)
    assert (state.node_name, state.pool, state.gpus) == ("gpu-1", None, 0.0)  # no pools set
    # init containers first, as the kubelet lists them; the first of a name is the one read
    assert [(c.name, c.init) for c in state.containers] == [
        ("pipesync-inputs", True), ("main", False), ("pipesync-outputs", False),
    ]  # fmt: skip
    assert state.ended("main") == ContainerEnd(3, "Error", "boom", START, MAIN_END)
    assert state.ended("nope") is None
    assert state.last_finished_at == ts(SIDECAR_END)
    # the parsed state gives the same answers as the JSON it was read from
    assert node_from_pod(state) == node_from_pod(pod)
    assert sidecar_report(state) == sidecar_report(pod)


def test_a_pod_with_nothing_in_it_reads_as_an_empty_state() -> None:
    state = read_pod({})
    assert (state.name, state.uid, state.task) == ("", "", None)
    assert (state.instance, state.attempt) == (None, 1)
    assert state.node_key is None and not state.names_a_node and not state.managed
    assert state.pending and not state.over and state.containers == ()
    assert state.last_finished_at is None and state.pool is None and state.gpus == 0


@pytest.mark.parametrize(
    ("labels", "names_a_node", "instance", "attempt"),
    [
        ({"pipesync.io/task": "train", "pipesync.io/attempt": "3"}, True, None, 3),
        ({"pipesync.io/task": "sweep", "pipesync.io/instance": "4"}, True, 4, 1),
        ({"pipesync.io/task": "../etc", "pipesync.io/attempt": "1"}, False, None, 1),
        ({"pipesync.io/task": "train", "pipesync.io/attempt": "x"}, False, None, 1),
        ({"pipesync.io/task": "train", "pipesync.io/instance": "-1"}, False, None, 1),
        ({"pipesync.io/attempt": "2"}, False, None, 2),
    ],
)
def test_labels_name_a_node_only_when_they_could_be_an_s3_key(
    labels: dict[str, str], names_a_node: bool, instance: int | None, attempt: int
) -> None:
    state = read_pod({"metadata": {"labels": labels}})
    assert (state.names_a_node, state.instance, state.attempt) == (names_a_node, instance, attempt)


def test_gpus_and_pool_come_from_the_limits_and_the_pool_selector() -> None:
    spec = {
        "nodeSelector": {"pipesync.io/pool": "gpu"},
        "containers": [
            {"name": "main", "resources": {"limits": {"nvidia.com/gpu": "2"}}},
            {"name": "other", "resources": {"limits": {"nvidia.com/gpu": "lots"}}},
            {"name": "pipesync-outputs"},
        ],
    }
    state = read_pod({"spec": spec})
    assert (state.pool, state.gpus) == ("gpu", 2.0)


def test_logs_are_final_once_the_pod_ended_or_program_and_upload_both_ended() -> None:
    main_done, outputs_up = terminated("main", 0), running("pipesync-outputs")
    assert read_pod(pod_with("Succeeded")).logs_final
    assert not read_pod(pod_with("Running", [INIT_OK], [main_done, outputs_up])).logs_final
    both = [main_done, terminated("pipesync-outputs", 0, end=SIDECAR_END)]
    assert read_pod(pod_with("Running", [INIT_OK], both)).logs_final
    # a pod without the sidecar (only its program) is final when its program ended
    assert read_pod(pod_with("Running", [INIT_OK], [main_done])).logs_final
    assert not read_pod(pod_with("Running", [INIT_OK], [running("main")])).logs_final


def test_a_pod_being_deleted_or_pending_is_said_so() -> None:
    pod = pod_with("Pending")
    pod["metadata"]["deletionTimestamp"] = START
    state = read_pod(pod)
    assert state.deleting and state.pending
