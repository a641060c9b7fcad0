"""`pipesync ui`: the web UI on this machine, against the current kubeconfig.

The same app the operator serves at /ui/; here, by default, it acts as the kubeconfig's
identity (no login) and listens on localhost only. `--auth token` asks each visitor for
a Kubernetes token instead, as the operator does.

Why kubeconfig mode refuses other addresses: whoever reaches the port acts as the
kubeconfig's user, with no login; `--allow-remote` says that is meant. And why the Host
check (sessions.Sessions `hosts`): a web page that re-binds its own DNS name to 127.0.0.1 is
same-origin with this server and could cancel and re-run as that user; it cannot make the
browser send Host: localhost.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipesync.cli import flags, s3options
from pipesync.runtime import storage

if TYPE_CHECKING:
    from pipesync.kube.client import KubeClient
    from pipesync.ui.app import UiApp

DEFAULT_ADDRESS = "127.0.0.1:8090"


def add_parser(subparsers: flags.Subcommands) -> None:
    parser = flags.add_command(
        subparsers,
        "ui",
        run,
        help="serve the web UI (experiments, runs, DAGs, logs, artifacts) on this machine",
        description="Serve the read-only web UI against the current kubeconfig. Logs of "
        "finished tasks, artifacts and archived runs are read from S3 (credentials from "
        "the environment, as for boto3).",
    )
    flags.add_env_argument(
        parser,
        "--address",
        "PIPESYNC_UI_ADDRESS",
        default=DEFAULT_ADDRESS,
        metavar="HOST:PORT",
        help=f"listen here (default {DEFAULT_ADDRESS})",
    )
    flags.add_namespaces_argument(
        parser,
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
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="with --auth kubeconfig, listen on a non-loopback address anyway: everyone who "
        "reaches it acts as your kubeconfig's user",
    )
    parser.add_argument("--no-s3", action="store_true", help="do not read S3 at all")
    parser.add_argument(
        "--local",
        metavar="DIR",
        help="also show the local runs (pipesync run) of this work directory, as archived "
        "runs of namespace local (offer it with -n local)",
    )
    s3options.add_arguments(parser)


def build(
    namespaces: Sequence[str],
    auth_mode: str,
    store: storage.ObjectStore | None,
    hosts: Sequence[str] | None = None,
    *,
    counted: Callable[[KubeClient], None] | None = None,
    local: Path | None = None,
) -> UiApp:
    """The WSGI app: the operator mounts it at /ui/ (sharing its S3 store, and handing its
    API request counts to `counted`, the operator's metrics), `pipesync ui` serves it alone.
    `local`: a work directory of `pipesync run`, whose run records have the S3 records'
    format and keys, so the archive source reads it as it reads S3."""
    from pipesync.kube import client as kube  # noqa: PLC0415 - the kubernetes client is slow to load
    from pipesync.ui import app, archived, auth  # noqa: PLC0415

    client = kube.KubeClient(kube.connect(8))
    if counted is not None:
        counted(client)
    more = [] if local is None else [archived.ArchivedRuns(storage.LocalStore(local), "local")]
    return app.UiApp(
        client,
        auth.Authenticator(client, auth_mode),
        store,
        namespaces,
        hosts=hosts,
        more_sources=more,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or a name) reaches this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if not host:
        return False  # every interface
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(f[4][0]).is_loopback for f in found)


def _check_cluster(ui: UiApp) -> str | None:
    """Why the API server cannot be used (one line), or None: asked once at start, so an
    unreachable cluster is an error now instead of a login page that answers 500."""
    from pipesync.kube.client import ApiException  # noqa: PLC0415

    try:
        ui.kube.server_version(timeout=10)
    except ApiException as error:
        if error.status not in (401, 403):  # it answers: who may ask is checked later
            return f"{error.status} {error.reason}"
    except Exception as error:
        reason = getattr(error, "reason", None) or error
        return str(reason).splitlines()[0][:300]
    return None


def run(options: argparse.Namespace) -> int:
    from pipesync.observe import endpoint  # noqa: PLC0415
    from pipesync.ui import PREFIX, sessions  # noqa: PLC0415

    try:
        host, _ = endpoint.parse_address(options.address)
    except ValueError as error:
        print(f"pipesync ui: --address {options.address}: {error}", file=sys.stderr)
        return 2
    remote = not is_loopback(host)
    if options.auth == "kubeconfig" and remote and not options.allow_remote:
        print(
            f"pipesync ui: --address {options.address} is not a loopback address, and with "
            "--auth kubeconfig everyone who reaches it acts as your kubeconfig's user: use "
            "127.0.0.1, --auth token, or --allow-remote if that is meant",
            file=sys.stderr,
        )
        return 2
    local = None if options.local is None else Path(options.local)
    if local is not None and not local.is_dir():
        print(f"pipesync ui: --local {options.local}: no such directory", file=sys.stderr)
        return 2
    try:
        store = None if options.no_s3 else s3options.store(options, patience=5.0, maximum=2.0)
        # Nothing is accepted until the bound port is known (port 0 picks one).
        hosts: list[str] | None = [] if options.auth == "kubeconfig" else None
        ui = build(options.namespace, options.auth, store, hosts, local=local)
    except Exception as error:
        print(f"pipesync ui: cannot use the kubeconfig: {_one_line(error)}", file=sys.stderr)
        return 1
    problem = _check_cluster(ui)
    if problem is not None:
        server_url = ui.kube.server_url
        print(f"pipesync ui: cannot reach Kubernetes at {server_url}: {problem}", file=sys.stderr)
        return 1
    try:
        server = endpoint.serve_app(ui, options.address)
    except (OSError, ValueError) as error:
        print(f"pipesync ui: {options.address}: {error}", file=sys.stderr)
        return 2
    bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
    if hosts is not None:
        names = [socket.gethostname(), socket.getfqdn()] if remote else []
        ui.sessions.hosts = sessions.local_hosts(host, bound_port, names)
    print(f"pipesync ui on http://{bound_host}:{bound_port}{PREFIX}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
