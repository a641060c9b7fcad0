"""Train a softmax-regression digits classifier on a GPU when there is one.

The same model is written twice, small on purpose:
- with PyTorch, on CUDA when available (e.g. in the pytorch/pytorch image on a GPU node);
- with plain NumPy otherwise, so the step also runs on a laptop with no GPU and no torch.
Both train with full-batch gradient descent on standardised pixels and save the
weights in the same .npz format, so downstream steps do not care which ran.
Needs only NumPy; the data set comes from prepare.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

NUM_CLASSES = 10


def load_dataset(path: Path) -> dict[str, np.ndarray]:
    # Not shared with common.py on purpose: the GPU image may lack scikit-learn.
    if not path.is_file():
        sys.exit(f"error: data set {path} does not exist (did the prepare step run?)")
    with np.load(path) as data:
        return {name: data[name] for name in ("X_train", "X_test", "y_train", "y_test")}


def describe_gpu_environment() -> str:
    """What the node gave us: the device plugin sets NVIDIA_VISIBLE_DEVICES in GPU pods."""
    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES") or os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"visible GPUs: {visible}" if visible else "no GPU visible to this process"


def try_torch() -> Any | None:
    """Return the torch module if it is installed, else None (torch is optional)."""
    try:
        import torch  # noqa: PLC0415 - optional dependency, imported only when present
    except ImportError:
        return None
    return torch


def train_numpy(x: np.ndarray, y: np.ndarray, *, lr: float, epochs: int, seed: int) -> np.ndarray:
    """Gradient descent on the cross-entropy of a linear softmax model; returns W (d+1 x k)."""
    rng = np.random.default_rng(seed)
    x1 = np.hstack([x, np.ones((len(x), 1))])  # bias column
    weights = rng.normal(scale=0.01, size=(x1.shape[1], NUM_CLASSES))
    onehot = np.eye(NUM_CLASSES)[y]
    for _ in range(epochs):
        logits = x1 @ weights
        logits -= logits.max(axis=1, keepdims=True)  # numerical stability
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        weights -= lr * x1.T @ (probs - onehot) / len(x1)
    return weights


def train_torch(
    torch: Any, x: np.ndarray, y: np.ndarray, *, lr: float, epochs: int, seed: int, device: str
) -> np.ndarray:
    """The same model and update rule as train_numpy, on a torch device."""
    torch.manual_seed(seed)
    x1 = torch.tensor(np.hstack([x, np.ones((len(x), 1))]), dtype=torch.float32, device=device)
    target = torch.tensor(y, dtype=torch.int64, device=device)
    weights = (0.01 * torch.randn(x1.shape[1], NUM_CLASSES, device=device)).requires_grad_()
    optimizer = torch.optim.SGD([weights], lr=lr)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x1 @ weights, target)
        loss.backward()
        optimizer.step()
    return weights.detach().cpu().numpy().astype(np.float64)


def predict(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.argmax(np.hstack([x, np.ones((len(x), 1))]) @ weights, axis=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, type=Path, help="the .npz from prepare.py")
    parser.add_argument("--learning-rate", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=200, help="full-batch gradient steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-out", type=Path, help="file to write the weights (.npz) to")
    parser.add_argument("--accuracy-out", type=Path, help="file to write the test accuracy to")
    parser.add_argument("--device-out", type=Path, help="file to write the device used to")
    args = parser.parse_args()
    if args.learning_rate <= 0 or args.epochs < 1:
        print("error: --learning-rate must be > 0 and --epochs >= 1", file=sys.stderr)
        return 2

    data = load_dataset(args.data)
    mean = data["X_train"].mean(axis=0)
    std = data["X_train"].std(axis=0) + 1e-8  # some border pixels are always 0
    x_train = (data["X_train"] - mean) / std
    x_test = (data["X_test"] - mean) / std
    y_train = data["y_train"].astype(np.int64)

    print(describe_gpu_environment())
    torch = try_torch()
    if torch is not None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        print(f"training with torch {torch.__version__} on {device}")
        weights = train_torch(
            torch,
            x_train,
            y_train,
            lr=args.learning_rate,
            epochs=args.epochs,
            seed=args.seed,
            device=device,
        )
        backend = f"torch:{device}"
    else:
        print("torch is not installed: training with NumPy on the CPU")
        weights = train_numpy(
            x_train, y_train, lr=args.learning_rate, epochs=args.epochs, seed=args.seed
        )
        backend = "numpy:cpu"

    accuracy = float(np.mean(predict(weights, x_test) == data["y_test"]))
    print(
        f"backend={backend} learning_rate={args.learning_rate} epochs={args.epochs} "
        f"accuracy={accuracy:.4f}"
    )

    outputs = ((args.accuracy_out, f"{accuracy:.4f}"), (args.device_out, backend))
    for path, value in outputs:
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(value, encoding="utf-8")
    if args.model_out is not None:
        args.model_out.parent.mkdir(parents=True, exist_ok=True)
        with args.model_out.open("wb") as handle:  # exact path: np.savez would add ".npz"
            np.savez(handle, weights=weights, mean=mean, std=std)
    return 0


if __name__ == "__main__":
    sys.exit(main())
