"""KFP SDK pipelines, compiled with kfp 2.17.0 during the test, run by `pipesync run`.

Each test writes its own DSL pipeline, compiles it to the v2 YAML the SDK emits, runs
the file with the local executor and checks task states and outputs in the run record.
Lightweight components run through the runtime shim in this venv's python3 (kfp is
importable there), exactly as they would in a pod whose image has kfp.
"""

# No `from __future__ import annotations`: the KFP SDK reads component annotations as types.

import json
import re
import uuid
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    kfp = pytest.importorskip(
        "kfp", reason="kfp is not installed (pip install kfp==2.17.0; see docs/kfp.md)"
    )
    from kfp import compiler, dsl
    from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from tests.unit.conftest import Cli
from tests.unit.localrecords import task_rows

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

IMAGE = "python:3.11"


def compile_to(pipeline: Any, path: Path) -> Path:
    """The pipeline compiled by the KFP SDK into `path`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiler.Compiler().compile(pipeline, str(path))
    return path


def run(cli: Cli, tmp_path: Path, pipeline: Any, *params: str) -> tuple[int, dict[str, Any]]:
    """`pipesync run` on the compiled pipeline: exit code and the run record."""
    path = compile_to(pipeline, tmp_path / "pipeline.yaml")
    workdir = tmp_path / "work"
    args: list[str] = ["run", str(path), "--workdir", str(workdir), "--plain", "--run-name", "r"]
    for param in params:
        args += ["-p", param]
    result = cli(*args)
    record_path = workdir / "local" / "runs" / "r" / "run.json"
    assert record_path.exists(), result.text
    return result.code, json.loads(record_path.read_text())


def tasks(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return task_rows(record)


def log(tmp_path: Path, task: str, attempt: int = 1) -> str:
    return (
        tmp_path / "work" / "local" / "runs" / "r" / task / "logs" / f"attempt-{attempt}.log"
    ).read_text()


# --- components ---------------------------------------------------------------------------


@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image=IMAGE)
def describe(  # noqa: PLR0917 - KFP passes inputs by keyword; the signature is the interface
    i: int, f: float, flag: bool, items: list, conf: dict, text: str
) -> str:
    kinds = f"{type(i).__name__}:{i} {type(f).__name__}:{f}"
    return f"{kinds} {flag} {items} {sorted(conf.items())} {text}"


@dsl.component(base_image=IMAGE)
def split(n: int) -> NamedTuple("Split", [("low", int), ("high", int)]):  # type: ignore[misc]
    return (n // 2, n - n // 2)


@dsl.component(base_image=IMAGE)
def make_dataset(n: int, data: Output[Dataset], metrics: Output[Metrics]) -> None:
    with open(data.path, "w") as handle:
        handle.write(",".join(str(i) for i in range(n)))
    data.metadata["rows"] = n
    metrics.log_metric("rows", n)


@dsl.component(base_image=IMAGE)
def read_dataset(data: Input[Dataset]) -> str:
    with open(data.path) as handle:
        return f"{handle.read()}|rows={data.metadata.get('rows')}"


@dsl.component(base_image=IMAGE)
def flip(side: str) -> str:
    return side


@dsl.component(base_image=IMAGE)
def say(text: str) -> str:
    print("say:", text)
    return text


@dsl.component(base_image=IMAGE)
def total(values: list) -> int:
    return sum(values)


@dsl.component(base_image=IMAGE)
def square(x: int) -> int:
    return x * x


@dsl.component(base_image=IMAGE)
def numbers(n: int) -> list:
    return list(range(n))


@dsl.component(base_image=IMAGE)
def write_number(x: int, out: Output[Artifact]) -> None:
    with open(out.path, "w") as handle:
        handle.write(str(x))


@dsl.component(base_image=IMAGE)
def read_number(part: Input[Artifact]) -> str:
    with open(part.path) as handle:
        return handle.read()


@dsl.component(base_image=IMAGE)
def join_artifacts(parts: Input[list[Artifact]]) -> str:
    texts = []
    for part in parts:
        with open(part.path) as handle:
            texts.append(handle.read())
    return ",".join(texts)


@dsl.component(base_image=IMAGE)
def fail(message: str) -> None:
    raise RuntimeError(message)


@dsl.component(base_image=IMAGE)
def report(status: dsl.PipelineTaskFinalStatus, marker: str) -> None:
    print(f"final-state={status.state} task={status.pipeline_task_name} marker={marker}")


@dsl.component(base_image=IMAGE)
def flaky(counter_dir: str) -> str:
    import os  # noqa: PLC0415 - the component's source runs alone in the task

    path = os.path.join(counter_dir, "attempts")
    count = 1
    if os.path.exists(path):
        with open(path) as handle:
            count = int(handle.read()) + 1
    with open(path, "w") as handle:
        handle.write(str(count))
    if count < 2:
        raise RuntimeError("first attempt fails")
    return f"attempt={count}"


@dsl.container_component
def echo(message: str, suffix: str = "", extra: str = None) -> dsl.ContainerSpec:  # type: ignore[assignment]  # noqa: RUF013
    return dsl.ContainerSpec(
        image="alpine:3",
        command=["echo"],
        args=[
            dsl.ConcatPlaceholder(["msg=", message, suffix]),
            dsl.IfPresentPlaceholder(input_name="extra", then=["--extra", extra], else_=["--none"]),
        ],
    )


@dsl.container_component
def write_text(text: str, out: dsl.OutputPath(str)) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return dsl.ContainerSpec(
        image="alpine:3", command=["sh", "-c", 'printf "%s" "$0" > "$1"', text, out]
    )


# --- tests --------------------------------------------------------------------------------


def test_lightweight_parameters_arrive_typed_and_outputs_come_back(
    cli: Cli, tmp_path: Path
) -> None:
    @dsl.pipeline(name="typed")
    def pipeline(n: int = 3, f: float = 1.5, flag: bool = True) -> None:
        first = add(a=n, b=4)
        parts = split(n=first.output)
        describe(
            i=parts.outputs["high"],
            f=f,
            flag=flag,
            items=[1, 2, 3],
            conf={"k": 2},
            text="a 'quoted' {text}",
        )

    code, record = run(cli, tmp_path, pipeline, "n=5")
    rows = tasks(record)
    assert code == 0, record
    assert rows["add"]["outputs"] == {"Output": "9"}
    assert rows["split"]["outputs"] == {"low": "4", "high": "5"}
    assert rows["describe"]["outputs"]["Output"] == (
        "int:5 float:1.5 True [1, 2, 3] [('k', 2)] a 'quoted' {text}"
    )


def test_container_components_render_concat_and_if_present(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="containers")
    def pipeline(word: str = "hello") -> None:
        echo(message=word, suffix="!").set_display_name("with-default")
        echo(message="x", extra="given")
        written = write_text(text=word)
        say(text=written.output)

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert log(tmp_path, "echo").strip() == "msg=hello! --none"
    assert log(tmp_path, "echo-2").strip() == "msg=x --extra given"
    assert rows["write-text"]["outputs"] == {"out": "hello"}
    assert rows["say"]["outputs"] == {"Output": "hello"}


def test_artifacts_carry_files_and_metadata(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="artifacts")
    def pipeline() -> None:
        made = make_dataset(n=4)
        read_dataset(data=made.outputs["data"])

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert rows["read-dataset"]["outputs"] == {"Output": "0,1,2,3|rows=4"}
    assert json.loads(rows["make-dataset"]["outputs"]["kfp-meta-metrics"]) == {"rows": 4.0}


def test_conditions_if_elif_else_and_nesting(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="conditions")
    def pipeline(side: str = "tails", n: int = 7) -> None:
        coin = flip(side=side)
        with dsl.If(coin.output == "heads"):
            say(text="heads")
        with dsl.Elif(coin.output == "tails"):
            say(text="tails")
            with dsl.If(n > 5):
                say(text="big")
        with dsl.Else():
            say(text="edge")

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    phases = {name: row["phase"] for name, row in rows.items() if name.startswith("say")}
    assert phases == {
        "say": "Skipped",
        "say-2": "Succeeded",
        "say-3": "Succeeded",
        "say-4": "Skipped",
    }
    code, record = run(cli, tmp_path, pipeline, "side=edge", "n=1")
    phases = {name: row["phase"] for name, row in tasks(record).items() if name.startswith("say")}
    assert phases == {
        "say": "Skipped",
        "say-2": "Skipped",
        "say-3": "Skipped",
        "say-4": "Succeeded",
    }


def test_parallel_for_raw_dicts_upstream_lists_and_collected(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="loops")
    def pipeline(count: int = 4) -> None:
        with dsl.ParallelFor([{"a": 1, "b": 10}, {"a": 2, "b": 20}]) as item:
            add(a=item.a, b=item.b)
        listed = numbers(n=count)
        with dsl.ParallelFor(listed.output, parallelism=2) as x:
            squared = square(x=x)
        total(values=dsl.Collected(squared.output))

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert rows["add"]["outputs"] == {"Output": "[11,22]"}
    assert rows["square"]["outputs"] == {"Output": "[0,1,4,9]"}
    assert rows["total"]["outputs"] == {"Output": "14"}


def test_collected_artifacts(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="collected-artifacts")
    def pipeline() -> None:
        with dsl.ParallelFor([0, 1, 2]) as x:
            written = write_number(x=x)
        join_artifacts(parts=dsl.Collected(written.outputs["out"]))

    code, record = run(cli, tmp_path, pipeline)
    assert code == 0, record
    assert tasks(record)["join-artifacts"]["outputs"] == {"Output": "0,1,2"}


def test_a_loop_body_of_several_tasks_runs_per_item(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="loop-body")
    def pipeline() -> None:
        with dsl.ParallelFor([1, 2, 3], parallelism=1) as x:
            squared = square(x=x)
            written = write_number(x=squared.output)
            read = read_number(part=written.outputs["out"])
            with dsl.If(squared.output > 3):
                say(text=read.output)
        total(values=dsl.Collected(squared.output))

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    # each iteration's steps read their own iteration's outputs
    assert rows["read-number"]["outputs"] == {"Output": "[1,4,9]"}
    assert rows["total"]["outputs"] == {"Output": "14"}
    # the condition on the loop's own output is decided per iteration
    assert [rows[f"say[{i}]"]["phase"] for i in range(3)] == ["Skipped", "Succeeded", "Succeeded"]
    assert rows["say"]["outputs"] == {"Output": "[4,9]"}
    # parallelism=1 counts iterations: one iteration's pods at a time, in item order
    starts = {name: row["startedAt"] for name, row in rows.items() if "[" in name}
    first_of_third = min(v for k, v in starts.items() if k.endswith("[2]"))
    last_of_second = max(row["finishedAt"] for name, row in rows.items() if name.endswith("[1]"))
    assert first_of_third >= last_of_second


def test_conditions_on_loop_items(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="item-conditions")
    def pipeline() -> None:
        with dsl.ParallelFor([1, 5]) as n, dsl.If(n > 2):
            square(x=n)
        with dsl.ParallelFor(["x", "y"]) as letter, dsl.If(letter == "y"):
            flip(side=letter)

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert [rows[f"square[{i}]"]["phase"] for i in range(2)] == ["Skipped", "Succeeded"]
    assert rows["square"]["outputs"] == {"Output": "[25]"}
    assert rows["flip"]["outputs"] == {"Output": '["y"]'}


def test_parallel_for_over_collected_artifacts(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline
    def read_each(parts: Input[list[Artifact]]) -> list:  # type: ignore[type-arg]
        with dsl.ParallelFor(parts) as part:
            read = read_number(part=part)
        return dsl.Collected(read.output)

    @dsl.pipeline(name="artifact-loop")
    def pipeline() -> None:
        with dsl.ParallelFor([2, 3]) as x:
            written = write_number(x=x)
        read = read_each(parts=dsl.Collected(written.outputs["out"]))
        total(values=read.output)

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert rows["read-each--read-number"]["outputs"] == {"Output": "[2,3]"}
    assert rows["total"]["outputs"] == {"Output": "5"}


def test_exit_handler_sees_the_final_status(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="exit-handler")
    def pipeline(broken: bool = False) -> None:
        final = report(marker="done")
        with dsl.ExitHandler(final):
            say(text="body")
            with dsl.If(broken == True):  # noqa: E712 - the DSL builds a condition from ==
                fail(message="boom")

    code, record = run(cli, tmp_path, pipeline)
    assert code == 0, record
    assert "final-state=SUCCEEDED task=exit-handler-1 marker=done" in log(tmp_path, "report")
    code, record = run(cli, tmp_path, pipeline, "broken=true")
    assert code == 1
    assert tasks(record)["fail"]["phase"] == "Failed"
    assert tasks(record)["report"]["phase"] == "Succeeded"
    assert "final-state=FAILED" in log(tmp_path, "report")


def test_retry_policy_retries_until_success(cli: Cli, tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.mkdir()

    @dsl.pipeline(name="retry")
    def pipeline(where: str) -> None:
        flaky(counter_dir=where).set_retry(num_retries=2, backoff_duration="0s")

    code, record = run(cli, tmp_path, pipeline, f"where={counter}")
    row = tasks(record)["flaky"]
    assert code == 0, record
    assert row["attempts"] == 2
    assert row["outputs"] == {"Output": "attempt=2"}


@dsl.pipeline(name="inner")
def inner(x: int) -> int:
    doubled = add(a=x, b=x)
    return add(a=doubled.output, b=1).output


def test_nested_pipelines_and_dag_outputs(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="outer")
    def pipeline(x: int = 5) -> None:
        nested = inner(x=x)
        square(x=nested.output)

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert rows["inner--add-2"]["outputs"] == {"Output": "11"}
    assert rows["square"]["outputs"] == {"Output": "121"}


def test_ignore_upstream_failure_runs_after_a_failed_task(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="ignore-failure")
    def pipeline() -> None:
        broken = fail(message="boom")
        say(text="cleanup").after(broken).ignore_upstream_failure()
        say(text="never").after(broken)

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 1  # the failed task still fails the run
    assert rows["fail"]["phase"] == "Failed"
    assert rows["say"]["phase"] == "Succeeded"
    assert rows["say"]["outputs"] == {"Output": "cleanup"}
    assert rows["say-2"]["phase"] == "Omitted"


@dsl.component(base_image=IMAGE)
def seven() -> int:
    return 7


def test_f_string_arguments_substitute_params_and_upstream_outputs(
    cli: Cli, tmp_path: Path
) -> None:
    @dsl.pipeline(name="f-strings")
    def pipeline(n: int = 3, who: str = "bob") -> None:
        upstream = seven()
        say(text=f"n={n} who={who} m={upstream.output}")

    code, record = run(cli, tmp_path, pipeline, "who=ann")
    assert code == 0, record
    assert tasks(record)["say"]["outputs"] == {"Output": "n=3 who=ann m=7"}


@dsl.component(base_image=IMAGE)
def pick(text: str) -> str:
    return f"selected:{text}"


@dsl.pipeline(name="chooser")
def chooser(side: str) -> str:
    coin = flip(side=side)
    with dsl.If(coin.output == "heads"):
        first = say(text="A")
    with dsl.Else():
        second = say(text="B")
    return dsl.OneOf(first.output, second.output)


def test_one_of_reads_the_branch_that_ran(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="one-of")
    def pipeline(side: str = "heads") -> None:
        pick(text=chooser(side=side).output)

    code, record = run(cli, tmp_path, pipeline)
    assert code == 0, record
    assert tasks(record)["pick"]["outputs"] == {"Output": "selected:A"}
    code, record = run(cli, tmp_path, pipeline, "side=tails")
    assert code == 0, record
    assert tasks(record)["pick"]["outputs"] == {"Output": "selected:B"}


@dsl.pipeline
def data_chooser(side: str) -> Dataset:
    coin = flip(side=side)
    with dsl.If(coin.output == "heads"):
        small = make_dataset(n=2)
    with dsl.Else():
        large = make_dataset(n=5)
    return dsl.OneOf(small.outputs["data"], large.outputs["data"])


def test_one_of_over_artifacts_reads_the_branch_that_ran(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="one-of-artifacts")
    def pipeline(side: str = "heads") -> None:
        read_dataset(data=data_chooser(side=side).output)

    code, record = run(cli, tmp_path, pipeline)
    assert code == 0, record
    assert tasks(record)["read-dataset"]["outputs"] == {"Output": "0,1|rows=2"}
    code, record = run(cli, tmp_path, pipeline, "side=tails")
    assert code == 0, record
    assert tasks(record)["read-dataset"]["outputs"] == {"Output": "0,1,2,3,4|rows=5"}


EXECUTOR_INPUT_READER = """
import json, sys
spec = json.loads(sys.argv[1])
n = spec["inputs"]["parameterValues"]["n"]
outputs = spec["outputs"]
with open(outputs["parameters"]["doubled"]["outputFile"], "w") as handle:
    handle.write(str(n * 2))
