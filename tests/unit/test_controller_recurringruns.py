"""The RecurringRun controller's Runs carry what the RecurringRun says every run gets."""

from __future__ import annotations

from typing import Any

import pytest

from pipesync.api import times
from pipesync.controllers import recurringruns
from pipesync.kube.protocol import PIPELINES, RECURRING_RUNS, RUNS
from tests.unit.kubefakes import RecurringKube

CREATED = 1_000_000


def created_run_spec(**spec: Any) -> dict[str, Any]:
    kube = RecurringKube()
    kube.objects[(PIPELINES, "ml", "digits")] = {"metadata": {"name": "digits"}}
    kube.objects[(RECURRING_RUNS, "ml", "nightly")] = {
        "metadata": {"name": "nightly", "namespace": "ml", "uid": "u1", "generation": 1,
                     "creationTimestamp": times.timestamp(CREATED)},
        "spec": {"pipelineRef": {"name": "digits"}, "schedule": {"interval": "1m"}, **spec},
    }  # fmt: skip
    controller = recurringruns.RecurringRunController(kube, clock=lambda: CREATED + 61.0)
    assert len(controller.reconcile("ml", "nightly").started) == 1
    (run,) = [body for (plural, _, _), body in kube.objects.items() if plural == RUNS]
    spec_: dict[str, Any] = run["spec"]
    return spec_


@pytest.mark.parametrize("mode", ["Disabled", "Refresh", "Enabled"])
def test_each_run_gets_the_recurring_runs_cache_mode(mode: str) -> None:
    assert created_run_spec(cache=mode)["cache"] == mode


def test_without_a_cache_mode_the_run_has_none_and_the_cache_is_enabled() -> None:
    assert "cache" not in created_run_spec()
