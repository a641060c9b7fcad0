"""`pipesync validate PATH...`: the contract scripts and CI rely on.

Exit 0 when valid, 1 when invalid, 2 on usage errors; every error as
`file:line:col: message`, located where the problem is, worded so a user can fix it,
never a traceback, all errors of all files in one pass.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from pipesync.api import documents
from pipesync.cli import sources
from tests.unit.conftest import CONSOLE_SCRIPT, PROJECT, Cli, CliResult, WriteYaml

EXAMPLES = PROJECT / "examples" / "repo-layout"
UNKNOWN_NOPE = (
    "{{tasks.nope.outputs.parameters.x}} names an unknown task 'nope' (tasks here: a, b, fe)"
)
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)$")

HEAD = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata:
  name: p
spec:
"""


def located(result: CliResult) -> list[tuple[str, int, int, str]]:
    """The `file:line:col: message` lines of stdout, in printed order."""
    rows = []
    for line in result.out.splitlines():
        match = LOCATED.match(line)
        assert match, f"not a located error line: {line!r}"
        rows.append((match["file"], int(match["line"]), int(match["col"]), match["message"]))
    return rows


def assert_no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.text, result.text


def invalid(cli: Cli, *paths: Path) -> list[tuple[str, int, int, str]]:
    """Validates paths that must be invalid: exit 1, located errors, no traceback."""
    result = cli("validate", *paths)
    assert_no_traceback(result)
    assert result.code == 1, result.text
    rows = located(result)
    assert rows, result.text
    return rows


def only_error(cli: Cli, path: Path) -> tuple[int, int, str]:
    rows = invalid(cli, path)
    assert len(rows) == 1, rows
    file, line, col, message = rows[0]
    assert file == str(path)
    return line, col, message


def at(rows: list[tuple[str, int, int, str]], line: int, col: int) -> list[str]:
    """Messages reported at exactly line:col."""
    return [message for _, ln, cl, message in rows if (ln, cl) == (line, col)]


# --- a valid repository --------------------------------------------------------------


def test_the_example_repository_is_valid(cli: Cli) -> None:
    result = cli("validate", EXAMPLES)
    assert result.code == 0, result.text
    assert result.out == ""
    assert re.search(r"6 file\(s\), \d+ document\(s\): valid", result.err), result.err


def test_directories_are_walked_but_work_and_hidden_folders_are_skipped(
    cli: Cli, write_yaml: WriteYaml, tmp_path: Path
) -> None:
    write_yaml("repo/pipelines/ok.yaml", HEAD + "  tasks: [{name: a, command: [echo]}]\n")
    write_yaml("repo/.pipesync/local/junk.yaml", "{{{ not yaml")
    write_yaml("repo/.git/junk.yaml", "{{{ not yaml")
    write_yaml("repo/deeper/broken.yml", "kind: [")
    result = cli("validate", tmp_path / "repo")
    assert result.code == 1
    assert [row[0] for row in located(result)] == [str(tmp_path / "repo/deeper/broken.yml")]


# --- YAML syntax and encoding --------------------------------------------------------


