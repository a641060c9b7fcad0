"""A pipeline compiled by the KFP SDK, run by the operator on the real control plane.

The test compiles its own DSL pipeline with kfp 2.17.0, reads the YAML with pipesync's
KFP reader (what `pipesync validate`/`run` and the GitSource sync use), applies the
resulting Pipeline and a Run, and checks states, outputs and logs. The node agent runs
pods as host processes, so the lightweight components' shim runs in this venv's python3,
which has kfp (in a real cluster: the component's base_image with kfp installed).
"""

# No `from __future__ import annotations`: the KFP SDK reads component annotations as types.

import json
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipesync.engine import kfp as kfp_reader
from tests.e2e.fixtures.controlplane import Cluster
from tests.e2e.fixtures.operator import Operator
from tests.unit.test_kfp_run import combine, flatten, join_artifacts, square

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    kfp = pytest.importorskip(
        "kfp", reason="kfp is not installed (pip install kfp==2.17.0; see docs/kfp.md)"
    )
    from kfp import compiler, dsl
    from kfp.dsl import Artifact, Dataset, Input, Output

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def make_dataset(n: int, data: Output[Dataset]) -> None:
    with open(data.path, "w") as handle:
        handle.write(",".join(str(i) for i in range(n)))
    data.metadata["rows"] = n


@dsl.component(base_image=IMAGE)
def read_dataset(data: Input[Dataset]) -> str:
    with open(data.path) as handle:
        return f"{handle.read()}|rows={data.metadata.get('rows')}"


@dsl.component(base_image=IMAGE)
def total(values: list) -> int:
    return sum(values)


@dsl.component(base_image=IMAGE)
def report(status: dsl.PipelineTaskFinalStatus) -> None:
    print(f"final-state={status.state}")


@dsl.container_component
def shout(message: str) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(
        image="alpine:3", command=["echo", dsl.ConcatPlaceholder(["loud:", message])]
    )


@dsl.pipeline(name="kfp-e2e")
def pipeline(n: int = 3) -> None:
    final = report()
    with dsl.ExitHandler(final):
        first = add(a=n, b=1)
        made = make_dataset(n=first.output)
        read_dataset(data=made.outputs["data"])
        with dsl.ParallelFor([1, 2, 3], parallelism=2) as item:
            added = add(a=item, b=10)
        total(values=dsl.Collected(added.output))
        with dsl.If(first.output > 100):
            shout(message="never")
        with dsl.Else():
            shout(message="small")


@dsl.component(base_image=IMAGE)
def first_line(data: Input[Dataset]) -> str:
    with open(data.path) as handle:
        return handle.readline().strip() + "|" + str(data.metadata.get("origin", "-"))


@dsl.pipeline(name="kfp-importing")
def importing(given: Input[Dataset], fixed_uri: str) -> None:
    first_line(data=given)
    imported = dsl.importer(
        artifact_uri=fixed_uri, artifact_class=Dataset, metadata={"origin": "lab"}
    )
    first_line(data=imported.output)


@dsl.component(base_image=IMAGE)
def write_number(x: int, out: Output[Artifact]) -> None:
    with open(out.path, "w") as handle:
        handle.write(str(x))
    out.metadata["x"] = x


@dsl.component(base_image=IMAGE)
def read_number(part: Input[Artifact]) -> str:
    with open(part.path) as handle:
        return f"{handle.read()}/{part.metadata.get('x')}"


@dsl.component(base_image=IMAGE)
def join_strings(values: list) -> str:
    return ",".join(values)


EXECUTOR_INPUT_READER = """
import json, sys
spec = json.loads(sys.argv[1])
with open(spec["outputs"]["parameters"]["doubled"]["outputFile"], "w") as handle:
    handle.write(str(2 * spec["inputs"]["parameterValues"]["n"]))
"""


@dsl.container_component
def double(n: int, doubled: dsl.OutputPath(int)) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return dsl.ContainerSpec(image=IMAGE, command=["python3", "-c", EXECUTOR_INPUT_READER, "{{$}}"])


@dsl.pipeline
def pick_dataset(n: int) -> Dataset:
    with dsl.If(n > 2):
        big = make_dataset(n=n)
    with dsl.Else():
        small = make_dataset(n=1)
    return dsl.OneOf(big.outputs["data"], small.outputs["data"])


