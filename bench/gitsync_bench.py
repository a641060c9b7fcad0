"""P3: a cold GitSource sync of 1,000 objects versus `kubectl apply --server-side` of the
same objects, and a no-op re-sync, on the e2e suite's real control plane and S3 server
(bench/stack.py).

The repository: 700 Pipelines, 200 Experiments and 100 RecurringRuns, one file each,
committed to a local bare repository (file://: git transport costs are git's, not ours).

Cold sync: one pass of the GitSource controller (pipesync.controllers.gitsources, run in
this process with its own counted `KubeClient`) for a new GitSource in a fresh namespace with an
empty mirror cache: clone, read and validate every file, plan, upload the repository
archive to S3, server-side apply every object, write the status. Baseline, in the same
run: `kubectl apply --server-side` of a file holding exactly the objects the sync applied
(same labels and annotations) into another fresh namespace. After an untimed warm-up
sync, four rounds alternate which of the two goes first; best of the rounds each.

No-op re-sync: the next pass of the same source with nothing new in git: a fetch, one GET
of the GitSource, and (the figure) zero writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from bench.figures import Figure, Section
from bench.stack import Stack
from pipesync.controllers import gitsources
from pipesync.kube.client import KubeClient
from pipesync.runtime import storage

SECTION = "gitsync"
TARGET_RATIO = 1.0
TARGET_NOOP_SECONDS = 0.3
Say = Callable[[str], None]
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@pipesync.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@pipesync.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def repository(root: Path, pipelines: int, experiments: int, recurring: int) -> str:
    """A bare repository whose main branch holds the objects; returns its file:// URL."""
    work = root / "work"
    for index in range(pipelines):
        _write(
            work / "pipelines" / f"p{index:04d}.yaml",
            {
                "apiVersion": "pipesync.io/v1alpha1",
                "kind": "Pipeline",
                "metadata": {"name": f"p{index:04d}"},
                "spec": {
                    "params": [{"name": "size", "type": "integer", "default": index}],
                    "tasks": [
                        {"name": "a", "image": "busybox:1.36", "command": ["echo", "a"]},
                        {
                            "name": "b",
                            "image": "busybox:1.36",
                            "command": ["echo", "{{params.size}}"],
                            "dependsOn": ["a"],
                        },
                    ],
                },
            },
        )
    for index in range(experiments):
        _write(
            work / "experiments" / f"e{index:04d}.yaml",
            {
                "apiVersion": "pipesync.io/v1alpha1",
                "kind": "Experiment",
                "metadata": {"name": f"e{index:04d}"},
                "spec": {"description": f"experiment {index}"},
            },
        )
    for index in range(recurring):
        _write(
            work / "recurring-runs" / f"r{index:04d}.yaml",
            {
                "apiVersion": "pipesync.io/v1alpha1",
                "kind": "RecurringRun",
                "metadata": {"name": f"r{index:04d}"},
                "spec": {
                    "pipelineRef": {"name": f"p{index:04d}"},
                    "schedule": {"cron": "0 3 * * *"},
                    "suspend": True,  # nothing fires while the bench runs
                },
            },
        )
    bare = root / "repo.git"
    _git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    _git(work, "init", "-q", "-b", "main")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "1,000 objects")
    _git(work, "push", "-q", str(bare), "HEAD:refs/heads/main")
    return bare.as_uri()


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def _git(cwd: Path, *args: str) -> None:
    cwd.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["git", *args], cwd=cwd, env={**os.environ, **_GIT_ENV}, check=True, capture_output=True
    )


def _kube(stack: Stack) -> KubeClient:
    assert stack.cluster is not None
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(stack.cluster.kubeconfig), client_configuration=configuration
    )
    configuration.connection_pool_maxsize = 20
    return KubeClient(kubernetes.client.ApiClient(configuration))


def _writes(kube: KubeClient) -> int:
    return sum(n for (verb, _), n in kube.requests.items() if verb not in ("get", "list"))


def _create_source(stack: Stack, namespace: str, url: str) -> None:
    stack.kubectl("create", "namespace", namespace)
    body = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "GitSource",
        "metadata": {"name": "repo", "namespace": namespace},
        "spec": {"url": url, "ref": {"branch": "main"}, "interval": "1h", "prune": True},
    }
    stack.kubectl("apply", "-f", "-", input=json.dumps(body))


def _baseline_file(stack: Stack, synced: str, target: str, path: Path) -> int:
    """The objects the sync applied, as they are (labels, annotations, spec), for
    `kubectl apply` into another namespace."""
    documents = []
    for plural in ("pipelines", "experiments", "recurringruns"):
        listed = json.loads(stack.kubectl("get", plural, "-n", synced, "-o", "json").stdout)
        for item in listed["items"]:
            metadata = item["metadata"]
            annotations = {
                k: v for k, v in (metadata.get("annotations") or {}).items() if "kopf" not in k
            }
            documents.append(
                {
                    "apiVersion": item["apiVersion"],
                    "kind": item["kind"],
                    "metadata": {
                        "name": metadata["name"],
                        "namespace": target,
                        "labels": metadata.get("labels") or {},
                        "annotations": annotations,
                    },
                    "spec": item["spec"],
                }
            )
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return len(documents)


