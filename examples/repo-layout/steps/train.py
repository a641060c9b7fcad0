"""Train a linear digits classifier (SGD on the log loss) and save it.

Features are standardised first; the learning rate is constant so the
`learning_rate` parameter has a visible effect (which the sweep pipeline shows).
Outputs: the fitted model (joblib file) and the test accuracy as a parameter.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import joblib
from common import load_dataset, write_parameter
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="the .npz from prepare.py")
    parser.add_argument("--learning-rate", required=True, type=float, help="SGD step size (> 0)")
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the SGD shuffling")
    parser.add_argument("--model-out", type=Path, help="file to write the model to")
    parser.add_argument("--accuracy-out", type=Path, help="file to write the test accuracy to")
    return parser.parse_args()


def build_model(learning_rate: float, epochs: int, seed: int) -> Pipeline:
    classifier = SGDClassifier(
        loss="log_loss",  # gives predict_proba, which evaluate.py needs for ROC curves
        learning_rate="constant",
        eta0=learning_rate,
        max_iter=epochs,
        tol=None,  # run exactly `epochs` passes: predictable time and results
        random_state=seed,
    )
    return make_pipeline(StandardScaler(), classifier)


def main() -> int:
    args = parse_args()
    if args.learning_rate <= 0:
        print(f"error: --learning-rate must be > 0, got {args.learning_rate}", file=sys.stderr)
        return 2
    if args.epochs < 1:
        print(f"error: --epochs must be >= 1, got {args.epochs}", file=sys.stderr)
        return 2

    data = load_dataset(args.data)
    model = build_model(args.learning_rate, args.epochs, args.seed)
    with warnings.catch_warnings():
        # A fixed, small number of epochs is the point here; do not clutter the log.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data.x_train, data.y_train)
    accuracy = float(model.score(data.x_test, data.y_test))
    print(f"learning_rate={args.learning_rate} epochs={args.epochs} accuracy={accuracy:.4f}")

    if args.model_out is not None:
        args.model_out.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(model, args.model_out)
    write_parameter(args.accuracy_out, f"{accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
