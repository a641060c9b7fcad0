"""The cluster the operator figures are measured on: the e2e suite's real components,
started outside pytest.

Why reuse tests/e2e/fixtures: the operator bench must measure the same control plane, node
agent and S3 server the e2e tests prove correct, not a second setup that drifts. The
fixtures' classes (LocalControlPlane, S3Server, ManagedProcess) are used directly; only the
node agent is started here, as the `nodes` fixture does (that fixture is pytest-only).

Everything started here is stopped by `Stack.close()` (also at interpreter exit through the
fixtures' own atexit hook and PR_SET_PDEATHSIG), so no process outlives the bench.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
from tests.e2e.fixtures.controlplane import (
    Cluster,
    LocalControlPlane,
    ManagedProcess,
)
from tests.e2e.fixtures.nodes import _ready_nodes, _stop
from tests.e2e.fixtures.operator import PIPESYNC, REPO, operator_command
from tests.e2e.fixtures.processes import free_port
from tests.e2e.fixtures.s3 import S3Server
from tests.e2e.nodeagent.nodespec import DEFAULT_NODES

READY_TIMEOUT_S = 60.0
WATCHED_RESOURCES = 4


class Stack:
    """Control plane + CRDs + node agent (cpu-1, gpu-1) + S3; operators started on demand."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="pipesync-bench-")
        self.workdir = Path(self._tmp.name)
        self.plane: LocalControlPlane | None = None
        self.cluster: Cluster | None = None
        self.s3: S3Server | None = None
        self.agent: subprocess.Popen[bytes] | None = None
        self.agent_state = self.workdir / "nodeagent"
        self.operators: list[ManagedProcess] = []
        self.metrics_port = free_port()

    def start(self) -> Cluster:
        self.plane = LocalControlPlane(self.workdir / "controlplane")
        self.cluster = self.plane.start()
        crds = str(REPO / "crds")
        self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", crds)
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", crds)
        self.s3 = S3Server(self.workdir / "s3")
        self.s3.start()
        self._start_agent(self.cluster)
        return self.cluster

    def _start_agent(self, cluster: Cluster) -> None:
        self.agent_state.mkdir(parents=True)
        env = dict(os.environ)
        # Pods run `pipesync agent ...` and `sh`: the venv's bin first on PATH.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        with (self.agent_state / "agent.log").open("wb") as log:
            self.agent = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.e2e.nodeagent",
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "--state-dir",
                    str(self.agent_state),
                    "--parent-pid",
                    str(os.getpid()),
                ],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wanted = {n.name for n in DEFAULT_NODES}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while wanted - _ready_nodes(cluster):
            if self.agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("node agent not ready; see " + str(self.agent_state))
            time.sleep(0.5)

    def operator_argv(self, namespace: str, *, counted_to: Path | None = None) -> list[str]:
        """`pipesync operator` as tests/e2e/fixtures/operator.py starts it, for one namespace.

        With `counted_to`, it runs under bench.countingop, which counts every HTTP request
        the process sends to the API server and writes the counts to that file."""
        assert self.cluster is not None and self.s3 is not None
        if counted_to is None:
            command = [str(PIPESYNC)]
        else:
            command = [sys.executable, "-m", "bench.countingop", str(counted_to)]
        return operator_command(
            self.cluster.kubeconfig,
            self.s3,
            "--namespace",
            namespace,
            "--metrics-address",
            f"127.0.0.1:{self.metrics_port}",
            env={"PYTHONPATH": str(REPO)},
            command=command,
        )

    def start_operator(
        self, namespace: str, *, counted_to: Path | None = None, label: str = "operator"
    ) -> ManagedProcess:
        """Starts an operator; returns once its /healthz answers and, when counted, once it
        opened its watches (kopf logs nothing at start-up we could wait for)."""
        log = self.workdir / f"{label}-{len(self.operators)}.log"
        self.metrics_port = free_port()  # the newest operator's; the others may still run
        process = ManagedProcess(label, self.operator_argv(namespace, counted_to=counted_to), log)
        process.start()
        self.operators.append(process)
        deadline = time.monotonic() + 90
        while not self._ready(counted_to):
            if not process.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the operator did not start:\n{process.tail(40)}")
            time.sleep(0.1)
        return process

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def _ready(self, counted_to: Path | None) -> bool:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status != 200:
                    return False
        except OSError:
            return False
        if counted_to is None:
            return True
        try:
            counts: dict[str, int] = json.loads(counted_to.read_text())
        except (OSError, ValueError):
            return False
        # Pipelines, experiments, runs and pods: a watch each, answered 200.
        watches = sum(
            n for key, n in counts.items() if key.startswith("WATCH ") and key.endswith(" 200")
        )
        return watches >= WATCHED_RESOURCES

    def api(self) -> kubernetes.client.ApiClient:
        assert self.cluster is not None
        return self.cluster.api_client()

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert self.cluster is not None
        return self.cluster.kubectl(*args, **kwargs)

    def close(self) -> None:
        for process in self.operators:
            process.stop()
        if self.agent is not None:
            _stop(self.agent, self.agent_state)
        if self.s3 is not None:
            self.s3.stop()
        if self.plane is not None:
            self.plane.stop()
        with contextlib.suppress(OSError):
            self._tmp.cleanup()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, in bytes (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
