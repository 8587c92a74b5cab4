"""Base of every fake external API: an aiohttp server on 127.0.0.1, port 0, that records requests.

Responses are either queued per route (first in, first out) or produced by a handler function; a
request nothing answers gets a 404 JSON body and is still recorded, so tests can see stray calls.

    async with FakeServer() as fake:
        fake.queue("POST", "/v1/things", json={"id": 1})
        fake.handle("GET", "/v1/things/{id}", lambda req: web.json_response({"id": req[MATCH]["id"]}))
        ... client pointed at fake.url ...
        assert fake.requests[0].json == {...}
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

#: Request key holding the values of the matched `{placeholder}`s of the route pattern.
MATCH = web.RequestKey("match", dict[str, str])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse] | web.StreamResponse]


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    match_info: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return jsonlib.loads(self.body)

    @property
    def form(self) -> dict[str, str]:
        """The body parsed as a url-encoded form (last value wins)."""
        return {k: v[-1] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class QueuedResponse:
    """A canned response; `delay` seconds before answering simulates a slow API."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def build(self) -> web.Response:
        if self.json is not None:
            return web.json_response(self.json, status=self.status, headers=self.headers)
        return web.Response(body=self.body or b"", status=self.status, headers=self.headers)


class FakeServer:
    """A recording fake API server; subclass it to speak one platform's API (see tests/fakes/*)."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queues: dict[tuple[str, str], deque[QueuedResponse]] = defaultdict(deque)
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43121``."""
        return f"http://127.0.0.1:{self.port}"

    def queue(self, method: str, path: str, **response: Any) -> None:
        """Queue one response for `method path` (path may use aiohttp `{placeholders}`)."""
        self._queues[(method.upper(), path)].append(QueuedResponse(**response))

    def handle(self, method: str, path: str, handler: Handler) -> None:
        """Answer every `method path` not served by a queued response with `handler(request)`."""
        self._handlers[(method.upper(), path)] = handler

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose concrete path equals `path` (and method, if given)."""
        return [r for r in self.requests if r.path == path and (method is None or r.method == method.upper())]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        pattern, params = self._match(request.method, request.path)
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                match_info=params,
            )
        )
        request[MATCH] = params
        key = (request.method, pattern)
        if self._queues.get(key):
            queued = self._queues[key].popleft()
            if queued.delay:
                await asyncio.sleep(queued.delay)
            return queued.build()
        handler = self._handlers.get(key)  # handlers read path values from request[MATCH]
        if handler is not None:
            result = handler(request)
            return await result if asyncio.iscoroutine(result) else result  # type: ignore[return-value]
        return web.json_response({"error": f"fake has no response for {request.method} {request.path}"}, status=404)

    def _match(self, method: str, path: str) -> tuple[str, dict[str, str]]:
        """The registered pattern matching `path` (exact first, then `{placeholder}` ones) and its values."""
        patterns = {p for m, p in (*self._queues, *self._handlers) if m == method}
        if path in patterns:
            return path, {}
        for pattern in sorted(patterns):
            regex = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(pattern))
            found = re.fullmatch(regex, path)
            if found:
                return pattern, found.groupdict()
        return path, {}

    async def start(self) -> FakeServer:
        """Start listening on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Stop the server."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
