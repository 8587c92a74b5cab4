"""Photo storage on S3-compatible object storage (AWS S3, MinIO, ...): `S3Connection` and `S3PhotoStore`.

Web and worker replicas share one bucket, so a photo stored by any worker is served by any web. One
`S3Connection` (one aiobotocore client, one HTTP connection pool) lives as long as its process: it is opened and
closed by the app's `cleanup_ctx` and by the worker's start-up and shutdown, never per call. Every call has
bounded connect/read timeouts and a few retries (botocore's "standard" mode); what still fails becomes a
`StorageError`, which the photo pipeline retries and finally dead-letters like any transient failure.

Each `S3PhotoStore` works under its own key prefix in the bucket (the served copies under `photos/`, the private
originals under `originals/`), with the same key shape and error semantics as `LocalPhotoStore`: a malformed
key is `InvalidStorageKey` before any request, a missing object `PhotoNotStored`. Objects are never public:
photos reach their owner only through the portal's photo route. Credentials never appear in a repr or a log
line of this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from imaging.errors import PhotoNotStored, StorageError
from imaging.storage import check_key, new_key

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

logger = logging.getLogger(__name__)

#: S3 error codes meaning "no such object" (GetObject answers NoSuchKey; a HEAD-style answer only says 404).
_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})
#: Everything a call to S3 may raise that is the store's failure, not a bug of ours.
_S3_ERRORS = (ClientError, BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where the bucket is and how to reach it. `endpoint_url=None` means AWS itself."""

    bucket: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    endpoint_url: str | None = None
    region: str = "us-east-1"
    #: Prepended to every object key (e.g. "ava/" to share a bucket with something else).
    prefix: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    #: Attempts per call, the first included (botocore "standard" retry mode: 5xx, throttling, connection errors).
    max_attempts: int = 3


class S3Connection:
    """The process's one S3 client: `open()` at start-up, `close()` at shutdown (or `async with`)."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: S3Client | None = None

    def __repr__(self) -> str:
        return f"S3Connection(bucket={self.config.bucket!r}, endpoint={self.config.endpoint_url!r})"

    async def open(self) -> None:
        """Create the client (no request is made: a bucket that is down now may be up for the first photo)."""
        if self._client is not None:
            return
        config = self.config
        boto_config = AioConfig(
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            retries={"max_attempts": config.max_attempts, "mode": "standard"},
            # SigV4 also for presigned URLs (botocore presigns with the legacy SigV2 otherwise, which AWS regions
            # opened since 2014 refuse).
            signature_version="s3v4",
            # Path-style URLs: MinIO and other self-hosted servers rarely have wildcard DNS for bucket hosts.
            s3={"addressing_style": "path" if config.endpoint_url else "auto"},
        )
        quiet_botocore_logs()
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=config.endpoint_url,
                region_name=config.region,
                aws_access_key_id=config.access_key_id,
                aws_secret_access_key=config.secret_access_key,
                config=boto_config,
            )
        )
        self._stack = stack
        logger.info("S3 photo storage: bucket %r at %s", config.bucket, config.endpoint_url or "AWS")

    async def close(self) -> None:
        """Close the client and its connection pool (safe to call twice)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def client(self) -> S3Client:
        """The open client; `StorageError` outside the process's lifetime (before start-up, after shutdown)."""
        if self._client is None:
            raise StorageError("the S3 client is not open")
        return self._client


class S3PhotoStore:
    """A `PhotoStore` under `prefix` in the connection's bucket."""

    def __init__(self, connection: S3Connection, prefix: str) -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self._connection = connection
        self.prefix = connection.config.prefix + prefix

    def __repr__(self) -> str:
        return f"S3PhotoStore(bucket={self._connection.config.bucket!r}, prefix={self.prefix!r})"

    def object_key(self, key: str) -> str:
        """The bucket's object key for the store key `key` (`InvalidStorageKey` when malformed)."""
        return self.prefix + check_key(key)

    async def put(self, data: bytes, *, suffix: str = ".jpg") -> str:
        """Upload `data` under a fresh random key (an upload is all-or-nothing: no half-written object)."""
        key = new_key(suffix)
        try:
            await self._connection.client.put_object(
                Bucket=self._connection.config.bucket,
                Key=self.object_key(key),
                Body=data,
                ContentType="image/jpeg" if suffix == ".jpg" else "application/octet-stream",
            )
        except _S3_ERRORS as exc:
            raise StorageError(f"cannot store the photo: {_describe(exc)}") from None
        return key

    async def get(self, key: str) -> bytes:
        """The stored bytes; `InvalidStorageKey` for a malformed key, `PhotoNotStored` when absent."""
        object_key = self.object_key(key)
        try:
            answer = await self._connection.client.get_object(Bucket=self._connection.config.bucket, Key=object_key)
            async with answer["Body"] as body:
                return await body.read()
        except _S3_ERRORS as exc:
            raise _reading_failure(exc, "read") from None

    async def fetch_url(self, key: str, *, expires_in: int) -> str:
        """A presigned GET URL of the object under `key`, valid `expires_in` seconds (`FetchableStore`), once a
        HEAD showed the object exists: `PhotoNotStored` when it does not, `StorageError` when S3 cannot say.

        Signing is local (no request); the URL is a capability, never logged here."""
        object_key = self.object_key(key)
        client, bucket = self._connection.client, self._connection.config.bucket
        try:
            await client.head_object(Bucket=bucket, Key=object_key)
            return await client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": object_key}, ExpiresIn=expires_in
            )
        except _S3_ERRORS as exc:
            raise _reading_failure(exc, "share") from None

    async def delete(self, key: str) -> None:
        """Remove the object under `key` (S3 answers success when there is none)."""
        object_key = self.object_key(key)
        try:
            await self._connection.client.delete_object(Bucket=self._connection.config.bucket, Key=object_key)
        except _S3_ERRORS as exc:
            raise StorageError(f"cannot delete the photo: {_describe(exc)}") from None


def quiet_botocore_logs() -> None:
    """Hold botocore's loggers at WARNING unless someone chose their level: at DEBUG they print every signed
    request's headers (the access key id) and the signing steps."""
    for name in ("botocore", "aiobotocore"):
        chosen = logging.getLogger(name)
        if chosen.level == logging.NOTSET:
            chosen.setLevel(logging.WARNING)


def _reading_failure(exc: BaseException, doing: str) -> StorageError:
    """`PhotoNotStored` for S3's "no such object", else a `StorageError` saying what could not be done."""
    if isinstance(exc, ClientError) and _code(exc) in _MISSING:
        return PhotoNotStored("nothing stored under this key")
    return StorageError(f"cannot {doing} the photo: {_describe(exc)}")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: BaseException) -> str:
    """A short reason for the log and the dead letter: the S3 error code and status, or the exception's class.

    Never the exception's text: botocore's name the request URL, which holds the photo's unguessable key (the
    errors are raised `from None` for the same reason: a logged traceback would print the chained one)."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"S3 answered {_code(exc) or 'an error'} (HTTP {status})"
    return f"{type(exc).__name__} (S3 unreachable or too slow)"
