"""Evaluate a trained digits model on the held-out test set.

Writes:
- metrics JSON: accuracy, macro/weighted F1, precision, recall, ROC AUC, test-set size;
- the confusion matrix as JSON (rows: true class, columns: predicted class) and as PNG;
- one-vs-rest ROC curves (micro and macro average) as JSON and as PNG;
- the accuracy as an output parameter, which the pipeline's `when` gate reads.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import joblib
import matplotlib

matplotlib.use("Agg")  # render to files; pods and CI have no display

import matplotlib.pyplot as plt
import numpy as np
from common import load_dataset, write_parameter
from sklearn.metrics import (
    accuracy_score,
    auc,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="the .npz from prepare.py")
    parser.add_argument("--model", required=True, type=Path, help="the model from train.py")
    parser.add_argument("--metrics-out", required=True, type=Path)
    parser.add_argument("--confusion-json-out", required=True, type=Path)
    parser.add_argument("--confusion-png-out", required=True, type=Path)
    parser.add_argument("--roc-json-out", required=True, type=Path)
    parser.add_argument("--roc-png-out", required=True, type=Path)
    parser.add_argument("--accuracy-out", type=Path, help="file to write the accuracy to")
    return parser.parse_args()


def roc_curves(y_true: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> dict[str, Any]:
    """One-vs-rest ROC: per class, micro average (pooled) and macro average (mean TPR)."""
    onehot = label_binarize(y_true, classes=classes)
    per_class: dict[str, dict[str, Any]] = {}
    grid = np.linspace(0.0, 1.0, 101)
    mean_tpr = np.zeros_like(grid)
    for index, label in enumerate(classes):
        fpr, tpr, _ = roc_curve(onehot[:, index], scores[:, index])
        per_class[str(label)] = {"auc": float(auc(fpr, tpr))}
        mean_tpr += np.interp(grid, fpr, tpr)
    mean_tpr /= len(classes)
    mean_tpr[0] = 0.0
    micro_fpr, micro_tpr, _ = roc_curve(onehot.ravel(), scores.ravel())
    return {
        "micro": {
            "fpr": micro_fpr.round(4).tolist(),
            "tpr": micro_tpr.round(4).tolist(),
            "auc": float(auc(micro_fpr, micro_tpr)),
        },
        "macro": {
            "fpr": grid.round(4).tolist(),
            "tpr": mean_tpr.round(4).tolist(),
            "auc": float(auc(grid, mean_tpr)),
        },
        "per_class": per_class,
    }


def plot_confusion(matrix: np.ndarray, classes: np.ndarray, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ax.set(
        xticks=range(len(classes)),
        yticks=range(len(classes)),
        xticklabels=classes,
        yticklabels=classes,
        xlabel="predicted",
        ylabel="true",
        title="Confusion matrix",
    )
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=7)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)


def plot_roc(curves: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 5))
    for name in ("micro", "macro"):
        curve = curves[name]
        ax.plot(curve["fpr"], curve["tpr"], label=f"{name} average (AUC {curve['auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (one-vs-rest)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)


def write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def main() -> int:
    args = parse_args()
    data = load_dataset(args.data)
    if not args.model.is_file():
        print(
            f"error: model {args.model} does not exist (did the train step run?)", file=sys.stderr
        )
        return 2
    model = joblib.load(args.model)

    classes = np.unique(np.concatenate([data.y_train, data.y_test]))
    predicted = model.predict(data.x_test)
    scores = model.predict_proba(data.x_test)
    matrix = confusion_matrix(data.y_test, predicted, labels=classes)
    curves = roc_curves(data.y_test, scores, classes)

    accuracy = float(accuracy_score(data.y_test, predicted))
    metrics = {
        "accuracy": accuracy,
        "f1_macro": float(f1_score(data.y_test, predicted, average="macro")),
        "f1_weighted": float(f1_score(data.y_test, predicted, average="weighted")),
        "precision_macro": float(precision_score(data.y_test, predicted, average="macro")),
        "recall_macro": float(recall_score(data.y_test, predicted, average="macro")),
        "roc_auc_micro": curves["micro"]["auc"],
        "roc_auc_macro": curves["macro"]["auc"],
        "test_size": len(data.y_test),
    }
    write_json(args.metrics_out, metrics)
    write_json(args.confusion_json_out, {"labels": classes.tolist(), "matrix": matrix.tolist()})
    write_json(args.roc_json_out, curves)
    for png in (args.confusion_png_out, args.roc_png_out):
        png.parent.mkdir(parents=True, exist_ok=True)
    plot_confusion(matrix, classes, args.confusion_png_out)
    plot_roc(curves, args.roc_png_out)
    write_parameter(args.accuracy_out, f"{accuracy:.4f}")
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
