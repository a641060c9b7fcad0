"""`pipesync run FILE`: a pipeline on this machine, judged by its exit code, its summary
and the work directory it leaves (`<workdir>/local/runs/<run>/...`, same keys as S3).

Pipelines here are tiny inline YAML files whose tasks are `sh`/`python` one-liners, so
each run takes well under a second; timing is only ever used to check ordering
(overlap of intervals), never speed, except for generous upper bounds.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from pipesync.api import runstatus, schemas
from pipesync.cli.progress import LiveReporter
from pipesync.engine.state import NodeState, Phase
from tests.unit.conftest import CONSOLE_SCRIPT, Cli, CliResult, WriteYaml
from tests.unit.localrecords import task_rows

HEAD = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata:
  name: {name}
spec:
"""

ECHO_PARAM = "import sys, pathlib; pathlib.Path(sys.argv[2]).write_text(sys.argv[1])"  # no shell


def pipeline(write_yaml: WriteYaml, body: str, *, name: str = "tiny") -> Path:
    """A Pipeline file in its own folder (tasks run there: it is the repository root)."""
    return write_yaml(f"repo/{name}.yaml", HEAD.format(name=name) + body)


def run(cli: Cli, file: Path, *extra: str, run_name: str = "r1") -> CliResult:
    workdir = file.parent.parent / "work"
    return cli("run", file, "--workdir", workdir, "--run-name", run_name, "--plain", *extra)


def run_dir(file: Path, run_name: str = "r1") -> Path:
    return file.parent.parent / "work" / "local" / "runs" / run_name


def record(file: Path, run_name: str = "r1") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir(file, run_name) / "run.json").read_text())
    return data


def tasks(file: Path, run_name: str = "r1") -> dict[str, dict[str, Any]]:
    return task_rows(record(file, run_name))


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end frees before a start)."""
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda event: (event[0], event[1]),
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def assert_no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.text, result.text


# --- success and failure -------------------------------------------------------------


def test_a_successful_run_exits_0_and_records_succeeded(cli: Cli, write_yaml: WriteYaml) -> None:
    file = pipeline(write_yaml, "  tasks: [{name: hello, command: [echo, hello world]}]\n")
    result = run(cli, file)
    assert result.code == 0, result.text
    assert "Succeeded" in result.out
    assert record(file)["status"]["phase"] == "Succeeded"
    assert tasks(file)["hello"]["phase"] == "Succeeded"


FAILING = """\
  tasks:
    - {name: bad, command: [sh, -c, "exit 3"]}
    - {name: after, dependsOn: [bad], command: [echo, never]}
    - {name: fine, command: [echo, fine]}
  onExit:
    name: finally
    command: [sh, -c, 'echo "status=$1"', sh, "{{run.status}}"]
"""


def test_a_failing_task_fails_the_run_with_exit_1_and_its_exit_code(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, FAILING)
    result = run(cli, file)
    assert result.code == 1, result.text
    assert_no_traceback(result)
    assert "exited with code 3" in result.out
    assert "Failed" in result.out
    bad = tasks(file)["bad"]
    assert (bad["phase"], bad["exitCode"], bad["message"]) == ("Failed", 3, "exited with code 3")
    assert record(file)["status"]["phase"] == "Failed"
    # the outcome's message is where a cluster Run has it: its Succeeded condition
    outcome = {c["type"]: c for c in record(file)["status"]["conditions"]}["Succeeded"]
    assert "bad" in outcome["message"]


def test_dependents_of_a_failed_task_are_omitted_and_others_still_run(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, FAILING)
    run(cli, file)
    rows = tasks(file)
    assert rows["after"]["phase"] == "Omitted"
    assert rows["after"]["attempts"] == 0
    assert "bad" in rows["after"]["message"]
    assert rows["fine"]["phase"] == "Succeeded"


def test_on_exit_still_runs_after_a_failure_and_sees_failed(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, FAILING)
    run(cli, file)
    assert tasks(file)["finally"]["phase"] == "Succeeded"
    log = run_dir(file) / "finally" / "logs" / "attempt-1.log"
    assert log.read_text() == "status=Failed\n"


def test_a_false_when_skips_the_task(cli: Cli, write_yaml: WriteYaml) -> None:
    file = pipeline(
        write_yaml,
        """\
  params: [{name: mode, default: quick}]
  tasks:
    - {name: full-only, when: "'{{params.mode}}' == 'full'", command: [sh, -c, "exit 1"]}
    - {name: always, command: [echo, ok]}