def measure(quick: bool, say: Say) -> Section:  # noqa: PLR0915 -- one script, top to bottom
    section = Section("GitSource sync (P3)")
    count = 100 if quick else 1000
    pipelines, experiments = count * 7 // 10, count * 2 // 10
    recurring = count - pipelines - experiments
    repeats = 1 if quick else 4
    with Stack() as stack, tempfile.TemporaryDirectory(prefix="pipesync-gitsync-") as scratch:
        say("starting control plane, node agent, S3 ...")
        stack.start()
        root = Path(scratch)
        url = repository(root / "git", pipelines, experiments, recurring)
        assert stack.s3 is not None
        os.environ.update(stack.s3.env())
        store = storage.S3Store(
            storage.S3Settings(
                bucket=stack.s3.bucket,
                endpoint_url=stack.s3.endpoint_url,
                region=stack.s3.region,
            )
        )
        sync_times: list[float] = []
        kubectl_times: list[float] = []
        cold_writes = 0
        kube = _kube(stack)
        controller = gitsources.GitSourceController(kube, store, None, cache=root / "cache")
        # Warm-up, not timed: the API server's first requests for each kind (discovery,
        # the apply type converter) and the objects the kubectl baseline applies.
        _create_source(stack, "bench-warm", url)
        controller.reconcile("bench-warm", "repo")
        documents = root / "baseline.yaml"
        applied = _baseline_file(stack, "bench-warm", "TARGET", documents)
        template = documents.read_text()

        def cold_sync(namespace: str) -> None:
            nonlocal cold_writes
            _create_source(stack, namespace, url)
            writes_before = _writes(kube)
            started = time.perf_counter()
            controller.reconcile(namespace, "repo")
            sync_times.append(time.perf_counter() - started)
            cold_writes = _writes(kube) - writes_before
            status = kube.get_object("gitsources", namespace, "repo") or {}
            inventory = len((status.get("status") or {}).get("inventory") or [])
            if inventory != count:
                raise RuntimeError(f"the sync applied {inventory} of {count}: {status}")
            say(f"  cold sync: {sync_times[-1]:.2f} s, {cold_writes} writes")

        def kubectl_apply(namespace: str) -> None:
            stack.kubectl("create", "namespace", namespace)
            target = root / f"{namespace}.yaml"
            target.write_text(template.replace("namespace: TARGET", f"namespace: {namespace}"))
            started = time.perf_counter()
            stack.kubectl(
                "apply", "--server-side", "--field-manager=pipesync", "-f", str(target),
                timeout=900,
            )  # fmt: skip
            kubectl_times.append(time.perf_counter() - started)
            say(f"  kubectl apply --server-side {applied}: {kubectl_times[-1]:.2f} s")

        for attempt in range(repeats):
            # Alternate which goes first: neither gets a systematically quieter machine.
            first_sync = attempt % 2 == 0
            if first_sync:
                cold_sync(f"bench-sync-{attempt}")
            kubectl_apply(f"bench-kubectl-{attempt}")
            if not first_sync:
                cold_sync(f"bench-sync-{attempt}")
        ratio = min(sync_times) / min(kubectl_times)
        pairs = zip(sync_times, kubectl_times, strict=True)
        paired = ", ".join(f"{a / b:.2f}" for a, b in pairs)
        section.figures.append(
            Figure(
                SECTION,
                f"cold sync of {count} objects / kubectl apply --server-side",
                ratio,
                "x",
                target=f"P3: <= {TARGET_RATIO}",
                met=ratio <= TARGET_RATIO,
                margin=f"{(ratio / TARGET_RATIO - 1) * 100:+.0f}% vs target",
                note=f"sync {min(sync_times):.2f} s (clone, validate, plan, S3 archive, "
                f"{cold_writes} API writes incl. status; {gitsources.APPLY_WORKERS} apply "
                f"threads) vs kubectl {min(kubectl_times):.2f} s; best of {repeats} each, "
                f"alternating which runs first; paired ratios "
                f"{paired}",
            )
        )
        noop: list[float] = []
        noop_writes = 0
        for _ in range(5):
            before = _writes(kube)
            started = time.perf_counter()
            controller.reconcile("bench-sync-0", "repo")
            noop.append(time.perf_counter() - started)
            noop_writes += _writes(kube) - before
        say(f"  no-op re-syncs: {[round(s, 3) for s in noop]} s, {noop_writes} writes")
        section.figures.append(
            Figure(
                SECTION,
                "no-op re-sync: API writes",
                float(noop_writes),
                "writes",
                target="P3: 0 writes",
                met=noop_writes == 0,
                margin=f"{noop_writes} writes in 5 re-syncs",
                note="the same revision and spec again: a fetch, one GET, nothing written",
            )
        )
        best = min(noop)
        section.figures.append(
            Figure(
                SECTION,
                "no-op re-sync: wall time",
                best,
                "s",
                target=f"P3: <= {TARGET_NOOP_SECONDS} s",
                met=best <= TARGET_NOOP_SECONDS,
                margin=f"{(best / TARGET_NOOP_SECONDS - 1) * 100:+.0f}% vs target",
                note=f"best of 5, median {sorted(noop)[2]:.3f} s (git fetch of an unchanged "
                f"file:// remote and a GET of a GitSource with {count} inventory entries)",
            )
        )
    return section


if __name__ == "__main__":
    import sys

    result = measure("--quick" in sys.argv, lambda text: print(text, flush=True))
    for figure in result.figures:
        print(f"{figure.name}: {figure.value:.3g} {figure.unit} {figure.margin} | {figure.note}")
