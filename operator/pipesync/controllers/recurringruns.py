"""The RecurringRun controller: carries out engine.recurring's decision over the Kube adapter.

Why exactly once holds: each Run is named from the RecurringRun and its scheduled time
and created with a plain create, so a second attempt for the same time (a restart, a
resync, a second replica, a crash between creating a Run and writing the status) gets
409 from the API server instead of a second Run. The status cursor is written after the
Runs exist, so a crash in between re-decides the same times and finds their Runs.

One pass: read the RecurringRun and its Runs, decide, cancel (Replace), create, delete
finished Runs beyond the history limits, write the status once (only when it changed).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pipesync.api import conventions, model, reports, times
from pipesync.controllers import conditions, errors
from pipesync.engine import recurring, state
from pipesync.kube.protocol import PIPELINES, RECURRING_RUNS, RUNS, Kube

_log = logging.getLogger(__name__)

FAILED = frozenset({"Failed", "Cancelled"})


def _instant(text: Any) -> int | None:
    """Scheduled times are whole seconds."""
    moment = times.instant(text)
    return None if moment is None else int(moment)


class RecurringObserver(Protocol):
    """observe.recurring_metrics.RecurringMetrics: told once per pass what it did."""

    def observe(self, report: reports.RecurringPass) -> None: ...


@dataclasses.dataclass(frozen=True)
class PassResult:
    wake_at: float | None  # the next scheduled time; None: only a change can matter
    events: list[tuple[str, str, str]]  # (type, reason, message) for the RecurringRun
    started: tuple[str, ...] = ()  # Runs created in this pass


@dataclasses.dataclass(frozen=True)
class _OwnRun:
    name: str
    scheduled: int
    phase: str
    cancelling: bool
    recorded: bool


class RecurringRunController:
    def __init__(
        self,
        kube: Kube,
        *,
        observer: RecurringObserver | None = None,
        wait_for_records: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.observer = observer
        #: With the S3 mirror on, a finished Run is deleted only once its record exists.
        self.wait_for_records = wait_for_records
        self.clock = clock

    def reconcile(self, namespace: str, name: str) -> PassResult:
        body = self.kube.get_object(RECURRING_RUNS, namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return PassResult(None, [])
        own = self._own_runs(namespace, name)
        metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
        status: dict[str, Any] = dict(body.get("status") or {})
        generation = metadata.get("generation")
        now = self.clock()
        created = _instant(metadata.get("creationTimestamp")) or int(now)
        events: list[tuple[str, str, str]] = []
        try:
            parsed = recurring.parse_spec(spec, created)
        except recurring.ScheduleError as error:
            # Only a change of the spec helps: Stalled, no retry (wake_at None).
            stalled = errors.Stalled("InvalidSchedule", str(error))
            desired = self._status(
                status,
                generation,
                ready=(False, stalled.reason, stalled.message),
                next_time=None,
                own=own,
            )
            self._write(namespace, name, status, desired)
            told = stalled.event()
            return PassResult(None, [] if told is None else [told])
        active = [
            recurring.ActiveRun(run.name, run.scheduled, run.cancelling)
            for run in own
            if run.phase not in state.FINISHED
        ]
        ready_reason = _condition(status, "Ready").get("reason")
        observed = status.get("observedGeneration")
        pipeline = str((spec.get("pipelineRef") or {}).get("name") or "")
        missing = self.kube.get_object(PIPELINES, namespace, pipeline) is None
        decision = recurring.decide(
            parsed,
            _instant(status.get("lastEvaluatedTime")),
            active,
            {run.scheduled for run in own},
            now,
            rebase=observed is not None and observed != generation,
            was_suspended=ready_reason == "Suspended",
            pipeline_missing=missing,
        )
        for victim in decision.cancel:
            self.kube.patch_object(RUNS, namespace, victim, {"spec": {"cancel": True}})
            events.append(("Normal", "Replacing", f"cancelling run {victim}: a newer one is due"))
        started: list[str] = []
        lags: list[float] = []  # of each Run created: its scheduled time to its creation
        try:
            for scheduled in decision.start:
                run = self._run_body(body, scheduled)
                if self.kube.create_object(RUNS, namespace, run):
                    started.append(run["metadata"]["name"])
                    lags.append(max(self.clock() - scheduled, 0.0))
                events.append(
                    ("Normal", "RunStarted", f"run {run['metadata']['name']} for {_iso(scheduled)}")
                )
        except Exception:
            # The Runs created before the failure fired; the next pass finds them as
            # already fired (never counted again) and re-decides the rest.
            self._observe(reports.RecurringPass(namespace, name, fired_lags=tuple(lags)))
            raise
        events.extend(_tally_events(decision))
        ready = _readiness(pipeline if missing else None, parsed, decision)
        self._observe(
            reports.RecurringPass(
                namespace,
                name,
                fired_lags=tuple(lags),
                skipped=dict(decision.skipped),
                missed=dict(decision.missed),
                cancelled=len(decision.cancel),
                ready_reason=ready[1],
            )
        )
        own = self._with_started(own, body, decision)
        self._apply_history(namespace, spec.get("history") or {}, own)
        desired = self._status(
            status,
            generation,
            ready=ready,
            next_time=None if parsed.suspend else decision.next_time,
            own=own,
            decision=decision,
        )
        self._write(namespace, name, status, desired)
        wake = decision.next_time
        return PassResult(None if wake is None else float(wake), events, tuple(started))

    def _observe(self, report: reports.RecurringPass) -> None:
        if self.observer is not None:
            self.observer.observe(report)

    # --- reading ------------------------------------------------------------------------

    def _own_runs(self, namespace: str, name: str) -> list[_OwnRun]:
        listed = self.kube.list_objects(
            RUNS,
            namespace,
            label_selector=f"{conventions.LABEL_RECURRING_RUN}={conventions.label_value(name)}",
        )
        found = []
        for run in listed:
            annotations = (run.get("metadata") or {}).get("annotations") or {}
            scheduled = _instant(annotations.get(conventions.ANNOTATION_SCHEDULED))
            if annotations.get(conventions.ANNOTATION_RECURRING_RUN) != name or scheduled is None:
                continue  # a hashed label shared by another name, or hand-made
            run_status = run.get("status") or {}
            found.append(
                _OwnRun(
                    name=run["metadata"]["name"],
                    scheduled=scheduled,
                    phase=str(run_status.get("phase") or ""),
                    cancelling=bool((run.get("spec") or {}).get("cancel")),
                    recorded=bool((run_status.get("record") or {}).get("uri")),
                )
            )
        return sorted(found, key=lambda run: run.scheduled)

    def _with_started(
        self, own: list[_OwnRun], body: Mapping[str, Any], decision: recurring.Decision
    ) -> list[_OwnRun]:
        known = {run.scheduled for run in own}
        name = body["metadata"]["name"]
        cancelled = set(decision.cancel)
        result = [
            dataclasses.replace(r, cancelling=r.cancelling or r.name in cancelled) for r in own
        ]
        for scheduled in decision.start:
            if scheduled not in known:
                result.append(
                    _OwnRun(
                        conventions.recurring_run_name(name, scheduled), scheduled, "", False, False
                    )
                )
        return sorted(result, key=lambda run: run.scheduled)

    # --- writing ------------------------------------------------------------------------

    def _run_body(self, body: Mapping[str, Any], scheduled: int) -> dict[str, Any]:
        metadata, spec = body["metadata"], body.get("spec") or {}
        run_spec: dict[str, Any] = {"pipelineRef": dict(spec["pipelineRef"])}
        if spec.get("experimentRef"):
            run_spec["experimentRef"] = dict(spec["experimentRef"])
        if spec.get("params"):
            run_spec["params"] = dict(spec["params"])
        if spec.get("runTimeout"):
            run_spec["timeout"] = spec["runTimeout"]
        if spec.get("cache"):
            run_spec["cache"] = spec["cache"]
        return {
            "apiVersion": f"{model.GROUP}/{model.VERSION}",
            "kind": "Run",
            "metadata": {
                "name": conventions.recurring_run_name(metadata["name"], scheduled),
                "namespace": metadata.get("namespace"),
                "labels": {
                    conventions.LABEL_RECURRING_RUN: conventions.label_value(metadata["name"])
                },
                "annotations": {
                    conventions.ANNOTATION_RECURRING_RUN: metadata["name"],
                    conventions.ANNOTATION_SCHEDULED: _iso(scheduled),
                },
                "ownerReferences": [
                    {
                        "apiVersion": f"{model.GROUP}/{model.VERSION}",
                        "kind": "RecurringRun",
                        "name": metadata["name"],
                        "uid": metadata["uid"],
                        "controller": True,
                        "blockOwnerDeletion": False,
                    }
                ],
            },
            "spec": run_spec,
        }

    def _apply_history(
        self, namespace: str, history: Mapping[str, Any], own: Sequence[_OwnRun]
    ) -> None:
        """Deletes the oldest finished Runs beyond history.succeeded / history.failed."""
        for phases, key in ((frozenset({"Succeeded"}), "succeeded"), (FAILED, "failed")):
            keep = history.get(key)
            if keep is None:
                continue
            finished = [run for run in own if run.phase in phases]
            for run in finished[: max(len(finished) - int(keep), 0)]:
                if self.wait_for_records and not run.recorded:
                    continue  # its S3 record is not written yet: the next pass deletes it
                self.kube.delete_object(RUNS, namespace, run.name)

    def _status(
        self,
        current: Mapping[str, Any],
        generation: int | None,
        *,
        ready: tuple[bool, str, str],
        next_time: int | None,
        own: Sequence[_OwnRun],
        decision: recurring.Decision | None = None,
    ) -> dict[str, Any]:
        counts = dict(current.get("counts") or {})
        desired: dict[str, Any] = {
            key: current[key]
            for key in ("lastScheduleTime", "lastEvaluatedTime", "lastSkipReason")
            if key in current
        }
        if "lastMissReason" in current:
            desired["lastMissReason"] = current["lastMissReason"]
        if decision is not None:
            counts["fired"] = int(counts.get("fired") or 0) + decision.fired
            counts["skipped"] = int(counts.get("skipped") or 0) + sum(decision.skipped.values())
            counts["missed"] = int(counts.get("missed") or 0) + sum(decision.missed.values())
            fired = [*decision.start, *decision.already]
            if fired:
                last = max(fired)
                previous = _instant(current.get("lastScheduleTime"))
                desired["lastScheduleTime"] = _iso(max(last, previous or last))
            if decision.cursor is not None:
                desired["lastEvaluatedTime"] = _iso(decision.cursor)
            if decision.skipped:
                desired["lastSkipReason"] = max(decision.skipped, key=decision.skipped.__getitem__)
            if decision.missed:
                desired["lastMissReason"] = max(decision.missed, key=decision.missed.__getitem__)
        for key in ("fired", "skipped", "missed"):
            counts.setdefault(key, 0)
        active = [run for run in own if run.phase not in state.FINISHED]
        desired.update(
            {
                "observedGeneration": generation,
                "counts": counts,
                "active": [
                    {"name": run.name, "scheduledTime": _iso(run.scheduled)} for run in active
                ],
                "activeCount": len(active),
            }
        )
        if next_time is not None:
            desired["nextScheduleTime"] = _iso(next_time)
        status, reason, message = ready
        stamp = times.timestamp(self.clock())
        # Ready=False here (invalid schedule, missing pipeline) waits for a change to the
        # object or its pipeline: Stalled, so kstatus says Failed instead of InProgress.
        desired["conditions"] = conditions.set_health(
            current.get("conditions") or [],
            conditions.Health.READY if status else conditions.Health.STALLED,
            reason=reason,
            message=message,
            generation=generation,
            now=stamp,
        )
        return {k: v for k, v in desired.items() if v is not None}

    def _write(
        self, namespace: str, name: str, current: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> None:
        if conditions.same_status(desired, current) and set(current) <= set(desired):
            return
        patch = dict(desired)
        for key in current:
            if key not in desired:
                patch[key] = None  # a merge patch removes it (e.g. nextScheduleTime)
        self.kube.patch_status(RECURRING_RUNS, namespace, name, patch)


def _readiness(
    missing: str | None, parsed: recurring.RecurringSpec, decision: recurring.Decision
) -> tuple[bool, str, str]:
    """The Ready condition; `missing`: the name of the pipeline that does not exist."""
    if missing is not None:
        return (
            False,
            recurring.PIPELINE_NOT_FOUND,
            f"pipeline {missing!r} does not exist: no runs are created (due times are "
            "counted as skipped) until it does",
        )
    if parsed.suspend:
        return True, "Suspended", "suspended: due times are counted as skipped"
    if decision.next_time is None:
        return True, "Ended", "no scheduled time left before endTime"
    return True, "Scheduled", f"next run at {_iso(decision.next_time)}"


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _iso(moment: int) -> str:
    return times.timestamp(float(moment))


def _tally_events(decision: recurring.Decision) -> list[tuple[str, str, str]]:
    events = []
    for reason, count in sorted(decision.skipped.items()):
        events.append(
            ("Warning", "ScheduleSkipped", f"{count} scheduled time(s) skipped: {reason}")
        )
    for reason, count in sorted(decision.missed.items()):
        events.append(("Warning", "ScheduleMissed", f"{count} scheduled time(s) missed: {reason}"))
    return events
