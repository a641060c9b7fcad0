"""Object stores for run records, outputs and artifacts: S3 in a cluster, a directory locally.

Both stores speak the same flat key space (the keys of `pipesync.engine.layout`), so the
controller, the in-pod agent and the local executor share one vocabulary. Why a retry
layer lives here and not in callers: S3 outages are routine (a MinIO restart, a network
blip), and a task must not fail because the store was away for 30 seconds. Every store
operation is therefore retried with exponential backoff for up to a *patience* budget;
the clock and the sleep function are injectable, so tests check the exact schedule
without waiting for it.

boto3 is imported only when an `S3Store` is built: the agent that runs in every pod
imports this module, and the local executor never needs boto3 at all.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, TypeVar

from pipesync.runtime.digests import file_sha256

T = TypeVar("T")

Clock = Callable[[], float]
Sleep = Callable[[float], None]

#: Files up to this size go up in one PUT (survives any S3 restart); larger ones use
#: multipart uploads, which a retry restarts from the beginning.
SINGLE_PUT_LIMIT = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


class StoreError(Exception):
    """A store operation failed for good (after retries, if the failure looked transient)."""


class NotFound(StoreError):
    """The key does not exist."""


class AccessDenied(StoreError):
    """The store refused these credentials for this key (a 403): retrying cannot help, and
    the fix is the credentials or their policy, not the network."""


class TransientStoreError(StoreError):
    """The store could not be reached or was overloaded; the operation may succeed later."""


class ObjectStore(Protocol):
    """A flat key/value store of files. Keys are `/`-separated, relative, never contain `..`."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, path: Path) -> None: ...

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        """Upload an open, seekable file from its start (a retry seeks back to 0)."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def get_file(self, key: str, path: Path) -> None:
        """Write the object to `path` (atomically: a reader never sees half a file)."""
        ...

    def get_chunks(self, key: str, *, last: int | None = None) -> Iterator[bytes]:
        """The object (or only its `last` bytes) in chunks of at most _CHUNK bytes, so a
        web client can be sent a large artifact without holding it in memory. NotFound is
        raised by the call, before the first chunk."""
        ...

    def exists(self, key: str) -> bool: ...

    def list_prefix(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix` (a plain string prefix, as in S3), sorted."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key that starts with `prefix`; return how many were deleted."""
        ...

    def content_tags(self, key: str) -> dict[str, str]:
        """The object at `key` and the objects under `key/` (a file or a directory
        artifact): each one's path below `key` ("" for `key` itself) and the store's tag
        of its content (S3's ETag, a digest on disk), which changes whenever the object
        is written with other content. One listing, no download: the task cache checks
        an artifact it would serve against the tags it saw when it stored it."""
        ...

    def copy(self, source: str, target: str) -> None:
        """Copy one object inside the store (server-side in S3: no bytes pass through
        the caller)."""
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape a prefix or mean different things to S3 and a disk."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid object key {key!r}: empty, '.' or '..' segment")
    return key


# --------------------------------------------------------------------------- retries


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff: first, first*factor, ... capped at `maximum`, for `patience` s."""

    patience: float = 600.0
    first: float = 0.5
    factor: float = 2.0
    maximum: float = 10.0


class Retry:
    """Calls an operation until it succeeds, fails for good, or the patience runs out."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        on_retry: Callable[[str, Exception, float], None] | None = None,
    ) -> None:
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.sleep = sleep
        self.on_retry = on_retry

    def __call__(self, what: str, operation: Callable[[], T]) -> T:
        started = self.clock()
        delay = self.backoff.first
        while True:
            try:
                return operation()
            except TransientStoreError as error:
                remaining = self.backoff.patience - (self.clock() - started)
                if remaining <= 0:
                    raise StoreError(
                        f"{what}: gave up after {self.backoff.patience:g}s: {error}"
                    ) from error
                pause = min(delay, remaining)
                if self.on_retry is not None:
                    self.on_retry(what, error, pause)
                self.sleep(pause)
                delay = min(delay * self.backoff.factor, self.backoff.maximum)


