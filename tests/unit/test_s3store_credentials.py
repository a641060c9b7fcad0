"""An S3Store signs with the keys its environment holds when it is built, even in a
process where boto3 has already resolved other keys (a test process, or an agent that
built a store before its credentials were mounted)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from pipesync.runtime.storage import S3Settings, S3Store


class Sent(Exception):
    """Raised by the send hook: the request is inspected, never sent."""


def _signing_key(client: Any) -> str:
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(str(request.headers.get("Authorization", b""), "ascii", "replace"))
        raise Sent

    client.meta.events.register("before-send.s3.*", capture)
    with pytest.raises(Sent):
        client.head_object(Bucket="b", Key="k")
    return seen[0].split("Credential=", 1)[1].split("/", 1)[0]


def test_a_store_signs_with_the_keys_of_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for file in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.setenv(file, "/nonexistent")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "FIRSTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    settings = S3Settings(bucket="b", endpoint_url="http://127.0.0.1:9")
    # The process's default boto3 session resolves, and keeps, the first keys.
    default = boto3.client("s3", endpoint_url=settings.endpoint_url, region_name="us-east-1")
    assert _signing_key(default) == "FIRSTKEY"

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "TEAMAKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "team-a-secret")
    assert _signing_key(S3Store(settings).client) == "TEAMAKEY"


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("AccessDenied", 403, "AccessDenied"),
        ("InvalidAccessKeyId", 403, "AccessDenied"),
        ("SignatureDoesNotMatch", 403, "AccessDenied"),
        ("NoSuchKey", 404, "NotFound"),
        ("SlowDown", 503, "TransientStoreError"),
        ("InvalidRequest", 400, "StoreError"),
    ],
)
def test_a_refusal_of_the_credentials_is_its_own_error(code: str, status: int, kind: str) -> None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    error = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )
    assert type(S3Store._translate(error)).__name__ == kind
