"""A portal app on a test server: real PostgreSQL, real Redis, and a turn queue that records what it is asked."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis
from redis.asyncio import Redis

from ava_bot.http import make_error_middleware, portal_error_page
from channels.web import WebChannel, setup_web_chat
from core.inbox import Inbox
from core.messages import Reply, reply_text, reply_to_payload
from core.models import Direction, Message, MessageStatus, User
from portal.chat import message_event, signed_in_user
from portal.csrf import require_csrf
from portal.links import PortalLinks
from portal.setup import setup_portal
from tests.fakes.queue import RecordingQueue

SECRET = "test-secret-key-for-the-portal"
BASE_URL = "http://portal.test"
PASSWORD = "correct horse battery"


@dataclass
class Portal:
    """The running portal and what the tests inspect."""

    client: TestClient
    queue: RecordingQueue
    links: PortalLinks

    def forget_cookies(self) -> None:
        """Act as a browser without any session."""
        self.client.session.cookie_jar.clear()


def install_portal(
    app: web.Application,
    *,
    links: PortalLinks,
    inbox: Inbox,
    redis: Redis,
    keepalive: float = 15.0,
    **portal_options: Any,
) -> None:
    """The portal and the web chat adapter on `app`, wired as `ava_bot.app.create_app` wires them (sessions in
    the test Redis; `portal_options` go to `setup_portal`, e.g. a limiter)."""
    options: dict[str, Any] = {"secure_cookies": False} | portal_options
    setup_portal(app, links=links, web_channel=WebChannel.name, redis=lambda: redis, **options)
    setup_web_chat(
        app,
        inbox=inbox,
        redis=redis,
        session_user=signed_in_user,
        require_csrf=require_csrf,
        message_view=message_event,
        keepalive=keepalive,
    )


@asynccontextmanager
async def serve_portal(redis: Redis, links: PortalLinks | None = None, **portal_options: Any) -> AsyncIterator[Portal]:
    """The portal installed on a bare application with the error middleware, served on a local port."""
    queue = RecordingQueue()
    links = links or PortalLinks(SECRET, BASE_URL)
    app = web.Application(middlewares=[make_error_middleware(page=portal_error_page)])
    install_portal(app, links=links, inbox=Inbox(queue), redis=redis, **portal_options)
    server = TestServer(app)
    client: TestClient = TestClient(server)
    await client.start_server()
    harness = Portal(client=client, queue=queue, links=links)
    try:
        yield harness
    finally:
        await client.close()


@pytest.fixture
async def portal(db: str, redis: ArqRedis) -> AsyncIterator[Portal]:
    """The portal (and the web chat adapter) served on a local port."""
    async with serve_portal(redis) as harness:
        yield harness


async def magic_path(links: PortalLinks, user_id: int, next: str = "/chat") -> str:
    """The path of a real magic link for `user_id` (as the chat sends it: minted at the user's current epoch)."""
    url = await links.for_sending(user_id, links.sign_in_url(user_id, next=next))
    assert url.startswith(BASE_URL + "/portal/sign-in/"), url
    return url.removeprefix(BASE_URL)


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


async def signed_in(portal: Portal) -> tuple[int, str]:
    """Sign up and return the user id and the chat page's CSRF token."""
    user_id = await sign_up(portal.client)
    return user_id, await page_token(portal.client, "/chat")


async def post_chat(portal: Portal, token: str | None, **fields: str) -> ClientResponse:
    """Post to the web chat as its script does (JSON, CSRF header when `token` is given)."""
    headers = {"X-CSRF-Token": token} if token else {}
    return await portal.client.post("/chat/messages", json=fields, headers=headers)


async def store_reply(user_id: int, reply: Reply) -> Message:
    """Store an outbound web row the way the turn runner does before it calls the channel."""
    return await Message.create(
        user_id=user_id,
        direction=Direction.OUTBOUND,
        channel="web",
        chat_id=str(user_id),
        text=reply_text(reply),
        payload=reply_to_payload(reply),
        status=MessageStatus.SENT,
    )
