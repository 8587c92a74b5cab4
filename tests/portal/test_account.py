"""The account page's connected chats through the real app: connect links with one-time codes, unlinking."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from ava_bot.keys import SERVICES
from core.messages import ChatRef, InboundMessage
from core.models import ChannelIdentity, User
from tests.core.test_setup_flow import Gate
from tests.fakes.telegram import TOKEN
from tests.portal.conftest import csrf_of, page_token, sign_up


async def test_connect_telegram_then_unlink(db: str, redis: ArqRedis, make_settings: Any) -> None:
    """The page offers a t.me deep link with a fresh code that links the chat; unlinking removes it; not the web."""
    settings = make_settings(
        telegram_bot_token=TOKEN, telegram_bot_username="AvaCompanionBot", telegram_api_base_url="http://127.0.0.1:9"
    )
    app = await create_app(settings, redis=redis, own_database=False, entitlements=Gate(open_=True))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert (await client.get("/account", allow_redirects=False)).status == 303  # signed out: to sign-in
        user_id = await sign_up(client, "link@example.com")
        token = await page_token(client, "/account")
        page = await (await client.post("/account/connect/telegram", data={"csrf_token": token})).text()
        match = re.search(r"https://t\.me/AvaCompanionBot\?start=(link-[A-Z0-9]{10})", page)
        assert match, page
        assert (await client.post("/account/connect/whatsapp", data={"csrf_token": token})).status == 404  # off
        assert (await client.post("/account/connect/telegram", data={})).status == 403  # no CSRF token

        inbox = app[SERVICES].inbox
        stored = await inbox.receive(InboundMessage(ChatRef("telegram", "9001"), "tg-1", f"/start {match.group(1)}"))
        assert stored.user_id == user_id
        page = await (await client.get("/account")).text()
        assert "Telegram" in page
        telegram = await ChannelIdentity.get(channel="telegram", external_user_id="9001")
        web = await ChannelIdentity.get(channel="web", user_id=user_id)
        token = csrf_of(page)
        assert (await client.post(f"/account/unlink/{web.id}", data={"csrf_token": token})).status == 404
        unlinked = await client.post(
            f"/account/unlink/{telegram.id}", data={"csrf_token": token}, allow_redirects=False
        )
        assert unlinked.status == 303
        assert not await ChannelIdentity.exists(channel="telegram", external_user_id="9001")
        assert await ChannelIdentity.exists(id=web.id)
    finally:
        await client.close()


async def test_another_users_chat_cannot_be_unlinked(db: str, redis: ArqRedis, make_settings: Any) -> None:
    """User A cannot unlink user B's chat (404, nothing changes)."""
    app = await create_app(make_settings(), redis=redis, own_database=False, entitlements=Gate(open_=True))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        other = await ChannelIdentity.create(user=await User.create(), channel="telegram", external_user_id="42")
        await sign_up(client, "a@example.com")
        token = await page_token(client, "/account")
        assert (await client.post(f"/account/unlink/{other.id}", data={"csrf_token": token})).status == 404
        assert await ChannelIdentity.exists(id=other.id)
    finally:
        await client.close()
