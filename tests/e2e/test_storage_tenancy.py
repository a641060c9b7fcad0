"""docs/install.md's per-namespace S3 policy, enforced by an S3 server that checks every
request's credentials (moto with IAM authorization on): one team's task keys can neither
read nor overwrite another team's records, logs or repository archives.

The policy is read from the doc itself, so what the doc tells an admin is what is tested.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from pipesync.runtime.storage import Backoff, Retry, S3Settings, S3Store, StoreError
from tests.e2e.fixtures.s3 import S3Server

DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"
TEAMS = ("team-a", "team-b")
#: Requests moto lets through before it starts enforcing IAM: the fixture's create_bucket,
#: then an admin user (create user, attach policy, create key) and per team the same three.
SETUP_REQUESTS = 1 + 3 + 3 * len(TEAMS)
ADMIN_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def documented_policy(bucket: str, namespace: str) -> dict[str, Any]:
    """The IAM policy docs/install.md gives for `team-a`, for this bucket and namespace."""
    section = DOC.read_text().split("### Tenancy: one set of S3 keys per namespace", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None, "docs/install.md lost its tenancy policy"
    text = block.group(1).replace("ml-artifacts", bucket).replace("team-a", namespace)
    policy: dict[str, Any] = json.loads(text)
    return policy


@pytest.fixture
def iam_s3(tmp_path: Path) -> Iterator[tuple[S3Server, dict[str, Any]]]:
    """An IAM-enforcing S3 server; yields it and a boto3 S3 client per user."""
    server = S3Server(tmp_path / "s3", env={"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_REQUESTS)})
    server.start()  # request 1: the bucket
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        )
        policies = {"admin": ADMIN_POLICY}
        policies.update({team: documented_policy(server.bucket, team) for team in TEAMS})
        clients = {}
        for user, policy in policies.items():
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user, PolicyName="pipesync", PolicyDocument=json.dumps(policy)
            )
            key = iam.create_access_key(UserName=user)["AccessKey"]
            clients[user] = {
                "aws_access_key_id": key["AccessKeyId"],
                "aws_secret_access_key": key["SecretAccessKey"],
            }
        yield server, clients
    finally:
        server.stop()


def _s3(server: S3Server, keys: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region, **keys)


def _denied(call: Any) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] in {"AccessDenied", "403"}
    return False


def test_one_teams_task_keys_cannot_reach_another_teams_objects(
    iam_s3: tuple[S3Server, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, keys = iam_s3
    admin, team_a, team_b = (_s3(server, keys[user]) for user in ("admin", *TEAMS))
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
