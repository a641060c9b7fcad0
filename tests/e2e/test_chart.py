"""The Helm chart against the real API server: helm lint, helm template (default values and
namespaced mode), kubeconform -strict over every render (schemas from the API server's
OpenAPI), a server-side dry-run apply of every rendered object, RBAC checked with
`kubectl auth can-i` as the chart's ServiceAccount (R8), and the operator itself running a
pipeline under nothing but that ServiceAccount's token in namespaced mode.

Every test installs under its own release name and namespaces (ClusterRoles are named after
the release), and removes its cluster-scoped objects at the end.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.fixtures.binaries import binary
from tests.e2e.fixtures.controlplane import Cluster, ManagedProcess
from tests.e2e.fixtures.gitserver import GitServer
from tests.e2e.fixtures.kubeschemas import write_schemas
from tests.e2e.fixtures.operator import REPO, Operator, operator_command
from tests.e2e.fixtures.processes import free_port
from tests.e2e.fixtures.prometheus import PrometheusServer
from tests.e2e.test_gitsource import Repo, applied, basic_auth_secret, condition, create_source
from tests.e2e.test_operator_runs import run_document, wait_finished

CHART = REPO / "charts" / "pipesync"
CLUSTER_KINDS = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def helm(*args: str) -> str:
    result = subprocess.run(
        [str(binary("helm")), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        # helm keeps caches and config under $HOME: a private one, not the user's.
        env={**os.environ, "HELM_CACHE_HOME": "/tmp/pipesync-helm/cache"},
    )
    assert result.returncode == 0, f"helm {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def render(release: str, namespace: str, *values: str, crds: bool = False) -> list[dict[str, Any]]:
    argv = ["template", release, str(CHART), "--namespace", namespace]
    if crds:
        argv.append("--include-crds")
    for value in values:
        argv += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*argv)) if doc]


def kinds(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return sorted(
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects
    )


def as_yaml(objects: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects)


class Release:
    """Names of one test's release; its namespaces are created and deleted with it."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        token = uuid.uuid4().hex[:6]
        self.name = f"ch{token}"
        self.namespace = f"chart-{token}"
        self.watched = [f"chart-{token}-a", f"chart-{token}-b"]
        self.unwatched = f"chart-{token}-x"
        self.applied: list[dict[str, Any]] = []
        for namespace in (self.namespace, *self.watched, self.unwatched):
            cluster.kubectl("create", "namespace", namespace)

    @property
    def service_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}-pipesync"

    def apply(self, objects: list[dict[str, Any]]) -> None:
        self.cluster.kubectl("apply", "--server-side", "-f", "-", input=as_yaml(objects))
        self.applied += objects

    def can(self, verb: str, resource: str, namespace: str | None = None) -> bool:
        """`resource` is TYPE, TYPE/NAME, or TYPE:SUBRESOURCE (e.g. pods:log)."""
        argv = ["auth", "can-i", verb, f"--as={self.service_account}"]
        kind, _, subresource = resource.partition(":")
        argv += [kind, f"--subresource={subresource}"] if subresource else [kind]
        argv += ["-n", namespace] if namespace else ["--all-namespaces"]
        answer = self.cluster.kubectl(*argv, check=False).stdout.strip()
        assert answer in ("yes", "no"), answer
        return answer == "yes"

    def close(self) -> None:
        for obj in self.applied:
            if obj["kind"] in CLUSTER_KINDS - {"CustomResourceDefinition"}:
                self.cluster.kubectl(
                    "delete", obj["kind"], obj["metadata"]["name"], "--ignore-not-found"
                )
        for namespace in (self.namespace, *self.watched, self.unwatched):
            self.cluster.kubectl("delete", "namespace", namespace, "--wait=false")


@pytest.fixture
def release(cluster: Cluster, crds: None) -> Iterator[Release]:
    made = Release(cluster)
    try:
        yield made
    finally:
        made.close()


def test_helm_lint_passes_with_default_and_namespaced_values() -> None:
    out = helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    helm("lint", "--strict", str(CHART), "--set", "watchNamespaces={team-a,team-b}")


