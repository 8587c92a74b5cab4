"""A fake Sentry ingest server: receives the real sentry_sdk's envelopes at `POST /api/<project>/envelope/`.

    async with FakeSentry() as sentry:
        sentry_sdk.init(dsn=sentry.dsn, ...)
        ... raise something the integrations report ...
        await asyncio.to_thread(sentry_sdk.flush, 5)
        assert sentry.events[0]["exception"]["values"][0]["type"] == "RuntimeError"

`raw` keeps every decompressed envelope as received, so a test can search the bytes that would leave.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

PUBLIC_KEY = "0123456789abcdef0123456789abcdef"
PROJECT = "42"


def parse_envelope(data: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """The (item header, payload) pairs of a Sentry envelope (first line is the envelope header)."""
    _, _, rest = data.partition(b"\n")
    items = []
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] :].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((header, payload))
    return items


class FakeSentry(FakeServer):
    """Accepts envelopes like sentry.io and keeps them (decompressed)."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []
        self.handle("POST", "/api/{project}/envelope/", self._envelope)

    @property
    def dsn(self) -> str:
        """The DSN pointing the SDK here."""
        return f"http://{PUBLIC_KEY}@127.0.0.1:{self.port}/{PROJECT}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every error event received so far."""
        return [
            json.loads(payload)
            for envelope in self.raw
            for header, payload in parse_envelope(envelope)
            if header.get("type") == "event"
        ]

    async def _envelope(self, request: web.Request) -> web.Response:
        body = self.requests[-1].body
        if body.startswith(b"\x1f\x8b"):  # aiohttp already inflates a `Content-Encoding: gzip` body
            body = gzip.decompress(body)
        self.raw.append(body)
        return web.json_response({"id": "0" * 32})
