"""What one GitSource sync should do, decided without any I/O.

Given the inventory of the last applied revision and the snapshot of the new commit,
`plan` says which objects to server-side apply, which Runs to create once, which
objects to prune, and what the inventory becomes. All the safety rules live here, so
they are unit-tested in microseconds:

- an object whose file became invalid keeps its last good version: it is neither
  applied nor pruned, stays in the inventory, and the file's problem is reported;
- a document naming another namespace is a problem of its file (a source writes only
  into its own namespace);
- only objects in the inventory are ever pruned, Runs never are;
- a commit that would prune more than `max_delete_percent` of the inventory is refused
  as a whole (nothing applied) unless the source allows it (spec.pruneSafety.
  allowMassDeletion) or the commit says so with the trailer `pipesync: allow-mass-deletion`;
- a Run from runs/ is created once; a later edit of its file is a warning, never a re-run;
- a Pipeline with `trigger.onChange: true` whose spec changed starts one Run named
  from the pipeline and the commit, so a repeated sync never starts it twice.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pipesync.api import conventions, model
from pipesync.api.documents import Resource
from pipesync.gitops.snapshot import Snapshot, resource_key

MASS_DELETION_TRAILER = "pipesync: allow-mass-deletion"
DEFAULT_MAX_DELETE_PERCENT = 50
_TRAILER = re.compile(r"^\s*pipesync\s*:\s*allow-mass-deletion\s*$", re.IGNORECASE | re.MULTILINE)

ERROR, WARNING = "error", "warning"


@dataclasses.dataclass(frozen=True)
class InventoryEntry:
    """One object this source applied (or, for Runs, created)."""

    kind: str
    name: str
    file: str
    digest: str  # of the spec: "sha256:..." (a Pipeline's version is digest[7:19])
    object_digest: str  # of everything applied but the commit (for non-Pipelines)
    #: Pipelines: a digest of the code its cached tasks declare (`cache.paths`), "" if none
    code_digest: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"

    def to_status(self) -> dict[str, str]:
        status = {
            "kind": self.kind,
            "name": self.name,
            "file": self.file,
            "digest": self.digest,
            "objectDigest": self.object_digest,
        }
        if self.code_digest:
            status["codeDigest"] = self.code_digest
        return status

    @classmethod
    def from_status(cls, data: Mapping[str, Any]) -> InventoryEntry:
        return cls(
            kind=str(data.get("kind", "")),
            name=str(data.get("name", "")),
            file=str(data.get("file", "")),
            digest=str(data.get("digest", "")),
            object_digest=str(data.get("objectDigest", "")),
            code_digest=str(data.get("codeDigest", "")),
        )


@dataclasses.dataclass(frozen=True)
class Issue:
    """A problem (error) or a note (warning) about one file, located."""

    file: str
    line: int
    column: int
    message: str
    severity: str = ERROR

    def to_status(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "severity": self.severity,
        }


@dataclasses.dataclass(frozen=True)
class Desired:
    """An object as this commit declares it, ready for the API server."""

    kind: str
    name: str
    file: str
    body: dict[str, Any]
    digest: str
    object_digest: str
    code_digest: str = ""

    def entry(self) -> InventoryEntry:
        return InventoryEntry(
            self.kind, self.name, self.file, self.digest, self.object_digest, self.code_digest
        )

    def code_changed(self, old: InventoryEntry) -> bool:
        """The code its cached tasks declare changed since `old` (both knew it: the first
        sync by a version that records code digests is no change)."""
        return bool(old.code_digest and self.code_digest) and old.code_digest != self.code_digest


@dataclasses.dataclass(frozen=True)
class Source:
    """The GitSource being synced and the commit at hand."""

    namespace: str
    name: str
    path: str  # normalised, '' for the repository root
    commit: str
    message: str  # the commit messages since the last applied commit (trailers)
    prune: bool = False
    max_delete_percent: int = DEFAULT_MAX_DELETE_PERCENT
    allow_mass_deletion: bool = False
    ignore: tuple[str, ...] = ()
    #: per Pipeline name, the code digests of its cached tasks' `cache.paths` at the
    #: commit (gitops.codeids), recorded on the Pipeline for its runs' cache keys
    code: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Plan:
    apply: tuple[Desired, ...]  # server-side apply, in this order
    create: tuple[Desired, ...]  # Runs: create once (an existing name is left alone)
    prune: tuple[InventoryEntry, ...]  # delete (only when prune is on and not refused)
    inventory: tuple[InventoryEntry, ...]  # after every step succeeded
    issues: tuple[Issue, ...]  # per-file errors and warnings, sorted
    kept: tuple[InventoryEntry, ...]  # last good versions kept because their file is broken
    refused: str | None = None  # why nothing at all is done for this commit

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == ERROR)


def allows_mass_deletion(message: str) -> bool:
    """Whether the commit message carries the `pipesync: allow-mass-deletion` line."""
    return bool(_TRAILER.search(message))


def plan(  # noqa: PLR0915 -- one rule after the other, each commented
    source: Source, snapshot: Snapshot, previous: Sequence[InventoryEntry], *, force: bool = False
) -> Plan:
    """`force`: apply every object, changed or not (a manual reconcile request)."""
    issues: list[Issue] = [
        Issue(p.file, p.line, p.column, p.message)
        for p in snapshot.problems
        if not _ignored(p.file, source)
    ]
    broken_files = {p.file for p in snapshot.problems}
    desired: dict[str, Desired] = {}
    for resource in snapshot.resources:
        file = resource.source.file
        if _ignored(file, source):
            continue
        namespace = resource.metadata.namespace
        if namespace is not None and namespace != source.namespace:
            issues.append(
                _resource_issue(
                    resource,
                    f"metadata.namespace {namespace!r} is not this source's namespace "
                    f"{source.namespace!r}; a GitSource writes only into its own namespace",
                )
            )
            broken_files.add(file)
            continue
        try:
            item = _desired(resource, source)
        except (TypeError, ValueError) as error:  # a value JSON cannot encode: this file only
            issues.append(
                _resource_issue(
                    resource,
                    f"cannot be applied "
                    f"({type(error).__name__}: {' '.join(str(error).split())[:200]})",
                )
            )
            broken_files.add(file)
            continue
        desired[f"{item.kind}/{item.name}"] = item
    before = {entry.key: entry for entry in previous}

    kept = [
        entry
        for key, entry in before.items()
        if key not in desired and entry.file in broken_files and not _ignored(entry.file, source)
    ]
    kept_keys = {entry.key for entry in kept}
    gone = [
        entry
        for key, entry in before.items()
        if key not in desired and key not in kept_keys and entry.kind != model.Kind.RUN.value
    ]
    managed = [e for e in before.values() if e.kind != model.Kind.RUN.value]

    apply: list[Desired] = []
    create: list[Desired] = []
    inventory: list[InventoryEntry] = list(kept)
    for key, item in desired.items():
        old = before.get(key)
        if item.kind == model.Kind.RUN.value:
            if old is None:
                create.append(item)
                inventory.append(item.entry())
            else:
                inventory.append(old)  # created once; the first version is what ran
                if old.object_digest != item.object_digest:
                    line, column = _start(snapshot, key)
                    issues.append(
                        Issue(
                            item.file,
                            line,
                            column,
                            f"Run {item.name!r} was created from an earlier version of this "
                            "file; edits of a Run file are not applied (runs are created "
                            "once: rename the Run to start another)",
                            WARNING,
                        )
                    )
            continue
        inventory.append(item.entry())
        if force or old is None or old.object_digest != item.object_digest:
            apply.append(item)
        # A new version, or new code under its tasks' cache paths: what a run of the last
        # version computed is no longer what this commit would compute.
        changed = old is None or old.digest != item.digest or item.code_changed(old)
        if item.kind == model.Kind.PIPELINE.value and _on_change(item.body) and changed:
            create.append(_change_run(item, source))

    refused = None
    prune: list[InventoryEntry] = []
    if source.prune and gone:
        share = 100.0 * len(gone) / max(len(managed), 1)
        allowed = source.allow_mass_deletion or allows_mass_deletion(source.message)
        if share > source.max_delete_percent and not allowed:
            refused = (
                f"commit {source.commit[:12]} would prune {len(gone)} of the {len(managed)} "
                f"objects this source applied ({share:.0f}% > "
                f"pruneSafety.maxDeletePercent {source.max_delete_percent}%); nothing was "
                f"applied. Push a commit that restores them, set "
                f"spec.pruneSafety.allowMassDeletion, or add the line "
                f"'{MASS_DELETION_TRAILER}' to the commit message"
            )
        else:
            prune = sorted(gone, key=lambda e: (e.kind, e.name))
    inventory.sort(key=lambda e: (e.kind, e.name))
    issues.sort(key=lambda i: (i.file, i.line, i.column, i.message))
    _kinds_first(apply)
    return Plan(
        apply=tuple(apply),
        create=tuple(create),
        prune=tuple(prune),
        inventory=tuple(inventory),
        issues=tuple(issues),
        kept=tuple(sorted(kept, key=lambda e: (e.kind, e.name))),
        refused=refused,
    )


# --- internals -----------------------------------------------------------------------------


def _resource_issue(resource: Resource, message: str) -> Issue:
    """A problem of one resource, at its document's start, named by kind and name."""
    start = resource.source.start
    return Issue(
        resource.source.file,
        start.line,
        start.column,
        f"{resource.kind.value} {resource.name!r}: {message}",
    )


