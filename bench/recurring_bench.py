"""P4: schedule lag of RecurringRuns, measured on the e2e suite's real control plane, node
agent and S3 server (see bench/stack.py).

500 RecurringRuns with the schedule `* * * * *` (every minute) start a one-task Run each
(`sh -c true`) every minute. The lag of one firing is the time from its scheduled time
(the Run's pipesync.io/scheduled-time annotation) to the moment a Run watch opened by the
bench sees the Run ADDED: the operator's whole path (its daemon waking, the pass, the
create) plus the watch's delivery, so an upper bound of the lag the operator's own
histogram (pipesync_recurring_schedule_lag_seconds) reports. Every firing in the measured
minutes is a sample; the median and p99 are over all of them. The Runs really run (their
pods on the node agent), so the operator is busy with them while the next minute fires.
"""

from __future__ import annotations

import datetime
import math
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes
from kubernetes import watch

from bench.figures import Figure, Section
from bench.stack import Stack
from pipesync.api import model

SECTION = "recurring"
NAMESPACE = "bench-rr"
TARGET_P99_SECONDS = 1.0
SCHEDULED = "pipesync.io/scheduled-time"

Say = Callable[[str], None]

PIPELINE = {
    "apiVersion": model.API_VERSION,
    "kind": "Pipeline",
    "metadata": {"name": "tick"},
    "spec": {"tasks": [{"name": "tick", "command": ["sh", "-c", "true"]}]},
}


def recurring_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": model.API_VERSION,
        "kind": "RecurringRun",
        "metadata": {"name": name},
        "spec": {
            "pipelineRef": {"name": "tick"},
            "schedule": {"cron": "* * * * *"},
            "concurrencyPolicy": "Allow",
            "history": {"succeeded": 1, "failed": 1},
        },
    }


def _instant(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class LagWatch:
    """Sees every Run ADDED in the namespace; its lag = seen - scheduled time."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self.lags: list[tuple[float, float]] = []  # (scheduled time, lag)
        self._stop = threading.Event()
        listed = self.custom.list_namespaced_custom_object(
            model.GROUP, model.VERSION, NAMESPACE, "runs"
        )
        self._version = listed["metadata"]["resourceVersion"]
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            stream = watch.Watch()
            for event in stream.stream(
                self.custom.list_namespaced_custom_object,
                model.GROUP,
                model.VERSION,
                NAMESPACE,
                "runs",
                resource_version=self._version,
                timeout_seconds=5,
            ):
                seen = time.time()
                raw = event["raw_object"]
                self._version = raw["metadata"]["resourceVersion"]
                scheduled = (raw["metadata"].get("annotations") or {}).get(SCHEDULED)
                if event["type"] == "ADDED" and scheduled:
                    at = _instant(scheduled)
                    self.lags.append((at, seen - at))
                if self._stop.is_set():
                    stream.stop()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def measure(quick: bool, say: Say) -> Section:
    section = Section("RecurringRuns on the e2e control plane (P4)")
    count, minutes = (50, 1) if quick else (500, 3)
    with Stack() as stack:
        say("starting control plane, node agent, S3 ...")
        stack.start()
        client = stack.api()
        core = kubernetes.client.CoreV1Api(client)
        custom = kubernetes.client.CustomObjectsApi(client)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        custom.create_namespaced_custom_object(
            model.GROUP, model.VERSION, NAMESPACE, "pipelines", PIPELINE
        )
        operator = stack.start_operator(NAMESPACE, label="recurring")
        say(f"creating {count} RecurringRuns (every minute) ...")
        for number in range(count):
            custom.create_namespaced_custom_object(
                model.GROUP,
                model.VERSION,
                NAMESPACE,
                "recurringruns",
                recurring_body(f"every-minute-{number:03d}"),
            )
        lag_watch = LagWatch(client)
        # Measure whole minutes that start after every object exists and has been seen.
        first = (math.floor(time.time() / 60) + 1) * 60
        if first - time.time() < 15:
            first += 60
        last = first + (minutes - 1) * 60
        start = datetime.datetime.fromtimestamp(first, datetime.UTC)
        say(f"measuring the firings of {minutes} minute(s) from {start:%H:%M}Z ...")
        deadline = last + 60
        while time.time() < deadline:
            time.sleep(1)
            done = [lag for at, lag in lag_watch.lags if at == last]
            if len(done) >= count:
                break
        lag_watch.close()
        samples = [lag for at, lag in lag_watch.lags if first <= at <= last]
        fired = {
            at: sum(1 for a, _ in lag_watch.lags if a == at) for at in range(first, last + 1, 60)
        }
        metrics = stack.metrics()
        operator.stop()
    expected = count * minutes
    median = statistics.median(samples) if samples else float("nan")
    p99 = _percentile(samples, 0.99) if samples else float("nan")
    note = (
        f"{len(samples)} of {expected} firings seen within a minute of their time "
        f"({count} RecurringRuns x {minutes} minute(s); per minute: "
        f"{', '.join(str(v) for v in fired.values())}); lag = scheduled time to the Run "
        "ADDED on a watch; each Run runs one `sh -c true` pod"
    )
    missed = [
        line for line in metrics.splitlines() if line.startswith("pipesync_recurring_missed_total")
    ]
    if missed:
        note += "; operator counted missed: " + "; ".join(missed)
    section.figures.append(Figure(SECTION, "P4 schedule lag median", median, "s", note=note))
    section.figures.append(
        Figure(
            SECTION,
            "P4 schedule lag p99",
            p99,
            "s",
            target="P4: p99 <= 1 s",
            met=bool(samples) and p99 <= TARGET_P99_SECONDS and len(samples) == expected,
            margin=f"{p99 / TARGET_P99_SECONDS:.2f}x the target" if samples else "no samples",
            note=note,
        )
    )
    return section


if __name__ == "__main__":
    import sys

    result = measure("--quick" in sys.argv, lambda text: print(text, flush=True))
    for figure in result.figures:
        print(f"{figure.name}: {figure.value:.3g} {figure.unit} {figure.margin} | {figure.note}")
