"""The S3 flags every command that reads or writes the object store shares, and the store
they describe (one set of names and environment variables for operator, history and ui)."""

from __future__ import annotations

import argparse
import os

from pipesync.runtime import storage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--s3-bucket",
        default=env("PIPESYNC_S3_BUCKET", "pipesync"),
        help="bucket for artifacts and run records [PIPESYNC_S3_BUCKET]",
    )
    parser.add_argument(
        "--s3-endpoint",
        default=env("PIPESYNC_S3_ENDPOINT"),
        help="S3 endpoint URL; unset for AWS [PIPESYNC_S3_ENDPOINT]",
    )
    parser.add_argument(
        "--s3-region", default=env("PIPESYNC_S3_REGION", "us-east-1"), help="[PIPESYNC_S3_REGION]"
    )
    parser.add_argument(
        "--s3-prefix",
        default=env("PIPESYNC_S3_PREFIX", ""),
        help="key prefix before <namespace>/runs/... [PIPESYNC_S3_PREFIX]",
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
