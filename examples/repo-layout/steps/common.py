"""Small helpers shared by the step scripts: reading the data set and writing outputs.

Kept deliberately tiny so each step script stays readable on its own.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np


class Dataset(NamedTuple):
    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def load_dataset(path: Path) -> Dataset:
    """Read the .npz written by prepare.py, or exit with a clear message."""
    if not path.is_file():
        sys.exit(f"error: data set {path} does not exist (did the prepare step run?)")
    with np.load(path) as data:
        missing = {"X_train", "X_test", "y_train", "y_test"} - set(data.files)
        if missing:
            sys.exit(f"error: data set {path} lacks arrays {sorted(missing)}")
        return Dataset(data["X_train"], data["X_test"], data["y_train"], data["y_test"])


def write_parameter(path: Path | None, value: object) -> None:
    """Write an output parameter: the file's whole content becomes the value.

    No trailing newline, so a `when` expression sees exactly the number.
    """
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(value), encoding="utf-8")
