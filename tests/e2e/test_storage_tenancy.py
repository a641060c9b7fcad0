"""docs/install.md's per-namespace S3 policy, enforced by an S3 server that checks every
request's credentials (moto with IAM authorization on): one team's task keys can neither
read nor overwrite another team's records, logs or repository archives.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipesync.runtime.storage import Backoff, Retry, S3Settings, S3Store, StoreError
from tests.e2e.fixtures.s3 import S3Server
from tests.e2e.fixtures.s3iam import ADMIN, Keys, iam_s3, s3_client

TEAMS = ("team-a", "team-b")


@pytest.fixture
def iam(tmp_path: Path) -> Iterator[tuple[S3Server, dict[str, Keys]]]:
    with iam_s3(tmp_path / "s3", TEAMS) as started:
        yield started


def _denied(call: Any) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] in {"AccessDenied", "403"}
    return False


def test_one_teams_task_keys_cannot_reach_another_teams_objects(
    iam: tuple[S3Server, dict[str, Keys]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, keys = iam
    admin, team_a, team_b = (s3_client(server, keys[user]) for user in (ADMIN, *TEAMS))
    archive = "team-b/sources/repo/0123abc.tar.gz"
    admin.put_object(Bucket=server.bucket, Key=archive, Body=b"team-b's code")
    admin.put_object(Bucket=server.bucket, Key="team-b/runs/r/run.json", Body=b"{}")

    # Its own prefix works: write, read, list (so a missing input is a 404, not a 403).
    team_a.put_object(Bucket=server.bucket, Key="team-a/runs/r/run.json", Body=b"{}")
    assert team_a.get_object(Bucket=server.bucket, Key="team-a/runs/r/run.json")["Body"].read()
    with pytest.raises(ClientError) as missing:
        team_a.get_object(Bucket=server.bucket, Key="team-a/runs/r/absent")
    assert missing.value.response["Error"]["Code"] in {"NoSuchKey", "404"}

    # The other team's records and archives: no read, no overwrite. (Listing names under
    # another prefix is denied by the policy's s3:prefix condition on AWS and MinIO; moto
    # does not evaluate conditions, so it is not asserted here.)
    bucket = server.bucket
    assert _denied(lambda: team_a.get_object(Bucket=bucket, Key="team-b/runs/r/run.json"))
    assert _denied(lambda: team_a.put_object(Bucket=bucket, Key=archive, Body=b"evil"))
    assert admin.get_object(Bucket=bucket, Key=archive)["Body"].read() == b"team-b's code"
    assert team_b.get_object(Bucket=bucket, Key=archive)["Body"].read() == b"team-b's code"

    # pipesync's own store, as a task pod of team-a uses it, sees an error, never B's data.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, keys["team-a"][name.lower()])
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    store = S3Store(
        S3Settings(bucket=bucket, endpoint_url=server.endpoint_url),
        Retry(Backoff(patience=2)),
    )
    with pytest.raises(StoreError):
        store.get_bytes("team-b/runs/r/run.json")
    assert store.get_bytes("team-a/runs/r/run.json") == b"{}"
