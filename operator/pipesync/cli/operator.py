"""`pipesync operator`: runs the controllers against the current kubeconfig."""

from __future__ import annotations

import argparse

from pipesync.controllers import operator


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "operator",
        help="run the controllers (kopf) against the current kubeconfig",
        description="Run the pipesync controllers in the foreground. They use the "
        "in-cluster service account, or KUBECONFIG / ~/.kube/config outside a cluster.",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch only this namespace (repeat for more; default: all namespaces)",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.set_defaults(command=run)


def run(options: argparse.Namespace) -> int:
    operator.run(
        operator.OperatorSettings(
            namespaces=tuple(options.namespace), liveness_endpoint=options.liveness
        )
    )
    return 0
