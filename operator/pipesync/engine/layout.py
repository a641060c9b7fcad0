"""Where a run's records, outputs and logs live: one key layout for S3 and local disks.

    <namespace>/runs/<run>/run.json
    <namespace>/runs/<run>/cached.json               (the tasks the cache served the run)
    <namespace>/runs/<run>/<task>[/<instance>]/outputs/parameters/<name>
    <namespace>/runs/<run>/<task>[/<instance>]/outputs/artifacts/<name>
    <namespace>/runs/<run>/<task>[/<instance>]/logs/attempt-<n>.log
    <namespace>/sources/<gitsource>/<commit>.tar.gz   (the repository tree at a commit)
    <namespace>/cache/<key>.json                      (a task cache entry: engine.cache)

Every part is a validated name (DNS-1123 or identifier), an integer or a hex digest, so
no key can climb out of its prefix.
"""

from __future__ import annotations


def run_prefix(namespace: str, run: str) -> str:
    return f"{namespace}/runs/{run}"


def record_key(namespace: str, run: str) -> str:
    return f"{run_prefix(namespace, run)}/run.json"


def cached_nodes_key(namespace: str, run: str) -> str:
    """Which of a run's tasks the operator served from the task cache, with what: they
    have no pod to remember them by (task names are DNS labels: never `cached.json`)."""
    return f"{run_prefix(namespace, run)}/cached.json"


def node_prefix(namespace: str, run: str, task: str, instance: int | None = None) -> str:
    return f"{run_prefix(namespace, run)}/{node_path(task, instance)}"


def node_path(task: str, instance: int | None = None) -> str:
    """A task's or forEach instance's folder inside its run's."""
    return task if instance is None else f"{task}/{instance}"


def output_parameter_key(node: str, name: str) -> str:
    return f"{node}/outputs/parameters/{name}"


def output_artifact_key(node: str, name: str) -> str:
    return f"{node}/outputs/artifacts/{name}"


def log_key(node: str, attempt: int) -> str:
    return f"{node}/logs/attempt-{attempt}.log"


def source_archive_key(namespace: str, source: str, commit: str) -> str:
    """The tar.gz of a GitSource's repository tree at a commit: task pods unpack it as
    their working directory, so they need no git credentials."""
    return f"{namespace}/sources/{source}/{commit}.tar.gz"


def cache_entry_key(namespace: str, key: str) -> str:
    """A task cache entry; `key` is engine.cache.cache_key's hex digest. The namespace's
    own prefix: one namespace's runs never read another's results."""
    if not key or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"not a cache key: {key!r}")
    return f"{namespace}/cache/{key}.json"
