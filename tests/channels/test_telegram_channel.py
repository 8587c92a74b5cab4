"""`TelegramChannel` (sending, errors, pacing, activity) and the Bot API setup helpers, with the REAL
python-telegram-bot `Bot` talking to the fake Bot API server over HTTP."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator

import pytest
from telegram import Bot

from channels.telegram import (
    ALLOWED_UPDATES,
    TELEGRAM_CAPABILITIES,
    TelegramChannel,
    build_bot,
    set_webhook,
)
from core.errors import DeliveryError
from core.messages import ChatRef, Choice, ChoicesReply, LinkReply, PhotoReady, TextReply
from core.ports import Channel, Delivery
from tests.fakes.telegram import FakeTelegram

CHAT = ChatRef("telegram", "6103344817")
SIGNED_PHOTO_URL = "https://ava.example.com/photos/7?sig=abc.def&exp=1763999999"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API."""
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """A real PTB `Bot` on the fake, initialised (getMe) and shut down afterwards."""
    async with build_bot(fake.token, fake.url) as client:
        yield client


@pytest.fixture
def channel(bot: Bot) -> TelegramChannel:
    """The adapter without pacing delays (pacing has its own tests)."""
    return TelegramChannel(bot, per_chat_interval=0.0, global_rate=10_000.0)


def test_implements_the_channel_port(channel: TelegramChannel) -> None:
    """TelegramChannel satisfies `core.ports.Channel`, named "telegram" with the Telegram capabilities."""
    assert isinstance(channel, Channel)
    assert channel.name == "telegram"
    assert channel.capabilities is TELEGRAM_CAPABILITIES


