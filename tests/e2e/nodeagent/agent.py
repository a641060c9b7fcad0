"""Wires the agent together: nodes, kubelet ports, pod watches, reaper.

One kubelet HTTPS server per node (each node's status advertises its own
port), one pod watch thread per node, one heartbeat thread, one reaper.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from .hostpaths import HostPaths
from .kube import Kube
from .logserver import KubeletServer
from .logstore import LogRegistry
from .nodes import NodeKeeper, keep_alive
from .nodespec import DEFAULT_NODES, NodeSpec
from .podwatch import PodManager, watch_pods
from .podworker import NodeContext
from .procs import ProcessTable
from .tlscert import write_self_signed

log = logging.getLogger(__name__)

# What a container inherits from the agent: enough to find programs and a home.
PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")


def base_env(environ: Mapping[str, str]) -> dict[str, str]:
    env = {k: environ[k] for k in PASSED_ENV if k in environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


class Agent:
    def __init__(
        self, kube: Kube, state_dir: Path, specs: Sequence[NodeSpec] = DEFAULT_NODES
    ) -> None:
        self.kube = kube
        self.state_dir = state_dir
        self.specs = specs
        self.stop = threading.Event()
        self.procs = ProcessTable(state_dir / "pids")
        self.host_paths = HostPaths()
        self.servers: list[KubeletServer] = []
        self.managers: list[PodManager] = []
        self.threads: list[threading.Thread] = []

    def _thread(self, name: str, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self.threads.append(thread)

    def start(self) -> dict[str, int]:
        """Register the nodes and start serving; return node name -> kubelet port."""
        cert, key = write_self_signed(self.state_dir / "tls", "pipesync-nodeagent")
        self._thread("reaper", self.procs.reaper, self.stop)
        keepers = []
        ports: dict[str, int] = {}
        env = base_env(os.environ)
        for spec in self.specs:
            registry = LogRegistry()
            server = KubeletServer(registry, cert, key)
            server.start()
            self.servers.append(server)
            keeper = NodeKeeper(self.kube, spec, server.port)
            keeper.register()
            keepers.append(keeper)
            ports[spec.name] = server.port
            manager = PodManager(
                NodeContext(
                    kube=self.kube,
                    node=spec.name,
                    state_dir=self.state_dir,
                    procs=self.procs,
                    host_paths=self.host_paths,
                    logs=registry,
                    base_env=env,
                )
            )
            self.managers.append(manager)
            self._thread(f"watch-{spec.name}", watch_pods, self.kube, manager, self.stop)
        for keeper in keepers:
            keeper.strip_health_taints()
        self._thread("heartbeat", keep_alive, keepers, self.stop)
        (self.state_dir / "agent.json").write_text(json.dumps({"pid": os.getpid(), "ports": ports}))
        return ports

    def shutdown(self) -> None:
        """Stop every pod process (briefly graceful), then the servers."""
        self.stop.set()
        for manager in self.managers:
            manager.shutdown()
        self.procs.kill_all()
        for server in self.servers:
            server.stop()
