"""`pipesync ui`: the web UI on this machine, against the current kubeconfig.

The same app the operator serves at /ui/; here, by default, it acts as the kubeconfig's
identity (no login) and listens on localhost only. `--auth token` asks each visitor for
a Kubernetes token instead, as the operator does.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from pipesync.cli import s3options
from pipesync.observe.endpoint import WsgiApp
from pipesync.runtime import storage

DEFAULT_ADDRESS = "127.0.0.1:8090"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="serve the web UI (experiments, runs, DAGs, logs, artifacts) on this machine",
        description="Serve the read-only web UI against the current kubeconfig. Logs of "
        "finished tasks, artifacts and archived runs are read from S3 (credentials from "
        "the environment, as for boto3).",
    )
    parser.add_argument(
        "--address",
        default=os.environ.get("PIPESYNC_UI_ADDRESS", DEFAULT_ADDRESS),
        metavar="HOST:PORT",
        help=f"listen here (default {DEFAULT_ADDRESS}) [PIPESYNC_UI_ADDRESS]",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="offer only this namespace (repeat for more; default: every namespace you can "
        "list runs in)",
    )
    parser.add_argument(
        "--auth",
        choices=("kubeconfig", "token"),
        default="kubeconfig",
        help="kubeconfig: act as the kubeconfig's user (default); token: every visitor logs "
        "in with a Kubernetes bearer token, checked with TokenReview",
    )
    parser.add_argument("--no-s3", action="store_true", help="do not read S3 at all")
    s3options.add_arguments(parser)
    parser.set_defaults(command=run)


def build(namespaces: Sequence[str], auth_mode: str, store: storage.ObjectStore | None) -> WsgiApp:
    """The WSGI app: the operator mounts it at /ui/ (sharing its S3 store), `pipesync ui`
    serves it alone."""
    from pipesync.controllers import kube  # noqa: PLC0415 - the kubernetes client is slow to load
    from pipesync.ui import app, auth  # noqa: PLC0415

    client = kube.Kube(kube.connect(8))
    return app.UiApp(client, auth.Authenticator(client, auth_mode), store, namespaces)


def run(options: argparse.Namespace) -> int:
    from pipesync.observe import endpoint  # noqa: PLC0415
    from pipesync.ui import app  # noqa: PLC0415

    try:
        store = None if options.no_s3 else s3options.store(options, patience=5.0, maximum=2.0)
        ui = build(options.namespace, options.auth, store)
        server = endpoint.serve_app(ui, options.address)
    except (OSError, ValueError) as error:
        print(f"pipesync ui: {options.address}: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # no kubeconfig, unreachable cluster
        print(f"pipesync ui: cannot reach Kubernetes: {error}", file=sys.stderr)
        return 1
    bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
    print(f"pipesync ui on http://{bound_host}:{bound_port}{app.PREFIX}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0