@dsl.pipeline(name="kfp-loops")
def loops(n: int = 3) -> None:
    with dsl.ParallelFor([1, 2, 3], parallelism=1) as x:
        squared = square(x=x)
        written = write_number(x=squared.output)
        read_number(part=written.outputs["out"])
        with dsl.If(x > 1):
            add(a=x, b=100)
    total(values=dsl.Collected(squared.output))
    with dsl.ParallelFor([1, 2]) as outer:
        squared_outer = square(x=outer)
        written_outer = write_number(x=squared_outer.output)
        with dsl.ParallelFor(["a", "b"]) as letter:
            combined = combine(a=squared_outer.output, b=letter)
            read_number(part=written_outer.outputs["out"])
            written_inner = write_number(x=squared_outer.output)
        # per outer item, what its own inner iterations made (params and artifacts)
        join_artifacts(parts=dsl.Collected(written_inner.outputs["out"]))
        join_strings(values=dsl.Collected(combined.output))
    flatten(values=dsl.Collected(combined.output))
    double(n=n)


# Its own pipeline: kfp 2.17 fails to compile a sub-pipeline with conditions next to a
# condition on a loop item (the loop item's channel goes missing).
@dsl.pipeline(name="kfp-one-of")
def one_of_artifacts(n: int = 3) -> None:
    read_dataset(data=pick_dataset(n=n).output)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"kfp-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def wait_finished(cluster: Cluster, namespace: str, name: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = cluster.kubectl("get", "run", name, "-n", namespace, "-o", "json", check=False)
        if found.returncode != 0:  # not created yet (e.g. by a GitSource sync)
            time.sleep(0.5)
            continue
        run = json.loads(found.stdout)
        if run.get("status", {}).get("phase") in ("Succeeded", "Failed", "Cancelled"):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {name} did not finish: {json.dumps(run.get('status'), indent=1)}")


def test_a_kfp_compiled_pipeline_runs_in_the_cluster(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    path = tmp_path / "kfp-e2e.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(pipeline, str(path))
    loaded = kfp_reader.load(path.read_bytes(), str(path))
    assert loaded is not None
    resources, problems = loaded
    assert problems == []
    body = dict(resources[0].body)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pipeline/kfp-e2e", "-n", namespace, "--timeout=60s"
    )
    run = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "kfp-1"},
        "spec": {"pipelineRef": {"name": "kfp-e2e"}, "params": {"n": 4}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(run))
    status = wait_finished(cluster, namespace, "kfp-1")["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    tasks = status["tasks"]
    assert tasks["add"]["outputs"]["Output"] == "5"
    assert tasks["read-dataset"]["outputs"]["Output"] == "0,1,2,3,4|rows=5"
    assert tasks["add-2"]["outputs"]["Output"] == "[11,12,13]"
    assert tasks["total"]["outputs"]["Output"] == "36"
    assert tasks["shout"]["phase"] == "Skipped"
    assert tasks["shout-2"]["phase"] == "Succeeded"
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", namespace, "-l", "pipesync.io/run=kfp-1", "-o", "json"
        ).stdout
    )["items"]
    by_task = {p["metadata"]["labels"]["pipesync.io/task"]: p for p in pods}
    shout_log = cluster.kubectl(
        "logs", "-n", namespace, by_task["shout-2"]["metadata"]["name"], "-c", "main"
    ).stdout
    assert "loud:small" in shout_log
    report_log = cluster.kubectl(
        "logs", "-n", namespace, by_task["report"]["metadata"]["name"], "-c", "main"
    ).stdout
    assert "final-state=SUCCEEDED" in report_log


