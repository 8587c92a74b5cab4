"""The web app: /health touches nothing, /ready checks database and Redis, dev runs web + worker."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from ava_bot.devredis import FakeArqRedis
from ava_bot.keys import SERVICES
from ava_bot.settings import Settings
from core.errors import ValidationFailed
from tests.support import eventually

#: What a browser sends when it loads a page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def client_for(db: str) -> AsyncIterator[Callable[..., object]]:
    clients: list[TestClient] = []

    async def make(
        settings: Settings, redis: ArqRedis, *, extra_routes: Iterable[web.RouteDef] = (), **kwargs: object
    ) -> TestClient:
        app = await create_app(settings, redis=redis, own_database=False, **kwargs)  # type: ignore[arg-type]
        app.router.add_routes(extra_routes)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def test_health_answers_version_without_dependencies(client_for, make_settings) -> None:  # type: ignore[no-untyped-def]
    """/health is 200 with the version even when Redis is down."""
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    client = await client_for(make_settings(), dead)
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok" and body["version"]
    await dead.aclose()


async def test_ready_when_database_and_redis_answer(client_for, make_settings, redis: ArqRedis) -> None:  # type: ignore[no-untyped-def]
    """/ready is 200 when PostgreSQL and Redis both answer."""
    client = await client_for(make_settings(), redis)
    response = await client.get("/ready")
    assert response.status == 200
    assert (await response.json())["status"] == "ready"


async def test_ready_is_503_naming_redis_when_unreachable(client_for, make_settings) -> None:  # type: ignore[no-untyped-def]
    """/ready is 503 and names Redis when Redis cannot be reached."""
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    client = await client_for(make_settings(), dead)
    response = await client.get("/ready")
    assert response.status == 503
    assert await response.json() == {"status": "unavailable", "failed": ["redis"]}
    await dead.aclose()


async def test_in_process_worker_runs_jobs_on_fakeredis(client_for, make_settings) -> None:  # type: ignore[no-untyped-def]
    """In dev mode the worker shares the web process and consumes jobs from fakeredis."""
    fake = FakeArqRedis()
    await client_for(make_settings(), fake, run_worker=True)
    job = await fake.enqueue_job("ping")
    assert job is not None
    assert await job.result(timeout=10, poll_delay=0.05) == "pong"


async def test_in_process_worker_runs_chat_turns_on_fakeredis(client_for, make_settings) -> None:  # type: ignore[no-untyped-def]
    """Dev mode (fakeredis: Lua for the per-user lock included) stores, queues and answers a chat message."""
    from core.inbox import Inbox
    from core.messages import ChatRef, InboundMessage
    from core.models import Direction, Message, MessageStatus

    fake = FakeArqRedis()
    client = await client_for(make_settings(), fake, run_worker=True)
    inbox: Inbox = client.app[SERVICES].inbox
    stored = await inbox.receive(InboundMessage(ChatRef("web", "dev-1"), "d1", "hello"))

    async def answered() -> bool:
        return await Message.exists(user_id=stored.user_id, direction=Direction.OUTBOUND, status=MessageStatus.SENT)

    await eventually(answered, what="the onboarding reply in dev mode")


async def test_dev_command_serves_health_from_a_fresh_directory(tmp_path: Path) -> None:
    """`ava-bot dev` in an empty directory migrates SQLite, prints its URL and serves /health."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "AVA_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "ava_bot.cli", "dev", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
        assert f"http://127.0.0.1:{port}/" in line
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200
        assert (tmp_path / "data" / "ava.sqlite3").exists()
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0


def test_certs_dev_command_writes_certificates_once(tmp_path: Path) -> None:
    """`ava-bot certs dev` writes a CA + signing chain with private keys 0600 and refuses to overwrite them."""
    target = tmp_path / "certs"
    command = [sys.executable, "-m", "ava_bot.cli", "certs", "dev", "--dir", str(target)]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"C2PA_CERT_CHAIN={target / 'chain.pem'}" in first.stdout
    assert (target / "signer.key").stat().st_mode & 0o777 == 0o600
    second = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1 and "--force" in second.stderr


async def test_terms_page_is_served(client_for, make_settings, redis: ArqRedis) -> None:  # type: ignore[no-untyped-def]
    """The terms linked from the 18+ confirmation exist and say adults only."""
    client = await client_for(make_settings(), redis)
    response = await client.get("/terms")
    assert response.status == 200 and "Adults only" in await response.text()


async def test_bad_magic_link_answers_the_error_page(client_for, make_settings, redis: ArqRedis) -> None:  # type: ignore[no-untyped-def]
    """A refused sign-in link opened in a browser answers the portal's 403 page, with its CSP nonce and headers."""
    client = await client_for(make_settings(), redis)
    response = await client.get("/portal/sign-in/not-a-token", headers={"Accept": BROWSER_ACCEPT})
    assert response.status == 403
    assert response.content_type == "text/html"
    assert "script-src 'nonce-" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "This link is not valid." in await response.text()


async def test_bad_photo_link_in_a_browser_answers_the_private_error_page(
    client_for, make_settings, redis: ArqRedis
) -> None:  # type: ignore[no-untyped-def]
    """A tampered photo link opened from a chat answers the portal's 403 page, private and never cached."""
    client = await client_for(make_settings(), redis)
    response = await client.get("/photos/1?t=tampered", headers={"Accept": BROWSER_ACCEPT})
    assert response.status == 403 and response.content_type == "text/html"
    assert "This link is not valid." in await response.text()
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    missing = await client.get("/photos/not-a-number", headers={"Accept": BROWSER_ACCEPT})
    assert missing.status == 404 and "Not found." in await missing.text()


async def test_bad_magic_link_answers_json_to_a_json_client(client_for, make_settings, redis: ArqRedis) -> None:  # type: ignore[no-untyped-def]
    """The same refused sign-in link requested with `Accept: application/json` answers a JSON 403."""
    client = await client_for(make_settings(), redis)
    response = await client.get("/portal/sign-in/not-a-token", headers={"Accept": "application/json"})
    assert response.status == 403
    assert await response.json() == {"error": "This link is not valid."}


async def test_ava_error_in_a_json_route_answers_json(client_for, make_settings, redis: ArqRedis) -> None:  # type: ignore[no-untyped-def]
    """An `AvaError` raised by a JSON API route answers its status and public message as JSON."""

    async def create_thing(request: web.Request) -> web.Response:
        raise ValidationFailed("A name is required.")

    client = await client_for(make_settings(), redis, extra_routes=[web.post("/api/things", create_thing)])
    for accept in ("application/json", "*/*"):
        response = await client.post("/api/things", json={}, headers={"Accept": accept})
        assert response.status == 400
        assert await response.json() == {"error": "A name is required."}
