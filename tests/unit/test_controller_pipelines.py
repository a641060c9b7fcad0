"""The Pipeline controller's pure logic: Ready with reasons, versions by digest."""

from __future__ import annotations

from typing import Any

from pipesync.api import conventions
from pipesync.controllers import pipelines


def body(tasks: list[dict[str, Any]], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Pipeline",
        "metadata": {
            "name": "p",
            "generation": 3,
            "annotations": {"pipesync.io/commit": "abc123"},
            "uid": "u",
            "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"tasks": tasks},
        "status": status or {},
    }


TASK = {"name": "a", "image": "busybox", "command": ["true"]}


def test_a_valid_spec_is_ready_with_one_version_from_its_digest() -> None:
    status = pipelines.desired_status(body([TASK]), "2026-01-01T00:00:00Z")
    ready, reconciling, stalled = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "DAGValid")
    assert (reconciling["type"], reconciling["status"]) == ("Reconciling", "False")
    assert (stalled["type"], stalled["status"]) == ("Stalled", "False")
    assert ready["observedGeneration"] == 3
    (version,) = status["versions"]
    assert version["digest"] == conventions.spec_digest({"tasks": [TASK]})
    assert version["id"] == version["digest"][7:19] == status["latestVersion"]
    assert version["commit"] == "abc123"
    assert status["taskCount"] == 1


def test_the_same_spec_again_changes_nothing_and_a_new_one_appends() -> None:
    first = pipelines.desired_status(body([TASK]), "2026-01-01T00:00:00Z")
    again = pipelines.desired_status(body([TASK], first), "2026-01-02T00:00:00Z")
    assert again == first  # transition time kept: the status did not change
    changed = pipelines.desired_status(
        body([{**TASK, "command": ["false"]}], first), "2026-01-03T00:00:00Z"
    )
    assert changed["versions"][0]["id"] == first["latestVersion"]
    assert len(changed["versions"]) == 2
    assert changed["latestVersion"] == changed["versions"][1]["id"]


def test_versions_are_bounded() -> None:
    status: dict[str, Any] = {}
    for number in range(pipelines.MAX_VERSIONS + 5):
        task = {**TASK, "command": ["echo", str(number)]}
        status = pipelines.desired_status(body([task], status), "2026-01-01T00:00:00Z")
    assert len(status["versions"]) == pipelines.MAX_VERSIONS


def test_an_invalid_spec_is_not_ready_and_says_why() -> None:
    status = pipelines.desired_status(
        body([{**TASK, "dependsOn": ["ghost"]}, {**TASK, "name": "Bad_Name"}]),
        "2026-01-01T00:00:00Z",
    )
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.tasks[1].name" in ready["message"]
    assert "versions" not in status


def test_a_dag_problem_names_its_field() -> None:
    status = pipelines.desired_status(body([{**TASK, "dependsOn": ["a"]}]), "2026-01-01T00:00:00Z")
    ready = status["conditions"][0]
    assert ready["message"] == "spec.tasks[0].dependsOn[0]: task 'a' depends on itself"


def test_an_invalid_spec_is_stalled_so_kstatus_says_failed_not_in_progress() -> None:
    status = pipelines.desired_status(body([{"name": "a"}, {"name": "a"}]), "2026-01-01T00:00:00Z")
    found = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert found["Ready"] == ("False", "InvalidSpec")
    assert found["Stalled"] == ("True", "InvalidSpec")
    assert found["Reconciling"][0] == "False"
