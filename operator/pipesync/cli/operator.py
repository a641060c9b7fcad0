"""`pipesync operator`: runs the controllers against the current kubeconfig."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import yaml

from pipesync import __version__
from pipesync.cli import flags, s3options
from pipesync.engine import limits
from pipesync.runtime import placement, pods, podstate, taskpolicy

DEFAULT_IMAGE = f"ghcr.io/pipesync/pipesync:{__version__}"


def add_parser(subparsers: flags.Subcommands) -> None:
    env = os.environ.get
    parser = flags.add_command(
        subparsers,
        "operator",
        run,
        help="run the controllers (kopf) against the current kubeconfig",
        description="Run the pipesync controllers in the foreground. They use the "
        "in-cluster service account, or KUBECONFIG / ~/.kube/config outside a cluster. "
        "Every flag has an environment variable (in brackets) for charts and containers.",
    )
    flags.add_namespaces_argument(
        parser, help="watch only this namespace (repeat for more; default: all namespaces)"
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    flags.add_env_argument(
        parser,
        "--image",
        "PIPESYNC_IMAGE",
        default=DEFAULT_IMAGE,
        help="the operator image, also used for the artifact init and sidecar containers",
    )
    flags.add_env_argument(
        parser,
        "--agent-command",
        "PIPESYNC_AGENT_COMMAND",
        default="pipesync",
        help="how task pods call the agent in that image",
    )
    flags.add_env_argument(
        parser,
        "--default-task-image",
        "PIPESYNC_DEFAULT_TASK_IMAGE",
        help="image for tasks that name none",
    )
    flags.add_env_argument(
        parser,
        "--pools",
        "PIPESYNC_POOLS",
        metavar="FILE",
        help="YAML file mapping pool names to placement",
    )
    s3options.add_arguments(parser)
    flags.add_env_argument(
        parser,
        "--s3-credentials-secret",
        "PIPESYNC_S3_CREDENTIALS_SECRET",
        help="Secret (in each run's namespace) with AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY for task pods",
    )
    parser.add_argument(
        "--s3-credentials-from-env",
        action="store_true",
        help="put this process's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY into task pods "
        "as plain values (local stacks and tests only)",
    )
    flags.add_env_argument(
        parser,
        "--metrics-address",
        "PIPESYNC_METRICS_ADDRESS",
        default="0.0.0.0:8080",
        metavar="HOST:PORT",
        help="serve /metrics (Prometheus), /healthz and the push webhook (/hooks/) here; "
        "'off' serves nothing",
    )
    # On by default, so its variable turns it off (0, false, no), unlike the switches below.
    parser.add_argument(
        "--ui",
        action=argparse.BooleanOptionalAction,
        default=env("PIPESYNC_UI", "true").lower() not in ("0", "false", "no"),
        help="serve the web UI at /ui/ on the metrics address (visitors log in with a "
        "Kubernetes token; default on) [PIPESYNC_UI]",
    )
    flags.add_env_switch(
        parser,
        "--leader-election",
        "PIPESYNC_LEADER_ELECTION",
        help="run as one of several replicas: only the holder of a coordination.k8s.io "
        "Lease drives resources, the others wait as standbys",
    )
    # Two variables, the second set by the chart from the downward API.
    parser.add_argument(
        "--leader-election-namespace",
        metavar="NS",
        default=env("PIPESYNC_LEADER_ELECTION_NAMESPACE") or env("POD_NAMESPACE"),
        help="namespace of the Lease (default: the pod's namespace) "
        "[PIPESYNC_LEADER_ELECTION_NAMESPACE, POD_NAMESPACE]",
    )
    flags.add_env_argument(
        parser,
        "--leader-election-lease",
        "PIPESYNC_LEADER_ELECTION_LEASE",
        default="pipesync-operator",
        metavar="NAME",
        help="name of the Lease",
    )
    flags.add_env_argument(
        parser,
        "--allowed-service-accounts",
        "PIPESYNC_ALLOWED_SERVICE_ACCOUNTS",
        metavar="PATTERNS",
        help="comma-separated glob patterns of the ServiceAccounts task pods may run as; "
        "a run asking for another fails (default: any; '' allows none)",
    )
    flags.add_env_argument(
        parser,
        "--allowed-secrets",
        "PIPESYNC_ALLOWED_SECRETS",
        metavar="PATTERNS",
        help="comma-separated glob patterns of the Secrets tasks may read (env, volumes); "
        "a run using another fails (default: any; '' allows none)",
    )
    flags.add_env_switch(
        parser,
        "--allow-control-plane-tolerations",
        "PIPESYNC_ALLOW_CONTROL_PLANE_TOLERATIONS",
        help="let tasks tolerate the control-plane taints (default: a run whose task does fails)",
    )
    defaults = limits.DEFAULT
    for flag, variable, default, text in (
        (
            "--max-foreach-items",
            "PIPESYNC_MAX_FOREACH_ITEMS",
            defaults.items,
            "items in one forEach list or matrix axis",
        ),
        (
            "--max-foreach-instances",
            "PIPESYNC_MAX_FOREACH_INSTANCES",
            defaults.instances,
            "instances of one forEach task (a matrix: the product of its axes)",
        ),
        (
            "--max-launches-per-pass",
            "PIPESYNC_MAX_LAUNCHES_PER_PASS",
            defaults.launches,
            "task pods one reconcile pass of a run creates (the rest follow at once)",
        ),
    ):
        flags.add_env_argument(
            parser,
            flag,
            variable,
            default=str(default),
            type=_positive,
            metavar="N",
            help=f"most {text}; a larger forEach fails its task (default {default})",
        )


def _patterns(text: str | None) -> tuple[str, ...] | None:
    """A comma-separated pattern list; None (unset) means no restriction."""
    if text is None:
        return None
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _positive(text: str) -> int:
    """A count flag: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _service_account_namespace() -> str | None:
    """The pod's namespace as Kubernetes mounts it for the service account."""
    path = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _credentials_problem() -> str | None:
    """Why there are no Kubernetes credentials to run with (one line), or None. Checked
    before anything starts: kopf and the UI would each fail later with a traceback."""
    from pipesync.kube import client as kube  # noqa: PLC0415

    try:
        kube.connect(1)
    except Exception as error:
        lines = str(error).strip().splitlines()
        return lines[0][:300] if lines else type(error).__name__
    return None


