"""The whole /metrics text for one scripted sequence of events, compared with a pinned copy.

Why a pinned copy: the metric names, labels, help texts and values are a contract (the
tests, docs/metrics.md, the chart's Grafana dashboards and the promtool check read them).
This test renders everything the operator's registry exposes after events in every
domain (runs and tasks, reconcile passes and API calls, the S3 mirror, RecurringRuns,
GitSources, the push webhook), so any change to the exposition shows as a diff of
metrics_exposition.txt. Regenerate it only for a change that means to alter the metrics:
    PIPESYNC_PIN_METRICS=1 .venv/bin/pytest tests/unit/test_metrics_exposition.py
"""

from __future__ import annotations

import collections
import itertools
import os
import re
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pipesync.api import reports
from pipesync.engine.retries import FailureKind
from pipesync.engine.state import NodeState, Phase
from pipesync.observe.metrics import Metrics
from tests.unit.test_metrics import PREP, TRAIN, Clock, pod, report, run, status

PINNED = Path(__file__).with_name("metrics_exposition.txt")
#: prometheus_client stamps each series' creation with the wall clock: not part of the pin.
_CREATED = re.compile(r"^(\S+_created(?:\{[^}]*\})?) \S+$", re.MULTILINE)


class FakeKube:
    """Only the request counter the real Kubernetes adapter keeps."""

    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()