def test_a_kfp_file_committed_to_git_is_synced_and_run_by_the_cluster(
    cluster: Cluster, operator: Operator, namespace: str, git_server: Any, tmp_path: Path
) -> None:
    """The issue's "done when": compile with the SDK, commit the YAML to the GitSource's
    repository (with a create-once Run beside it), and see it run: `kubectl get runs`."""
    from tests.e2e.test_gitsource import Repo, condition, create_source, wait_source  # noqa: PLC0415

    compiled = tmp_path / "kfp-e2e.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(pipeline, str(compiled))
    repo = Repo(git_server, f"kfp-{uuid.uuid4().hex[:6]}")
    run = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "kfp-from-git"},
        "spec": {"pipelineRef": {"name": "kfp-e2e"}, "params": {"n": 2}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(importing, str(tmp_path / "importing.yaml"))
    given, fixed = tmp_path / "given.csv", tmp_path / "fixed.csv"
    given.write_text("given-row\n")
    fixed.write_text("fixed-row\n")
    importing_run = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "kfp-importing"},
        "spec": {
            "pipelineRef": {"name": "kfp-importing"},
            "params": {"given": str(given), "fixed_uri": fixed.as_uri()},
        },
    }
    repo.push_tree(
        {
            "pipelines/kfp-e2e.yaml": compiled.read_text(),
            "pipelines/importing.yaml": (tmp_path / "importing.yaml").read_text(),
            "runs/kfp-run.yaml": json.dumps(run),
            "runs/importing.yaml": json.dumps(importing_run),
        },
        "pipelines compiled by the KFP SDK",
    )
    create_source(cluster, namespace, repo.remote.file_url)
    source = wait_source(
        cluster, namespace, lambda s: condition(s, "Ready").get("status") == "True", operator
    )
    assert source["status"].get("errors") in (None, []), source["status"]
    status = wait_finished(cluster, namespace, "kfp-from-git")["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    assert status["tasks"]["add"]["outputs"]["Output"] == "3"  # add(a=n, b=1) with n=2
    assert status["pipeline"]["source"] == "repo" and len(status["pipeline"]["commit"]) == 40
    # importer and pipeline input artifact, in pods (the test nodes see this machine's files)
    imported = wait_finished(cluster, namespace, "kfp-importing")["status"]
    assert imported["phase"] == "Succeeded", (json.dumps(imported, indent=1), operator.log())
    assert imported["tasks"]["first-line"]["outputs"]["Output"] == "given-row|-"
    assert imported["tasks"]["first-line-2"]["outputs"]["Output"] == "fixed-row|lab"
    table = cluster.kubectl("get", "runs", "-n", namespace).stdout
    assert "kfp-from-git" in table and "Succeeded" in table
    labels = json.loads(
        cluster.kubectl("get", "pipeline", "kfp-e2e", "-n", namespace, "-o", "json").stdout
    )["metadata"]["labels"]
    assert labels.get("pipesync.io/source") == "repo"


def apply_kfp(cluster: Cluster, namespace: str, tmp_path: Path, pipeline_func: Any) -> str:
    """Compile, read with pipesync's KFP reader and apply; the Pipeline's name."""
    path = tmp_path / "compiled.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(pipeline_func, str(path))
    loaded = kfp_reader.load(path.read_bytes(), str(path))
    assert loaded is not None and loaded[1] == [], loaded
    body = loaded[0][0].body
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    name = str(body["metadata"]["name"])
    cluster.kubectl(
        "wait", "--for=condition=Ready", f"pipeline/{name}", "-n", namespace, "--timeout=60s"
    )
    return name


def start_run(cluster: Cluster, namespace: str, name: str, pipeline: str, n: int) -> None:
    run = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {"pipelineRef": {"name": pipeline}, "params": {"n": n}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(run))


def test_kfp_loop_bodies_nested_loops_one_of_artifacts_and_executor_input_in_pods(
    cluster: Cluster, operator: Operator, namespace: str, tmp_path: Path
) -> None:
    start_run(cluster, namespace, "loops", apply_kfp(cluster, namespace, tmp_path, loops), 3)
    one_of = apply_kfp(cluster, namespace, tmp_path, one_of_artifacts)
    start_run(cluster, namespace, "one-of-big", one_of, 3)
    start_run(cluster, namespace, "one-of-small", one_of, 1)
    status = wait_finished(cluster, namespace, "loops")["status"]
    assert status["phase"] == "Succeeded", (json.dumps(status, indent=1), operator.log())
    tasks = status["tasks"]
    # each iteration's pods read their own iteration's artifact, metadata included
    assert tasks["read-number"]["outputs"]["Output"] == '["1/1","4/4","9/9"]'
    assert tasks["total"]["outputs"]["Output"] == "14"
    assert tasks["add"]["instances"] == {"total": 3, "succeeded": 2, "failed": 0, "running": 0}
    assert tasks["add"]["outputs"]["Output"] == "[102,103]"
    # nested loop beside tasks of the outer one: each pair read its outer iteration's
    # parameter and (in its pod) artifact
    assert tasks["flatten"]["outputs"]["Output"] == "1a,1b|4a,4b"
    assert tasks["read-number-2"]["outputs"]["Output"] == '[["1/1","1/1"],["4/4","4/4"]]'
    # inside the outer loop, each outer item collects only its own inner results
    assert tasks["join-artifacts"]["outputs"]["Output"] == '["1,1","4,4"]'
    assert tasks["join-strings"]["outputs"]["Output"] == '["1a,1b","4a,4b"]'
    assert tasks["double"]["outputs"]["doubled"] == "6"
    # dsl.OneOf over artifacts: each pod fetched the branch that ran
    for name, expected in (("one-of-big", "0,1,2|rows=3"), ("one-of-small", "0|rows=1")):
        found = wait_finished(cluster, namespace, name)["status"]
        assert found["phase"] == "Succeeded", (json.dumps(found, indent=1), operator.log())
        assert found["tasks"]["read-dataset"]["outputs"]["Output"] == expected