def test_the_schema_rejects_bad_values() -> None:
    result = subprocess.run(
        [str(binary("helm")), "template", "r", str(CHART), "--set", "s3.endpoint=minio:9000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "/s3/endpoint" in result.stderr
    result = subprocess.run(
        [
            *(str(binary("helm")), "template", "r", str(CHART)),
            *("--set", "replicaCount=2", "--set", "leaderElection.enabled=false"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "leaderElection" in result.stderr


def test_the_chart_crds_are_the_repository_crds() -> None:
    rendered = [o for o in render("r", "x", crds=True) if o["kind"] == "CustomResourceDefinition"]
    committed = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    assert sorted(rendered, key=lambda o: o["metadata"]["name"]) == sorted(
        committed, key=lambda o: o["metadata"]["name"]
    )


# Every optional object the chart can render, on: kubeconform must see each template.
ALL_FEATURES = (
    "networkPolicy.enabled=true",
    "networkPolicy.allowNamespaces={monitoring}",
    "networkPolicy.extraFrom[0].ipBlock.cidr=192.30.252.0/22",
    "serviceMonitor.enabled=true",
    "podMonitor.enabled=true",
    "dashboards.enabled=true",
    "podDisruptionBudget.enabled=true",
    "replicaCount=2",
    "leaderElection.enabled=true",
    "ui.enabled=true",
)
# The Prometheus Operator's CRDs are not installed in the e2e API server, so there is no
# schema to check ServiceMonitor/PodMonitor against; only these kinds are skipped.
NO_SCHEMA_KINDS = {"ServiceMonitor", "PodMonitor"}


def kubeconform(schemas: pathlib.Path, render_file: pathlib.Path) -> dict[str, Any]:
    """Runs `kubeconform -strict -summary` offline; returns its JSON report."""
    result = subprocess.run(
        [
            str(binary("kubeconform")),
            *("-strict", "-summary", "-output", "json"),
            *("-schema-location", str(schemas / "{{ .ResourceKind }}{{ .KindSuffix }}.json")),
            *("-skip", ",".join(sorted(NO_SCHEMA_KINDS))),
            str(render_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, f"kubeconform:\n{result.stdout}\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize(
    "values",
    [(), ALL_FEATURES, ("watchNamespaces={team-a,team-b}",)],
    ids=["defaults", "all-features", "namespaced"],
)
def test_kubeconform_finds_every_rendered_object_valid(
    cluster: Cluster, tmp_path: pathlib.Path, values: tuple[str, ...]
) -> None:
    # helm's own text, not a re-dump: -strict also rejects duplicate keys in it.
    text = helm(
        "template", "r", str(CHART), "--namespace", "x", "--include-crds",
        *(arg for value in values for arg in ("--set", value)),
    )  # fmt: skip
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    render_file = tmp_path / "render.yaml"
    render_file.write_text(text)
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    missing = write_schemas(cluster, schemas, {(o["apiVersion"], o["kind"]) for o in objects})
    assert {kind for _, kind in missing} <= NO_SCHEMA_KINDS, missing
    skipped = [o for o in objects if o["kind"] in NO_SCHEMA_KINDS]
    summary = kubeconform(schemas, render_file)["summary"]
    assert summary == {
        "valid": len(objects) - len(skipped),
        "invalid": 0,
        "errors": 0,
        "skipped": len(skipped),
    }
    if values == ALL_FEATURES:
        assert {"NetworkPolicy", "PodDisruptionBudget", *NO_SCHEMA_KINDS} <= {
            o["kind"] for o in objects
        }


@pytest.mark.parametrize("mode", ["cluster", "namespaced"])
def test_rendered_objects_pass_a_server_side_dry_run(
    cluster: Cluster, release: Release, mode: str
) -> None:
    values = [f"watchNamespaces={{{','.join(release.watched)}}}"] if mode == "namespaced" else []
    objects = render(release.name, release.namespace, *values, crds=True)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    assert len(crds) == 5
    # CRDs first (the same as crds/, already applied by the `crds` fixture), then the rest.
    cluster.kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", input=as_yaml(crds))
    out = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=as_yaml(rest)
    ).stdout
    assert out.count("serverside-applied (server dry run)") == len(rest), out
    found = {kind for kind, _, _ in kinds(rest)}
    assert {
        "ServiceAccount",
        "Deployment",
        "Service",
        "ConfigMap",
        "Role",
        "PodDisruptionBudget",
    } <= found
    assert not {"ServiceMonitor", "PodMonitor"} & found  # off by default: CRDs may be absent
    if mode == "namespaced":
        roles = [o for o in rest if o["kind"] == "Role" and "leader" not in o["metadata"]["name"]]
        assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(release.watched)
        cluster_roles = [o for o in rest if o["kind"] == "ClusterRole"]
        assert [r["metadata"]["name"] for r in cluster_roles] == [
            f"{release.name}-pipesync-discovery"
        ]
    else:
        assert "ClusterRole" in found

    services = {
        o["metadata"]["name"]: o["spec"]["selector"] for o in rest if o["kind"] == "Service"
    }
    assert services[f"{release.name}-pipesync-webhook"]["pipesync.io/leader"] == "true"
    assert "pipesync.io/leader" not in services[f"{release.name}-pipesync"]

    deployment = next(o for o in rest if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "--leader-election" in container["args"]
    assert deployment["spec"]["replicas"] == 2
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/tmp", "/var/cache/pipesync"} <= mounts
    if mode == "namespaced":
        assert [a for a in container["args"] if a.startswith("--namespace")] == [
            f"--namespace={n}" for n in release.watched
        ]

    dashboards = [
        o for o in rest if o["kind"] == "ConfigMap" and "dashboard" in o["metadata"]["name"]
    ]
    assert len(dashboards) == 3
    for config_map in dashboards:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        for text in config_map["data"].values():
            assert json.loads(text)["panels"]


def git_protocols(*values: str) -> str:
    (deployment,) = [o for o in render("r", "x", *values) if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    return str(env["PIPESYNC_GIT_PROTOCOLS"])


def test_the_chart_refuses_local_git_urls_unless_allowed() -> None:
    """file:// and local paths read the operator's disk: off unless git.allowLocalUrls."""
    assert git_protocols().split(":") == ["http", "https", "ssh", "git"]
    assert "file" in git_protocols("git.allowLocalUrls=true").split(":")


def test_the_network_policy_renders_when_enabled_and_the_api_server_accepts_it(
    cluster: Cluster, release: Release
) -> None:
    assert not [o for o in render("r", "x") if o["kind"] == "NetworkPolicy"]  # off by default
    objects = render(
        release.name,
        release.namespace,
        "networkPolicy.enabled=true",
        "networkPolicy.allowNamespaces={monitoring,ingress-nginx}",
        "networkPolicy.extraFrom[0].ipBlock.cidr=192.30.252.0/22",
    )
    [policy] = [o for o in objects if o["kind"] == "NetworkPolicy"]
    out = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-f", "-", input=as_yaml([policy])
    ).stdout
    assert "serverside-applied (server dry run)" in out, out
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"ipBlock": {"cidr": "192.30.252.0/22"}},
    ]


def test_monitors_render_only_when_enabled() -> None:
    objects = render("r", "x", "serviceMonitor.enabled=true", "podMonitor.enabled=true")
    monitors = {o["kind"]: o for o in objects if o["apiVersion"] == "monitoring.coreos.com/v1"}
    assert set(monitors) == {"ServiceMonitor", "PodMonitor"}
    assert monitors["ServiceMonitor"]["spec"]["endpoints"][0]["path"] == "/metrics"
    # it selects the metrics Service only: the -webhook Service would scrape the leader twice
    selector = monitors["ServiceMonitor"]["spec"]["selector"]["matchLabels"]
    services = [o for o in objects if o["kind"] == "Service"]
    selected = [
        o["metadata"]["name"]
        for o in services
        if selector.items() <= o["metadata"]["labels"].items()
    ]
    assert selected == ["r-pipesync"], selected


MONITOR_PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: monitored}
spec:
  tasks:
    - {name: a, command: [echo, monitored]}
"""


def test_the_monitors_keep_the_operators_namespace_label(
    cluster: Cluster, operator: Operator, prometheus: PrometheusServer
) -> None:
    """Prometheus Operator gives every target a `namespace` label (the monitored pod's);
    without honorLabels Prometheus renames the operator's own `namespace` (the run's) to
    `exported_namespace`, and every `namespace=~"$namespace"` filter of the dashboards
    matches nothing. Each rendered monitor's endpoint, turned into the scrape config
    Prometheus Operator generates from it, must keep the run's namespace."""
    objects = render("r", "monitoring", "serviceMonitor.enabled=true", "podMonitor.enabled=true")
    endpoints = {
        o["kind"]: (o["spec"].get("endpoints") or o["spec"]["podMetricsEndpoints"])[0]
        for o in objects
        if o["apiVersion"] == "monitoring.coreos.com/v1"
    }
    assert set(endpoints) == {"ServiceMonitor", "PodMonitor"}
    namespace = f"monitored-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=MONITOR_PIPELINE)
        cluster.kubectl(
            "wait", "--for=condition=Ready", "pipeline/monitored", "-n", namespace,
            "--timeout=60s",
        )  # fmt: skip
        cluster.kubectl(
            "apply", "-n", namespace, "-f", "-", input=run_document("monitored-1", "monitored")
        )
        wait_finished(cluster, namespace, "monitored-1")
        for kind, endpoint in sorted(endpoints.items()):
            job = f"chart-{kind.lower()}"
            prometheus.scrape(
                operator.metrics_target,
                job=job,
                labels={"namespace": "monitoring", "pod": "r-pipesync-0"},
                honor_labels=bool(endpoint.get("honorLabels", False)),
            )
            try:
                series = prometheus.wait_for(f'pipesync_runs_active{{job="{job}"}}', timeout=30)
                found = {s["metric"].get("namespace") for s in series}
                renamed = {s["metric"].get("exported_namespace") for s in series} - {None}
                assert namespace in found, f"{kind}: namespace became exported_namespace {renamed}"
                assert not renamed, kind
            finally:
                prometheus.unscrape(job)
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def test_cluster_mode_rbac_allows_what_the_operator_uses_and_nothing_else(
    release: Release,
) -> None:
    release.apply(render(release.name, release.namespace))
    ns, other = release.watched[0], release.unwatched
    allowed = [
        ("create", "pods", ns),
        ("delete", "pods", other),
        ("watch", "pods", None),
        ("get", "pods:log", ns),
        ("get", "secrets", other),  # GitSources in any namespace name their Secrets
        ("create", "configmaps", ns),
        ("create", "events", ns),
        ("create", "runs.pipesync.io", ns),
        ("delete", "runs.pipesync.io", ns),
        ("patch", "runs.pipesync.io:status", ns),
        ("patch", "pipelines.pipesync.io", ns),  # server-side apply from git
        ("create", "recurringruns.pipesync.io", ns),
        ("patch", "gitsources.pipesync.io:status", ns),
        ("watch", "gitsources.pipesync.io", None),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("create", "leases.coordination.k8s.io", release.namespace),
        ("patch", "pods", release.namespace),  # its own pod's pipesync.io/leader label
        # the web UI checks its visitors' tokens and rights, and offers their namespaces
        ("create", "tokenreviews.authentication.k8s.io", None),
        ("create", "subjectaccessreviews.authorization.k8s.io", None),
        ("list", "namespaces", None),
    ]
    denied = [
        ("delete", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("create", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("list", "secrets", ns),  # get by name only
        ("create", "secrets", ns),
        ("update", "pods", ns),
        ("patch", "pods", ns),  # only in the release namespace
        ("create", "pods:exec", ns),
        ("delete", "gitsources.pipesync.io", ns),
        ("create", "gitsources.pipesync.io", ns),
        ("delete", "namespaces", None),
        ("create", "clusterroles.rbac.authorization.k8s.io", None),
        ("create", "leases.coordination.k8s.io", ns),  # the Lease lives in the release ns
        ("delete", "configmaps", ns),
        ("update", "runs.pipesync.io:status", ns),  # patch only
        ("create", "pods:eviction", ns),
        ("create", "serviceaccounts:token", ns),  # the UI never mints tokens itself
        ("create", "localsubjectaccessreviews.authorization.k8s.io", ns),
    ]
    assert [c for c in allowed if not release.can(*c)] == []
    assert [c for c in denied if release.can(*c)] == []
    # the Lease: only the chart's one, by name
    assert release.can("update", "leases.coordination.k8s.io/pipesync-operator", release.namespace)
    assert not release.can("update", "leases.coordination.k8s.io/other", release.namespace)


def test_namespaced_mode_rbac_stays_inside_its_namespaces(release: Release) -> None:
    values = f"watchNamespaces={{{','.join(release.watched)}}}"
    release.apply(render(release.name, release.namespace, values))
    for ns in release.watched:
        assert release.can("get", "secrets", ns)
        assert release.can("create", "pods", ns)
        assert release.can("patch", "runs.pipesync.io:status", ns)
    other = release.unwatched
    assert not release.can("get", "secrets", other)
    assert not release.can("get", "secrets", release.namespace)  # the release namespace too
    assert not release.can("create", "pods", other)
    assert not release.can("patch", "runs.pipesync.io:status", other)
    assert not release.can("list", "runs.pipesync.io", other)
    assert not release.can("list", "runs.pipesync.io", None)  # not cluster-wide
    assert release.can("list", "customresourcedefinitions.apiextensions.k8s.io", None)
    assert not release.can("delete", "customresourcedefinitions.apiextensions.k8s.io", None)
    assert not release.can("get", "secrets", None)
    assert release.can("create", "tokenreviews.authentication.k8s.io", None)  # the web UI


#: What a GitSource syncs under the chart's RBAC: every kind it server-side applies.
REPOSITORY = {
    "pipelines/synced.yaml": """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: synced}
spec:
  tasks:
    - {name: a, command: [echo, synced]}
""",
    "experiments/tuning.yaml": """
apiVersion: pipesync.io/v1alpha1
kind: Experiment
metadata: {name: tuning}
spec: {description: synced from git}
""",
    "recurring-runs/nightly.yaml": """
apiVersion: pipesync.io/v1alpha1
kind: RecurringRun
metadata: {name: nightly}
spec:
  pipelineRef: {name: synced}
  schedule: {cron: "0 2 * * *"}
  suspend: true
""",
}

PIPELINE = """
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: rbac}
spec:
  tasks:
    - name: hello
      command: [sh, -c, "echo hello"]
    - name: bye
      dependsOn: [hello]
      command: [sh, -c, "echo bye"]
"""


def test_the_operator_runs_a_pipeline_with_only_the_charts_namespaced_rbac(
    cluster: Cluster,
    release: Release,
    *,
    nodes: Any,
    s3: Any,
    git_server: GitServer,
    tmp_path: pathlib.Path,
) -> None:
    """Proof that the Role is enough: the operator authenticates with a token of the
    chart's ServiceAccount (not the admin certificate), drives a Run to Succeeded and syncs
    a GitSource with credentials from a Secret, with leader election on its Lease in the
    release namespace."""
    # solo-*: the session operator (watching every other namespace) leaves it alone.
    watched = f"solo-{release.name}"
    cluster.kubectl("create", "namespace", watched)
    release.watched.append(watched)  # deleted with the release
    values = f"watchNamespaces={{{watched}}}"
    release.apply(
        [
            o
            for o in render(release.name, release.namespace, values)
            if o["kind"] in {"ServiceAccount", "Role", "RoleBinding"} | CLUSTER_KINDS
        ]
    )
    sa = f"{release.name}-pipesync"
    token = cluster.kubectl("create", "token", sa, "-n", release.namespace).stdout.strip()
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": cluster.server,
                            "certificate-authority": str(cluster.ca_file),
                        },
                    }
                ],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "e2e", "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    port = free_port()
    process = ManagedProcess(
        "pipesync-operator-rbac",
        operator_command(
            kubeconfig,
            s3,
            f"--namespace={watched}",
            "--leader-election",
            f"--leader-election-namespace={release.namespace}",
            "--metrics-address",
            f"127.0.0.1:{port}",
        ),
        tmp_path / "operator.log",
    )
    process.start()
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts it slowly
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, process.tail()
                assert process.alive(), process.tail()
                time.sleep(0.2)
        cluster.kubectl("apply", "-n", watched, "-f", "-", input=PIPELINE)
        cluster.kubectl(
            "wait", "--for=condition=Ready", "pipeline/rbac", "-n", watched, "--timeout=60s"
        )
        cluster.kubectl("apply", "-n", watched, "-f", "-", input=run_document("rbac-1", "rbac"))
        run = wait_finished(cluster, watched, "rbac-1", timeout=90)
        assert run["status"]["phase"] == "Succeeded", (run["status"], process.tail())

        repo = Repo(git_server, f"{watched}-rbac")
        sha = repo.push_tree({k: v.lstrip() for k, v in REPOSITORY.items()}, "for the chart")
        basic_auth_secret(cluster, watched, git_server.username, git_server.password)
        create_source(cluster, watched, repo.remote.http_url, secretRef={"name": "git-credentials"})
        deadline = time.monotonic() + 60
        source: dict[str, Any] = {}
        while not (source and applied(sha)(source)):
            assert time.monotonic() < deadline, (source.get("status"), process.tail(40))
            time.sleep(0.3)
            source = json.loads(
                cluster.kubectl("get", "gitsource", "repo", "-n", watched, "-o", "json").stdout
            )
        assert condition(source, "Ready")["status"] == "True", source["status"]
        for kind, name in (("pipeline", "synced"), ("experiment", "tuning")):
            found = json.loads(
                cluster.kubectl(
                    "get", kind, name, "-n", watched, "-o", "json", "--show-managed-fields"
                ).stdout
            )
            managers = {m["manager"] for m in found["metadata"]["managedFields"]}
            assert "pipesync" in managers, (kind, managers)
        cluster.kubectl("get", "recurringrun", "nightly", "-n", watched)
        holder = cluster.kubectl(
            "get",
            "lease",
            "pipesync-operator",
            "-n",
            release.namespace,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ).stdout
        assert process.popen is not None
        assert holder.endswith(f"_{process.popen.pid}"), holder
        log = process.tail(200)
        assert "Forbidden" not in log and "403" not in log, log
    finally:
        process.stop()