def _ignored(file: str, source: Source) -> bool:
    """gitignore-like: 'drafts/' ignores a folder anywhere, a pattern with '/' matches
    the path relative to the source path, one without matches any file name."""
    if not source.ignore:
        return False
    relative = file[len(source.path) + 1 :] if source.path else file
    parts = relative.split("/")
    for pattern in source.ignore:
        if pattern.endswith("/"):
            folder = pattern.strip("/")
            if "/" in folder:
                if relative.startswith(folder + "/"):
                    return True
            elif any(fnmatch.fnmatchcase(part, folder) for part in parts[:-1]):
                return True
        elif "/" in pattern.strip("/"):
            if fnmatch.fnmatchcase(relative, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(parts[-1], pattern):
            return True
    return False


def _desired(resource: Resource, source: Source) -> Desired:
    kind = resource.kind.value
    labels = {
        **resource.metadata.labels,
        conventions.LABEL_SOURCE: conventions.label_value(source.name),
    }
    annotations = {
        **resource.metadata.annotations,
        conventions.ANNOTATION_SOURCE: source.name,
        conventions.ANNOTATION_FILE: resource.source.file,
    }
    code = source.code.get(resource.name) if resource.kind is model.Kind.PIPELINE else None
    code_digest = ""
    if resource.kind is model.Kind.PIPELINE:
        annotations[conventions.ANNOTATION_SOURCE_PATH] = source.path or "."
    if code:
        text = json.dumps(dict(code), sort_keys=True, separators=(",", ":"))
        annotations[conventions.ANNOTATION_CODE_DIGESTS] = text
        code_digest = conventions.spec_digest(dict(code))[:27]
    spec = dict(resource.spec)
    body: dict[str, Any] = {
        "apiVersion": model.API_VERSION,
        "kind": kind,
        "metadata": {
            "name": resource.name,
            "namespace": source.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
    }
    # A Pipeline is applied again at every new commit: its commit annotation is what a run
    # pins, and the tree at that commit (steps/ code) may change without the YAML changing.
    # Other kinds keep the commit they were last changed at: no write for an unchanged file.
    pinned = {"commit": source.commit} if resource.kind is model.Kind.PIPELINE else {}
    object_digest = conventions.spec_digest({**body, **pinned})[
        :27
    ]  # sha256: + 20 hex: status size
    body["metadata"]["annotations"][conventions.ANNOTATION_COMMIT] = source.commit
    return Desired(
        kind,
        resource.name,
        resource.source.file,
        body,
        conventions.spec_digest(spec),
        object_digest,
        code_digest,
    )


def _on_change(body: Mapping[str, Any]) -> bool:
    trigger = (body.get("spec") or {}).get("trigger") or {}
    return isinstance(trigger, Mapping) and trigger.get("onChange") is True


def _change_run(pipeline: Desired, source: Source) -> Desired:
    name = conventions.triggered_run_name(pipeline.name, source.commit)
    spec = {"pipelineRef": {"name": pipeline.name, "version": pipeline.digest[7:19]}}
    body: dict[str, Any] = {
        "apiVersion": model.API_VERSION,
        "kind": model.Kind.RUN.value,
        "metadata": {
            "name": name,
            "namespace": source.namespace,
            "labels": {
                conventions.LABEL_SOURCE: conventions.label_value(source.name),
                conventions.LABEL_PIPELINE: conventions.label_value(pipeline.name),
            },
            "annotations": {
                conventions.ANNOTATION_SOURCE: source.name,
                conventions.ANNOTATION_FILE: pipeline.file,
                conventions.ANNOTATION_COMMIT: source.commit,
                conventions.ANNOTATION_TRIGGER: "onChange",
            },
        },
        "spec": spec,
    }
    return Desired(
        model.Kind.RUN.value, name, pipeline.file, body, conventions.spec_digest(spec), ""
    )


def _start(snapshot: Snapshot, key: str) -> tuple[int, int]:
    for resource in snapshot.resources:
        if resource_key(resource) == key:
            return resource.source.start.line, resource.source.start.column
    return 1, 1


def _kinds_first(items: list[Desired]) -> None:
    """Experiments before Pipelines before RecurringRuns: what refers comes after what it
    refers to, so a controller reacting at once finds its references."""
    order = {"Experiment": 0, "Pipeline": 1, "RecurringRun": 2}
    items.sort(key=lambda d: (order.get(d.kind, 3), d.name))