def run(options: argparse.Namespace) -> int:
    # Imported here: kopf costs half a second, and every task pod starts `pipesync agent`.
    from pipesync.controllers import operator, settings  # noqa: PLC0415
    from pipesync.gitops import triggers, webhooks  # noqa: PLC0415
    from pipesync.observe import endpoint, metrics, records  # noqa: PLC0415
    from pipesync.runtime import storage  # noqa: PLC0415

    problem = _credentials_problem()
    if problem is not None:
        print(
            "pipesync operator: no Kubernetes credentials: not in a cluster, and no usable "
            f"kubeconfig (KUBECONFIG or ~/.kube/config): {problem}",
            file=sys.stderr,
        )
        return 1
    election = None
    if options.leader_election:
        from pipesync.controllers import leadership  # noqa: PLC0415

        namespace = options.leader_election_namespace or _service_account_namespace()
        if not namespace:
            print(
                "pipesync operator: --leader-election needs --leader-election-namespace "
                "(or POD_NAMESPACE) outside a cluster",
                file=sys.stderr,
            )
            return 2
        election = leadership.Election(namespace, options.leader_election_lease)
    pools = placement.PoolSettings()
    if options.pools:
        pools = placement.PoolSettings.from_dict(yaml.safe_load(Path(options.pools).read_text()))
    s3 = pods.S3Settings(
        bucket=options.s3_bucket,
        endpoint=options.s3_endpoint,
        region=options.s3_region,
        prefix=options.s3_prefix,
        credentials_secret=options.s3_credentials_secret,
        access_key_id=os.environ.get("AWS_ACCESS_KEY_ID")
        if options.s3_credentials_from_env
        else None,
        secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY")
        if options.s3_credentials_from_env
        else None,
    )
    # The S3 mirror: short patience per write, its worker retries with backoff for as long
    # as S3 is away, so an outage never blocks a pass. The web UI reads through it too.
    store = s3options.store(options, patience=5.0, maximum=2.0)
    observed: metrics.Metrics | None = None
    # Shared by the GitSource controller and the push webhook served on the same port.
    sync_triggers = triggers.SyncTriggers()
    if options.metrics_address != "off":
        observed = metrics.Metrics()
        hooks = webhooks.WebhookApp(
            sync_triggers, observer=observed.webhooks.receiving(webhooks.RESULTS)
        )
        routes: dict[str, endpoint.WsgiApp] = {webhooks.PREFIX: hooks}
        if options.ui:
            from pipesync.cli import ui  # noqa: PLC0415
            from pipesync.ui import PREFIX  # noqa: PLC0415

            routes[PREFIX] = ui.build(
                options.namespace, "token", store, counted=observed.passes.watch_requests
            )
        # Bound before kopf starts, so a taken port fails the start, not a later scrape.
        try:
            server = endpoint.serve(observed.registry, options.metrics_address, routes=routes)
        except (OSError, ValueError) as error:
            print(
                f"pipesync operator: --metrics-address {options.metrics_address}: {error}",
                file=sys.stderr,
            )
            return 2
        host, port = str(server.server_address[0]), server.server_address[1]
        print(f"metrics on http://{host}:{port}/metrics", flush=True)
    # Keys in pod annotations already carry the prefix: this store adds none.
    outputs_store = storage.S3Store(
        storage.S3Settings(
            bucket=options.s3_bucket, endpoint_url=options.s3_endpoint, region=options.s3_region
        ),
        storage.Retry(storage.Backoff(patience=30.0, maximum=5.0)),
    )
    recorder = records.RunRecorder(
        store,
        read_pod=podstate.read_pod,
        bucket=options.s3_bucket,
        prefix=options.s3_prefix,
        metrics=observed.mirror if observed is not None else None,
    )
    operator.run(
        settings.OperatorSettings(
            pods=pods.PodSettings(
                image=options.image,
                s3=s3,
                agent_command=tuple(shlex.split(options.agent_command)),
                pools=pools,
                default_task_image=options.default_task_image,
                policy=taskpolicy.TaskPolicy(
                    service_accounts=_patterns(options.allowed_service_accounts),
                    secrets=_patterns(options.allowed_secrets),
                    control_plane=options.allow_control_plane_tolerations,
                ),
            ),
            namespaces=tuple(options.namespace),
            liveness_endpoint=options.liveness,
            metrics=observed,
            observers=((observed.runs,) if observed is not None else ()) + (recorder,),
            records=recorder,
            store=outputs_store,
            triggers=sync_triggers,
            limits=limits.Limits(
                items=options.max_foreach_items,
                instances=options.max_foreach_instances,
                launches=options.max_launches_per_pass,
            ),
        ),
        election,
    )
    recorder.stop()
    return 0