class RetryingStore:
    """Wraps any store so that its transient failures are retried (used for tests and
    for stores that do not retry themselves)."""

    def __init__(self, inner: ObjectStore, retry: Retry) -> None:
        self.inner = inner
        self.retry = retry

    def put_bytes(self, key: str, data: bytes) -> None:
        self.retry(f"put {key}", lambda: self.inner.put_bytes(key, data))

    def put_file(self, key: str, path: Path) -> None:
        self.retry(f"put {key}", lambda: self.inner.put_file(key, path))

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        self.retry(f"put {key}", lambda: self.inner.put_stream(key, stream))

    def get_bytes(self, key: str) -> bytes:
        return self.retry(f"get {key}", lambda: self.inner.get_bytes(key))

    def get_file(self, key: str, path: Path) -> None:
        self.retry(f"get {key}", lambda: self.inner.get_file(key, path))

    def get_chunks(self, key: str, *, last: int | None = None) -> Iterator[bytes]:
        # Only the opening is retried: a stream cut halfway cannot be resumed for a reader
        # that has seen its first bytes already.
        return self.retry(f"get {key}", lambda: self.inner.get_chunks(key, last=last))

    def exists(self, key: str) -> bool:
        return self.retry(f"head {key}", lambda: self.inner.exists(key))

    def list_prefix(self, prefix: str) -> list[str]:
        return self.retry(f"list {prefix}", lambda: self.inner.list_prefix(prefix))

    def delete_prefix(self, prefix: str) -> int:
        return self.retry(f"delete {prefix}", lambda: self.inner.delete_prefix(prefix))

    def content_tags(self, key: str) -> dict[str, str]:
        return self.retry(f"list {key}", lambda: self.inner.content_tags(key))

    def copy(self, source: str, target: str) -> None:
        self.retry(f"copy {source}", lambda: self.inner.copy(source, target))


def _below(key: str, found: str) -> str | None:
    """`found`'s path below `key`: "" for `key` itself, None for a key that merely
    starts with the same letters (`model2` is not under `model`)."""
    if found == key:
        return ""
    return found[len(key) + 1 :] if found.startswith(f"{key}/") else None


def _file_chunks(opened: BinaryIO) -> Iterator[bytes]:
    with opened:
        while chunk := opened.read(_CHUNK):
            yield chunk


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")


# --------------------------------------------------------------------------- local disk


class LocalStore:
    """Keys as files under a root directory (the local executor's work directory).

    Limitation: a key cannot be both an object and a prefix of other objects (`a` and
    `a/b`), which S3 allows; the layout never does that.
    """

    _TMP = ".pipesync-tmp"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == self._TMP:
            raise ValueError(f"invalid object key {key!r}: reserved prefix")
        return self.root.joinpath(*key.split("/"))

    def _write(self, key: str, fill: Callable[[Path], object]) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary_sibling(target)
        try:
            fill(temporary)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda temporary: temporary.write_bytes(data))

    def put_file(self, key: str, path: Path) -> None:
        self._write(key, lambda temporary: shutil.copyfile(path, temporary))

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        def fill(temporary: Path) -> None:
            stream.seek(0)
            with temporary.open("wb") as out:
                shutil.copyfileobj(stream, out)

        self._write(key, fill)

    def get_bytes(self, key: str) -> bytes:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(key)
        return source.read_bytes()

    def get_file(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = _temporary_sibling(path)
        try:
            shutil.copyfile(source, temporary)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    def get_chunks(self, key: str, *, last: int | None = None) -> Iterator[bytes]:
        source = self._path(key)
        if not source.is_file():
            raise NotFound(key)
        opened = source.open("rb")
        if last is not None:
            opened.seek(max(source.stat().st_size - last, 0))
        return _file_chunks(opened)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_prefix(self, prefix: str) -> list[str]:
        # Walk only the deepest directory the prefix names, then filter by string prefix.
        directory = prefix.rpartition("/")[0]
        base = self._path(directory) if directory else self.root
        if not base.is_dir():
            return []
        keys: list[str] = []
        for current, dirs, files in os.walk(base):
            relative = PurePosixPath(Path(current).relative_to(self.root).as_posix())
            if str(relative) == ".":
                dirs[:] = [d for d in dirs if d != self._TMP]
            for name in files:
                if name.startswith(".") and name.endswith(".part"):
                    continue  # a write in progress
                key = name if str(relative) == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_prefix(prefix)
        for key in keys:
            self._path(key).unlink(missing_ok=True)
        return len(keys)

    def content_tags(self, key: str) -> dict[str, str]:
        tags = {}
        for found in self.list_prefix(key):
            below = _below(key, found)
            if below is not None:
                tags[below] = file_sha256(self._path(found))
        return tags

    def copy(self, source: str, target: str) -> None:
        origin = self._path(source)
        if not origin.is_file():
            raise NotFound(source)
        self._write(target, lambda temporary: shutil.copyfile(origin, temporary))


# --------------------------------------------------------------------------- S3


@dataclasses.dataclass(frozen=True)
class S3Settings:
    """Where objects live in S3. `prefix` (may be empty) is put before every key."""

    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    prefix: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> S3Settings:
        """From PIPESYNC_S3_BUCKET (required), PIPESYNC_S3_ENDPOINT, PIPESYNC_S3_REGION and
        PIPESYNC_S3_PREFIX. Credentials stay with boto3 (AWS_ACCESS_KEY_ID, ...)."""
        env = os.environ if env is None else env
        bucket = env.get("PIPESYNC_S3_BUCKET", "").strip()
        if not bucket:
            raise ValueError("PIPESYNC_S3_BUCKET is not set")
        return cls(
            bucket=bucket,
            endpoint_url=env.get("PIPESYNC_S3_ENDPOINT") or None,
            region=env.get("PIPESYNC_S3_REGION") or "us-east-1",
            prefix=env.get("PIPESYNC_S3_PREFIX", "").strip("/"),
        )


#: Error codes of a request the store refused for its credentials (unknown key, bad
#: signature, a policy that does not allow it).
_DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "403"}
)
#: Error codes that mean "try again later". NoSuchBucket is here on purpose: an S3 server
#: that is coming back (MinIO starting, moto replaying its journal) answers it for a
#: moment; a bucket that really is missing costs one patience before the error surfaces.
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "NoSuchBucket",
    }
)