""",
    )
    result = run(cli, file)
    assert result.code == 0, result.text
    skipped = tasks(file)["full-only"]
    assert skipped["phase"] == "Skipped"
    assert skipped["attempts"] == 0
    assert not (run_dir(file) / "full-only" / "logs").exists()


# --- retries and timeouts ------------------------------------------------------------

FLAKY = """\
  params: [{{name: counter}}]
  tasks:
    - name: flaky
      retry: {{limit: {limit}, backoff: 0s}}
      command:
        - python
        - -c
        - |
          import pathlib, sys
          counter = pathlib.Path(sys.argv[1])
          done = int(counter.read_text()) if counter.exists() else 0
          counter.write_text(str(done + 1))
          sys.exit(0 if done >= 2 else 1)  # fails twice, then succeeds
        - "{{{{params.counter}}}}"
"""


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(2, (0, "Succeeded", 3)), (1, (1, "Failed", 2))],
    ids=["limit-2-succeeds", "limit-1-fails"],
)
def test_a_task_that_fails_twice_needs_two_retries(
    cli: Cli,
    write_yaml: WriteYaml,
    tmp_path: Path,
    limit: int,
    expected: tuple[int, str, int],
) -> None:
    code, phase, attempts = expected
    file = pipeline(write_yaml, FLAKY.format(limit=limit))
    counter = tmp_path / "work" / "counter"
    counter.parent.mkdir()
    result = run(cli, file, "-p", f"counter={counter}")
    assert result.code == code, result.text
    flaky = tasks(file)["flaky"]
    assert (flaky["phase"], flaky["attempts"]) == (phase, attempts)
    assert counter.read_text() == str(attempts)
    for attempt in range(1, attempts + 1):  # every attempt keeps its own log
        assert (run_dir(file) / "flaky" / "logs" / f"attempt-{attempt}.log").is_file()


def test_a_task_timeout_stops_the_task_and_fails_it(cli: Cli, write_yaml: WriteYaml) -> None:
    file = pipeline(write_yaml, "  tasks: [{name: slow, timeout: 1s, command: [sleep, '30']}]\n")
    started = time.monotonic()
    result = run(cli, file)
    assert time.monotonic() - started < 25  # far less than the 30 s sleep
    assert result.code == 1, result.text
    slow = tasks(file)["slow"]
    assert slow["phase"] == "Failed"
    assert "timed out" in slow["message"]
    assert "timed out" in result.out


# --- forEach and parallelism ---------------------------------------------------------

FAN_OUT = """\
  tasks:
    - name: fan
      forEach: {items: [0.8, 0.6, 0.4, 0.2], parallelism: 2}
      # Earlier items sleep longer, so they finish last: order must come from the items.
      command: [sh, -c, 'sleep "$1"; printf "v%s" "$1" > "$2"', sh,
                "{{item}}", "{{outputs.parameters.v}}"]
      outputs: {parameters: [v]}
    - name: join
      command: [python, -c, "@ECHO@", "{{tasks.fan.outputs.parameters.v}}",
                "{{outputs.parameters.joined}}"]
      outputs: {parameters: [joined]}
