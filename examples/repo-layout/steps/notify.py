"""Report how a run ended. Runs as the pipeline's onExit task, whatever the outcome.

Replace the print with a chat webhook or an e-mail in your own repository.
"""

from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, help="the run's name")
    parser.add_argument("--status", required=True, help="the run's final status")
    args = parser.parse_args()
    print(f"run {args.run} finished: {args.status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
