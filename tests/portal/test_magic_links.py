"""Magic links from the chat: minted only when sent (never stored), once, to a local page, asking before switching."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from arq.connections import ArqRedis

from ava_bot.jobs import USED_TOKEN_MARGIN, sweep_used_tokens
from ava_bot.wiring import Services, build_services
from core.messages import ChatRef, InboundMessage, LinkReply
from core.models import Message, UsedToken, User
from portal.chat import message_event
from portal.sessions import KEY_PREFIX
from tests.fakes.channel import RecordingChannel
from tests.fakes.entitlements import Gate
from tests.portal.conftest import (
    PASSWORD,
    Portal,
    magic_path,
    page_token,
    serve_portal,
    sign_up,
    store_reply,
)
from tests.support import ready_user


def path_of(url: str) -> str:
    """The path (and query) of an absolute URL, as a browser on the test server requests it."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
def services(db: str, redis: ArqRedis, make_settings: Any, channel: RecordingChannel) -> Services:
    """The real conversation services (engine, runner, deliverer with portal links) on a recording channel."""
    return build_services(make_settings(), redis, entitlements=Gate(open_=True), channels=[channel])


@pytest.fixture
async def chat_portal(services: Services, redis: ArqRedis) -> AsyncIterator[Portal]:
    """The portal, signing with the same links the services send."""
    async with serve_portal(redis, links=services.links) as portal:
        yield portal


async def ask_for_portal_link(
    services: Services, channel: RecordingChannel, command: str = "/portal"
) -> tuple[User, str]:
    """A chat user sends `command`; return them and the URL the platform received."""
    user = await ready_user("chat-1", channel=channel.name)
    await services.inbox.receive(InboundMessage(ChatRef(channel.name, "chat-1"), f"m-{command}", command))
    await services.runner.drain(user.id, whole=True)
    (sent,) = channel.sent
    assert isinstance(sent.reply, LinkReply)
    return user, sent.reply.url


async def test_the_sign_in_token_is_never_stored(services: Services, channel: RecordingChannel) -> None:
    """/portal: the platform gets a signed link, while every stored message holds only the token-free placeholder."""
    user, url = await ask_for_portal_link(services, channel)
    token = url.rsplit("/", 1)[1]
    assert url.startswith(f"{services.settings.effective_public_base_url}/portal/sign-in/") and len(token) > 40
    rows = await Message.filter(user_id=user.id)
    assert rows, "the reply was stored"
    for row in rows:
        assert token not in (row.text or "") and token not in repr(row.payload)
    stored = [r.payload for r in rows if r.payload and r.payload.get("type") == "link"]
    assert stored == [
        {"type": "link", "text": stored[0]["text"], "label": "Open portal", "url": services.links.sign_in_url(user.id)}
    ]
    assert not await UsedToken.exists()


async def test_the_sent_link_signs_in_once_only(
    services: Services, channel: RecordingChannel, chat_portal: Portal
) -> None:
    """The link the platform received signs its user in once; opened again (or forwarded) it is refused."""
    _, url = await ask_for_portal_link(services, channel)
    first = await chat_portal.client.get(path_of(url), allow_redirects=False)
    assert first.status == 303 and first.headers["Location"] == "/chat"
    assert (await chat_portal.client.get("/chat", allow_redirects=False)).status == 200
    chat_portal.forget_cookies()
    again = await chat_portal.client.get(path_of(url), headers={"Accept": "application/json"}, allow_redirects=False)
    assert again.status == 403 and "already used" in (await again.json())["error"]
    assert (await chat_portal.client.get("/chat", allow_redirects=False)).status == 303
    assert await UsedToken.filter().count() == 1