data = outputs["artifacts"]["data"]["artifacts"][0]
with open(data["uri"], "w") as handle:
    handle.write(",".join(str(i) for i in range(n)))
result = {"artifacts": {"data": {"artifacts": [{"metadata": {"rows": n}}]}}}
with open(outputs["outputFile"], "w") as handle:
    json.dump(result, handle)
"""


@dsl.container_component
def read_executor_input(
    n: int,
    doubled: dsl.OutputPath(int),  # type: ignore[valid-type]
    data: Output[Dataset],
) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(
        image=IMAGE, command=["python3", "-c", EXECUTOR_INPUT_READER], args=["{{$}}"]
    )


def test_a_container_reading_the_executor_input(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="executor-input")
    def pipeline(n: int = 3) -> None:
        made = read_executor_input(n=n)
        read_dataset(data=made.outputs["data"])
        square(x=made.outputs["doubled"])

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert rows["read-executor-input"]["outputs"]["doubled"] == "6"
    # the artifact and the metadata it wrote to executor_output.json reach the reader
    assert rows["read-dataset"]["outputs"] == {"Output": "0,1,2|rows=3"}
    assert rows["square"]["outputs"] == {"Output": "36"}


def test_a_containerized_python_component(cli: Cli, tmp_path: Path) -> None:
    # `kfp component build` puts the module and kfp_config.ini in the image's workdir;
    # here the repository root (the pipeline file's directory) plays the image.
    (tmp_path / "kfp_config.ini").write_text("[Components]\ntriple = components.py\n")
    (tmp_path / "components.py").write_text(
        "from kfp import dsl\n\n\n@dsl.component(target_image='example/triple:1')\n"
        "def triple(x: int) -> int:\n    return 3 * x\n"
    )

    @dsl.component(target_image="example/triple:1")
    def triple(x: int) -> int:
        return 3 * x

    @dsl.pipeline(name="containerized")
    def pipeline() -> None:
        square(x=triple(x=2).output)

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert rows["triple"]["outputs"] == {"Output": "6"}
    assert rows["square"]["outputs"] == {"Output": "36"}


OUTPUT_FILE_WRITER = """
import json, sys
with open(sys.argv[2], "w") as handle:
    json.dump({"parameterValues": {"answer": sys.argv[1] + "!"}}, handle)