def test_a_yaml_syntax_error_is_located_at_the_offending_token(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("syntax.yaml", HEAD + "  tasks: [\n    - name: x\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (7, 5)
    assert message.startswith("YAML syntax error:")
    assert "'-'" in message


def test_a_tab_in_indentation_is_a_located_syntax_error(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("tab.yaml", "apiVersion: pipesync.io/v1alpha1\nmetadata:\n\tname: x\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (3, 1)
    assert "YAML syntax error" in message
    assert "'\\t'" in message


def test_a_duplicate_key_is_an_error_at_the_second_key(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("dupkey.yaml", HEAD + "  tasks: [{name: a, command: [echo]}]\nkind: Run\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (7, 1)
    assert message == "duplicate key 'kind'"


def test_a_file_with_nul_bytes_is_refused_as_binary(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "blob.yaml"
    path.write_bytes(b"apiVersion: pipesync.io/v1alpha1\n\x00\x01\x02kind: Pipeline\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (1, 1)
    assert "binary" in message
    assert "NUL" in message


def test_a_file_that_is_not_utf8_is_refused_as_binary(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("apiVersion: pipesync.io/v1alpha1\nkind: Pipeline # café\n".encode("latin-1"))
    line, col, message = only_error(cli, path)
    assert (line, col) == (1, 1)
    assert "not UTF-8" in message


def test_an_oversized_file_is_refused_from_its_size_before_reading(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as stream:  # sparse: 2 MiB by stat, nothing written
        stream.truncate(2 * 1024 * 1024)
    line, col, message = only_error(cli, path)
    assert (line, col) == (1, 1)
    assert "larger than" in message
    assert str(2 * 1024 * 1024) in message  # the size comes from stat, not from reading


def test_a_yaml_alias_bomb_is_refused_quickly_without_expanding_it(
    cli: Cli, tmp_path: Path
) -> None:
    # "billion laughs": 9 levels of 10 aliases each would expand to 10**9 values.
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    tracemalloc.start()
    started = time.monotonic()
    try:
        line, col, message = only_error(cli, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 30
    assert peak < 64 * 1024 * 1024, f"peak {peak} bytes"
    assert (line, col) == (1, 1)
    assert "alias" in message


def test_a_recursive_alias_is_a_located_error_not_a_crash(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "recursive.yaml"
    path.write_text("a: &a [*a]\n")
    result = cli("validate", path)
    assert_no_traceback(result)
    assert result.code == 1
    assert "alias" in located(result)[0][3]


def test_deeply_nested_yaml_is_a_located_error_not_a_crash(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 1000 + "]" * 1000 + "\n")
    result = cli("validate", path)
    assert_no_traceback(result)
    assert result.code == 1
    assert located(result)


# --- what a document is --------------------------------------------------------------


def test_an_unknown_kind_is_located_at_the_kind_value(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("kind.yaml", HEAD.replace("kind: Pipeline", "kind: Pipelin") + "  {}\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (2, 7)
    assert message.startswith("unknown kind 'Pipelin'; expected one of")
    assert "Pipeline" in message


def test_a_wrong_api_version_is_located_at_its_value(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("api.yaml", HEAD.replace("v1alpha1", "v1") + "  {}\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (1, 13)
    assert message == "apiVersion is 'pipesync.io/v1'; expected 'pipesync.io/v1alpha1'"


def test_a_missing_api_version_is_reported_at_the_document_start(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("noapi.yaml", "# comment\nkind: Pipeline\nmetadata: {name: p}\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (2, 1)
    assert "apiVersion is missing" in message


def test_a_document_that_is_not_a_mapping_is_an_error(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("list.yaml", "- 1\n- 2\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (1, 1)
    assert "must be a mapping" in message


def test_missing_metadata_name_and_spec_tasks_are_both_reported(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml(
        "missing.yaml",
        """
        apiVersion: pipesync.io/v1alpha1
        kind: Pipeline
        metadata:
          labels: {team: ml}
        spec:
          description: no tasks
        """,
    )
    rows = invalid(cli, path)
    assert at(rows, 4, 3) == ["metadata: 'name' is a required field"]
    assert at(rows, 6, 3) == ["spec: 'tasks' is a required field"]
    assert len(rows) == 2


def test_an_empty_task_list_is_an_error(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("empty.yaml", HEAD + "  tasks: []\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (6, 10)
    assert "spec.tasks" in message
    assert "non-empty" in message


def test_unknown_fields_are_located_at_their_keys(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "unknown.yaml",
        HEAD
        + """\
  tasks:
    - name: x
      command: [echo]
      retires: 3
  paralelism: 2
""",
    )
    rows = invalid(cli, path)
    assert at(rows, 9, 7) == ["spec.tasks[0]: unknown field 'retires'"]
    assert at(rows, 10, 3) == ["spec: unknown field 'paralelism'"]
    assert len(rows) == 2


def test_a_wrongly_typed_value_says_what_was_expected_and_what_was_found(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("types.yaml", HEAD + "  tasks: [{name: a, command: [echo, no]}]\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (6, 37)
    assert message == "spec.tasks[0].command[1]: expected a string, got false (a boolean)"


# --- names ---------------------------------------------------------------------------


def test_a_resource_name_that_is_not_dns1123_is_an_error(cli: Cli, write_yaml: WriteYaml) -> None:
    text = HEAD.replace("name: p", "name: Train_Model") + "  tasks: [{name: a, command: [x]}]\n"
    path = write_yaml("name.yaml", text)
    line, col, message = only_error(cli, path)
    assert (line, col) == (4, 9)
    assert "metadata.name: 'Train_Model' is not a DNS-1123 subdomain" in message
    assert "lowercase" in message


def test_a_task_name_that_is_not_dns1123_is_an_error(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("task.yaml", HEAD + "  tasks:\n    - name: Train_Model\n      command: [x]\n")
    line, col, message = only_error(cli, path)
    assert (line, col) == (7, 13)
    assert message.startswith("spec.tasks[0].name: 'Train_Model' is not a DNS-1123 label")
    assert "lowercase" in message


def test_duplicate_task_names_are_located_at_the_second_name(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml(
        "dup.yaml",
        HEAD
        + "  tasks:\n    - {name: a, command: [x]}\n    - {name: b, command: [x]}\n"
        + "    - {name: a, command: [y]}\n",
    )
    line, col, message = only_error(cli, path)
    assert (line, col) == (9, 14)
    assert message == "duplicate task name 'a'"


def test_duplicate_resources_across_files_name_both_places(cli: Cli, write_yaml: WriteYaml) -> None:
    experiment = "apiVersion: pipesync.io/v1alpha1\nkind: Experiment\n"
    first = write_yaml("a/one.yaml", experiment + "metadata: {name: e}\nspec: {}\n")
    second = write_yaml("b/two.yaml", "# second\n" + experiment + "metadata: {name: e}\nspec: {}\n")
    rows = invalid(cli, first, second)
    assert rows == [
        (str(second), 4, 18, f"duplicate Experiment 'e' (also defined at {first}:3:18)")
    ]


# --- the DAG -------------------------------------------------------------------------

DAG = (
    HEAD
    + """\
  tasks:
    - name: a
      dependsOn: [c]
      command: [echo]
    - name: b
      dependsOn: [a]
      command: [echo]
    - name: c
      dependsOn: [b]
      command: [echo]
    - name: d
      dependsOn: [d, zz]
      command: [echo]
"""
)


def test_a_dependency_cycle_is_named_in_dependency_order(cli: Cli, write_yaml: WriteYaml) -> None:
    rows = invalid(cli, write_yaml("dag.yaml", DAG))
    assert at(rows, 8, 18) == ["dependency cycle: a -> b -> c -> a"]


def test_a_self_dependency_and_an_unknown_dependency_are_reported(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    rows = invalid(cli, write_yaml("dag.yaml", DAG))
    messages = [message for _, line, _, message in rows if line == 17]
    assert messages == [
        "task 'd' depends on itself",
        "task 'd' depends on unknown task 'zz' (tasks here: a, b, c, d)",
    ]


def test_dependency_problems_point_at_the_offending_entry(cli: Cli, write_yaml: WriteYaml) -> None:
    rows = invalid(cli, write_yaml("dag.yaml", DAG))
    assert at(rows, 17, 19) == ["task 'd' depends on itself"]
    assert at(rows, 17, 22) == ["task 'd' depends on unknown task 'zz' (tasks here: a, b, c, d)"]


# --- placeholders --------------------------------------------------------------------

REFS = (
    HEAD
    + """\
  params:
    - {name: p, type: integer, default: 1}
  tasks:
    - name: a
      command: [echo, "{{tasks.nope.outputs.parameters.x}}"]
      outputs: {parameters: [out]}
    - name: b
      command: [echo, "{{tasks.a.outputs.parameters.y}}", "{{params.q}}"]
      args: ["{{item}}", "{{run.status}}"]
    - name: fe
      forEach: {items: "{{params.p}}"}
      command: [echo, "{{item}}"]
"""
)


@pytest.mark.parametrize(
    ("line", "col", "message"),
    [
        (
            10,
            23,
            UNKNOWN_NOPE,
        ),
        (13, 23, "{{tasks.a.outputs.parameters.y}}: task 'a' declares no output parameter 'y'"),
        (13, 59, "{{params.q}} names an undeclared parameter 'q'"),
        (14, 14, "{{item}} is only defined inside a task with forEach"),
        (14, 26, "{{run.status}} is only defined in onExit"),
    ],
    ids=["unknown-task", "undeclared-output", "undeclared-param", "item", "run-status"],
)
def test_an_unknown_placeholder_reference_is_located_at_its_argument(
    cli: Cli, write_yaml: WriteYaml, line: int, col: int, message: str
) -> None:
    rows = invalid(cli, write_yaml("refs.yaml", REFS))
    assert at(rows, line, col) == [message]


def test_for_each_over_an_integer_parameter_is_an_error(cli: Cli, write_yaml: WriteYaml) -> None:
    rows = invalid(cli, write_yaml("refs.yaml", REFS))
    messages = at(rows, 16, 24)
    assert len(messages) == 1
    assert "forEach over {{params.p}}" in messages[0]
    assert "not a list" in messages[0]


def test_every_placeholder_problem_of_a_file_is_reported_at_once(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    assert len(invalid(cli, write_yaml("refs.yaml", REFS))) == 6


def test_malformed_placeholders_and_when_expressions_are_located(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml(
        "syntax.yaml",
        HEAD
        + """\
  params: [{name: p, default: a}]
  tasks:
    - {name: b, command: [echo, "{{params.p"]}
    - {name: c, command: [echo], when: "1 >>= 2"}
    - {name: d, command: [echo, "{{nonsense}}"]}
""",
    )
    rows = invalid(cli, path)
    assert len(rows) == 3
    assert "unclosed placeholder" in at(rows, 8, 33)[0]
    assert at(rows, 9, 40)[0].startswith("invalid when expression:")
    assert at(rows, 10, 33)[0].startswith("unknown placeholder {{nonsense}}: expected params.NAME")


# --- parameters ----------------------------------------------------------------------


def test_param_defaults_of_the_wrong_type_are_errors(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "params.yaml",
        HEAD
        + """\
  params:
    - {name: n, type: integer, default: abc}
    - {name: b, type: boolean, default: "yes"}
    - {name: l, type: list, default: 3}
  tasks: [{name: a, command: [echo]}]
""",
    )
    rows = invalid(cli, path)
    assert at(rows, 7, 7) == ["default 'abc' of 'n' is not an integer"]
    assert at(rows, 8, 7) == ["default 'yes' of 'b' is not a boolean"]
    assert at(rows, 9, 7) == ["default 3 of 'l' is not a list"]


def test_param_type_errors_read_as_english(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "params.yaml",
        HEAD + "  params: [{name: n, type: integer, default: abc}]\n  tasks: [{name: a, "
        "command: [echo]}]\n",
    )
    assert "is not an integer" in only_error(cli, path)[2]


# --- schedules -----------------------------------------------------------------------

RECURRING = """\
apiVersion: pipesync.io/v1alpha1
kind: RecurringRun
metadata: {name: nightly}
spec:
  pipelineRef: {name: p}
  schedule:
"""


def test_a_cron_field_out_of_range_is_located_at_the_cron_value(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("rr.yaml", RECURRING + '    cron: "61 * * * *"\n')
    line, col, message = only_error(cli, path)
    assert (line, col) == (7, 11)
    assert message.startswith("invalid cron expression '61 * * * *'")


def test_a_cron_expression_with_four_fields_is_located_at_the_cron_value(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("rr.yaml", RECURRING + '    cron: "* * * *"\n')
    line, col, message = only_error(cli, path)
    assert (line, col) == (7, 11)
    assert "cron" in message


def test_a_cron_expression_with_four_fields_says_how_many_are_expected(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("rr.yaml", RECURRING + '    cron: "* * * *"\n')
    message = only_error(cli, path)[2]
    assert "expected 5 fields" in message
    assert "^(" not in message


def test_an_unknown_time_zone_is_located_at_its_value(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("rr.yaml", RECURRING + '    cron: "0 2 * * *"\n    timezone: Mars/Olympus\n')
    line, col, message = only_error(cli, path)
    assert (line, col) == (8, 15)
    assert message.startswith("unknown time zone 'Mars/Olympus'")
    assert "IANA" in message


# --- paths and usage -----------------------------------------------------------------


def test_a_path_that_does_not_exist_is_a_usage_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.code == 2
    assert f"{tmp_path / 'nope.yaml'}: no such file or directory" in result.err
    assert_no_traceback(result)


def test_no_path_at_all_is_a_usage_error(cli: Cli) -> None:
    result = cli("validate")
    assert result.code == 2
    assert "usage:" in result.err


def test_an_unknown_format_is_a_usage_error(cli: Cli) -> None:
    result = cli("validate", "--format", "xml", EXAMPLES)
    assert result.code == 2
    assert "--format" in result.err


# --- one pass over everything --------------------------------------------------------


def test_every_error_in_every_file_is_reported_in_one_sorted_pass(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    second = write_yaml("b.yaml", DAG)  # written first: the report must not follow file age
    first = write_yaml(
        "a.yaml",
        HEAD + "  tasks:\n    - name: x\n      command: [echo]\n      retires: 3\n  paralelism: 2\n"
        "---\napiVersion: pipesync.io/v1\n",
    )
    result = cli("validate", second, first)
    assert result.code == 1
    rows = located(result)
    assert rows == sorted(rows)
    assert [(file, line) for file, line, _, _ in rows] == [
        (str(first), 9),
        (str(first), 10),
        (str(first), 12),
        (str(second), 8),
        (str(second), 17),
        (str(second), 17),
    ]
    assert "6 error(s) in 2 of 2 file(s)" in result.err


def test_a_broken_file_does_not_hide_the_valid_file_beside_it(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    good = write_yaml(
        "good.yaml",
        HEAD + "  params: [{name: lr, type: number, default: 0.1}]\n"
        "  tasks: [{name: a, command: [echo]}]\n",
    )
    broken = write_yaml(
        "broken.yaml",
        """
        apiVersion: pipesync.io/v1alpha1
        kind: Run
        metadata: {name: r}
        spec:
          pipelineRef: {name: p}
          params: {lr: fast}
        ---
        kind: [
        """,
    )
    resources, _ = sources.load_all([good, broken])
    assert sorted(r.name for r in resources) == ["p", "r"]
    rows = invalid(cli, good, broken)
    # The Run is only checkable against the good file's pipeline: both were loaded.
    assert at(rows, 6, 11) == ["parameter 'lr': 'fast' is not a number"]
    assert any(message.startswith("YAML syntax error") for *_, message in rows)
    assert all(file == str(broken) for file, *_ in rows)


# --- machine-readable output ---------------------------------------------------------


def test_json_format_is_a_parseable_list_of_located_errors(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml("dag.yaml", DAG)
    result = cli("validate", "--format", "json", path)
    assert result.code == 1
    rows = json.loads(result.out)
    assert rows[0] == {
        "file": str(path),
        "line": 8,
        "column": 18,
        "severity": "error",
        "message": "dependency cycle: a -> b -> c -> a",
    }
    assert len(rows) == 3


def test_json_format_of_a_valid_repository_is_an_empty_list(cli: Cli) -> None:
    result = cli("validate", "--format", "json", EXAMPLES)
    assert result.code == 0
    assert json.loads(result.out) == []


def test_github_format_emits_one_workflow_annotation_per_error(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("dag.yaml", DAG)
    result = cli("validate", "--format", "github", path)
    assert result.code == 1
    annotation = re.compile(r"^::error file=(.+),line=(\d+),col=(\d+)::(.+)$")
    matches = [annotation.match(line) for line in result.out.splitlines()]
    assert all(matches), result.out
    assert next(m.groups() for m in matches if m) == (
        str(path),
        "8",
        "18",
        "dependency cycle: a -> b -> c -> a",
    )
    assert len(matches) == 3


# --- the real console script ---------------------------------------------------------


def run_console(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_console_script_exits_0_for_the_example_repository() -> None:
    done = run_console("validate", EXAMPLES)
    assert done.returncode == 0, done.stderr
    assert "valid" in done.stderr


def test_console_script_exits_1_with_located_errors(write_yaml: WriteYaml) -> None:
    path = write_yaml("dag.yaml", DAG)
    done = run_console("validate", path)
    assert done.returncode == 1
    assert f"{path}:8:18: dependency cycle: a -> b -> c -> a" in done.stdout.splitlines()
    assert "Traceback" not in done.stdout + done.stderr


def test_console_script_exits_2_for_a_missing_path(tmp_path: Path) -> None:
    done = run_console("validate", tmp_path / "missing")
    assert done.returncode == 2
    assert "no such file or directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_console_script_exits_2_without_a_command() -> None:
    done = run_console()
    assert done.returncode == 2
    assert "usage:" in done.stderr


# --- robust parsing: any input gives one located line per problem ---------------------


def test_nesting_deeper_than_libyaml_allows_is_located_at_the_bracket(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text("a: " + "[" * 1001 + "]" * 1001 + "\n")
    [(_, line, col, message)] = invalid(cli, path)
    assert (line, col) == (1, 1003)  # where libyaml gave up, not 1:1
    assert "nested more than" in message


def test_an_integer_beyond_pythons_digit_limit_is_located_with_a_fix(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml("big.yaml", HEAD + "  tasks: " + "9" * 4400 + "\n")
    [(_, line, col, message)] = invalid(cli, path)
    assert (line, col) == (6, 10)
    assert "too large" in message and "quote it" in message


def test_a_control_character_after_a_syntax_error_is_one_located_line(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "ctrl.yaml"
    path.write_text("a: b: c\n" + "x" * 20000 + "\n\x01\n")
    [(_, line, col, message)] = invalid(cli, path)
    assert (line, col) == (1, 5)
    assert "mapping values are not allowed" in message


def test_a_control_character_is_located_at_the_character(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "ctrl.yaml"
    path.write_text("a: 1\nb: x\x07y\n")
    [(_, line, col, message)] = invalid(cli, path)
    assert (line, col) == (2, 5)
    assert "control character U+0007" in message


def test_a_kfp_file_with_wrong_types_is_located_not_a_crash(cli: Cli, tmp_path: Path) -> None:
    sample = (Path(__file__).with_name("kfp_ir_sample.yaml")).read_text()
    broken = {
        "param.yaml": sample.replace(
            "text: {parameterType: STRING, defaultValue: hi}", "text: [1, 2]"
        ),
        "deps.yaml": sample.replace("dependentTasks: [say]", "dependentTasks: 5"),
        "platform.yaml": sample.replace(
            "secretAsEnv: [{secretName: s, keyToEnv: [{secretKey: k, envVar: E}]}]",
            "secretAsEnv: [7]",
        ),
    }
    for name, text in broken.items():
        (tmp_path / name).write_text(text)
    rows = invalid(cli, *(tmp_path / name for name in broken))
    assert sorted(Path(row[0]).name for row in rows) == sorted(broken)


def test_groups_nested_a_thousand_deep_in_kfp_are_refused_with_a_location(
    cli: Cli, tmp_path: Path
) -> None:
    components = "".join(
        f"  comp-c{i}:\n    dag:\n      tasks:\n        inner:\n"
        f"          componentRef: {{name: comp-c{i + 1}}}\n"
        f"          triggerPolicy: {{condition: \"inputs.parameter_values['x'] == 'a'\"}}\n"
        for i in range(1000)
    )
    text = (
        "pipelineInfo: {name: p}\nroot:\n  dag:\n    tasks:\n      outer:\n"
        "        componentRef: {name: comp-c0}\ncomponents:\n"
        + components
        + "  comp-c1000: {executorLabel: e}\n"
        "deploymentSpec:\n  executors:\n    e: {container: {image: alpine}}\n"
    )
    path = tmp_path / "deep-kfp.yaml"
    path.write_text(text)
    rows = invalid(cli, path)
    assert any("nested more than" in row[3] for row in rows), rows


def test_a_when_nested_a_thousand_deep_is_a_located_error(cli: Cli, write_yaml: WriteYaml) -> None:
    deep = "(" * 1000 + "true" + ")" * 1000
    path = write_yaml(
        "when.yaml", HEAD + f"  tasks:\n    - name: a\n      command: [x]\n      when: '{deep}'\n"
    )
    [(_, line, _col, message)] = invalid(cli, path)
    assert line == 9
    assert "nested more than" in message


def test_an_internal_error_in_one_file_has_its_own_exit_code_and_spares_the_others(
    cli: Cli, write_yaml: WriteYaml, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = documents.check_document

    def buggy(document: Any) -> Any:  # a stand-in for a bug in pipesync
        if document.file.endswith("bug.yaml"):
            raise KeyError("oops")
        return real(document)

    monkeypatch.setattr(documents, "check_document", buggy)
    bug = write_yaml("bug.yaml", HEAD + "  tasks: [{name: a, command: [x]}]\n")
    other = write_yaml("other.yaml", HEAD + "  tasks: []\n")
    result = cli("validate", bug, other)
    assert_no_traceback(result)
    assert result.code == 3, result.text
    rows = located(result)
    assert [Path(r[0]).name for r in rows] == ["bug.yaml", "other.yaml"]
    assert rows[0][3].startswith("internal error in pipesync")
    assert "KeyError" in rows[0][3]
    assert "internal error" in result.err and len(result.err.splitlines()) == 2


def test_a_symlink_out_of_the_tree_is_refused_and_never_read(
    cli: Cli, write_yaml: WriteYaml, tmp_path: Path
) -> None:
    outside = write_yaml("outside.yaml", HEAD + "  tasks: []\n")  # invalid if it were read
    tree = tmp_path / "repo" / "pipelines"
    tree.mkdir(parents=True)
    (tree / "out.yaml").symlink_to(outside)
    (tree / "stdin.yaml").symlink_to("/dev/stdin")
    (tree / "inside.yaml").symlink_to(tree / "real.yaml")
    (tree / "real.yaml").write_text(HEAD + "  tasks: [{name: a, command: [x]}]\n")
    started = time.monotonic()
    rows = invalid(cli, tmp_path / "repo")
    assert time.monotonic() - started < 10  # /dev/stdin was not opened: no hang
    refused = {Path(row[0]).name: row for row in rows if "outside" in row[3]}
    assert sorted(refused) == ["out.yaml", "stdin.yaml"]
    assert all(row[1:3] == (1, 1) for row in refused.values())
    # the link inside the tree is read: its document duplicates real.yaml's
    assert [Path(row[0]).name for row in rows if "duplicate" in row[3]] == ["real.yaml"]


def test_a_fifo_is_not_opened(cli: Cli, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    [(_, line, col, message)] = invalid(cli, tmp_path)
    assert (line, col) == (1, 1)
    assert "not a regular file" in message


# --- values that pass the schema but cannot be what the author meant --------------------


def test_a_param_default_outside_its_enum_is_an_error(cli: Cli, write_yaml: WriteYaml) -> None:
    path = write_yaml(
        "enum.yaml",
        HEAD
        + "  params:\n    - {name: mode, type: string, default: fast, enum: [full, quick]}\n"
        + "  tasks: [{name: a, command: [x]}]\n",
    )
    line, col, message = only_error(cli, path)
    assert (line, col) == (7, 7)
    assert "default 'fast' of 'mode' is not one of its enum values 'full', 'quick'" in message


def test_a_six_field_cron_warns_that_seconds_come_first_with_its_fire_times(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml(
        "cron.yaml",
        """
        apiVersion: pipesync.io/v1alpha1
        kind: RecurringRun
        metadata: {name: r}
        spec:
          pipelineRef: {name: p}
          schedule: {cron: "0 2 * * * *", timezone: UTC}
        """,
    )
    result = cli("validate", path)
    assert result.code == 0, result.text
    [(_, line, col, message)] = located(result)
    assert (line, col) == (6, 20)
    assert message.startswith("warning: cron '0 2 * * * *' has 6 fields: the first is seconds")
    times = re.findall(r"\d{4}-\d\d-\d\dT(\d\d):(\d\d):(\d\d)\+00:00", message)
    assert len(times) == 3 and all(t[1:] == ("02", "00") for t in times)  # hourly at :02
    assert "'0 2 * * *'" in message


# --- messages that say what to do -----------------------------------------------------


def test_messages_say_what_to_do_and_semantic_errors_show_beside_schema_errors(
    cli: Cli, write_yaml: WriteYaml
) -> None:
    path = write_yaml(
        "todo.yaml",
        """
        apiVersion: pipesync.io/v1alpha1
        kind: Pipeline
        metadata: {name: p}
        spec:
          params: [{name: n, type: integer, default: 1}]
          tasks:
            - name: prepare
              command: [echo, {{params.n}}]
              outputs: {artifacts: [data]}
            - name: train
              command: [x]
              dependsOn: [prepair]
              inputs:
                artifacts:
                  data: {from: "{{task.prepare.outputs.artifacts.data}}"}
        ---
        apiVersion: pipesync.io/v1alpha1
        kind: RecurringRun
        metadata: {name: r}
        spec:
          pipelineRef: {name: p}
          schedule: {cron: "0 25 * * *"}
        """,
    )
    rows = invalid(cli, path)
    assert at(rows, 8, 23) == [
        '{{params.n}} is unquoted, so YAML reads it as a mapping; quote it: "{{params.n}}"'
    ]
    assert at(rows, 12, 19) == [
        "task 'train' depends on unknown task 'prepair'; did you mean 'prepare'?"
    ]
    [from_message] = at(rows, 15, 24)
    assert "expected '{{tasks.TASK.outputs.artifacts.NAME}}'" in from_message
    assert "regular expression" not in from_message and "^" not in from_message
    assert at(rows, 22, 20) == [
        "invalid cron expression '0 25 * * *': the hour field '25' is not valid (expected 0-23)"
    ]


def test_a_literal_matrix_over_the_instance_limit_is_a_located_error(
    cli: Cli, tmp_path: Path
) -> None:
    axis = "[" + ", ".join(str(i) for i in range(300)) + "]"
    path = tmp_path / "grid.yaml"
    path.write_text(
        HEAD + "  tasks:\n    - name: grid\n      command: [echo, '{{item.a}}']\n"
        f"      forEach:\n        matrix:\n          a: {axis}\n          b: {axis}\n"
        f"          c: {axis}\n"
    )
    line, col, message = only_error(cli, path)
    assert (line, col) == (11, 11), (line, col, message)  # the matrix, under `matrix:`
    assert "300 x 300 x 300" in message and "10000" in message


def _many_files(root: Path, count: int) -> None:
    """`count` files, every tenth broken in its own way, with cross-file references (a
    Run names a Pipeline of another file; a duplicate name lies in another chunk)."""
    for number in range(count):
        name = f"p{number}" if number != count - 1 else "p0"  # the last one duplicates p0
        body = HEAD.replace("name: p\n", f"name: {name}\n") + (
            "  tasks:\n"
            "    - name: a\n"
            "      image: busybox\n"
            '      command: ["echo", "{{tasks.nope.outputs.parameters.x}}"]\n'
            if number % 10 == 3
            else "  tasks:\n    - name: a\n      image: busybox\n      command: [true]\n"
        )
        if number % 10 == 7:
            body = body + "  : [broken\n"  # a YAML syntax error
        if number % 10 == 5:
            body += (
                "---\napiVersion: pipesync.io/v1alpha1\nkind: Run\nmetadata:\n"
                f"  name: r{number}\nspec:\n  pipelineRef: {{name: p{count - number}}}\n"
                "  params: {unknown: 1}\n"
            )
        (root / f"f{number:04d}.yaml").write_text(body)


def test_many_files_are_validated_in_workers_with_the_output_of_one_process(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = sources.PARALLEL_FROM_FILES + 60  # more than one chunk per worker
    _many_files(tmp_path, count)
    in_workers = cli("validate", tmp_path)
    monkeypatch.setattr(sources, "PARALLEL_FROM_FILES", count + 1)
    in_one_process = cli("validate", tmp_path)
    assert_no_traceback(in_workers)
    assert in_workers.code == in_one_process.code == 1
    rows = located(in_workers)
    assert rows == located(in_one_process)
    messages = " ".join(row[3] for row in rows)
    # every kind of problem is there: per-file syntax and DAG errors, and cross-file ones
    assert "YAML syntax error" in messages
    assert "names an unknown task 'nope'" in messages
    assert any(row[0].endswith(f"f{count - 1:04d}.yaml") for row in rows)  # duplicate p0
    assert sum("unknown" in row[3] and "param" in row[3] for row in rows) >= count // 10
