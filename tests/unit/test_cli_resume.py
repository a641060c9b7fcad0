"""`pipesync run --resume RUN_DIR`: a retry from failure reuses what succeeded (tasks and
forEach instances, with their outputs and artifacts), runs the rest and onExit again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit.conftest import Cli
from tests.unit.localrecords import task_rows

PIPELINE = """\
apiVersion: pipesync.io/v1alpha1
kind: Pipeline
metadata: {name: flaky}
spec:
  params: [{name: marker, type: string}]
  tasks:
    - name: make
      command: [sh, -c, 'echo made >> "$0.count"; echo data > "$1"; echo 7 > "$2"']
      args: ["{{params.marker}}", "{{outputs.artifacts.data}}", "{{outputs.parameters.n}}"]
      outputs: {artifacts: [data], parameters: [n]}
    - name: use
      command: [sh, -c, 'test -f "$0" && cat "$1" > "$2"']
      args: ["{{params.marker}}", "{{inputs.artifacts.data}}", "{{outputs.parameters.copy}}"]
      inputs: {artifacts: {data: {from: "{{tasks.make.outputs.artifacts.data}}"}}}
      outputs: {parameters: [copy]}
    - name: each
      forEach: {items: [1, 2, 3]}
      command: [sh, -c, 'echo "$1" >> "$0.each"; test "$1" != 2 || test -f "$0"']
      args: ["{{params.marker}}", "{{item}}"]
    - name: after
      dependsOn: [use]
      command: [sh, -c, 'echo "{{tasks.make.outputs.parameters.n}}" > "$0"']
      args: ["{{outputs.parameters.n}}"]
      outputs: {parameters: [n]}
  onExit:
    name: report
    command: [sh, -c, 'echo "{{run.status}}" >> "$0.exit"', "{{params.marker}}"]
"""


def record(work: Path, run: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((work / "local" / "runs" / run / "run.json").read_text())
    return data


def phases(data: dict[str, Any]) -> dict[str, str]:
    return {name: row["phase"] for name, row in task_rows(data).items()}


def test_a_retry_from_failure_reruns_only_what_did_not_succeed(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(PIPELINE)
    marker, work = tmp_path / "marker", tmp_path / "work"
    common = ["--workdir", work, "--root", tmp_path, "--plain"]
    failed = cli("run", tmp_path / "p.yaml", "-p", f"marker={marker}", "--run-name", "one", *common)
    assert failed.code == 1, failed.text
    before = phases(record(work, "one"))
    assert before["make"] == "Succeeded" and before["use"] == "Failed"
    assert before["each[1]"] == "Failed" and before["each[0]"] == "Succeeded"
    assert before["after"] == "Omitted"

    marker.write_text("")  # what made the failures go away
    retried = cli("run", "--resume", work / "local" / "runs" / "one", "--run-name", "two", *common)
    assert retried.code == 0, retried.text
    assert "Traceback" not in retried.text
    after = record(work, "two")
    assert after["spec"]["retryOf"] == {"name": "one"}
    assert after["spec"]["params"] == {"marker": str(marker)}  # the original's parameters
    now = phases(after)
    assert now["make"] == "Cached" and now["each[0]"] == "Cached"
    # an instance the failure left unstarted (or stopped) runs; one that succeeded does not
    assert now["each[2]"] == ("Cached" if before.get("each[2]") == "Succeeded" else "Succeeded")
    assert now["use"] == "Succeeded" and now["each[1]"] == "Succeeded"
    assert now["after"] == "Succeeded" and now["report"] == "Succeeded"  # onExit again
    rows = task_rows(after)
    assert rows["make"]["cachedFrom"] == {"run": "one", "task": "make"}
    assert rows["each[0]"]["cachedFrom"] == {"run": "one", "task": "each[0]"}
    # the reused task's artifact and output reach the tasks that run
    assert rows["use"]["outputs"] == {"copy": "data"}
    assert rows["after"]["outputs"] == {"n": "7"}
    # make ran once; each item 2 twice, the others once; onExit once per run
    assert Path(f"{marker}.count").read_text().split() == ["made"]
    assert sorted(Path(f"{marker}.each").read_text().split()) == ["1", "2", "2", "3"]
    assert Path(f"{marker}.exit").read_text().split() == ["Failed", "Succeeded"]


def test_resume_needs_a_run_record_and_either_file_or_resume(cli: Cli, tmp_path: Path) -> None:
    missing = cli("run", "--resume", tmp_path / "nothing")
    assert missing.code == 2 and "no readable run record" in missing.err
    (tmp_path / "run.json").write_text(json.dumps({"kind": "RunRecord", "metadata": {}}))
    old = cli("run", "--resume", tmp_path)
    assert old.code == 2 and "holds no pipeline spec" in old.err
    (tmp_path / "p.yaml").write_text(PIPELINE)
    both = cli("run", tmp_path / "p.yaml", "--resume", tmp_path)
    assert both.code == 2 and "not both" in both.err
    neither = cli("run")
    assert neither.code == 2 and "not both" in neither.err
    (tmp_path / "run.json").write_text(
        json.dumps(
            {
                "kind": "RunRecord",
                "metadata": {"name": "x"},
                "pipeline": {"name": "p", "spec": {"tasks": [{"name": "a", "bogus": 1}]}},
            }
        )
    )
    broken = cli("run", "--resume", tmp_path)
    assert broken.code == 2 and "run.json:" in broken.err and "bogus" in broken.err
    assert "Traceback" not in broken.text
