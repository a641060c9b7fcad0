"""The example repository works end to end with `pipesync run`, as its README promises.

examples/repo-layout is what users copy first: every pipeline in it must validate and
run to success on a laptop (no cluster, images ignored), leaving the artifacts its
steps promise. Each run takes a few seconds (scikit-learn on the bundled digits data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import PROJECT, Cli
from tests.unit.localrecords import task_rows

EXAMPLES = PROJECT / "examples" / "repo-layout"
PIPELINES = EXAMPLES / "pipelines"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _no_bytecode_in_the_example_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tasks run inside examples/repo-layout; keep steps/__pycache__ out of the work tree.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")


def run_example(cli: Cli, name: str, workdir: Path) -> tuple[Path, dict[str, Any]]:
    """Runs pipelines/<name>.yaml; the run's folder and its run.json record."""
    result = cli(
        "run",
        PIPELINES / f"{name}.yaml",
        "--workdir",
        workdir,
        "--run-name",
        f"example-{name}",
        "--plain",
    )
    assert result.code == 0, result.text
    assert "Traceback" not in result.text
    run_dir = workdir / "local" / "runs" / f"example-{name}"
    record: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    assert record["status"]["phase"] == "Succeeded"
    return run_dir, record


def phases(record: dict[str, Any]) -> dict[str, str]:
    return {name: row["phase"] for name, row in task_rows(record).items()}


def test_the_example_repository_validates(cli: Cli) -> None:
    result = cli("validate", EXAMPLES)
    assert result.code == 0, result.text


def test_there_are_three_example_pipelines() -> None:
    assert sorted(path.stem for path in PIPELINES.glob("*.yaml")) == [
        "digits",
        "gpu-train",
        "sweep",
    ]


def test_digits_trains_evaluates_and_publishes(cli: Cli, tmp_path: Path) -> None:
    run_dir, record = run_example(cli, "digits", tmp_path)
    assert phases(record) == {
        "prepare": "Succeeded",
        "train": "Succeeded",
        "evaluate": "Succeeded",
        "publish": "Succeeded",  # the default threshold 0.9 is below the digits accuracy
        "notify": "Succeeded",
    }
    evaluated = run_dir / "evaluate" / "outputs"
    metrics = json.loads((evaluated / "artifacts" / "metrics").read_text())
    assert 0.9 <= metrics["accuracy"] <= 1.0
    accuracy = float((evaluated / "parameters" / "accuracy").read_text())
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-3)
    for png in ("confusion_matrix_png", "roc_png"):
        assert (evaluated / "artifacts" / png).read_bytes().startswith(PNG_MAGIC), png
    matrix = json.loads((evaluated / "artifacts" / "confusion_matrix").read_text())
    assert matrix
    assert json.loads((evaluated / "artifacts" / "roc").read_text())
    published = run_dir / "publish" / "outputs" / "artifacts"
    manifest = json.loads((published / "manifest").read_text())
    assert manifest["run"] == "example-digits"
    assert (published / "published").stat().st_size == manifest["bytes"]
    notify_log = (run_dir / "notify" / "logs" / "attempt-1.log").read_text()
    assert "Succeeded" in notify_log


def test_sweep_trains_one_instance_per_rate_and_picks_the_best(cli: Cli, tmp_path: Path) -> None:
    run_dir, record = run_example(cli, "sweep", tmp_path)
    rows = task_rows(record)
    accuracies = json.loads(rows["train"]["outputs"]["accuracy"])
    # One instance per default learning rate; the list is in item order.
    assert accuracies == [float(rows[f"train[{i}]"]["outputs"]["accuracy"]) for i in range(4)]
    summary = json.loads((run_dir / "pick-best" / "outputs" / "artifacts" / "summary").read_text())
    assert summary["results"] == [
        {"learning_rate": rate, "accuracy": accuracy}
        for rate, accuracy in zip([0.001, 0.01, 0.1, 1.0], accuracies, strict=True)
    ]
    best = rows["pick-best"]["outputs"]
    assert float(best["best_accuracy"]) == max(accuracies)
    assert summary["best"] == {
        "learning_rate": float(best["best_learning_rate"]),
        "accuracy": max(accuracies),
    }


def test_gpu_train_falls_back_to_the_cpu_and_succeeds(cli: Cli, tmp_path: Path) -> None:
    run_dir, record = run_example(cli, "gpu-train", tmp_path)
    assert phases(record) == {"prepare": "Succeeded", "train": "Succeeded"}
    outputs = {name: row["outputs"] for name, row in task_rows(record).items()}["train"]
    assert 0.0 < float(outputs["accuracy"]) <= 1.0
    assert outputs["device"]
    assert (run_dir / "train" / "outputs" / "artifacts" / "model").is_file()
