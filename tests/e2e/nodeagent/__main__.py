"""Command line entry: ``python -m tests.e2e.nodeagent --kubeconfig K --state-dir D``.

The agent must not outlive the test run that started it: with --parent-pid it
asks the kernel for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), and
on SIGTERM/SIGINT it stops every pod process before exiting. It is also a
child subreaper, so processes that pods leave behind are re-parented to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .agent import Agent
from .kube import Kube
from .procs import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, prctl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.nodeagent")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="exit when this process (the one that started us) dies",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s",
    )
    if args.parent_pid is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != args.parent_pid:  # it died before prctl took effect
            return 1
    prctl(PR_SET_CHILD_SUBREAPER, 1)

    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())

    args.state_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(Kube.from_kubeconfig(args.kubeconfig), args.state_dir)
    try:
        ports = agent.start()
        logging.info("node agent ready: %s", ports)
        while not stopping.wait(1.0):
            pass
    finally:
        logging.info("node agent stopping")
        agent.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
