"""One Ava across channels: one-time codes link Telegram and WhatsApp chats to a web account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.wiring import Services, build_services
from channels.web import WebChannel
from core.linking import create_link_code, link_token
from core.messages import ChatRef, InboundMessage
from core.models import Avatar, ChannelIdentity, LinkCode, User
from tests.core.test_setup_flow import Gate
from tests.fakes.channel import RecordingChannel
from tests.fakes.openai import FakeOpenAI
from tests.support import ready_user


@pytest.fixture
def telegram() -> RecordingChannel:
    return RecordingChannel(name="telegram")


@pytest.fixture
def whatsapp() -> RecordingChannel:
    return RecordingChannel(name="whatsapp")


@pytest.fixture
def services(
    db: str,
    redis: ArqRedis,
    make_settings: Any,
    fake_llm: FakeOpenAI,
    telegram: RecordingChannel,
    whatsapp: RecordingChannel,
) -> Services:
    settings = make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url)
    return build_services(
        settings, redis, entitlements=Gate(open_=True), channels=[WebChannel(redis), telegram, whatsapp]
    )


_count = iter(range(10_000))


async def say(services: Services, channel: str, chat: str, text: str) -> int:
    """One message from a chat, processed at once; returns the user it was stored for."""
    stored = await services.inbox.receive(InboundMessage(ChatRef(channel, chat), f"{channel}-{next(_count)}", text))
    await services.runner.drain(stored.user_id, whole=True)
    return stored.user_id


async def test_linking_telegram_and_whatsapp_gives_the_same_ava_on_all_three(
    services: Services, telegram: RecordingChannel, whatsapp: RecordingChannel, fake_llm: FakeOpenAI
) -> None:
    """After linking, both chats talk to the web account's Ava: same avatar, one shared history."""
    account = await ready_user("web-1")  # the web account, its Ava is Mia
    await say(services, "web", "web-1", "hello from the web")
    code = await create_link_code(account.id, "telegram")
    assert await say(services, "telegram", "555", f"/start {link_token(code)}") == account.id
    assert "Linked ✓" in telegram.texts()[-1] and "Mia" in telegram.texts()[-1]
    code = await create_link_code(account.id, "whatsapp")
    assert await say(services, "whatsapp", "16505551234", link_token(code)) == account.id
    assert "Linked ✓" in whatsapp.texts()[-1]

    assert await say(services, "telegram", "555", "hi from telegram") == account.id
    assert await say(services, "whatsapp", "16505551234", "hi from whatsapp") == account.id
    last = fake_llm.completions()[-1]["messages"]
    assert "You are Mia" in last[0]["content"]  # the same avatar
    users = [m["content"] for m in last if m["role"] == "user"]
    assert users == ["hello from the web", "hi from telegram", "hi from whatsapp"]  # one history
    assert await User.all().count() == 1  # no second Ava was ever made
    assert {i.channel for i in await ChannelIdentity.filter(user_id=account.id)} == {"web", "telegram", "whatsapp"}


async def test_codes_are_single_use_short_lived_and_bound_to_their_channel(
    services: Services, telegram: RecordingChannel, whatsapp: RecordingChannel
) -> None:
    """A used, expired or other-channel code links nothing and says so; the chat gets its own Ava."""
    account = await ready_user("web-2")
    code = await create_link_code(account.id, "telegram")
    await say(services, "telegram", "1", link_token(code))
    other = await say(services, "telegram", "2", link_token(code))  # reused
    assert other != account.id and "isn't valid" in telegram.texts()[-1]
    wrong_channel = await create_link_code(account.id, "telegram")
    assert await say(services, "whatsapp", "3", link_token(wrong_channel)) != account.id
    assert "isn't valid" in whatsapp.texts()[-1]
    expired = await create_link_code(account.id, "telegram", now=datetime.now(UTC) - timedelta(hours=1))
    assert await say(services, "telegram", "4", link_token(expired)) != account.id
    assert await LinkCode.filter(used_at__isnull=False).count() == 1
    assert all(len(row.code_hash) == 64 and code not in row.code_hash for row in await LinkCode.all())  # hashed


async def test_a_chat_with_its_own_ava_is_asked_and_only_confirm_moves_it(
    services: Services, telegram: RecordingChannel
) -> None:
    """Linking a chat that has its own Ava asks first; `confirm` moves it and deletes that chat's own Ava."""
    account = await ready_user("web-3")
    own = await ready_user("777", channel="telegram")  # this Telegram chat already has an Ava (also "Mia")
    await Avatar.filter(user_id=own.id).update(name="Zoe")
    code = await create_link_code(account.id, "telegram")
    assert await say(services, "telegram", "777", link_token(code)) == own.id
    asked = telegram.texts()[-1]
    assert "already has its own Ava, Zoe" in asked and "confirm" in asked and "deleted" in asked
    assert await say(services, "telegram", "777", f"{link_token(code)} confirm") == account.id
    assert "Linked ✓" in telegram.texts()[-1]
    assert not await User.exists(id=own.id) and not await Avatar.exists(name="Zoe")
    assert (await ChannelIdentity.get(channel="telegram", external_user_id="777")).user_id == account.id