"""


@dsl.container_component
def write_output_file(
    word: str,
    answer: dsl.OutputPath(str),  # type: ignore[valid-type]
) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["python3", "-c", OUTPUT_FILE_WRITER],
        args=[word, dsl.PIPELINE_TASK_EXECUTOR_OUTPUT_PATH_PLACEHOLDER],
    )


def test_run_placeholders_and_the_executor_output_file(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="run-placeholders")
    def pipeline() -> None:
        say(text=dsl.PIPELINE_JOB_CREATE_TIME_UTC_PLACEHOLDER).set_display_name("created")
        say(text=dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER)
        say(text=f"{dsl.PIPELINE_JOB_NAME_PLACEHOLDER}/{dsl.PIPELINE_TASK_NAME_PLACEHOLDER}")
        write_output_file(word="hello")
        say(text=dsl.PIPELINE_TASK_ID_PLACEHOLDER)

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    created, scheduled = rows["say"]["outputs"]["Output"], rows["say-2"]["outputs"]["Output"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created), created
    assert scheduled == created  # not made by a RecurringRun: its creation time
    assert rows["say-3"]["outputs"]["Output"] == "r/say-3"
    # the values the container wrote to {{$.outputs.output_file}} become its outputs
    assert rows["write-output-file"]["outputs"] == {"answer": "hello!"}
    assert str(uuid.UUID(rows["say-4"]["outputs"]["Output"])) == rows["say-4"]["outputs"]["Output"]


@dsl.component(base_image=IMAGE)
def describe_artifact(data: Input[Dataset]) -> str:
    import os  # noqa: PLC0415 - KFP runs the function body alone

    if os.path.isdir(data.path):
        content = ",".join(sorted(os.listdir(data.path)))
    else:
        with open(data.path) as handle:
            content = handle.read().strip()
    return f"{content}|{data.metadata.get('origin', '-')}"


def test_importer_fetches_a_uri_with_its_metadata(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "x.txt").write_text("x")
    (folder / "y.txt").write_text("y")

    @dsl.pipeline(name="importing")
    def pipeline(folder_uri: str, origin: str) -> None:
        constant = dsl.importer(
            artifact_uri=source.as_uri(),
            artifact_class=Dataset,
            reimport=False,
            metadata={"origin": "lab"},
        )
        describe_artifact(data=constant.output)
        from_param = dsl.importer(artifact_uri=folder_uri, artifact_class=Dataset)
        describe_artifact(data=from_param.output)
        # metadata from a parameter travels as its own argv element, never inside JSON
        labelled = dsl.importer(
            artifact_uri=source.as_uri(), artifact_class=Dataset, metadata={"origin": origin}
        )
        describe_artifact(data=labelled.output)

    origin = 'field "7" \\ {x}'
    code, record = run(cli, tmp_path, pipeline, f"folder_uri={folder}", f"origin={origin}")
    assert code == 0, json.dumps(record["tasks"], indent=1)
    found = tasks(record)
    assert found["describe-artifact"]["outputs"]["Output"] == "a,b|lab"
    assert found["describe-artifact-2"]["outputs"]["Output"] == "x.txt,y.txt|-"
    assert found["describe-artifact-3"]["outputs"]["Output"] == f"a,b|{origin}"


def test_an_importer_of_a_missing_file_fails_its_task_with_the_reason(
    cli: Cli, tmp_path: Path
) -> None:
    @dsl.pipeline(name="importing-nothing")
    def pipeline() -> None:
        imported = dsl.importer(
            artifact_uri=(tmp_path / "absent.csv").as_uri(), artifact_class=Dataset
        )
        describe_artifact(data=imported.output)

    code, record = run(cli, tmp_path, pipeline)
    assert code == 1
    found = tasks(record)
    assert found["importer"]["phase"] == "Failed"
    assert found["describe-artifact"]["phase"] in ("Omitted", "Skipped")
    assert "absent.csv" in log(tmp_path, "importer")


def test_pipeline_input_artifacts_are_given_as_uris(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "train.csv"
    source.write_text("rows\n")

    @dsl.pipeline(name="artifact-input")
    def pipeline(training: Input[Dataset]) -> None:
        describe_artifact(data=training)

    code, record = run(cli, tmp_path, pipeline, f"training={source}")
    assert code == 0, json.dumps(record["tasks"], indent=1)
    assert tasks(record)["describe-artifact"]["outputs"]["Output"] == "rows|-"
    assert tasks(record)["input-training"]["phase"] == "Succeeded"
    path = compile_to(pipeline, tmp_path / "needs-input.yaml")
    result = cli("run", str(path), "--workdir", str(tmp_path / "w2"), "--plain")
    assert result.code == 2 and "training" in result.text  # a required parameter


def test_a_pipeline_input_list_of_artifacts_is_looped_over_and_collected(
    cli: Cli, tmp_path: Path
) -> None:
    files = []
    for number in (7, 8):
        files.append(tmp_path / f"part-{number}.txt")
        files[-1].write_text(str(number))

    @dsl.pipeline(name="artifact-list-input")
    def pipeline(parts: Input[list[Artifact]]) -> None:
        join_artifacts(parts=parts)
        with dsl.ParallelFor(parts) as part:
            read_number(part=part)

    given = json.dumps([str(path) for path in files])
    code, record = run(cli, tmp_path, pipeline, f"parts={given}")
    rows = tasks(record)
    assert code == 0, json.dumps(record["tasks"], indent=1)
    assert rows["input-parts"]["message"] == "2 instances succeeded"
    assert rows["join-artifacts"]["outputs"] == {"Output": "7,8"}
    assert rows["read-number"]["outputs"] == {"Output": "[7,8]"}


@dsl.component(base_image=IMAGE)
def combine(a: int, b: str) -> str:
    return f"{a}{b}"


@dsl.component(base_image=IMAGE)
def flatten(values: list) -> str:
    return "|".join(",".join(row) for row in values)


def test_nested_parallel_for_runs_every_pair(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="nested-loops")
    def pipeline(letters: list = ["x", "y"]) -> None:  # noqa: B006 - a KFP default
        with dsl.ParallelFor([1, 2, 3], parallelism=1) as outer:  # noqa: SIM117
            with dsl.If(outer < 3):
                with dsl.ParallelFor(letters) as letter:
                    combined = combine(a=outer, b=letter)
                    say(text=combined.output)
        flatten(values=dsl.Collected(combined.output))

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, record
    assert [rows[f"combine[{i}]"]["outputs"]["Output"] for i in range(4)] == [
        "1x",
        "1y",
        "2x",
        "2y",
    ]
    # the condition on the outer item skips both pairs of item 3
    assert [rows[f"combine[{i}]"]["phase"] for i in (4, 5)] == ["Skipped", "Skipped"]
    # each pair's next step reads that pair's output
    assert [rows[f"say[{i}]"]["outputs"]["Output"] for i in range(4)] == ["1x", "1y", "2x", "2y"]
    # collected from outside both loops: a list per outer item, as KFP gives
    assert rows["flatten"]["outputs"] == {"Output": "1x,1y|2x,2y|"}


def test_nested_parallel_for_beside_tasks_of_the_outer_loop(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="nested-with-outer-tasks")
    def pipeline() -> None:
        with dsl.ParallelFor([3, 4], parallelism=1) as n:
            squared = square(x=n)
            written = write_number(x=squared.output)
            with dsl.ParallelFor(["a", "b"]) as letter:
                # reads the outer iteration's parameter and artifact
                combined = combine(a=squared.output, b=letter)
                read_number(part=written.outputs["out"])
        flatten(values=dsl.Collected(combined.output))

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, json.dumps(record["tasks"], indent=1)
    assert [rows[f"combine[{i}]"]["outputs"]["Output"] for i in range(4)] == [
        "9a",
        "9b",
        "16a",
        "16b",
    ]
    assert rows["read-number"]["outputs"] == {"Output": "[[9,9],[16,16]]"}
    assert rows["flatten"]["outputs"] == {"Output": "9a,9b|16a,16b"}


def test_collected_of_a_nested_loop_inside_the_outer_loop(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="collected-inside")
    def pipeline() -> None:
        with dsl.ParallelFor([1, 2]) as n:
            with dsl.ParallelFor([10, 20]) as m:
                added = add(a=n, b=m)
                written = write_number(x=added.output)
            # per outer item: only that item's inner results
            total(values=dsl.Collected(added.output))
            join_artifacts(parts=dsl.Collected(written.outputs["out"]))

    code, record = run(cli, tmp_path, pipeline)
    rows = tasks(record)
    assert code == 0, json.dumps(record["tasks"], indent=1)
    assert [rows[f"total[{i}]"]["outputs"]["Output"] for i in range(2)] == ["32", "34"]
    assert [rows[f"join-artifacts[{i}]"]["outputs"]["Output"] for i in range(2)] == [
        "11,21",
        "12,22",
    ]


def test_kfp_caching_options_decide_what_the_second_run_reuses(cli: Cli, tmp_path: Path) -> None:
    @dsl.pipeline(name="cached")
    def pipeline(n: int = 3) -> None:
        made = make_dataset(n=n)  # the SDK's default: caching on
        read_dataset(data=made.outputs["data"]).set_caching_options(False)

    code, first = run(cli, tmp_path, pipeline)
    assert code == 0
    assert {name: row["phase"] for name, row in tasks(first).items()} == {
        "make-dataset": "Succeeded",
        "read-dataset": "Succeeded",
    }
    code, second = run(cli, tmp_path, pipeline)
    assert code == 0
    rows = tasks(second)
    assert rows["make-dataset"]["phase"] == "Cached"
    assert rows["make-dataset"]["cachedFrom"] == {"run": "r", "task": "make-dataset"}
    assert rows["read-dataset"]["phase"] == "Succeeded"  # set_caching_options(False)
    assert rows["read-dataset"]["outputs"] == tasks(first)["read-dataset"]["outputs"]
    # another parameter value is another key
    code, third = run(cli, tmp_path, pipeline, "n=4")
    assert code == 0 and tasks(third)["make-dataset"]["phase"] == "Succeeded"
