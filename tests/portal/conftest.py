"""A portal app on a test server: real PostgreSQL, real Redis, and a turn queue that records what it is asked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from core.inbox import Inbox
from core.models import User
from portal.links import PortalLinks
from portal.setup import setup_portal

SECRET = "test-secret-key-for-the-portal"
BASE_URL = "http://portal.test"
PASSWORD = "correct horse battery"


@dataclass
class RecordingQueue:
    """A `core.ports.TurnQueue` that records every enqueue."""

    calls: list[tuple[int, int]] = field(default_factory=list)

    async def enqueue_turn(self, user_id: int, message_id: int) -> None:
        self.calls.append((user_id, message_id))


@dataclass
class Portal:
    """The running portal and what the tests inspect."""

    client: TestClient
    queue: RecordingQueue
    links: PortalLinks

    def forget_cookies(self) -> None:
        """Act as a browser without any session."""
        self.client.session.cookie_jar.clear()


@pytest.fixture
async def portal(db: str, redis: ArqRedis) -> AsyncIterator[Portal]:
    """The portal installed on a bare application, served on a local port."""
    queue = RecordingQueue()
    links = PortalLinks(SECRET, BASE_URL)
    app = web.Application()
    setup_portal(app, secret_key=SECRET, links=links, inbox=Inbox(queue), redis=redis, secure_cookies=False)
    server = TestServer(app)
    client: TestClient = TestClient(server)
    await client.start_server()
    harness = Portal(client=client, queue=queue, links=links)
    try:
        yield harness
    finally:
        await client.close()


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries."""
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "page has no CSRF token"
    return match.group(1)


async def page_token(client: TestClient, path: str = "/") -> str:
    """Load a page (starting a session) and return its CSRF token."""
    response = await client.get(path)
    assert response.status == 200
    return csrf_of(await response.text())


async def sign_up(client: TestClient, email: str = "alice@example.com", password: str = PASSWORD) -> int:
    """Sign up through the form and return the new user's id (the client is signed in afterwards)."""
    token = await page_token(client, "/signup")
    response = await client.post(
        "/signup", data={"email": email, "password": password, "csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    assert response.headers["Location"] == "/chat"
    user = await User.get(email=email.strip().lower())
    return user.id
