"""The KFP IR reader: what a compiled KFP pipeline becomes, and the located problems for
what pipesync cannot run yet. Pipelines are compiled by kfp 2.17.0 during the test."""

# No `from __future__ import annotations`: the KFP SDK reads component annotations as types.

import textwrap
import warnings
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import model
from pipesync.engine import compiler, planner
from pipesync.engine import kfp as kfp_reader
from pipesync.engine.kfp import cel
from pipesync.engine.state import TASK, NodeState, Phase
from tests.unit.conftest import Cli

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    kfp = pytest.importorskip(
        "kfp", reason="kfp is not installed (pip install kfp==2.17.0; see docs/kfp.md)"
    )
    from kfp import compiler as kfp_compiler
    from kfp import dsl

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE)
def say(text: str) -> str:
    return text


@dsl.component(base_image=IMAGE)
def flip() -> str:
    return "heads"


@dsl.component(base_image=IMAGE)
def total(values: list) -> int:
    return sum(values)


@dsl.container_component
def tool(name: str, count: int) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(
        image="alpine:3", command=["tool", dsl.ConcatPlaceholder(["--name=", name])], args=[count]
    )


def compile_to(pipeline: Any, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kfp_compiler.Compiler().compile(pipeline, str(path))
    return path


def translate(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    loaded = kfp_reader.load(path.read_bytes(), path.name)
    assert loaded is not None, "a KFP file must be claimed by the reader"
    resources, problems = loaded
    return (resources[0].body if resources else None), [p.format() for p in problems]


def line_of(path: Path, text: str, occurrence: int = 1) -> int:
    """The 1-based line of the n-th line containing `text`."""
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{text!r} not in {path}")


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["name"]: task for task in body["spec"]["tasks"]}


def test_translation_maps_placeholders_resources_retry_conditions_and_loops(tmp_path: Path) -> None:
    @dsl.pipeline(name="Mapped_Pipeline")
    def pipeline(n: int = 2, names: list = ["a", "b"]) -> None:  # noqa: B006 - the DSL default
        coin = flip()
        (
            say(text="gpu")
            .set_cpu_limit("2")
            .set_memory_limit("1G")
            .set_accelerator_type("nvidia.com/gpu")
            .set_accelerator_limit(1)
            .set_retry(num_retries=3, backoff_duration="5s", backoff_factor=3)
        )
        with dsl.If(coin.output == "heads"):
            tool(name="x", count=n)
        with dsl.ParallelFor(names, parallelism=1) as name:
            tool(name=name, count=3)

    body, problems = translate(compile_to(pipeline, tmp_path / "p.yaml"))
    assert problems == []
    assert body is not None
    assert body["metadata"]["name"] == "mapped-pipeline"
    assert body["spec"]["params"] == [
        {"name": "n", "type": "integer", "default": 2},
        {"name": "names", "type": "list", "default": ["a", "b"]},
    ]
    tasks = by_name(body)
    assert tasks["say"]["resources"] == {"cpu": "2", "memory": "1G", "gpu": 1}
    assert tasks["say"]["pool"] == "gpu"
    assert tasks["say"]["retry"] == {
        "limit": 3,
        "backoff": "5s",
        "maxBackoff": "3600s",
        "factor": 3.0,
    }
    assert tasks["tool"]["command"] == ["tool", "--name=x"]
    assert tasks["tool"]["args"] == ["{{params.n}}"]
    assert tasks["tool"]["when"] == "('{{tasks.flip.outputs.parameters.Output}}' == 'heads')"
    assert tasks["tool"]["dependsOn"] == ["flip"]
    assert tasks["tool-2"]["command"] == ["tool", "--name={{item}}"]
    assert tasks["tool-2"]["args"] == ["3"]
    assert tasks["tool-2"]["forEach"] == {
        "items": "{{params.names}}",
        "parallelism": 1,
        "group": "for-loop-2",
    }
    # The same compiler the native format goes through accepts it.
    spec = model.pipeline_spec_from_spec(body["spec"])
    assert compiler.compile_pipeline(spec)[1] == []


@dsl.pipeline(name="branches")
def branches() -> str:
    coin = flip()
    with dsl.If(coin.output == "heads"):
        first = say(text="A")
    with dsl.Else():
        second = say(text="B")
    return dsl.OneOf(first.output, second.output)


def test_unsupported_constructs_are_located_in_the_kfp_file(tmp_path: Path) -> None:
    @dsl.pipeline(name="unsupported")
    def pipeline() -> None:
        with dsl.ParallelFor([["a", "b"], ["c"]]) as outer, dsl.ParallelFor(outer) as inner:
            say(text=inner)

    path = compile_to(pipeline, tmp_path / "p.yaml")
    body, problems = translate(path)
    assert body is None
    line = line_of(path, "              inputParameter: pipelinechannel--loop-item-param-1")
    assert problems == [
        f"p.yaml:{line}:15: the items of a nested ParallelFor come from the enclosing loop's "
        "item; pipesync needs them independent of it (not supported yet)",
    ]


def test_platform_settings_map_onto_the_task_or_are_refused(tmp_path: Path) -> None:
    @dsl.pipeline(name="platform")
    def pipeline() -> None:
        say(text="x")

    path = compile_to(pipeline, tmp_path / "p.yaml")
    platform = textwrap.dedent(
        """\
        ---
        platforms:
          kubernetes:
            deploymentSpec:
              executors:
                exec-say:
                  nodeSelector:
                    labels: {disk: ssd}
                  tolerations:
                  - {key: gpu, operator: Exists, effect: NoSchedule}
                  nodeAffinity:
                  - matchExpressions:
                    - {key: zone, operator: In, values: [a]}
        """
    )
    path.write_text(path.read_text() + platform)
    body, problems = translate(path)
    assert problems == []
    assert body is not None
    task = by_name(body)["say"]
    assert task["nodeSelector"] == {"disk": "ssd"}
    assert task["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert task["affinity"] == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    path.write_text(
        path.read_text() + "          imagePullSecret:\n          - secretName: creds\n"
    )
    body, problems = translate(path)
    assert body is None
    line = line_of(path, "imagePullSecret:")
    assert len(problems) == 1
    assert problems[0].startswith(
        f"p.yaml:{line}:11: kfp-kubernetes setting 'imagePullSecret' is not supported by "
        "pipesync's pod builder (supported: nodeSelector, tolerations, nodeAffinity, secretAsEnv"
    )


#: What kfp-kubernetes 2.17 writes for use_secret_as_env, use_config_map_as_env,
#: use_secret_as_volume, use_config_map_as_volume, mount_pvc and empty_dir_mount.
SECRETS_AND_VOLUMES = """\
---
platforms:
  kubernetes:
    deploymentSpec:
      executors:
        exec-say:
          configMapAsEnv:
          - configMapName: settings
            configMapNameParameter: {runtimeValue: {constant: settings}}
            keyToEnv: [{configMapKey: mode, envVar: MODE}]
            optional: false
          configMapAsVolume:
          - configMapName: conf
            configMapNameParameter: {runtimeValue: {constant: conf}}
            mountPath: /etc/conf
            optional: false
          emptyDirMounts:
          - {medium: Memory, mountPath: /scratch, sizeLimit: 1Gi, volumeName: scratch}
          pvcMount:
          - constant: datasets
            mountPath: /data
            pvcNameParameter: {runtimeValue: {constant: datasets}}
          secretAsEnv:
          - keyToEnv: [{envVar: DB_PASSWORD, secretKey: password}]
            optional: false
            secretName: db
            secretNameParameter: {runtimeValue: {constant: db}}
          secretAsVolume:
          - mountPath: /etc/creds
            optional: true
            secretName: creds
            secretNameParameter: {runtimeValue: {constant: creds}}
"""


def test_kfp_kubernetes_secrets_config_maps_and_volumes_map_onto_the_task(
    tmp_path: Path,
) -> None:
    @dsl.pipeline(name="platform-volumes")
    def pipeline() -> None:
        say(text="x")

    path = compile_to(pipeline, tmp_path / "p.yaml")
    path.write_text(path.read_text() + SECRETS_AND_VOLUMES)
    body, problems = translate(path)
    assert problems == []
    assert body is not None
    task = by_name(body)["say"]
    env = {e["name"]: e.get("valueFrom") for e in task["env"]}
    assert env["DB_PASSWORD"] == {
        "secretKeyRef": {"name": "db", "key": "password", "optional": False}
    }
    assert env["MODE"] == {
        "configMapKeyRef": {"name": "settings", "key": "mode", "optional": False}
    }
    volumes = {v["mountPath"]: v for v in task["volumes"]}
    assert volumes["/etc/creds"]["secret"] == {"secretName": "creds", "optional": True}
    assert volumes["/etc/conf"]["configMap"] == {"name": "conf", "optional": False}
    assert volumes["/data"]["persistentVolumeClaim"] == {"claimName": "datasets"}
    assert volumes["/scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert len({v["name"] for v in task["volumes"]}) == 4

    # a secret named by a pipeline parameter cannot be resolved when the pod is built
    dynamic = path.read_text().replace(
        "secretName: db\n            secretNameParameter: {runtimeValue: {constant: db}}",
        "secretNameParameter: {componentInputParameter: which}",
    )
    path.write_text(dynamic)
    body, problems = translate(path)
    assert body is None
    assert len(problems) == 1 and "kfp-kubernetes secretAsEnv: the name comes from" in problems[0]


def test_validate_and_run_accept_kfp_files(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="cli")
    def pipeline(word: str = "hi") -> None:
        say(text=word)

    path = compile_to(pipeline, tmp_path / "p.yaml")
    result = cli("validate", path)
    assert result.code == 0, result.text
    assert "1 document(s): valid" in result.err

    @dsl.container_component
    def rooted() -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image="alpine:3", command=["ls", dsl.PIPELINE_ROOT_PLACEHOLDER])

    @dsl.pipeline(name="cli-broken")
    def broken_pipeline() -> None:
        rooted()

    broken = compile_to(broken_pipeline, tmp_path / "broken.yaml")
    result = cli("validate", broken)
    assert result.code == 1
    line = line_of(broken, "        - '{{$.pipeline_root}}'")
    assert (
        f"broken.yaml:{line - 1}:9: task 'rooted': unsupported placeholder {{{{$.pipeline_root}}}}"
        in result.out
    ), result.out


def test_one_of_outputs_become_alternatives(tmp_path: Path) -> None:
    @dsl.pipeline(name="outer")
    def pipeline() -> None:
        say(text=branches().output)

    body, problems = translate(compile_to(pipeline, tmp_path / "p.yaml"))
    assert problems == []
    assert body is not None
    assert (
        "{{tasks.branches--say.outputs.parameters.Output|"
        "tasks.branches--say-2.outputs.parameters.Output}}"
    ) in by_name(body)["say"]["command"]


def test_planner_reads_the_alternative_that_ran_and_skips_when_none_did() -> None:
    spec = model.pipeline_spec_from_spec(
        {
            "tasks": [
                {"name": "a", "command": ["x"], "outputs": {"parameters": ["p"]}},
                {"name": "b", "command": ["x"], "outputs": {"parameters": ["p"]}},
                {
                    "name": "c",
                    "command": [
                        "echo",
                        "{{tasks.a.outputs.parameters.p|tasks.b.outputs.parameters.p}}",
                    ],
                },
            ]
        }
    )
    compiled, problems = compiler.compile_pipeline(spec)
    assert compiled is not None, problems
    a, b, c = (compiled.task(name).index for name in "abc")
    context = planner.RunContext("r", "ns", {})
    nodes = {
        (a, TASK): NodeState(Phase.SKIPPED),
        (b, TASK): NodeState(Phase.SUCCEEDED, outputs={"p": "from-b"}),
    }
    decision = planner.plan(compiled, nodes, context, now=0.0)
    assert [dict(launch.values) for launch in decision.launches] == [
        {"tasks.a.outputs.parameters.p|tasks.b.outputs.parameters.p": "from-b"}
    ]
    nodes[(b, TASK)] = NodeState(Phase.SKIPPED)
    decision = planner.plan(compiled, nodes, context, now=0.0)
    assert decision.launches == ()
    assert {t.key: t.state.phase for t in decision.transitions}[(c, TASK)] is Phase.SKIPPED


def test_files_that_are_not_kfp_are_left_to_the_native_reader() -> None:
    native = b"apiVersion: pipesync.io/v1alpha1\nkind: Pipeline\nmetadata: {name: a}\n"
    assert kfp_reader.load(native, "a.yaml") is None
    mentions = b"# pipelineInfo and deploymentSpec in a comment\nkind: Pipeline\n"
    assert kfp_reader.load(mentions, "b.yaml") is None


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("inputs.parameter_values['a'] == 'heads'", "'{{A}}' == 'heads'"),
        ("int(inputs.parameter_values['a']) > 5", "{{A}} > 5"),
        (
            "!(inputs.parameter_values['a'] == 'x') && double(inputs.parameter_values['b']) <= 1.5",
            "not ( '{{A}}' == 'x' ) and {{B}} <= 1.5",
        ),
        ('inputs.parameter_values["a"] != "say \\"hi\\""', "'{{A}}' != 'say \"hi\"'"),
    ],
)
def test_cel_conditions_become_when_expressions(condition: str, expected: str) -> None:
    def operand(name: str, numeric: bool) -> str:
        text = "{{" + name.upper() + "}}"
        return text if numeric else f"'{text}'"

    assert cel.translate(condition, operand) == expected


