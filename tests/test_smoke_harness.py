"""The harness itself: PostgreSQL database, Redis and the fake server base work."""

from __future__ import annotations

import socket

import httpx
import pytest
from arq.connections import ArqRedis
from pytest_socket import SocketConnectBlockedError
from tortoise import connections

from tests.fakes.server import MATCH, FakeServer


async def test_database_is_postgres(db: str) -> None:
    """The session database is a real PostgreSQL server."""
    _, rows = await connections.get("default").execute_query("SELECT version() AS v")
    assert "PostgreSQL" in rows[0]["v"]


async def test_redis_is_isolated(redis: ArqRedis) -> None:
    """The Redis fixture starts empty."""
    assert await redis.dbsize() == 0


async def test_fake_server_records_and_answers() -> None:
    """The fake server serves queued responses in order, then handlers, and records everything."""
    async with FakeServer() as fake:
        fake.queue("POST", "/v1/items", json={"n": 1})
        fake.handle("GET", "/v1/items/{id}", lambda req: httpx_json(req[MATCH]["id"]))
        async with httpx.AsyncClient(base_url=fake.url) as client:
            first = await client.post("/v1/items", json={"a": 1})
            second = await client.post("/v1/items", json={"a": 2})
            got = await client.get("/v1/items/42")
    assert first.json() == {"n": 1}
    assert second.status_code == 404
    assert got.json() == {"id": "42"}
    assert [r.json for r in fake.requests_to("/v1/items")] == [{"a": 1}, {"a": 2}]


def httpx_json(value: str):  # type: ignore[no-untyped-def]
    from aiohttp import web

    return web.json_response({"id": value})


def test_outbound_network_is_blocked() -> None:
    """Tests cannot reach anything but loopback."""
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("93.184.215.14", 80), timeout=1)