class S3Store:
    """An `ObjectStore` over boto3; every call retried through `retry`."""

    def __init__(
        self, settings: S3Settings, retry: Retry | None = None, client: Any = None
    ) -> None:
        self.settings = settings
        self.retry = retry or Retry()
        if client is None:
            import boto3  # noqa: PLC0415 - deferred: only S3 users pay for it
            from botocore.config import Config  # noqa: PLC0415

            # A session of its own: boto3's default session resolves credentials once
            # per process and keeps them, so a store built after the environment's keys
            # changed would sign with the old ones (and a second store in the same
            # process could not have other keys at all).
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region,
                # One attempt per call: our Retry owns the schedule and the patience.
                config=Config(
                    retries={"max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                ),
            )
        self.client: Any = client

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.settings.prefix}/{key}" if self.settings.prefix else key

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        def translated() -> T:
            try:
                return operation()
            except Exception as error:
                raise self._translate(error) from error

        return self.retry(what, translated)

    @staticmethod
    def _translate(error: Exception) -> Exception:
        from boto3.exceptions import S3UploadFailedError  # noqa: PLC0415
        from botocore.exceptions import (  # noqa: PLC0415
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            IncompleteReadError,
        )

        if isinstance(error, StoreError):
            return error
        if isinstance(error, ConnectionError | HTTPClientError | IncompleteReadError):
            return TransientStoreError(str(error))
        if isinstance(error, S3UploadFailedError):
            return TransientStoreError(str(error))  # multipart: the whole file again
        if isinstance(error, BotoCoreError):  # e.g. NoCredentialsError: no use retrying
            return StoreError(f"{type(error).__name__}: {error}")
        if isinstance(error, ClientError):
            code = str(error.response.get("Error", {}).get("Code", ""))
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            if code in ("NoSuchKey", "404", "NotFound"):
                return NotFound(str(error))
            if code in _DENIED_CODES or status == 403:
                return AccessDenied(str(error))
            if code in _TRANSIENT_CODES or status >= 500 or status == 429:
                return TransientStoreError(str(error))
            return StoreError(str(error))
        return error

    def put_bytes(self, key: str, data: bytes) -> None:
        full = self._key(key)
        self._call(
            f"put {full}",
            lambda: self.client.put_object(Bucket=self.settings.bucket, Key=full, Body=data),
        )

    def put_file(self, key: str, path: Path) -> None:
        with path.open("rb") as stream:
            self.put_stream(key, stream)

    def put_stream(self, key: str, stream: BinaryIO) -> None:
        full = self._key(key)

        def upload() -> None:
            stream.seek(0)
            if os.fstat(stream.fileno()).st_size <= SINGLE_PUT_LIMIT:
                self.client.put_object(Bucket=self.settings.bucket, Key=full, Body=stream)
                return
            from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

            config = TransferConfig(
                multipart_threshold=SINGLE_PUT_LIMIT,
                multipart_chunksize=SINGLE_PUT_LIMIT,
                use_threads=False,
            )
            self.client.upload_fileobj(stream, self.settings.bucket, full, Config=config)

        self._call(f"put {full}", upload)

    def get_bytes(self, key: str) -> bytes:
        full = self._key(key)

        def read() -> bytes:
            response = self.client.get_object(Bucket=self.settings.bucket, Key=full)
            data: bytes = response["Body"].read()
            return data

        return self._call(f"get {full}", read)

    def get_file(self, key: str, path: Path) -> None:
        full = self._key(key)

        def download() -> None:
            response = self.client.get_object(Bucket=self.settings.bucket, Key=full)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = _temporary_sibling(path)
            try:
                with temporary.open("wb") as out:
                    for chunk in response["Body"].iter_chunks(_CHUNK):
                        out.write(chunk)
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)

        self._call(f"get {full}", download)

    def get_chunks(self, key: str, *, last: int | None = None) -> Iterator[bytes]:
        full = self._key(key)

        def open_body() -> Any:
            ranged = {} if last is None else {"Range": f"bytes=-{max(last, 1)}"}
            try:
                return self.client.get_object(Bucket=self.settings.bucket, Key=full, **ranged)
            except Exception as error:
                # An empty object has no last byte to range over: it is simply empty.
                code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
                if last is not None and code == "InvalidRange":
                    return None
                raise

        response = self._call(f"get {full}", open_body)
        if response is None:
            return iter(())
        return _body_chunks(response["Body"])

    def exists(self, key: str) -> bool:
        full = self._key(key)

        def head() -> bool:
            try:
                self.client.head_object(Bucket=self.settings.bucket, Key=full)
            except Exception as error:
                if isinstance(self._translate(error), NotFound):
                    return False
                raise
            return True

        return self._call(f"head {full}", head)

    def list_prefix(self, prefix: str) -> list[str]:
        full = f"{self.settings.prefix}/{prefix}" if self.settings.prefix else prefix
        strip = len(self.settings.prefix) + 1 if self.settings.prefix else 0

        def listing() -> list[str]:
            keys: list[str] = []
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=full):
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
            return sorted(keys)

        return self._call(f"list {full}", listing)

    def content_tags(self, key: str) -> dict[str, str]:
        full = self._key(key)

        def listing() -> dict[str, str]:
            tags: dict[str, str] = {}
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    below = _below(full, item["Key"])
                    if below is not None:
                        tags[below] = str(item.get("ETag", "")).strip('"')
            return tags

        return self._call(f"list {full}", listing)

    def copy(self, source: str, target: str) -> None:
        origin, full = self._key(source), self._key(target)

        def copied() -> None:
            from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

            # The managed copy: one CopyObject, or a multipart copy past 5 GiB.
            self.client.copy(
                {"Bucket": self.settings.bucket, "Key": origin},
                self.settings.bucket,
                full,
                Config=TransferConfig(use_threads=False),
            )

        self._call(f"copy {origin}", copied)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_prefix(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            self._delete([self._key(key) for key in keys[start : start + 1000]])
        return len(keys)

    def _delete(self, keys: list[str]) -> None:
        objects = [{"Key": key} for key in keys]
        self._call(
            f"delete {keys[0]}...",
            lambda: self.client.delete_objects(
                Bucket=self.settings.bucket, Delete={"Objects": objects, "Quiet": True}
            ),
        )


def _body_chunks(body: Any) -> Iterator[bytes]:
    """A boto3 StreamingBody in chunks; closed when the reader stops early (a browser
    that navigates away), so the connection to S3 is not left half-read."""
    try:
        yield from body.iter_chunks(_CHUNK)
    finally:
        body.close()
