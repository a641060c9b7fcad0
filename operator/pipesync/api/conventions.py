"""The names pipesync writes onto Kubernetes objects, each defined once.

Labels, annotations, container names, the pinned-spec ConfigMap and the names of the
Runs pipesync creates are a contract between writers and readers in different layers
(the pod builder writes a label the Run controller, the metrics and the S3 mirror select
on; the GitSource sync writes an annotation the Pipeline controller reads back). They
live here, in the lowest layer, so a writer and its readers cannot drift apart, and so
does the one rule that turns any name into a valid label value.

Pure: no I/O, no clock (times are passed in).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

# --- labels ---------------------------------------------------------------------------
# Label values are at most 63 characters: every value written goes through label_value.

#: On task pods: the Run, task, pipeline, experiment, forEach instance and attempt.
LABEL_RUN = "pipesync.io/run"
LABEL_TASK = "pipesync.io/task"
#: On task pods, and on the Runs a Pipeline's `trigger.onChange` starts.
LABEL_PIPELINE = "pipesync.io/pipeline"
LABEL_EXPERIMENT = "pipesync.io/experiment"
LABEL_INSTANCE = "pipesync.io/instance"
LABEL_ATTEMPT = "pipesync.io/attempt"
#: On every object a GitSource applied: which source (only its own are ever pruned).
LABEL_SOURCE = "pipesync.io/source"
#: On every Run a RecurringRun starts, for selecting them (the full name is an annotation).
LABEL_RECURRING_RUN = "pipesync.io/recurring-run"
#: On nodes: the pool a node belongs to (`pool: gpu` selects `pipesync.io/pool=gpu`).
LABEL_POOL = "pipesync.io/pool"
#: On the replica's own pod: "true" on the leader, "false" on a standby. The chart's
#: webhook Service selects it: a standby's receiver knows no GitSource and would answer 404.
LABEL_LEADER = "pipesync.io/leader"
#: On task pods: only pods carrying this label with MANAGED_BY are pipesync's to read.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "pipesync"

# --- annotations ----------------------------------------------------------------------

#: On objects a GitSource applied: the source, the file and the commit they came from.
ANNOTATION_SOURCE = "pipesync.io/source"
ANNOTATION_FILE = "pipesync.io/path"
ANNOTATION_COMMIT = "pipesync.io/commit"
#: On Pipelines: the GitSource's path, the repository folder the tasks start in.
ANNOTATION_SOURCE_PATH = "pipesync.io/source-path"
#: On Pipelines: the sha256 of the repository archive the GitSource uploaded for the
#: commit; task pods refuse an archive that differs (someone replaced the key).
ANNOTATION_ARCHIVE_DIGEST = "pipesync.io/archive-sha256"
#: On Pipelines: the digest of each `cache.paths` its cached tasks declare at the commit
#: (JSON, by engine.cache.code_paths_key); runs pin it and key tasks on their code.
ANNOTATION_CODE_DIGESTS = "pipesync.io/code-digests"
#: On Pipelines read from a KFP file: the format ("kfp-ir") and KFP's own pipeline name
#: (the Pipeline's name is that name made a DNS label).
ANNOTATION_FORMAT = "pipesync.io/format"
ANNOTATION_KFP_PIPELINE_NAME = "pipesync.io/kfp-pipeline-name"
#: On onChange Runs: what started them.
ANNOTATION_TRIGGER = "pipesync.io/trigger"
#: On Runs a RecurringRun starts: its full name (the label value may be hashed) and the
#: time the Run was due.
ANNOTATION_RECURRING_RUN = "pipesync.io/recurring-run"
ANNOTATION_SCHEDULED = "pipesync.io/scheduled-time"
#: On Runs the UI re-ran: the original.
ANNOTATION_RERUN_OF = "pipesync.io/rerun-of"
#: On Runs the UI re-ran with the original's pin: the UI writes the pinned-spec ConfigMap
#: just after the Run (it must own it), so the operator waits for it a little
#: (PIN_HANDOVER_SECONDS) instead of pinning the reference's current version itself.
ANNOTATION_PIN_HANDOVER = "pipesync.io/pin-handover"
#: How long after its creation a Run with ANNOTATION_PIN_HANDOVER waits for its pin; then
#: the operator pins it itself (the UI died between its two writes).
PIN_HANDOVER_SECONDS = 30.0
#: On GitSources: set it (any new value, e.g. a timestamp) to force a sync now; the value
#: handled last is echoed in status.lastHandledReconcileAt. A forced sync re-applies
#: every object, which also undoes edits made to them in the cluster.
ANNOTATION_RECONCILE_AT = "pipesync.io/reconcile-at"
#: On task pods: "<task index>/<instance>" (instance -1 for a plain task), the NodeKey.
ANNOTATION_NODE_KEY = "pipesync.io/node-key"
#: On task pods: the S3 key prefix of the node's outputs.
ANNOTATION_NODE_PREFIX = "pipesync.io/node-prefix"
#: On task pods whose task caches: the attempt's cache key (engine.cache), under which
#: the operator stores its results once it succeeds.
ANNOTATION_CACHE_KEY = "pipesync.io/cache-key"
#: The operator's finalizer on Runs.
FINALIZER = "pipesync.io/operator"

# --- task pods ------------------------------------------------------------------------

#: The three containers of a task pod: inputs (init), the user's program, outputs.
INPUTS_CONTAINER = "pipesync-inputs"
MAIN_CONTAINER = "main"
OUTPUTS_CONTAINER = "pipesync-outputs"

# --- the pinned spec ------------------------------------------------------------------

#: The key of the pinned-spec ConfigMap holding {"spec": ..., "pipeline": ...} as JSON.
PINNED_SPEC_KEY = "spec.json"


def pinned_config_name(run: str) -> str:
    """The ConfigMap holding a run's pinned pipeline spec (key PINNED_SPEC_KEY)."""
    return f"{run}-pipeline"[:253]