async def test_subscribe_link_signs_in_and_opens_the_subscribe_page(
    services: Services, channel: RecordingChannel, chat_portal: Portal
) -> None:
    """/subscribe in chat gives a sign-in link that lands on /subscribe."""
    _, url = await ask_for_portal_link(services, channel, "/subscribe")
    response = await chat_portal.client.get(path_of(url), allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/subscribe"


async def test_web_chat_shows_a_plain_local_link(portal: Portal) -> None:
    """The web chat renders a stored sign-in placeholder as a link to its page, never as a token or placeholder."""
    user_id = await sign_up(portal.client)
    row = await store_reply(user_id, LinkReply("Subscribe here", "Subscribe", portal.links.subscribe_url(user_id)))
    assert message_event(row)["payload"]["url"] == "/subscribe"
    html = await (await portal.client.get("/chat")).text()
    assert "ava-link:" not in html and "/portal/sign-in/" not in html


async def test_link_for_the_signed_in_user_just_opens_its_page(portal: Portal) -> None:
    """Signed in as the link's own user, opening it goes straight to its page, no question asked."""
    user_id = await sign_up(portal.client)
    response = await portal.client.get(await magic_path(portal.links, user_id, "/gallery"), allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/gallery"


async def signed_in_as(portal: Portal, redis: ArqRedis) -> int | None:
    """The user id of the session the browser holds (read from the server-side session)."""
    for cookie in portal.client.session.cookie_jar:
        if cookie.key == "ava_session":
            raw = await redis.get(KEY_PREFIX + cookie.value)
            return json.loads(raw)["session"].get("uid") if raw is not None else None
    return None


async def test_switching_accounts_asks_first_and_uses_the_link_only_when_confirmed(
    portal: Portal, redis: ArqRedis
) -> None:
    """Signed in as Alice, Bob's link shows a confirmation page; only the CSRF-checked POST switches to Bob."""
    alice = await sign_up(portal.client, email="alice@example.com")
    bob = await User.create(email="bob@example.com")
    link = await magic_path(portal.links, bob.id, "/subscribe")

    page = await portal.client.get(link, allow_redirects=False)
    assert page.status == 200
    html = await page.text()
    assert "You are signed in as <strong>alice@example.com</strong>" in html
    assert "Switch to the account this link is for?" in html
    assert not await UsedToken.exists()
    assert await signed_in_as(portal, redis) == alice

    refused = await portal.client.post(link, data={}, allow_redirects=False)
    assert refused.status == 403
    assert not await UsedToken.exists()

    token = await page_token(portal.client, "/chat")
    switched = await portal.client.post(link, data={"csrf_token": token}, allow_redirects=False)
    assert switched.status == 303 and switched.headers["Location"] == "/subscribe"
    assert await UsedToken.filter().count() == 1
    assert await signed_in_as(portal, redis) == bob.id
    again = await portal.client.get(link, allow_redirects=False)  # now Bob's own, used link: just goes on
    assert again.status == 303 and again.headers["Location"] == "/subscribe"


async def test_sign_in_form_follows_a_local_next_only(portal: Portal) -> None:
    """`/signin?next=/subscribe` leads there after signing in; a `next` to another host leads to /chat."""
    await sign_up(portal.client, email="carol@example.com")
    portal.forget_cookies()
    for requested, landed in (
        ("/subscribe", "/subscribe"),
        ("//evil.example/x", "/chat"),
        ("https://evil.example", "/chat"),
    ):
        form = await portal.client.get("/signin", params={"next": requested})
        assert f'name="next" value="{landed}"' in await form.text()
        token = await page_token(portal.client, "/signin")
        response = await portal.client.post(
            "/signin",
            data={"email": "carol@example.com", "password": PASSWORD, "csrf_token": token, "next": requested},
            allow_redirects=False,
        )
        assert response.status == 303 and response.headers["Location"] == landed
        portal.forget_cookies()


async def test_a_link_whose_next_was_tampered_is_refused(portal: Portal) -> None:
    """`next` travels inside the signed token: editing the link breaks it."""
    user = await User.create()
    link = await magic_path(portal.links, user.id, "/subscribe")
    response = await portal.client.get(link + "x", headers={"Accept": "application/json"}, allow_redirects=False)
    assert response.status == 403


async def test_the_portal_line_states_the_configured_lifetime(
    db: str, redis: ArqRedis, make_settings: Any, channel: RecordingChannel
) -> None:
    """With SIGN_IN_LINK_TTL_SECONDS=600 the `/portal` line says the link works once, for 10 minutes."""
    services = build_services(
        make_settings(sign_in_link_ttl_seconds=600), redis, entitlements=Gate(open_=True), channels=[channel]
    )
    await ask_for_portal_link(services, channel)
    (sent,) = channel.sent
    assert isinstance(sent.reply, LinkReply) and "works once, for 10 minutes" in sent.reply.text


async def test_spent_links_are_forgotten_once_past_their_lifetime(db: str, make_settings: Any) -> None:
    """The worker's sweep deletes spent-link rows older than the link lifetime (plus a margin), keeps newer ones."""
    settings = make_settings(sign_in_link_ttl_seconds=600)
    now = datetime.now(UTC)
    old = await UsedToken.create(token_hash="a" * 64)
    recent = await UsedToken.create(token_hash="b" * 64)
    await UsedToken.filter(id=old.id).update(used_at=now - timedelta(seconds=600) - USED_TOKEN_MARGIN - timedelta(1))
    await UsedToken.filter(id=recent.id).update(used_at=now - timedelta(seconds=590))
    assert await sweep_used_tokens({"settings": settings}) == 1
    assert await UsedToken.all().values_list("token_hash", flat=True) == ["b" * 64]