def test_cel_outside_the_subset_is_refused() -> None:
    with pytest.raises(cel.CelError, match="parseJson"):
        cel.translate("parseJson(inputs.parameter_values['a'])['k'] == 1", lambda n, b: n)


def test_planner_runs_a_task_that_ignores_upstream_failure() -> None:
    spec = model.pipeline_spec_from_spec(
        {
            "tasks": [
                {"name": "a", "command": ["false"]},
                {
                    "name": "b",
                    "command": ["true"],
                    "dependsOn": ["a"],
                    "ignoreUpstreamFailure": True,
                },
                {"name": "c", "command": ["true"], "dependsOn": ["a"]},
            ]
        }
    )
    compiled, problems = compiler.compile_pipeline(spec)
    assert compiled is not None, problems
    a, b, c = (compiled.task(name).index for name in "abc")
    nodes = {(a, TASK): NodeState(Phase.FAILED, attempts=1)}
    decision = planner.plan(compiled, nodes, planner.RunContext("r", "ns", {}), now=0.0)
    assert [launch.task.name for launch in decision.launches] == ["b"]
    states = {t.key: t.state.phase for t in decision.transitions}
    assert states[(c, TASK)] is Phase.OMITTED
    assert states[(b, TASK)] is Phase.RUNNING


def test_a_compiled_file_in_a_git_source_reads_as_a_pipeline(tmp_path: Path) -> None:
    from pipesync.gitops.snapshot import read_snapshot, resource_key  # noqa: PLC0415
    from tests.unit.gitrepos import GitRepo  # noqa: PLC0415

    @dsl.pipeline(name="say-hello")
    def hello(text: str = "hi") -> None:
        say(text=text)

    repo = GitRepo(tmp_path / "repo")
    (repo.root / "pipelines").mkdir()
    compile_to(hello, repo.root / "pipelines" / "hello.yaml")
    sha = repo.commit("a KFP SDK pipeline")
    snapshot = read_snapshot(repo.repo, sha)
    assert snapshot.problems == ()
    assert [resource_key(r) for r in snapshot.resources] == ["Pipeline/say-hello"]
    assert snapshot.files == {"pipelines/hello.yaml": ("Pipeline/say-hello",)}


def test_a_nested_loop_over_an_outer_tasks_output_is_refused(tmp_path: Path) -> None:
    @dsl.component(base_image=IMAGE)
    def listing(n: int) -> list:
        return list(range(n))

    @dsl.pipeline(name="ragged")
    def pipeline() -> None:
        with dsl.ParallelFor([1, 2]) as n:
            listed = listing(n=n)
            with dsl.ParallelFor(listed.output) as m:
                say(text=m)

    body, problems = translate(compile_to(pipeline, tmp_path / "p.yaml"))
    assert body is None
    assert len(problems) == 1
    assert "the items of a nested ParallelFor come from the enclosing loop's tasks" in problems[0]


def test_caching_options_map_onto_the_task_cache(tmp_path: Path) -> None:
    @dsl.pipeline(name="caching")
    def pipeline() -> None:
        say(text="on")
        flip().set_caching_options(False)

    body, problems = translate(compile_to(pipeline, tmp_path / "p.yaml"))
    assert problems == [] and body is not None
    tasks = by_name(body)
    assert tasks["say"]["cache"] == {"enabled": True, "paths": []}  # code is in the command
    assert "cache" not in tasks["flip"]
