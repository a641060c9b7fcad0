"""The S3 flags every command that reads or writes the object store shares, and the store
they describe (one set of names and environment variables for operator, history and ui)."""

from __future__ import annotations

import argparse

from pipesync.cli import flags
from pipesync.runtime import storage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    flags.add_env_argument(
        parser,
        "--s3-bucket",
        "PIPESYNC_S3_BUCKET",
        default="pipesync",
        help="bucket for artifacts and run records",
    )
    flags.add_env_argument(
        parser,
        "--s3-endpoint",
        "PIPESYNC_S3_ENDPOINT",
        help="S3 endpoint URL; unset for AWS",
    )
    flags.add_env_argument(parser, "--s3-region", "PIPESYNC_S3_REGION", default="us-east-1")
    flags.add_env_argument(
        parser,
        "--s3-prefix",
        "PIPESYNC_S3_PREFIX",
        default="",
        help="key prefix before <namespace>/runs/...",
    )


def store(
    options: argparse.Namespace, *, patience: float, maximum: float | None = None
) -> storage.S3Store:
    """The run-record store the flags name (credentials from the environment, as boto3)."""
    backoff = (
        storage.Backoff(patience=patience)
        if maximum is None
        else storage.Backoff(patience=patience, maximum=maximum)
    )
    return storage.S3Store(
        storage.S3Settings(
            bucket=options.s3_bucket,
            endpoint_url=options.s3_endpoint,
            region=options.s3_region,
            prefix=options.s3_prefix.strip("/"),
        ),
        storage.Retry(backoff),
    )
