"""The GitSource controller's pass: fetch, read the commit, plan, apply, report.

One pass per source at a time (its kopf daemon calls `reconcile` from a worker thread).
The decisions live in gitops.sync (pure); this module does the I/O in a fixed order
and writes the status in one place:

1. read the GitSource and publish its webhook target;
2. fetch the ref into the source's bare mirror (credentials from its Secret);
3. stop here, with no write at all, when the revision, the spec and the manual
   reconcile request are what the status already reports;
4. read the snapshot, plan; a refused plan (mass deletion) changes nothing;
5. upload the repository archive for task pods (when the operator has a store), apply,
   create Runs once, prune; an API error on one object is that object's file problem,
   a transient one aborts the pass (the last good inventory stays) and it is retried.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipesync.api import conventions, durations, model, reports
from pipesync.api.times import timestamp
from pipesync.controllers import errors
from pipesync.controllers.conditions import Health, same_status, set_condition
from pipesync.engine import layout
from pipesync.gitops import codeids, fetch, snapshot, sync
from pipesync.gitops.triggers import SyncTriggers, WebhookTarget
from pipesync.kube.client import ApiException
from pipesync.kube.protocol import (
    EXPERIMENTS,
    GIT_SOURCES,
    PIPELINES,
    RECURRING_RUNS,
    RUNS,
    Kube,
)
from pipesync.runtime.digests import file_sha256
from pipesync.runtime.storage import ObjectStore, StoreError

_log = logging.getLogger(__name__)

WEBHOOK_TOKEN_KEY = "token"  # noqa: S105 -- a key name, not a secret
DEFAULT_INTERVAL_SECONDS = 60.0
MAX_ERRORS_IN_STATUS = 100
APPLY_WORKERS = 8
PLURALS = {
    model.Kind.PIPELINE.value: PIPELINES,
    model.Kind.EXPERIMENT.value: EXPERIMENTS,
    model.Kind.RECURRING_RUN.value: RECURRING_RUNS,
    model.Kind.RUN.value: RUNS,
}
#: Ready reasons after which the same revision needs no new attempt.
_SETTLED = frozenset({"Succeeded", "InvalidFiles", "MassDeletionRefused", "InvalidPath"})


@dataclasses.dataclass(frozen=True)
class PassResult:
    wait_seconds: float | None  # until the next poll; None: the source is gone
    events: list[tuple[str, str, str]]  # (type, reason, message) for the GitSource
    writes: int = 0  # API writes this pass made (objects and status)
    report: reports.SyncReport | None = None  # what a sync attempt did, for metrics
    #: What the pass failed on (its status says so): the driver retries a Transient one.
    failure: errors.PassError | None = None


def webhook_path(namespace: str, name: str) -> str:
    return f"/hooks/{namespace}/{name}"


class GitSourceController:
    def __init__(
        self,
        kube: Kube,
        store: ObjectStore | None = None,
        triggers: SyncTriggers | None = None,
        cache: Path | None = None,
        archive_key: Callable[[str, str, str], str] = layout.source_archive_key,
    ) -> None:
        self.kube = kube
        self.store = store
        #: (namespace, source, commit) -> the store key task pods read (it may add the
        #: operator's S3 prefix: runtime.pods.workspace_key).
        self.archive_key = archive_key
        self.triggers = triggers
        self.cache = cache
        self._applier = concurrent.futures.ThreadPoolExecutor(
            max_workers=APPLY_WORKERS, thread_name_prefix="gitsource-apply"
        )

    def forget(self, namespace: str, name: str) -> None:
        """The source was deleted: no webhook target, no mirror. Its objects stay."""
        if self.triggers is not None:
            self.triggers.forget(namespace, name)
        with contextlib.suppress(fetch.FetchError):
            fetch.remove_mirror(fetch.mirror_path(namespace, name, self.cache))

    def reconcile(self, namespace: str, name: str) -> PassResult:
        body = self.kube.get_object(GIT_SOURCES, namespace, name)
        if body is None:
            return PassResult(None, [])
        return _Pass(self, namespace, name, body).run()


class _Pass:
    """One sync of one source; holds what the steps share."""

    def __init__(
        self, owner: GitSourceController, namespace: str, name: str, body: Mapping[str, Any]
    ) -> None:
        self.owner, self.kube = owner, owner.kube
        self.namespace, self.name, self.body = namespace, name, body
        self.spec: Mapping[str, Any] = body.get("spec") or {}
        self.status: dict[str, Any] = dict(body.get("status") or {})
        metadata = body.get("metadata") or {}
        self.generation: int | None = metadata.get("generation")
        self.requested: str | None = (metadata.get("annotations") or {}).get(
            conventions.ANNOTATION_RECONCILE_AT
        )
        self.url = str(self.spec.get("url", ""))
        self.events: list[tuple[str, str, str]] = []
        self.writes = 0
        self.report: reports.SyncReport | None = None
        self.interval = DEFAULT_INTERVAL_SECONDS
        with contextlib.suppress(ValueError):  # the CRD schema checks it already
            self.interval = max(durations.parse(str(self.spec.get("interval", "1m"))), 1.0)

    # --- the pass --------------------------------------------------------------------------

    def run(self) -> PassResult:
        base = self._base_status()
        try:
            ref = fetch.Ref.from_spec(self.spec.get("ref"))
        except fetch.FetchError as error:
            return self._failed(base, errors.Stalled(error.reason, str(error)))
        self._publish(ref)
        if self.spec.get("suspend"):
            status = self._conditions(
                base,
                ready=None,
                reconciling=(False, "Suspended", "spec.suspend is true: not synced"),
                stalled=(False, "Suspended", "suspended"),
            )
            self._write(status)
            return self._result(self.interval)
        try:
            fetched = self._fetch(ref)
        except fetch.FetchError as error:
            return self._failed(base, errors.Transient(error.reason, str(error)))
        try:
            revision = ref.revision(fetched.commit)
            if self._settled(revision):
                return self._result(self.interval)
            return self._sync(base, ref, fetched, revision)
        finally:
            fetched.repo.close()  # its `git cat-file` helpers: none outlive the pass

    def _settled(self, revision: str) -> bool:
        ready = _condition(self.status, "Ready")
        return (
            self.status.get("lastAttemptedRevision") == revision
            and self.status.get("observedGeneration") == self.generation
            and self.status.get("lastHandledReconcileAt") == self.requested
            and ready.get("reason") in _SETTLED
        )

    def _sync(
        self, base: dict[str, Any], ref: fetch.Ref, fetched: fetch.Fetched, revision: str
    ) -> PassResult:
        path = str(self.spec.get("path", "./"))
        base["lastAttemptedRevision"] = revision
        try:
            read = snapshot.read_snapshot(fetched.repo, fetched.commit, path)
            normalised = snapshot.normalise_path(path)
        except snapshot.SnapshotError as error:
            message = f"{revision}: {error}; objects stay as applied at " + self._applied()
            return self._failed(base, errors.Stalled("InvalidPath", message))
        safety = self.spec.get("pruneSafety") or {}
        source = sync.Source(
            namespace=self.namespace,
            name=self.name,
            path=normalised,
            commit=fetched.commit,
            # A mass-deletion trailer counts in any commit since the last applied one.
            message=fetch.messages_since(fetched.repo, self._applied_sha(), fetched.commit),
            prune=bool(self.spec.get("prune", False)),
            max_delete_percent=int(safety.get("maxDeletePercent", sync.DEFAULT_MAX_DELETE_PERCENT)),
            allow_mass_deletion=bool(safety.get("allowMassDeletion", False)),
            ignore=tuple(str(p) for p in self.spec.get("ignore") or ()),
            code=_code_digests(fetched, read, normalised),
        )
        previous = [sync.InventoryEntry.from_status(e) for e in self.status.get("inventory") or []]
        # A manual request also re-applies unchanged objects (undoes edits in the cluster).
        forced = self.requested is not None and self.requested != self.status.get(
            "lastHandledReconcileAt"
        )
        plan = sync.plan(source, read, previous, force=forced)
        history = self._history_note(fetched)
        if plan.refused is not None:
            base["errors"] = _errors(plan.issues)
            self.events.append(("Warning", "MassDeletionRefused", plan.refused))
            return self._failed(base, errors.Stalled("MassDeletionRefused", plan.refused + history))
        if self._must_announce(revision):
            self._write(
                self._conditions(
                    dict(self.status),
                    ready=None,
                    reconciling=(True, "Progressing", f"syncing {revision}"),
                    stalled=(False, "Progressing", ""),
                )
            )
        try:
            _stamp_archive_digest(plan, self._upload_archive(fetched))
            inventory, issues, counts = self._apply(plan, read, previous)
        except errors.Transient as error:
            return self._failed(base, error)
        base["lastAppliedRevision"] = revision
        base["inventory"] = [e.to_status() for e in inventory]
        base["errors"] = _errors(issues)
        summary = (
            f"{len(inventory)} objects at {revision}: {counts['applied']} applied, "
            f"{counts['created']} runs created, {counts['pruned']} pruned"
        )
        bad_files = [i for i in issues if i.severity == sync.ERROR]
        if bad_files:
            files = sorted({i.file for i in bad_files})
            shown = "; ".join(f"{i.file}:{i.line}:{i.column}: {i.message}" for i in bad_files[:3])
            message = (
                f"{summary}; {len(files)} file(s) with errors keep their last good "
                f"objects ({len(plan.kept)} kept): {shown}"
            )
            self.events.append(("Warning", "InvalidFiles", message[:1000]))
            status = self._conditions(
                base,
                ready=(False, "InvalidFiles", message + history),
                reconciling=(False, "InvalidFiles", "waiting for a commit that fixes the files"),
                stalled=(True, "InvalidFiles", message),
            )
        else:
            if counts["applied"] or counts["created"] or counts["pruned"]:
                self.events.append(("Normal", "Synced", summary))
            status = self._conditions(
                base,
                ready=(True, "Succeeded", summary + history),
                reconciling=(False, "Succeeded", "up to date"),
                stalled=(False, "Succeeded", ""),
            )
        if history:
            self.events.append(("Warning", "HistoryRewritten", history.strip("; ")))
        self._write(status)
        self.report = reports.SyncReport(
            _condition(status, "Ready").get("reason", ""),
            revision,
            counts["applied"],
            counts["created"],
            counts["pruned"],
            len({i.file for i in bad_files}),
            float(fetched.repo.commit(fetched.commit).committed_date),
        )
        return self._result(self.interval)

    # --- steps -----------------------------------------------------------------------------

    def _publish(self, ref: fetch.Ref) -> None:
        triggers = self.owner.triggers
        if triggers is None:
            return
        secret: bytes | None = None
        reference = ((self.spec.get("webhook") or {}).get("secretRef") or {}).get("name")
        if reference:
            data = self.kube.get_secret(self.namespace, str(reference))
            secret = (data or {}).get(WEBHOOK_TOKEN_KEY) or None
        triggers.publish(WebhookTarget(self.namespace, self.name, self.url, ref.branch, secret))

    def _fetch(self, ref: fetch.Ref) -> fetch.Fetched:
        credentials = None
        secret_name = (self.spec.get("secretRef") or {}).get("name")
        if secret_name:
            data = self.kube.get_secret(self.namespace, str(secret_name))
            if data is None:
                raise fetch.FetchError(
                    "SecretNotFound", f"spec.secretRef: Secret {secret_name!r} does not exist"
                )
            credentials = fetch.Credentials.from_secret(str(secret_name), data)
        timeout = fetch.DEFAULT_TIMEOUT_SECONDS
        if self.spec.get("timeout"):
            with contextlib.suppress(ValueError):
                timeout = durations.parse(str(self.spec["timeout"]))
        cache = self.owner.cache or fetch.cache_root()
        path = fetch.mirror_path(self.namespace, self.name, cache)
        return fetch.fetch(path, self.url, ref, credentials, timeout=timeout, cache=cache)

    def _applied_sha(self) -> str | None:
        applied = str(self.status.get("lastAppliedRevision") or "")
        return applied.rpartition("sha1:")[2] or None

    def _history_note(self, fetched: fetch.Fetched) -> str:
        old = self._applied_sha()
        if not old or old == fetched.commit:
            return ""
        if fetch.is_ancestor(fetched.repo, old, fetched.commit) is False:
            return (
                f"; history rewritten: the last applied commit {old[:12]} is not an "
                f"ancestor of {fetched.commit[:12]} (force-push)"
            )
        return ""

    def _upload_archive(self, fetched: fetch.Fetched) -> str:
        """Upload the tree at the commit for task pods; returns its sha256 ('' without a
        store). An archive already at the key is trusted only if it is the one built here:
        whoever else can write the key may have replaced it, so a different one is
        overwritten, and task pods check the returned digest before unpacking."""
        store = self.owner.store
        if store is None:
            return ""
        key = self.owner.archive_key(self.namespace, self.name, fetched.commit)
        try:
            with tempfile.TemporaryDirectory(prefix="pipesync-archive-") as scratch:
                target = Path(scratch) / "tree.tar.gz"
                fetch.archive(fetched.repo, fetched.commit, target)
                digest = file_sha256(target)
                if store.exists(key):
                    stored = Path(scratch) / "stored.tar.gz"
                    store.get_file(key, stored)
                    if file_sha256(stored) == digest:
                        return digest
                    _log.warning("%s: replacing the archive %s, it was not ours", self.name, key)
                store.put_file(key, target)
                return digest
        except (StoreError, OSError) as error:
            raise errors.Transient(
                "ArchiveFailed", f"uploading the repository archive {key}: {error}"
            ) from None

    def _apply(
        self,
        plan: sync.Plan,
        read: snapshot.Snapshot,
        previous: Sequence[sync.InventoryEntry],
    ) -> tuple[list[sync.InventoryEntry], list[sync.Issue], dict[str, int]]:
        issues = list(plan.issues)
        inventory = {e.key: e for e in plan.inventory}
        before = {e.key: e for e in previous}
        to_apply = list(plan.apply)
        counts = {"applied": 0, "created": 0, "pruned": 0}
        rejected = 0
        futures = {
            self.owner._applier.submit(
                self.kube.apply_object, PLURALS[d.kind], self.namespace, d.body
            ): d
            for d in to_apply
        }
        transient: list[str] = []
        for future, item in futures.items():
            try:
                future.result()
                self.writes += 1
                counts["applied"] += 1
            except ApiException as error:
                self.writes += 1
                key = f"{item.kind}/{item.name}"
                if error.status in (400, 403, 422):
                    rejected += 1
                    issues.append(_rejected(item, read, error))
                    if key in before:
                        inventory[key] = before[key]  # the last good version is still there
                    else:
                        inventory.pop(key, None)
                else:
                    transient.append(f"{item.kind} {item.name}: {_api_message(error)}")
        if transient:
            raise errors.Transient(
                "ApplyFailed",
                f"{len(transient)} object(s) could not be applied (retrying): "
                + "; ".join(transient[:3]),
            )
        for item in plan.create:
            try:
                if self.kube.create_object(RUNS, self.namespace, item.body):
                    counts["created"] += 1
                self.writes += 1
            except ApiException as error:
                self.writes += 1
                if error.status in (400, 403, 422):
                    issues.append(_rejected(item, read, error))
                    inventory.pop(f"{item.kind}/{item.name}", None)
                else:
                    raise errors.Transient(
                        "ApplyFailed", f"Run {item.name}: {_api_message(error)}"
                    ) from None
        for entry in plan.prune:
            try:
                if self._prune(entry):
                    counts["pruned"] += 1
            except ApiException as error:
                raise errors.Transient(
                    "PruneFailed", f"{entry.kind} {entry.name}: {_api_message(error)}"
                ) from None
        issues.sort(key=lambda i: (i.file, i.line, i.column, i.message))
        ordered = sorted(inventory.values(), key=lambda e: (e.kind, e.name))
        return ordered, issues, counts

    def _prune(self, entry: sync.InventoryEntry) -> bool:
        """Deletes an inventory object, but only if it still carries this source's label
        (someone may have taken the name over since)."""
        plural = PLURALS.get(entry.kind)
        if plural is None or entry.kind == model.Kind.RUN.value:
            return False
        found = self.kube.get_object(plural, self.namespace, entry.name)
        if found is None:
            return False
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(conventions.LABEL_SOURCE) != conventions.label_value(self.name):
            return False
        self.writes += 1
        return self.kube.delete_object(plural, self.namespace, entry.name)

    # --- status ----------------------------------------------------------------------------

    def _base_status(self) -> dict[str, Any]:
        status = dict(self.status)
        status["observedGeneration"] = self.generation
        status["webhookPath"] = webhook_path(self.namespace, self.name)
        if self.requested is not None:
            status["lastHandledReconcileAt"] = self.requested
        return status

    def _applied(self) -> str:
        return str(self.status.get("lastAppliedRevision") or "(nothing applied yet)")

    def _must_announce(self, revision: str) -> bool:
        reconciling = _condition(self.status, "Reconciling")
        return not (
            reconciling.get("status") == "True" and revision in str(reconciling.get("message"))
        )

    def _failed(self, base: dict[str, Any], error: errors.PassError) -> PassResult:
        """Status and Event for a pass that ended on `error`; the driver times the retry."""
        reason, message = error.reason, error.message
        stalled = error.health is Health.STALLED
        if reason not in ("MassDeletionRefused", "InvalidPath"):
            message = f"{message}; objects stay as applied at {self._applied()}"
        status = self._conditions(
            base,
            ready=(False, reason, message),
            reconciling=(False, reason, "waiting for a change" if stalled else "retrying"),
            stalled=(stalled, reason, message if stalled else ""),
        )
        if not same_status(status, self.status):
            self.events.append(("Warning", reason, message[: errors.MAX_EVENT_MESSAGE]))
        self._write(status)
        self.report = reports.SyncReport(reason, str(base.get("lastAttemptedRevision") or ""))
        return dataclasses.replace(self._result(self.interval), failure=error)

    def _conditions(
        self,
        status: dict[str, Any],
        *,
        ready: tuple[bool, str, str] | None,
        reconciling: tuple[bool, str, str],
        stalled: tuple[bool, str, str],
    ) -> dict[str, Any]:
        now = timestamp()
        conditions = list(status.get("conditions") or [])
        for kind, value in (("Ready", ready), ("Reconciling", reconciling), ("Stalled", stalled)):
            if value is None:
                continue
            conditions = set_condition(
                conditions,
                type=kind,
                status=value[0],
                reason=value[1],
                message=value[2][:2000],
                generation=self.generation,
                now=now,
            )
        status["conditions"] = conditions
        return status

    def _write(self, status: Mapping[str, Any]) -> None:
        if same_status(status, self.status):
            return
        self.kube.patch_status(GIT_SOURCES, self.namespace, self.name, status)
        self.writes += 1
        self.status = dict(status)

    def _result(self, wait: float) -> PassResult:
        return PassResult(wait, self.events, self.writes, self.report)


def _stamp_archive_digest(plan: sync.Plan, digest: str) -> None:
    """Record the archive's digest on every Pipeline applied at this commit: runs pin it
    with the commit and hand it to their task pods (`agent fetch --workspace-sha256`)."""
    if not digest:
        return
    for item in plan.apply:
        if item.kind == "Pipeline":
            item.body["metadata"]["annotations"][conventions.ANNOTATION_ARCHIVE_DIGEST] = digest


def _code_digests(
    fetched: fetch.Fetched, read: snapshot.Snapshot, path: str
) -> dict[str, dict[str, str]]:
    """Per Pipeline at this commit, the digests of the code its cached tasks declare
    (`cache.paths`, relative to the source's path): runs pin them and key their tasks on
    them (a Pipeline without them caches nothing that reads the tree)."""
    found = {}
    for resource in read.resources:
        if resource.kind is model.Kind.PIPELINE:
            digests = codeids.pipeline_code_digests(
                fetched.repo, fetched.commit, resource.spec, root=path
            )
            if digests:
                found[resource.name] = digests
    return found


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _errors(issues: Sequence[sync.Issue]) -> list[dict[str, Any]]:
    shown = [i.to_status() for i in issues[:MAX_ERRORS_IN_STATUS]]
    if len(issues) > MAX_ERRORS_IN_STATUS:
        rest = len(issues) - MAX_ERRORS_IN_STATUS
        shown.append(
            {"file": "", "line": 0, "column": 0, "message": f"and {rest} more", "severity": "error"}
        )
    return shown


def _rejected(item: sync.Desired, read: snapshot.Snapshot, error: ApiException) -> sync.Issue:
    line, column = 1, 1
    for resource in read.resources:
        if resource.kind.value == item.kind and resource.name == item.name:
            line, column = resource.source.start.line, resource.source.start.column
    return sync.Issue(
        item.file,
        line,
        column,
        f"{item.kind} {item.name!r} was rejected by the API server: {_api_message(error)}",
    )


def _api_message(error: ApiException) -> str:

    try:
        return str(json.loads(error.body or "{}").get("message") or error.reason)[:500]
    except (ValueError, AttributeError):
        return f"{error.status} {error.reason}"
