"""Run the example repository's step scripts directly, chained as the pipelines chain them.

examples/repo-layout is what users copy first, so its steps must work as plain
scripts with no cluster and no pipesync engine: prepare -> train -> evaluate ->
publish, the sweep's pick-best, and the GPU step's CPU fallback. A light check of
the pipeline YAML makes sure every command points at a script that exists and every
output placeholder is declared. Whole-pipeline runs through `pipesync run` live elsewhere.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2] / "examples" / "repo-layout"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_step(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run steps/<script> from the example repository root, as a task would be."""
    return subprocess.run(
        [sys.executable, f"steps/{script}", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_ok(script: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    result = run_step(script, *args)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """prepare -> train -> evaluate once; outputs are bare paths, as the engine gives them."""
    out = tmp_path_factory.mktemp("digits")
    paths = {
        name: out / name
        for name in (
            "dataset",
            "model",
            "train_accuracy",
            "metrics",
            "confusion_json",
            "confusion_png",
            "roc_json",
            "roc_png",
            "eval_accuracy",
        )
    }
    run_ok("prepare.py", "--out", paths["dataset"])
    run_ok(
        "train.py",
        "--data",
        paths["dataset"],
        "--learning-rate",
        "0.1",
        "--epochs",
        "20",
        "--model-out",
        paths["model"],
        "--accuracy-out",
        paths["train_accuracy"],
    )
    run_ok(
        "evaluate.py",
        "--data",
        paths["dataset"],
        "--model",
        paths["model"],
        "--metrics-out",
        paths["metrics"],
        "--confusion-json-out",
        paths["confusion_json"],
        "--confusion-png-out",
        paths["confusion_png"],
        "--roc-json-out",
        paths["roc_json"],
        "--roc-png-out",
        paths["roc_png"],
        "--accuracy-out",
        paths["eval_accuracy"],
    )
    return paths


def test_prepare_writes_the_exact_path_with_a_stratified_split(chain: dict[str, Path]) -> None:
    # np.savez appends ".npz" to bare paths; the step must write exactly where it was told.
    assert not chain["dataset"].with_name("dataset.npz").exists()
    with np.load(chain["dataset"]) as data:
        assert data["X_train"].shape[1] == 64
        assert len(data["X_train"]) + len(data["X_test"]) == 1797
        assert len(data["y_test"]) == 450
        assert set(data["y_test"].tolist()) == set(range(10))


def test_prepare_is_deterministic(chain: dict[str, Path], tmp_path: Path) -> None:
    again = tmp_path / "again"
    run_ok("prepare.py", "--out", again)
    with np.load(chain["dataset"]) as first, np.load(again) as second:
        for name in ("X_train", "X_test", "y_train", "y_test"):
            assert np.array_equal(first[name], second[name])


def test_train_writes_model_and_a_bare_accuracy(chain: dict[str, Path]) -> None:
    assert chain["model"].stat().st_size > 0
    text = chain["train_accuracy"].read_text()
    # The value feeds a `when` expression: exactly a number, no newline.
    assert re.fullmatch(r"[01]\.\d{4}", text), text
    assert 0.8 <= float(text) <= 1.0


def test_evaluate_metrics(chain: dict[str, Path]) -> None:
    metrics = json.loads(chain["metrics"].read_text())
    for key in (
        "accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "roc_auc_micro",
        "roc_auc_macro",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["test_size"] == 450
    assert float(chain["eval_accuracy"].read_text()) == pytest.approx(metrics["accuracy"], abs=1e-4)
    # train and evaluate score the same model on the same test set.
    assert chain["eval_accuracy"].read_text() == chain["train_accuracy"].read_text()


def test_evaluate_confusion_matrix(chain: dict[str, Path]) -> None:
    confusion = json.loads(chain["confusion_json"].read_text())
    matrix = np.array(confusion["matrix"])
    assert confusion["labels"] == list(range(10))
    assert matrix.shape == (10, 10)
    with np.load(chain["dataset"]) as data:
        assert matrix.sum() == len(data["y_test"])
        # Row sums are the true class counts.
        assert matrix.sum(axis=1).tolist() == np.bincount(data["y_test"], minlength=10).tolist()
    accuracy = json.loads(chain["metrics"].read_text())["accuracy"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(accuracy)


def test_evaluate_roc_curves(chain: dict[str, Path]) -> None:
    roc = json.loads(chain["roc_json"].read_text())
    for average in ("micro", "macro"):
        curve = roc[average]
        assert len(curve["fpr"]) == len(curve["tpr"]) >= 2
        assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0
        assert curve["tpr"][-1] == 1.0
        assert 0.5 < curve["auc"] <= 1.0
    assert sorted(roc["per_class"]) == [str(label) for label in range(10)]


@pytest.mark.parametrize("name", ["confusion_png", "roc_png"])
def test_evaluate_plots_are_png(chain: dict[str, Path], name: str) -> None:
    content = chain[name].read_bytes()
    assert content.startswith(PNG_MAGIC)
    assert len(content) > 5_000  # a real plot, not an empty canvas


def test_publish_copies_the_model_and_describes_it(chain: dict[str, Path], tmp_path: Path) -> None:
    published, manifest_path = tmp_path / "published", tmp_path / "manifest"
    run_ok(
        "publish.py",
        "--model",
        chain["model"],
        "--accuracy",
        chain["eval_accuracy"].read_text(),
        "--run",
        "digits-abc12",
        "--published-out",
        published,
        "--manifest-out",
        manifest_path,
    )
    assert published.read_bytes() == chain["model"].read_bytes()
    manifest = json.loads(manifest_path.read_text())
    assert manifest["run"] == "digits-abc12"
    assert manifest["sha256"] == hashlib.sha256(published.read_bytes()).hexdigest()
    assert manifest["accuracy"] == float(chain["eval_accuracy"].read_text())


def test_notify_prints_the_status() -> None:
    result = run_ok("notify.py", "--run", "digits-abc12", "--status", "Failed")
    assert "digits-abc12" in result.stdout and "Failed" in result.stdout


def test_train_reports_a_missing_data_set_clearly(tmp_path: Path) -> None:
    result = run_step("train.py", "--data", tmp_path / "nope", "--learning-rate", "0.1")
    assert result.returncode != 0
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_train_rejects_a_bad_learning_rate(chain: dict[str, Path]) -> None:
    result = run_step("train.py", "--data", chain["dataset"], "--learning-rate", "0")
    assert result.returncode == 2
    assert "--learning-rate" in result.stderr


def test_learning_rate_changes_the_model(chain: dict[str, Path], tmp_path: Path) -> None:
    # The sweep is only meaningful if the parameter reaches the classifier.
    accuracies = []
    for rate in ("0.001", "1.0"):
        out = tmp_path / f"acc-{rate}"
        run_ok(
            "train.py",
            "--data",
            chain["dataset"],
            "--learning-rate",
            rate,
            "--epochs",
            "5",
            "--accuracy-out",
            out,
        )
        accuracies.append(out.read_text())
    assert accuracies[0] != accuracies[1]


def test_pick_best_with_forEach_style_inputs(tmp_path: Path) -> None:
    # A forEach output is a JSON list of the instances' values, which are text.
    best_rate, best_accuracy, summary = tmp_path / "lr", tmp_path / "acc", tmp_path / "summary"
    run_ok(
        "pick_best.py",
        "--learning-rates",
        "[0.001, 0.01, 0.1, 1.0]",
        "--accuracies",
        '["0.9022", "0.9578", 0.9422, "0.9311"]',
        "--best-learning-rate-out",
        best_rate,
        "--best-accuracy-out",
        best_accuracy,
        "--summary-out",
        summary,
    )
    assert best_rate.read_text() == "0.01"
    assert best_accuracy.read_text() == "0.9578"
    table = json.loads(summary.read_text())
    assert table["best"] == {"learning_rate": 0.01, "accuracy": 0.9578}
    assert len(table["results"]) == 4


def test_pick_best_breaks_ties_towards_the_first(tmp_path: Path) -> None:
    out = tmp_path / "lr"
    run_ok(
        "pick_best.py",
        "--learning-rates",
        "[0.5, 0.1]",
        "--accuracies",
        "[0.9, 0.9]",
        "--best-learning-rate-out",
        out,
    )
    assert out.read_text() == "0.5"


@pytest.mark.parametrize(
    ("rates", "accuracies", "message"),
    [
        ("[0.1, 1.0]", "[0.9]", "2 learning rates but 1 accuracies"),
        ("0.1", "[0.9]", "non-empty JSON list"),
        ("[0.1]", "not json", "not JSON"),
        ("[0.1]", '["high"]', "must hold numbers"),
    ],
)
def test_pick_best_rejects_bad_inputs(rates: str, accuracies: str, message: str) -> None:
    result = run_step("pick_best.py", "--learning-rates", rates, "--accuracies", accuracies)
    assert result.returncode != 0
    assert message in result.stderr


def test_gpu_step_falls_back_to_numpy_on_the_cpu(chain: dict[str, Path], tmp_path: Path) -> None:
    model, accuracy, device = tmp_path / "model", tmp_path / "acc", tmp_path / "device"
    result = run_ok(
        "train_gpu.py",
        "--data",
        chain["dataset"],
        "--epochs",
        "100",
        "--model-out",
        model,
        "--accuracy-out",
        accuracy,
        "--device-out",
        device,
    )
    try:
        import torch  # noqa: F401, PLC0415 - only to know which backend to expect
    except ImportError:
        assert device.read_text() == "numpy:cpu"
        assert "NumPy" in result.stdout
    else:
        assert device.read_text().startswith("torch:")
    assert 0.85 <= float(accuracy.read_text()) <= 1.0
    with np.load(model) as weights:
        assert weights["weights"].shape == (65, 10)
        assert weights["mean"].shape == weights["std"].shape == (64,)


# --- the YAML that drives these scripts -------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def pipeline_tasks() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        for doc in load_documents(path):
            assert doc["kind"] == "Pipeline"
            spec = doc["spec"]
            found += [(f"{path.name}:{task['name']}", task) for task in spec["tasks"]]
            if "onExit" in spec:
                found.append((f"{path.name}:{spec['onExit']['name']}", spec["onExit"]))
    return found


def test_every_file_parses_and_has_the_expected_kind() -> None:
    expected = {
        "pipelines": "Pipeline",
        "experiments": "Experiment",
        "recurring-runs": "RecurringRun",
        "runs": "Run",
    }
    for directory, kind in expected.items():
        files = sorted((REPO / directory).glob("*.yaml"))
        assert files, directory
        for path in files:
            for doc in load_documents(path):
                assert doc["apiVersion"] == "pipesync.io/v1alpha1"
                assert doc["kind"] == kind, path
                assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


def test_pipeline_file_names_match_pipeline_names() -> None:
    for path in (REPO / "pipelines").glob("*.yaml"):
        assert [doc["metadata"]["name"] for doc in load_documents(path)] == [path.stem]


TASKS = pipeline_tasks()


@functools.cache
def script_help(script: str) -> str:
    """The script's --help text; cached because several tasks share a script."""
    return run_ok(script, "--help").stdout


@pytest.mark.parametrize(("where", "task"), TASKS, ids=[where for where, _ in TASKS])
def test_task_commands_match_the_scripts(where: str, task: dict[str, Any]) -> None:
    argv = [*task["command"], *task.get("args", [])]
    assert argv[0] == "python", where
    assert (REPO / argv[1]).is_file(), f"{where}: {argv[1]} does not exist"
    declared_outputs = task.get("outputs", {})
    declared_inputs = task.get("inputs", {}).get("artifacts", {})
    for arg in argv:
        for ref in PLACEHOLDER.findall(arg):
            kind, _, name = ref.partition(".")
            if kind == "outputs":
                group, _, output = name.partition(".")
                assert output in declared_outputs.get(group, []), f"{where}: {ref} not declared"
            elif kind == "inputs":
                assert name.removeprefix("artifacts.") in declared_inputs, f"{where}: {ref}"
    # Every flag the YAML passes must be one the script accepts (argparse --help lists them).
    help_text = script_help(argv[1].removeprefix("steps/"))
    for flag in (arg for arg in argv[2:] if arg.startswith("--")):
        assert flag in help_text, f"{where}: {argv[1]} has no {flag}"
