"""The account page: avatar summary and edit, plan and cancel at period end, connected chats (through the real
app: connect links with one-time codes, unlinking), and only the signed-in user's data."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from ava_bot.keys import SERVICES
from core.messages import ChatRef, InboundMessage
from core.models import Avatar, ChannelIdentity, Direction, Message, User
from imaging.models import PhotoKindChoice
from tests.core.test_setup_flow import Gate
from tests.fakes.telegram import TOKEN
from tests.portal.conftest import csrf_of, page_token, sign_up
from tests.portal.pages_env import Site, make_avatar, make_photo, serve_site


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


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The account page with the fake billing and a recording turn queue on a local port."""
    async with serve_site(tmp_path, redis) as running:
        yield running


async def _reference(site: Site, user_id: int) -> int:
    """An approved avatar with a kept reference photo; returns the photo id."""
    avatar = await make_avatar(user_id, "Luna")
    photo = await make_photo(site, avatar, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=avatar.id).update(reference_photo_id=photo.id)
    return photo.id


async def test_account_page_shows_avatar_plan_and_actions(site: Site) -> None:
    """The page summarises the avatar, shows the plan with its renewal date, and offers edit, cancel, sign out
    everywhere and delete my data; the reference thumbnail appears only once the session confirmed 18+."""
    user_id = await sign_up(site.client, "acct@example.com")
    reference = await _reference(site, user_id)
    renews = datetime(2031, 3, 14, tzinfo=UTC)
    site.billing.subscribe(user_id, period_end=renews)

    html = await (await site.client.get("/account")).text()
    for fact in ("Luna", "27", "woman", "Brazilian", "adventurous", "Ava Monthly", "Renews on 2031-03-14"):
        assert fact in html, fact
    assert 'action="/account/avatar"' in html and "Edit avatar" in html
    assert 'action="/account/cancel"' in html and "Cancel at period end" in html
    assert 'action="/account/sign-out-everywhere"' in html
    assert 'href="/account/delete"' in html
    assert f'href="/photos/{reference}/view"' not in html and "/adult?next=%2Faccount" in html

    await site.confirm_adult("/account")
    assert f'href="/photos/{reference}/view"' in await (await site.client.get("/account")).text()


async def test_account_without_a_subscription_offers_to_subscribe(site: Site) -> None:
    """No subscription: no cancel button, a link to the subscribe page."""
    await sign_up(site.client, "nosub@example.com")
    html = await (await site.client.get("/account")).text()
    assert 'href="/subscribe"' in html and "/account/cancel" not in html
    assert "Ava has not been set up yet" in html


async def test_cancel_at_period_end_is_reflected_on_the_page(site: Site) -> None:
    """Cancelling needs the CSRF token; afterwards the page shows "Ends on <date>" and no cancel button."""
    user_id = await sign_up(site.client, "cancel@example.com")
    site.billing.subscribe(user_id, period_end=datetime(2031, 1, 31, tzinfo=UTC))
    token = await page_token(site.client, "/account")

    assert (await site.client.post("/account/cancel", data={})).status == 403
    assert site.billing.cancelled == []
    response = await site.client.post("/account/cancel", data={"csrf_token": token}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/account")
    assert site.billing.cancelled == [user_id]
    html = await (await site.client.get("/account")).text()
    assert "Ends on 2031-01-31" in html and "Renews on" not in html
    assert 'action="/account/cancel"' not in html


async def test_edit_avatar_sends_the_command_through_the_inbox(site: Site) -> None:
    """ "Edit avatar" stores `/avatar` as the user's web chat message (once, even when the form is sent twice),
    schedules the turn, and opens the chat; without CSRF nothing is stored."""
    user_id = await sign_up(site.client, "edit@example.com")
    await _reference(site, user_id)
    html = await (await site.client.get("/account")).text()
    client_id = re.search(r'name="client_id" value="([^"]+)"', html)
    assert client_id
    form = {"csrf_token": csrf_of(html), "client_id": client_id.group(1)}

    assert (await site.client.post("/account/avatar", data={"client_id": client_id.group(1)})).status == 403
    assert not await Message.exists(user_id=user_id)
    for _ in range(2):
        response = await site.client.post("/account/avatar", data=form, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/chat")
    (row,) = await Message.filter(user_id=user_id)
    assert (row.direction, row.channel, row.chat_id, row.text) == (Direction.INBOUND, "web", str(user_id), "/avatar")
    assert site.queue.calls == [user_id]


async def test_account_pages_show_only_the_signed_in_users_data(site: Site) -> None:
    """User B's account page shows B's avatar and plan, never A's; signed out, it sends the browser to sign in."""
    signed_out = await site.client.get("/account", allow_redirects=False)
    assert unquote(signed_out.headers["Location"]) == "/signin?next=/account"
    a = await sign_up(site.client, "alice@example.com")
    await make_avatar(a, "Alba")
    site.billing.subscribe(a, period_end=datetime(2032, 2, 2, tzinfo=UTC))
    site.client.session.cookie_jar.clear()
    b = await sign_up(site.client, "bob@example.com")
    await make_avatar(b, "Bea")
    html = await (await site.client.get("/account")).text()
    assert "Bea" in html and "Alba" not in html and "2032-02-02" not in html
    token = csrf_of(html)
    assert (await site.client.post("/account/cancel", data={"csrf_token": token})).status == 200
    assert site.billing.cancelled == [b]  # the signed-in user's own subscription, whatever the form says
