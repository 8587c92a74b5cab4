"""A local S3: moto's S3 in server mode on a loopback port, that a test can take down and bring back.

The REAL aiobotocore client (`imaging.s3.S3Connection`) talks to it over HTTP. moto keeps its buckets in
process-wide memory, so a server stopped and started again on the same port still has them ("S3 came back").

The server speaks HTTP/1.0 (no keep-alive): once `stop()` returns every new request is refused, as when the
storage is unreachable, instead of a pooled connection still reaching a handler thread of the stopped server.

    with MotoS3() as s3:
        await s3.create_bucket("photos")
        connection = S3Connection(s3.config("photos"))
"""

from __future__ import annotations

import socket
import threading
import uuid
from types import TracebackType
from typing import Any, Self

from aiobotocore.session import get_session
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from imaging.s3 import S3Config, quiet_botocore_logs

ACCESS_KEY_ID = "AKIAFAKEAVATESTKEY01"
SECRET_ACCESS_KEY = "fake-secret-access-key/Ava+test+0123456789"
REGION = "us-east-1"


class _OneRequestPerConnection(MotoRequestHandler):
    """moto's handler without keep-alive (see the module docstring), and without an access log: request lines
    carry the photos' unguessable storage keys."""

    protocol_version = "HTTP/1.0"

    def log(self, type: str, message: str, *args: Any) -> None:
        """Log nothing."""


def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_bucket() -> str:
    """A bucket name no other test uses (moto's buckets live as long as the test process)."""
    return f"ava-test-{uuid.uuid4().hex[:16]}"


class MotoS3:
    """moto's S3 on 127.0.0.1:`port` (0: any free port, kept across `stop()` / `start()`)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint URL (S3_ENDPOINT_URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server is accepting requests."""
        return self._server is not None

    def start(self) -> None:
        """Listen (again) and serve in a daemon thread."""
        if self._server is not None:
            return
        app = DomainDispatcherApplication(create_backend_app)
        server = make_server("127.0.0.1", self.port, app, threaded=True, request_handler=_OneRequestPerConnection)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the listening socket: new connections are refused."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def config(self, bucket: str, **overrides: Any) -> S3Config:
        """An `S3Config` for `bucket` on this server, with short timeouts and one attempt per call (tests)."""
        values: dict[str, Any] = {
            "bucket": bucket,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "endpoint_url": self.url,
            "region": REGION,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
            "max_attempts": 1,
        }
        return S3Config(**(values | overrides))

    def settings(self, bucket: str) -> dict[str, str]:
        """The S3_* settings pointing at `bucket` on this server (keyword arguments of `Settings`)."""
        return {
            "s3_endpoint_url": self.url,
            "s3_bucket": bucket,
            "s3_access_key_id": ACCESS_KEY_ID,
            "s3_secret_access_key": SECRET_ACCESS_KEY,
            "s3_region": REGION,
        }

    async def create_bucket(self, bucket: str) -> None:
        """Create `bucket` (what compose's bucket-creation step does for MinIO)."""
        async with self._client() as client:
            await client.create_bucket(Bucket=bucket)

    async def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in `bucket` under `prefix`, sorted."""
        keys: list[str] = []
        async with self._client() as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                keys += [item["Key"] for item in page.get("Contents", []) if "Key" in item]
        return sorted(keys)

    def _client(self) -> Any:
        quiet_botocore_logs()
        return get_session().create_client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