def scripted_metrics(monkeypatch: pytest.MonkeyPatch) -> Metrics:
    """A Metrics instance after one event of each kind the operator reports."""
    # reconcile() times passes with perf_counter: each call a quarter second later.
    ticks = itertools.count()
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks) * 0.25)
    clock, monotonic = Clock(), Clock()
    metrics = Metrics(CollectorRegistry(), version="9.9.9", clock=clock, monotonic=monotonic)

    # Runs and tasks: a pipeline seen, one run through retries, GPUs and its end, another
    # still running (gauges), one in a second namespace with an inline spec.
    metrics.runs.pipeline_seen("ml", "digits")
    metrics.runs.run_pass(report({}, status("Pending")))
    running = {
        PREP: pod("p1", phase="Running"),
        TRAIN: pod("t1", phase="Pending", gpu=2, pool="gpu"),
    }
    metrics.runs.run_pass(
        report(
            status("Pending"),
            status("Running", startedAt="2026-01-01T00:00:00Z",
                   taskCounts={"pending": 1, "running": 1}),
            nodes={PREP: NodeState(Phase.RUNNING, 1), TRAIN: NodeState(Phase.RUNNING, 1)},
            pods=running,
        )
    )  # fmt: skip
    retried = {
        PREP: pod("p1", phase="Succeeded", finished="2026-01-01T00:00:03Z"),
        TRAIN: pod("t1", phase="Failed", finished="2026-01-01T00:00:10Z", gpu=2, pool="gpu"),
    }
    metrics.runs.run_pass(
        report(
            status("Running"),
            status("Running", taskCounts={"running": 1, "succeeded": 1}),
            nodes={PREP: NodeState(Phase.SUCCEEDED, 1), TRAIN: NodeState(Phase.RUNNING, 2)},
            pods=retried,
        )
    )
    second = pod("t2", attempt=2, phase="Succeeded", finished="2026-01-01T00:00:30Z", gpu=2,
                 pool="gpu")  # fmt: skip
    done = status("Succeeded", startedAt="2026-01-01T00:00:00Z",
                  finishedAt="2026-01-01T00:00:42Z", taskCounts={"succeeded": 2})  # fmt: skip
    metrics.runs.run_pass(
        report(
            status("Running"),
            done,
            nodes={PREP: NodeState(Phase.SUCCEEDED, 1), TRAIN: NodeState(Phase.SUCCEEDED, 2)},
            pods={PREP: retried[PREP], TRAIN: second},
        )
    )
    metrics.runs.run_pass(
        report(
            status("Pending"),
            status("Running", taskCounts={"running": 1, "pending": 1}),
            the_run=run("uid-2", name="digits-2"),
            nodes={PREP: NodeState(Phase.RUNNING, 1)},
            pods={PREP: pod("q1", phase="Pending")},
            cache=reports.CacheReport(hits=1, misses=1, gpu_seconds_saved=84.0),
        )
    )
    inline = {"metadata": {"name": "adhoc", "namespace": "lab", "uid": "uid-3"}, "spec": {}}
    failed = NodeState(Phase.FAILED, 1, failure=FailureKind.FAILED)
    metrics.runs.run_pass(
        report(
            status("Running"),
            status("Failed", startedAt="2026-01-01T00:00:00Z", finishedAt="2026-01-01T00:02:00Z"),
            the_run=inline,
            pinned=None,
            nodes={PREP: failed},
            pods={PREP: pod("r1", phase="Failed", finished="2026-01-01T00:01:00Z", gpu=1)},
        )
    )

    # Reconcile passes and API calls.
    with metrics.passes.reconcile("runs"):
        pass
    with pytest.raises(RuntimeError), metrics.passes.reconcile("gitsources"):
        raise RuntimeError("api down")
    kube = FakeKube()
    metrics.passes.watch_requests(kube)
    kube.requests[("get", 200)] += 3
    kube.requests[("patch", 409)] += 1

    # The S3 mirror.
    metrics.mirror.observe(reports.MirrorWriteFailed("runs/a.json", 1, is_log=False))
    metrics.mirror.observe(reports.MirrorBacklog(4))

    # RecurringRuns.
    metrics.recurring.observe(
        reports.RecurringPass(
            "ml",
            "nightly",
            fired_lags=(0.3, 12.0),
            skipped={"ConcurrencyForbid": 2},
            missed={"DeadlineExceeded": 1},
        )
    )

    # GitSources: one restored from its status, synced, failing, another deleted.
    metrics.git_sources.observe(reports.GitSourceSeen(
        "ml",
        "repo",
        {
            "lastAppliedRevision": "main@sha1:aaa",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "InvalidFiles"},
                {"type": "Reconciling", "status": "False",
                 "lastTransitionTime": "2026-01-01T00:10:00Z"},
            ],
            "errors": [{"file": "a.yaml", "message": "bad"}],
        },
    ))  # fmt: skip
    metrics.git_sources.observe(
        reports.GitSourceSynced(
            "ml", "repo", reports.SyncReport("Succeeded", "main@sha1:bbb", 3, 1, 2, 0, 996.0), 0.7
        )
    )
    metrics.git_sources.observe(
        reports.GitSourceSynced("ml", "repo", reports.SyncReport("FetchFailed", ""), 0.1)
    )
    metrics.git_sources.observe(reports.GitSourceSeen("ml", "old", {}))
    metrics.git_sources.observe(
        reports.GitSourceSynced(
            "ml", "old", reports.SyncReport("Succeeded", "main@sha1:ccc", 1, 0, 0, 0, 999.0)
        )
    )
    metrics.git_sources.observe(reports.GitSourceDeleted("ml", "old"))

    # The push webhook receiver.
    receiver = metrics.webhooks.receiving(("accepted", "unauthorized"))
    receiver.observe(reports.WebhookRequest("accepted", 202))
    receiver.observe(reports.WebhookRequest("accepted", 202))
    receiver.observe(reports.WebhookRequest("not-found", 404))
    return metrics


def exposition(metrics: Metrics) -> str:
    """The registry's text format without the process collector (this machine's values)
    and with creation stamps masked."""
    text = generate_latest(metrics.registry).decode()
    kept = [
        line
        for line in text.splitlines()
        if not line.startswith(("process_", "# HELP process_", "# TYPE process_"))
    ]
    return _CREATED.sub(r"\1 <created>", "\n".join(kept) + "\n")


def test_the_full_exposition_of_a_scripted_sequence_of_events_stays_as_pinned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rendered = exposition(scripted_metrics(monkeypatch))
    if os.environ.get("PIPESYNC_PIN_METRICS") == "1":
        PINNED.write_text(rendered)
    assert rendered == PINNED.read_text()
