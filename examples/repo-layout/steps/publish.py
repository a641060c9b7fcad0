"""Publish an approved model: copy it and write a manifest describing it.

The pipeline runs this step only when the evaluation accuracy clears the
threshold (its `when` gate), so here we just copy and record provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the model from train.py")
    parser.add_argument("--accuracy", required=True, type=float, help="the evaluated accuracy")
    parser.add_argument(
        "--run",
        default=os.environ.get("PIPESYNC_RUN", "local"),
        help="name of the run publishing the model (default: the run pipesync says it is)",
    )
    parser.add_argument("--published-out", required=True, type=Path, help="where to copy the model")
    parser.add_argument(
        "--manifest-out", required=True, type=Path, help="where to write the manifest"
    )
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if not args.model.is_file():
        print(f"error: model {args.model} does not exist", file=sys.stderr)
        return 2

    args.published_out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.model, args.published_out)
    manifest = {
        "run": args.run,
        "accuracy": args.accuracy,
        "sha256": hashlib.sha256(args.published_out.read_bytes()).hexdigest(),
        "bytes": args.published_out.stat().st_size,
        "format": "joblib (scikit-learn Pipeline)",
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.manifest_out.parent.mkdir(parents=True, exist_ok=True)
    args.manifest_out.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    digest = str(manifest["sha256"])[:12]
    print(f"published model from run {args.run} (accuracy {args.accuracy}, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
