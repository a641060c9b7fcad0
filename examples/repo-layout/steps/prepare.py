"""Load scikit-learn's bundled digits data set and split it into train and test sets.

The data ships inside scikit-learn, so this step needs no network. The split is
stratified and seeded, so every run (and the pipeline cache) sees the same sets.
Output: one .npz file with the arrays X_train, X_test, y_train, y_test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", required=True, type=Path, help="file to write the .npz data set to"
    )
    parser.add_argument(
        "--test-size", type=float, default=0.25, help="fraction held out for testing"
    )
    parser.add_argument("--seed", type=int, default=42, help="seed of the train/test split")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not 0.0 < args.test_size < 1.0:
        print(f"error: --test-size must be between 0 and 1, got {args.test_size}", file=sys.stderr)
        return 2

    features, labels = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=args.test_size, random_state=args.seed, stratify=labels
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Write through a file object: np.savez would append ".npz" to a bare path, and the
    # pipeline hands us an exact file path for the artifact.
    with args.out.open("wb") as handle:
        np.savez_compressed(handle, X_train=x_train, X_test=x_test, y_train=y_train, y_test=y_test)
    print(f"wrote {args.out}: {len(y_train)} train and {len(y_test)} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