""".replace("@ECHO@", ECHO_PARAM)


def test_for_each_outputs_are_a_json_list_in_item_order(cli: Cli, write_yaml: WriteYaml) -> None:
    file = pipeline(write_yaml, FAN_OUT)
    result = run(cli, file, "--parallelism", "4")
    assert result.code == 0, result.text
    expected = ["v0.8", "v0.6", "v0.4", "v0.2"]
    assert json.loads(tasks(file)["fan"]["outputs"]["v"]) == expected
    joined = run_dir(file) / "join" / "outputs" / "parameters" / "joined"
    assert json.loads(joined.read_text()) == expected
    assert [tasks(file)[f"fan[{i}]"]["outputs"]["v"] for i in range(4)] == expected


def test_for_each_parallelism_caps_instances_running_at_once(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, FAN_OUT)
    assert run(cli, file, "--parallelism", "4").code == 0
    rows = tasks(file)
    intervals = [
        (rows[f"fan[{i}]"]["startedAt"], rows[f"fan[{i}]"]["finishedAt"]) for i in range(4)
    ]
    assert most_at_once(intervals) <= 2


def test_for_each_over_an_output_that_is_not_a_json_list_fails_clearly(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(
        write_yaml,
        """\
  tasks:
    - name: make
      command: [sh, -c, 'echo not-a-list > "$1"', sh, "{{outputs.parameters.items}}"]
      outputs: {parameters: [items]}
    - name: each
      forEach: {items: "{{tasks.make.outputs.parameters.items}}"}
      command: [echo, "{{item}}"]
""",
    )
    result = run(cli, file)
    assert result.code == 1, result.text
    assert_no_traceback(result)
    each = tasks(file)["each"]
    assert each["phase"] == "Failed"
    assert "not a JSON list" in each["message"]
    assert "not-a-list" in each["message"]


def test_parallelism_1_runs_tasks_one_at_a_time(cli: Cli, write_yaml: WriteYaml) -> None:
    stamp = (
        "import sys, time; open(sys.argv[1] + '.start', 'w').write(repr(time.time())); "
        "time.sleep(0.4); open(sys.argv[1] + '.end', 'w').write(repr(time.time()))"
    )
    body = "  tasks:\n" + "".join(
        f'    - {{name: {name}, command: [python, -c, "{stamp}", stamp-{name}]}}\n'
        for name in ("a", "b", "c")
    )
    file = pipeline(write_yaml, body)
    result = run(cli, file, "--parallelism", "1")
    assert result.code == 0, result.text
    intervals = [
        (
            float((file.parent / f"stamp-{name}.start").read_text()),
            float((file.parent / f"stamp-{name}.end").read_text()),
        )
        for name in ("a", "b", "c")
    ]
    assert most_at_once(intervals) == 1, intervals


# --- parameters ----------------------------------------------------------------------

PARAMS = """\
  params:
    - {name: n, type: integer, default: 1}
    - {name: text, default: hi}
  tasks:
    - {name: show, command: [echo, "{{params.n}}", "{{params.text}}"]}
"""


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("nope=1", "-p nope: the pipeline declares no such parameter (declared: n, text)"),
        ("n=abc", "-p n: 'abc' is not an integer"),
        ("n", "-p 'n': expected NAME=VALUE"),
    ],
    ids=["unknown", "wrong-type", "no-equals"],
)
def test_bad_parameters_are_usage_errors_and_nothing_runs(
    cli: Cli, write_yaml: WriteYaml, argument: str, expected: str
) -> None:
    file = pipeline(write_yaml, PARAMS)
    result = run(cli, file, "-p", argument)
    assert result.code == 2
    assert expected in result.err
    assert_no_traceback(result)
    assert not run_dir(file).exists()


def test_typed_parameters_reach_the_task(cli: Cli, write_yaml: WriteYaml) -> None:
    file = pipeline(write_yaml, PARAMS)
    assert run(cli, file, "-p", "n=42", "-p", "text=a b").code == 0
    assert (run_dir(file) / "show" / "logs" / "attempt-1.log").read_text() == "42 a b\n"


# --- which pipeline ------------------------------------------------------------------

TWO = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: one}
spec:
  tasks: [{name: say, command: [echo, from-one]}]
---
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: two}
spec:
  tasks: [{name: say, command: [echo, from-two]}]
"""


def test_pipeline_option_picks_one_of_several(cli: Cli, write_yaml: WriteYaml) -> None:
    file = write_yaml("repo/two.yaml", TWO)
    result = run(cli, file, "--pipeline", "two")
    assert result.code == 0, result.text
    assert (run_dir(file) / "say" / "logs" / "attempt-1.log").read_text() == "from-two\n"