# --- names ----------------------------------------------------------------------------

#: Label values, and the names of the Runs pipesync makes (they become label values).
MAX_LABEL_VALUE = 63
_HASH_CHARS = 8
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_NOT_IN_LABEL_VALUE = re.compile(r"[^-A-Za-z0-9_.]+")


def short_hash(text: str) -> str:
    """Eight hex digits of the text's sha256: keeps cut names apart."""
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH_CHARS]


def label_value(value: str) -> str:
    """Any name as a valid label value (at most 63 characters, letters, digits, '-', '_'
    and '.', alphanumeric at both ends). A valid value stays as it is; any other is cleaned,
    cut and keeps a hash of itself, so two long names with the same beginning still
    differ and the same name always gives the same value (selectors find it again)."""
    if len(value) <= MAX_LABEL_VALUE and (not value or _LABEL_VALUE.match(value)):
        return value
    room = MAX_LABEL_VALUE - _HASH_CHARS - 1
    cleaned = _NOT_IN_LABEL_VALUE.sub("-", value)[:room].strip("-_.")
    return f"{cleaned}-{short_hash(value)}" if cleaned else short_hash(value)


def _cut(base: str, tail: str) -> str:
    """`<base>-<tail>` within MAX_LABEL_VALUE; a base too long is cut and keeps a hash of
    itself before the tail."""
    name = f"{base}-{tail}"
    if len(name) <= MAX_LABEL_VALUE:
        return name
    prefix = base[: MAX_LABEL_VALUE - len(tail) - _HASH_CHARS - 2].rstrip("-.")
    return f"{prefix}-{short_hash(base)}-{tail}"


def _stamp(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y%m%d%H%M%S")


def recurring_run_name(recurring_run: str, scheduled: int) -> str:
    """`<recurring run>-<yyyymmddhhmmss>` (UTC): one name per scheduled time, so a second
    attempt to start the same time is refused by the API server as existing."""
    return _cut(recurring_run, _stamp(scheduled))


def triggered_run_name(pipeline: str, commit: str) -> str:
    """`<pipeline>-<sha[:10]>`: one Run per pipeline and commit (trigger.onChange)."""
    return _cut(pipeline, commit[:10])


def rerun_name(run: str, now: float) -> str:
    """`<run>-rerun-<yyyymmddhhmmss>` (UTC): the run name is cut to fit."""
    return _derived_name(run, "rerun", now)


def retry_name(run: str, now: float) -> str:
    """`<run>-retry-<yyyymmddhhmmss>` (UTC): a retry from failure (`spec.retryOf`)."""
    return _derived_name(run, "retry", now)


def _derived_name(run: str, word: str, now: float) -> str:
    stamp = _stamp(now)
    base = run[: MAX_LABEL_VALUE - len(stamp) - len(word) - 2].rstrip("-.")
    return f"{base}-{word}-{stamp}"


def local_run_name(pipeline: str | None, now: float, tail: str) -> str:
    """`<pipeline>-<yyyymmdd-hhmmss>-<tail>` (local time) for `pipesync run`; `tail` (a
    random token) keeps two runs started in the same second apart."""
    stamp = datetime.datetime.fromtimestamp(now).strftime("%Y%m%d-%H%M%S")
    return f"{(pipeline or 'run')[:40]}-{stamp}-{tail}"


# --- digests --------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """The canonical JSON of a value: equal values, equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_digest(spec: Mapping[str, Any]) -> str:
    """`sha256:<hex>` of a spec's canonical JSON: a Pipeline's version is digest[7:19]
    (the Pipeline controller and the GitSource sync must agree on it)."""
    return "sha256:" + hashlib.sha256(canonical_json(spec)).hexdigest()


#: Folders of a working tree that are neither pipeline files nor a task's code: git's own,
#: environments and caches, and `pipesync run`'s default work directory.
NOT_SOURCE_DIRS = frozenset({".git", ".venv", "node_modules", "__pycache__", ".pipesync"})