async def test_text_is_sent_as_plain_text(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """A text reply is one sendMessage without parse mode (nothing to escape) and without link preview."""
    text = "Hi *Mara* <3 _see_ [this](x)"
    delivery = await channel.send(CHAT, TextReply(text))
    [call] = fake.calls_to("sendMessage")
    assert call.params["chat_id"] == "6103344817"
    assert call.params["text"] == text
    assert "parse_mode" not in call.params and "reply_markup" not in call.params
    assert call.params["link_preview_options"] == {"is_disabled": True}
    assert delivery == Delivery("101")


async def test_choices_become_one_button_per_row(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """Seven long choices become an inline keyboard, one button per row, full labels, data as callback data."""
    labels = [
        "Long dark hair, brown eyes, freckles",
        "Short blonde bob with a fringe and green eyes!",  # 46 characters
        "Red curls",
        "Shaved head, tattoos on both arms",
        "Straight black hair down to the waist",
        "Silver pixie cut",
        "Surprise me",
    ]
    assert max(len(label) for label in labels) == 46
    choices = tuple(Choice(label, f"look:{index}") for index, label in enumerate(labels))
    delivery = await channel.send(CHAT, ChoicesReply("How should I look?", choices))
    [call] = fake.calls_to("sendMessage")
    assert call.params["text"] == "How should I look?"
    rows = call.params["reply_markup"]["inline_keyboard"]
    assert rows == [[{"text": label, "callback_data": f"look:{i}"}] for i, label in enumerate(labels)]
    assert delivery == Delivery("101")


async def test_overlong_labels_are_shortened_and_shown_in_full_in_the_text(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    """A label over 64 characters is shortened on its button and given in full in the message text."""
    long_label = "A quiet evening at home with candles, soft music and a glass of red wine"
    await channel.send(CHAT, ChoicesReply("Where?", (Choice(long_label, "scene:home"), Choice("Beach", "scene:b"))))
    [call] = fake.calls_to("sendMessage")
    [[first], [second]] = call.params["reply_markup"]["inline_keyboard"]
    assert len(first["text"]) <= 64 and first["text"].endswith("…")
    assert first["callback_data"] == "scene:home" and second == {"text": "Beach", "callback_data": "scene:b"}
    assert long_label in call.params["text"]


async def test_choice_data_over_64_bytes_is_a_permanent_error(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """Callback data must be 1-64 bytes: longer data fails for good, before anything is sent."""
    reply = ChoicesReply("Pick", (Choice("Ok", "ä" * 33),))  # 66 bytes in UTF-8
    with pytest.raises(DeliveryError, match="1-64 bytes") as caught:
        await channel.send(CHAT, reply)
    assert caught.value.permanent
    assert fake.calls_to("sendMessage") == []


async def test_https_link_is_a_url_button(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """A link to a public https URL is a message with one URL button."""
    url = "https://ava.example.com/subscribe?u=5"
    await channel.send(CHAT, LinkReply("Subscribe to keep chatting.", "Subscribe", url))
    [call] = fake.calls_to("sendMessage")
    assert call.params["text"] == "Subscribe to keep chatting."
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "Subscribe", "url": url}]]}


async def test_local_link_is_sent_as_text(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """A link to http://127.0.0.1 (Telegram refuses such buttons) goes out as text, without a URL button."""
    url = "http://127.0.0.1:8080/portal/signin?t=xyz"
    await channel.send(CHAT, LinkReply("Your sign-in link:", "Open portal", url))
    [call] = fake.calls_to("sendMessage")
    assert call.params["text"] == f"Your sign-in link:\nOpen portal: {url}"
    assert "reply_markup" not in call.params


async def test_photo_notice_is_a_url_button_to_the_signed_link(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """A finished photo is never sent inline: a URL button opens the signed portal link."""
    await channel.send(CHAT, PhotoReady(7, SIGNED_PHOTO_URL, "Just for you 📸"))
    [call] = fake.calls_to("sendMessage")
    assert call.params["text"] == "Just for you 📸"
    assert call.params["reply_markup"] == {"inline_keyboard": [[{"text": "View photo", "url": SIGNED_PHOTO_URL}]]}
    assert fake.calls_to("sendPhoto") == []


async def test_long_text_is_split_with_the_url_intact(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """A 5,000-character text goes out as two messages of at most 4096 characters; the URL is never cut."""
    url = "https://ava.example.com/gallery?u=5&sig=" + "a" * 60
    words = ("lorem ipsum dolor sit amet " * 300)[:4070]
    text = f"{words} {url} " + "b " * ((5000 - len(words) - len(url) - 2) // 2)
    assert 4990 <= len(text) <= 5000
    delivery = await channel.send(CHAT, TextReply(text))
    texts = fake.sent_texts()
    assert len(texts) == 2
    assert all(len(t) <= 4096 for t in texts)
    assert sum(url in t for t in texts) == 1
    assert delivery == Delivery("102")


async def test_flood_control_is_transient_with_retry_after(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """A 429 becomes a transient DeliveryError carrying Telegram's retry_after in seconds."""
    fake.flood(retry_after=2)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(CHAT, TextReply("hi"))
    assert not caught.value.permanent
    assert caught.value.retry_after == 2.0


async def test_blocked_bot_is_permanent(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """403 "bot was blocked by the user" is permanent."""
    fake.block()
    with pytest.raises(DeliveryError, match="blocked") as caught:
        await channel.send(CHAT, TextReply("hi"))
    assert caught.value.permanent and caught.value.retry_after is None


async def test_chat_not_found_is_permanent(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """400 "chat not found" is permanent."""
    fake.chat_not_found()
    with pytest.raises(DeliveryError, match=r"(?i)chat not found") as caught:
        await channel.send(CHAT, TextReply("hi"))
    assert caught.value.permanent


async def test_network_failure_is_transient() -> None:
    """When the Bot API cannot be reached at all the error is transient."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    bot = build_bot("1:x", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(DeliveryError) as caught:
        await TelegramChannel(bot).send(CHAT, TextReply("hi"))
    assert not caught.value.permanent
    await bot.request.shutdown()


async def test_refused_button_url_falls_back_to_text(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """When Telegram refuses the button URL ("wrong HTTP URL") the link is sent again as plain text."""
    fake.refuse_url()
    delivery = await channel.send(CHAT, PhotoReady(7, SIGNED_PHOTO_URL, "Here you go"))
    first, second = fake.calls_to("sendMessage")
    assert "reply_markup" in first.params
    assert second.params["text"] == f"Here you go\nView photo: {SIGNED_PHOTO_URL}"
    assert "reply_markup" not in second.params
    assert delivery == Delivery("101")  # the refused message got no id


async def test_a_retried_reply_does_not_resend_parts_already_delivered(
    channel: TelegramChannel, fake: FakeTelegram
) -> None:
    """A two-part reply whose second part hits flood control resumes at the second part when retried."""
    text = ("word " * 1000).strip() + " " + ("more " * 200).strip()
    fake.flood(retry_after=1, after=1)
    with pytest.raises(DeliveryError):
        await channel.send(CHAT, TextReply(text))
    delivery = await channel.send(CHAT, TextReply(text))
    texts = fake.sent_texts()
    assert len(texts) == 3 and texts[1] == texts[2] and texts[0] != texts[1]
    assert delivery == Delivery("102")
    await channel.send(CHAT, TextReply(text))  # a new reply with the same text is sent in full
    assert len(fake.sent_texts()) == 5


async def test_other_channels_are_refused(channel: TelegramChannel) -> None:
    """A ChatRef of another channel is a programming error."""
    with pytest.raises(ValueError, match="web"):
        await channel.send(ChatRef("web", "1"), TextReply("hi"))


async def test_typing_and_upload_photo_actions(channel: TelegramChannel, fake: FakeTelegram) -> None:
    """show_activity sends the matching chat action; its errors are swallowed."""
    await channel.show_activity(CHAT, "typing")
    await channel.show_activity(CHAT, "upload_photo")
    await channel.show_activity(CHAT, "photo_retry")  # still making the photo: never "typing"
    fake.block(method="sendChatAction")
    await channel.show_activity(CHAT, "typing")  # no exception
    actions = [(c.params["chat_id"], c.params["action"]) for c in fake.calls_to("sendChatAction")]
    assert actions == [
        ("6103344817", "typing"),
        ("6103344817", "upload_photo"),
        ("6103344817", "upload_photo"),
        ("6103344817", "typing"),
    ]


async def test_sends_to_one_chat_are_paced(bot: Bot, fake: FakeTelegram) -> None:
    """Two replies to one chat (and both parts of a split reply) arrive at least per_chat_interval apart."""
    channel = TelegramChannel(bot, per_chat_interval=0.25, global_rate=1000.0)
    await asyncio.gather(channel.send(CHAT, TextReply("one")), channel.send(CHAT, TextReply("two")))
    await channel.send(CHAT, TextReply("x " * 1500 + "y " * 1500))  # two messages
    times = [c.at for c in fake.calls_to("sendMessage")]
    assert [c.params["text"] for c in fake.calls_to("sendMessage")][:2] == ["one", "two"]
    assert len(times) == 4
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(times))


async def test_other_chats_are_not_held_up_by_a_paced_chat(bot: Bot, fake: FakeTelegram) -> None:
    """Pacing is per chat: a second chat is served while the first one waits for its interval."""
    channel = TelegramChannel(bot, per_chat_interval=1.0, global_rate=1000.0)
    await channel.send(CHAT, TextReply("first"))
    started = asyncio.get_running_loop().time()
    await asyncio.gather(
        channel.send(CHAT, TextReply("second")), channel.send(ChatRef("telegram", "42"), TextReply("x"))
    )
    other = next(c for c in fake.calls_to("sendMessage") if c.params["chat_id"] == "42")
    same = [c for c in fake.calls_to("sendMessage") if c.params["chat_id"] == CHAT.chat_id]
    assert other.at < same[1].at
    assert asyncio.get_running_loop().time() - started >= 0.9


async def test_global_rate_spaces_all_sends(bot: Bot, fake: FakeTelegram) -> None:
    """Across chats, sends are spaced 1/global_rate seconds apart."""
    channel = TelegramChannel(bot, per_chat_interval=0.0, global_rate=20.0)
    await asyncio.gather(*(channel.send(ChatRef("telegram", str(n)), TextReply("hi")) for n in range(1, 6)))
    times = sorted(c.at for c in fake.calls_to("sendMessage"))
    assert len(times) == 5 and times[-1] - times[0] >= 4 * 0.05 - 0.01


async def test_set_webhook_registers_url_secret_updates_and_commands(bot: Bot, fake: FakeTelegram) -> None:
    """set_webhook sends the URL, the secret token, the allowed updates, then the command menu."""
    await set_webhook(bot, "https://ava.example.com/webhooks/telegram", "s3cret_Token-1")
    [hook] = fake.calls_to("setWebhook")
    assert hook.params["url"] == "https://ava.example.com/webhooks/telegram"
    assert hook.params["secret_token"] == "s3cret_Token-1"
    assert hook.params["allowed_updates"] == list(ALLOWED_UPDATES) == ["message", "callback_query", "my_chat_member"]
    [commands] = fake.calls_to("setMyCommands")
    names = [c["command"] for c in commands.params["commands"]]
    assert names == ["start", "help", "portal", "subscribe", "avatar", "mode"]


async def test_set_webhook_refuses_a_secret_telegram_would_reject(bot: Bot, fake: FakeTelegram) -> None:
    """A secret with characters Telegram does not allow is refused before any call."""
    with pytest.raises(ValueError, match="secret"):
        await set_webhook(bot, "https://ava.example.com/webhooks/telegram", "has spaces!")
    assert fake.calls_to("setWebhook") == []


async def test_build_bot_uses_the_configured_base_url(fake: FakeTelegram) -> None:
    """build_bot talks to `{base_url}/bot{token}/...` (a trailing slash in the setting is fine)."""
    async with build_bot(fake.token, fake.url + "/") as bot:
        assert bot.username == "ava_companion_bot"
    assert fake.requests[0].path == f"/bot{fake.token}/getMe"
