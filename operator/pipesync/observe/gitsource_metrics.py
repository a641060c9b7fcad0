"""GitSource metrics: sync attempts, their results, duration and lag, objects applied and
pruned, and each source's current revision, derived from the `api.reports.GitSourceEvent`
controllers/gitsources_handlers.py reports for each event of a source (a new series over
their facts is this module alone).

A source's gauges are restored from its status when its sync starts (`GitSourceSeen`:
operator start, resync or a new source), not at its next commit, and its counters start
at 0 then, so the first sync result after a restart is an increase Prometheus can see.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipesync.api import reports, times

_log = logging.getLogger(__name__)

#: GitSource Ready reasons of an attempt that applied its revision (the rest applied nothing).
GIT_APPLIED = frozenset({"Succeeded", "InvalidFiles"})
#: GitSource sync results started at zero for every source (rarer ones appear when they
#: first happen, and so does whatever reason the source's status shows at start).
GIT_COMMON_RESULTS = ("Succeeded", "InvalidFiles", "FetchFailed", "FetchTimeout",
                      "AuthenticationFailed")  # fmt: skip
SYNC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class GitSourceMetrics:
    """The series of every GitSource, labelled by its namespace and name; implements
    pipesync.controllers.gitsources_handlers.GitSourceObserver."""

    def __init__(self, registry: CollectorRegistry, *, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        r = registry
        labels = ["namespace", "name"]
        self.git_sync_duration = Histogram(
            "pipesync_gitsource_sync_duration_seconds",
            "Time of one sync attempt of a GitSource (fetch, read, validate, apply, prune).",
            labels,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.git_syncs = Counter(
            "pipesync_gitsource_syncs",
            "Sync attempts of a GitSource by result (the Ready reason: Succeeded, "
            "InvalidFiles, FetchFailed, AuthenticationFailed, MassDeletionRefused, ...).",
            [*labels, "result"],
            registry=r,
        )
        self.git_sync_errors = Counter(
            "pipesync_gitsource_sync_errors",
            "Sync attempts of a GitSource that applied nothing, by reason.",
            [*labels, "reason"],
            registry=r,
        )
        self.git_sync_lag = Histogram(
            "pipesync_gitsource_sync_lag_seconds",
            "Time from a commit's timestamp to its objects being applied.",
            labels,
            buckets=SYNC_BUCKETS,
            registry=r,
        )
        self.git_last_success = Gauge(
            "pipesync_gitsource_last_success_timestamp_seconds",
            "Unix time of the GitSource's last sync that applied a revision.",
            labels,
            registry=r,
        )
        self.git_applied = Counter(
            "pipesync_gitsource_objects_applied",
            "Objects a GitSource applied (server-side apply or create).",
            labels,
            registry=r,
        )
        self.git_pruned = Counter(
            "pipesync_gitsource_objects_pruned",
            "Objects a GitSource deleted because their file left the repository.",
            labels,
            registry=r,
        )
        self.git_invalid_files = Gauge(
            "pipesync_gitsource_invalid_files",
            "Files with errors in the GitSource's last synced revision.",
            labels,
            registry=r,
        )
        self.git_info = Gauge(
            "pipesync_gitsource_info",
            "1 for each GitSource: its current revision and whether its last sync applied "
            "it (ready).",
            [*labels, "revision", "ready"],
            registry=r,
        )
        self._git_info_labels: dict[tuple[str, str], tuple[str, str]] = {}

    def observe(self, event: reports.GitSourceEvent) -> None:
        """One event of a GitSource: its sync starts, one sync attempt, it is gone."""
        if isinstance(event, reports.GitSourceSeen):
            self._seen(event.namespace, event.name, event.status)
        elif isinstance(event, reports.GitSourceSynced):
            self._synced(event.namespace, event.name, event.sync, event.seconds)
        else:
            self._deleted(event.namespace, event.name)

    def _synced(
        self, namespace: str, name: str, report: reports.SyncReport, seconds: float | None
    ) -> None:
        """One sync attempt of a GitSource (not reported for passes that did nothing)."""
        applied = report.committed_at is not None
        if seconds is not None:
            self.git_sync_duration.labels(namespace, name).observe(seconds)
        self.git_syncs.labels(namespace, name, report.result).inc()
        now = self._clock()
        if applied:
            self.git_last_success.labels(namespace, name).set(now)
            self.git_sync_lag.labels(namespace, name).observe(
                max(now - float(report.committed_at or now), 0.0)
            )
            self.git_invalid_files.labels(namespace, name).set(report.invalid_files)
        else:
            self.git_sync_errors.labels(namespace, name, report.result).inc()
        self.git_applied.labels(namespace, name).inc(report.applied + report.created)
        self.git_pruned.labels(namespace, name).inc(report.pruned)
        with self._lock:
            before = self._git_info_labels.get((namespace, name))
        revision = report.revision or (before[0] if before else "")
        self._set_git_info(namespace, name, revision, "true" if applied else "false")

    def _seen(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """The source's sync starts (operator start, resync or a new source): its counters
        start at 0 and its gauges say again what its stored status says, instead of
        nothing until its next commit. Must not raise: it runs in the source's sync."""
        try:
            self._read_status(namespace, name, status)
        except Exception:  # a metrics bug must never stop a sync
            _log.exception("metrics: could not read the status of %s/%s", namespace, name)

    def _read_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        ready = _git_condition(status, "Ready")
        reason = str(ready.get("reason") or "")
        for result in (*GIT_COMMON_RESULTS, *([reason] if reason else [])):
            self.git_syncs.labels(namespace, name, result)
            if result not in GIT_APPLIED:
                self.git_sync_errors.labels(namespace, name, result)
        self.git_applied.labels(namespace, name)
        self.git_pruned.labels(namespace, name)
        self.git_sync_duration.labels(namespace, name)
        self.git_sync_lag.labels(namespace, name)
        applied = str(status.get("lastAppliedRevision") or "")
        attempted = str(status.get("lastAttemptedRevision") or applied)
        if not attempted:
            return  # never synced: no revision to report yet
        # The last attempt applied its revision: the info series' "ready" as _synced sets it.
        current = reason in GIT_APPLIED and attempted == applied
        if applied:
            # Reconciling turns False at the end of each sync that got as far as applying,
            # and keeps that transition time through later failed fetches.
            ended = times.instant(_git_condition(status, "Reconciling").get("lastTransitionTime"))
            if ended is not None:
                self.git_last_success.labels(namespace, name).set(ended)
        if current:
            errors = status.get("errors") or []
            broken = {e.get("file") for e in errors if e.get("severity", "error") == "error"}
            self.git_invalid_files.labels(namespace, name).set(len(broken))
        self._set_git_info(namespace, name, attempted, "true" if current else "false")

    def _set_git_info(self, namespace: str, name: str, revision: str, ready: str) -> None:
        with self._lock:
            before = self._git_info_labels.get((namespace, name))
            if before is not None and before != (revision, ready):
                self.git_info.remove(namespace, name, *before)
            self._git_info_labels[(namespace, name)] = (revision, ready)
        self.git_info.labels(namespace, name, revision, ready).set(1)

    def _deleted(self, namespace: str, name: str) -> None:
        """Drops the source's series that describe a current state."""
        with self._lock:
            before = self._git_info_labels.pop((namespace, name), None)
        if before is not None:
            self.git_info.remove(namespace, name, *before)
        for gauge in (self.git_last_success, self.git_invalid_files):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)


def _git_condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}