def test_several_pipelines_without_the_option_is_a_usage_error(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = write_yaml("repo/two.yaml", TWO)
    result = run(cli, file)
    assert result.code == 2
    assert "several pipelines (one, two); choose one with --pipeline" in result.err
    assert not run_dir(file).exists()


def test_an_unknown_pipeline_name_is_a_usage_error(cli: Cli, write_yaml: WriteYaml) -> None:
    result = run(cli, write_yaml("repo/two.yaml", TWO), "--pipeline", "three")
    assert result.code == 2
    assert "no pipeline 'three' in the file (pipelines: one, two)" in result.err


def test_a_run_file_resolves_its_pipeline_ref_from_the_pipelines_folder(
    cli: Cli, write_yaml: WriteYaml, tmp_path: Path
) -> None:
    write_yaml(
        "repo/pipelines/greet.yaml",
        HEAD.format(name="greet")
        + "  params: [{name: who, default: nobody}]\n"
        + "  tasks: [{name: say, command: [sh, -c, 'echo \"$1\" > said.txt', sh, "
        + '"hello {{params.who}}"]}]\n',
    )
    run_file = write_yaml(
        "repo/runs/greet-once.yaml",
        """
        apiVersion: pipesync.io/v1alpha1
        kind: Run
        metadata: {name: greet-once}
        spec:
          pipelineRef: {name: greet}
          params: {who: world}
        """,
    )
    workdir = tmp_path / "work"
    result = cli("run", run_file, "--workdir", workdir, "--plain")
    assert result.code == 0, result.text
    # The run takes the Run's name, and tasks run at the repository root.
    assert (workdir / "local" / "runs" / "greet-once" / "run.json").is_file()
    assert (tmp_path / "repo" / "said.txt").read_text() == "hello world\n"


def test_a_run_file_whose_pipeline_is_missing_is_a_usage_error(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    run_file = write_yaml(
        "repo/runs/orphan.yaml",
        """
        apiVersion: pipesync.io/v1alpha1
        kind: Run
        metadata: {name: orphan}
        spec:
          pipelineRef: {name: ghost}
        """,
    )
    result = cli("run", run_file, "--plain")
    assert result.code == 2
    assert "pipeline 'ghost' (the Run's pipelineRef) is not in" in result.err


def test_an_invalid_file_is_a_usage_error_with_located_errors(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, "  tasks: [{name: a, command: [echo, '{{params.nope}}']}]\n")
    result = run(cli, file)
    assert result.code == 2
    assert f"{file}:6:37: {{{{params.nope}}}} names an undeclared parameter 'nope'" in result.err
    assert not run_dir(file).exists()


def test_a_missing_file_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("run", tmp_path / "absent.yaml")
    assert result.code == 2
    assert "no such file" in result.err


def test_a_run_name_that_could_escape_the_work_dir_is_refused(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, PARAMS)
    result = run(cli, file, run_name="../../escape")
    assert result.code == 2
    assert "DNS-1123" in result.err
    assert not (file.parent.parent / "escape").exists()


# --- the work directory --------------------------------------------------------------


def test_the_work_directory_has_the_s3_key_layout(cli: Cli, write_yaml: WriteYaml) -> None:
    file = pipeline(
        write_yaml,
        """\
  tasks:
    - name: produce
      command: [sh, -c, 'echo to-the-log; printf 41 > "$1"; echo data > "$2"', sh,
                "{{outputs.parameters.answer}}", "{{outputs.artifacts.blob}}"]
      outputs: {parameters: [answer], artifacts: [blob]}
""",
    )
    assert run(cli, file).code == 0
    node = run_dir(file) / "produce"
    assert (node / "outputs" / "parameters" / "answer").read_text() == "41"
    assert (node / "outputs" / "artifacts" / "blob").read_text() == "data\n"
    assert (node / "logs" / "attempt-1.log").read_text() == "to-the-log\n"
    data = record(file)
    metadata, status = data["metadata"], data["status"]
    assert (metadata["name"], metadata["namespace"], status["phase"]) == (
        "r1",
        "local",
        "Succeeded",
    )
    assert tasks(file)["produce"]["outputs"] == {"answer": "41"}


# --- parameter values are data, never code -------------------------------------------

INERT = """\
  params:
    - {name: p, default: ""}
    - {name: other, default: EXPANDED}
  tasks:
    - name: echo
      command: [python, -c, "@ECHO@", "{{params.p}}", "{{outputs.parameters.echo}}"]
      outputs: {parameters: [echo]}
""".replace("@ECHO@", ECHO_PARAM)


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def test_shell_metacharacters_and_dot_dot_in_a_parameter_stay_inert(
    cli: Cli, write_yaml: WriteYaml, tmp_path: Path
) -> None:
    canary = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    value = f"$(touch {canary}); ../../etc/passwd; `rm -rf ~`; | tee x > y & echo $HOME"
    file = pipeline(write_yaml, INERT)
    before = files_under(tmp_path)
    result = run(cli, file, "-p", f"p={value}")
    assert result.code == 0, result.text
    out = run_dir(file) / "echo" / "outputs" / "parameters" / "echo"
    assert out.read_text() == value
    assert tasks(file)["echo"]["outputs"] == {"echo": value}
    assert not canary.exists()
    written = files_under(tmp_path) - before
    assert written
    assert all(path.is_relative_to(tmp_path / "work") for path in written), written


def test_a_placeholder_inside_a_parameter_value_is_not_expanded_again(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, INERT)
    assert run(cli, file, "-p", "p={{params.other}} and {{run.name}}").code == 0
    out = run_dir(file) / "echo" / "outputs" / "parameters" / "echo"
    assert out.read_text() == "{{params.other}} and {{run.name}}"


# --- the real console script ---------------------------------------------------------


def console(*args: str | Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CONSOLE_SCRIPT), *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.parametrize(("body", "code"), [(PARAMS, 0), (FAILING, 1)], ids=["ok", "failed"])
def test_console_script_exit_codes(write_yaml: WriteYaml, body: str, code: int) -> None:
    file = pipeline(write_yaml, body)
    process = console("run", file, "--workdir", "work", cwd=file.parent.parent)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, out + err
    assert "Traceback" not in out + err
    assert (file.parent.parent / "work" / "local" / "runs").is_dir()


def processes_with(token: str) -> list[int]:
    """Pids whose command line contains token (read from /proc: no extra tools needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if token in cmdline:
            found.append(int(entry.name))
    return found


def test_ctrl_c_cancels_the_run_runs_on_exit_and_leaves_no_process(
    write_yaml: WriteYaml,
) -> None:
    token = f"3600.{uuid.uuid4().int % 10**6:06d}"  # a sleep nobody else runs
    file = pipeline(
        write_yaml,
        f"""\
  tasks:
    - {{name: nap, command: [sleep, "{token}"]}}
  onExit:
    name: finally
    command: [sh, -c, 'echo "$1" > exit-status.txt', sh, "{{{{run.status}}}}"]
""",
    )
    process = console("run", file, "--workdir", "work", "--run-name", "c1", cwd=file.parent)
    try:
        deadline = time.monotonic() + 60
        while not processes_with(f"sleep {token}"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, out + err
    assert "Traceback" not in out + err
    assert "KeyboardInterrupt" not in out + err
    assert "cancelling" in err
    assert (file.parent / "exit-status.txt").read_text() == "Cancelled\n"
    assert processes_with(f"sleep {token}") == []
    data = json.loads((file.parent / "work/local/runs/c1/run.json").read_text())
    assert data["status"]["phase"] == "Cancelled"
    assert {name: row["phase"] for name, row in task_rows(data).items()}["nap"] == "Cancelled"


def test_a_work_dir_that_is_a_file_is_a_usage_error(
    cli: Cli, write_yaml: WriteYaml, tmp_path: Path
) -> None:
    file = pipeline(write_yaml, PARAMS)
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_text("")
    result = cli("run", file, "--workdir", not_a_dir, "--plain")
    assert result.code == 2
    assert "plain-file" in result.err


# --- stopping: one SIGTERM, and nothing of a task outlives it ----------------------------

COUNT_TERMS = """\
import signal, sys, time
terms = 0
def count(signum, frame):
    global terms
    terms += 1
    with open("terms.txt", "a") as out:
        out.write("TERM\\n")
signal.signal(signal.SIGTERM, count)
open("ready.txt", "w").close()
while not terms:
    time.sleep(0.01)
time.sleep(1.5)  # a clean shutdown that takes a while: well inside the grace period
"""


def wait_for(path: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_a_cancelled_task_gets_one_sigterm_not_one_per_planning_pass(
    write_yaml: WriteYaml,
) -> None:
    file = pipeline(write_yaml, "  tasks: [{name: slow, command: [python, count_terms.py]}]\n")
    (file.parent / "count_terms.py").write_text(COUNT_TERMS)
    process = console("run", file, "--workdir", "work", "--plain", cwd=file.parent)
    try:
        wait_for(file.parent / "ready.txt", process)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, out + err
    assert (file.parent / "terms.txt").read_text() == "TERM\n"


def test_children_a_task_leaves_running_are_stopped_when_it_succeeds(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    token = f"3600.{uuid.uuid4().int % 10**6:06d}"
    file = pipeline(
        write_yaml, f"  tasks: [{{name: bg, command: [sh, -c, 'sleep {token} & echo ok']}}]\n"
    )
    result = run(cli, file)
    leftover = processes_with(f"sleep {token}")
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert result.code == 0, result.text
    assert leftover == []


def test_sighup_stops_the_run_and_leaves_no_process(write_yaml: WriteYaml) -> None:
    token = f"3600.{uuid.uuid4().int % 10**6:06d}"
    file = pipeline(write_yaml, f'  tasks: [{{name: nap, command: [sleep, "{token}"]}}]\n')
    process = console("run", file, "--workdir", "work", "--plain", cwd=file.parent)
    try:
        deadline = time.monotonic() + 60
        while not processes_with(f"sleep {token}"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the task never started"
            time.sleep(0.05)
        process.send_signal(signal.SIGHUP)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        leftover = processes_with(f"sleep {token}")
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
    assert leftover == []
    assert process.returncode == 1, out + err
    assert "Cancelled" in out


# --- what the end of a run shows -------------------------------------------------------


def test_the_live_view_counts_the_time_of_a_running_task() -> None:
    class Named:
        def task_name(self, key: object) -> str:
            return "train"

    screen = io.StringIO()
    reporter = LiveReporter(Console(file=screen, force_terminal=True, width=100))
    reporter.node_changed(Named(), (0, -1), NodeState(Phase.RUNNING, attempts=1))  # type: ignore[arg-type]
    time.sleep(0.35)
    drawn = Console(file=io.StringIO(), width=100)
    with drawn.capture() as capture:
        drawn.print(reporter.live.get_renderable())
    row = next(line for line in capture.get().splitlines() if "train" in line)
    assert "0.0s" not in row and "s" in row.split("train", 1)[1], row


def test_final_lines_are_whole_when_stdout_is_not_a_terminal(
    cli: Cli, write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    file = pipeline(write_yaml, "  tasks: [{name: hello, command: [echo, hi]}]\n")
    workdir = file.parent / ("a-rather-long-folder-name-" * 4) / "work"
    result = cli("run", file, "--workdir", workdir, "--run-name", "r1", "--plain")
    assert result.code == 0, result.text
    expected = f"outputs, artifacts and logs: {workdir.resolve()}/local/runs/r1"
    assert expected in result.out.splitlines()


def test_a_failed_task_shows_its_last_log_lines_and_its_log_path(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    script = "for i in $(seq 1 30); do echo line $i; done; echo boom >&2; exit 3"
    file = pipeline(write_yaml, f"  tasks: [{{name: bad, command: [sh, -c, '{script}']}}]\n")
    result = run(cli, file)
    assert result.code == 1
    lines = result.out.splitlines()
    log = run_dir(file).resolve() / "bad" / "logs" / "attempt-1.log"
    at = lines.index("bad failed: exited with code 3")
    assert lines[at + 1] == f"  log: {log}"
    assert lines[at + 2 : at + 12] == [f"  | line {i}" for i in range(22, 31)] + ["  | boom"]


def test_the_artifacts_are_listed_at_the_end(cli: Cli, write_yaml: WriteYaml) -> None:
    body = """\
  tasks:
    - name: make
      command: [sh, -c, 'echo x > "$0"', "{{outputs.artifacts.model}}"]
      outputs: {artifacts: [model]}
"""
    file = pipeline(write_yaml, body)
    result = run(cli, file)
    assert result.code == 0, result.text
    path = run_dir(file).resolve() / "make" / "outputs" / "artifacts" / "model"
    lines = result.out.splitlines()
    assert lines[lines.index("artifacts:") + 1] == f"  make model: {path}"


def test_the_default_work_directory_ignores_itself_in_git(
    write_yaml: WriteYaml, tmp_path: Path
) -> None:
    file = pipeline(write_yaml, "  tasks: [{name: hello, command: [echo, hi]}]\n")
    repo = file.parent
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    process = console("run", file, cwd=repo)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, out + err
    assert (repo / ".pipesync" / ".gitignore").is_file()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ".pipesync" not in status.stdout, status.stdout


IGNORE_TERMS = """\
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("ready.txt", "w").close()
time.sleep(60)
"""


def test_a_second_ctrl_c_kills_at_once_without_the_grace_period(write_yaml: WriteYaml) -> None:
    file = pipeline(write_yaml, "  tasks: [{name: stubborn, command: [python, ignore.py]}]\n")
    (file.parent / "ignore.py").write_text(IGNORE_TERMS)
    process = console("run", file, "--workdir", "work", "--plain", cwd=file.parent)
    try:
        wait_for(file.parent / "ready.txt", process)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        second = time.monotonic()
        out, err = process.communicate(timeout=60)
        took = time.monotonic() - second
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, out + err
    assert "stopping everything now" in err
    assert took < 3.0, f"{took:.1f}s: the 5 s grace period was waited for"


# --- the run record: the operator's RunRecord format ------------------------------------


def test_the_local_record_is_a_run_record_whose_status_the_run_schema_accepts(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, FAN_OUT)
    assert run(cli, file).code == 0
    data = record(file)
    assert (data["apiVersion"], data["kind"]) == ("pipesync.io/v1alpha1", "RunRecord")
    typed = runstatus.RunRecord.from_json(data)
    assert typed is not None and typed.to_json() == data  # nothing the type does not know
    run_object = {
        "apiVersion": "pipesync.io/v1alpha1",
        "kind": "Run",
        "metadata": {"name": typed.name, "namespace": typed.namespace},
        "spec": data["spec"],
        "status": data["status"],
    }
    problems = [e.message for e in schemas.validator("Run").iter_errors(run_object)]
    assert problems == []
    status = typed.status
    assert (status.phase, status.progress) == ("Succeeded", "2/2")
    assert status.pipeline == {"name": "tiny"}
    assert status.task_counts == runstatus.TaskCounts(total=2, succeeded=2)
    fan = (status.tasks or {})["fan"]
    assert fan.instances == runstatus.InstanceCounts(total=4, succeeded=4)
    assert [i.index for i in typed.tasks["fan"].instances or ()] == [0, 1, 2, 3]
    assert all(i.log.endswith("attempt-1.log") for i in typed.tasks["fan"].instances or ())


def test_history_local_lists_and_shows_the_runs_of_a_work_directory(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    file = pipeline(write_yaml, "  tasks: [{name: hello, command: [echo, hi]}]\n")
    assert run(cli, file, run_name="first").code == 0
    failing = pipeline(write_yaml, FAILING, name="broken")
    assert run(cli, failing, run_name="second").code == 1
    workdir = file.parent.parent / "work"
    listed = cli("history", "--local", workdir)
    assert listed.code == 0, listed.text
    lines = listed.out.splitlines()
    assert lines[0].split() == ["NAME", "PIPELINE", "PHASE", "PROGRESS", "STARTED", "DURATION"]
    assert {line.split()[0]: line.split()[2] for line in lines[1:]} == {
        "first": "Succeeded",
        "second": "Failed",
    }
    shown = cli("history", "--local", workdir, "--phase", "failed", "--format", "json")
    assert shown.code == 0, shown.text
    [second] = json.loads(shown.out)
    assert (second["name"], second["namespace"], second["pipeline"]) == (
        "second",
        "local",
        "broken",
    )
    assert second["record"] == str(workdir / "local" / "runs" / "second" / "run.json")
    assert cli("history", "--local", workdir, "-n", "elsewhere").err.strip() == (
        "No runs recorded."
    )
    assert cli("history", "--local", workdir / "missing").code == 2
