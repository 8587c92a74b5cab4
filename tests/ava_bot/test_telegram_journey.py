"""Telegram end to end: webhook updates into the real app and worker, replies through real python-telegram-bot to
the fake Bot API — setup with inline keyboards, the reference as a URL button, chat, a photo link, flood control,
blocked and unblocked, a redelivered update, a bad secret."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from core.models import ChannelIdentity, Direction, Message, Mode, User
from imaging.providers.placeholder import PlaceholderImageProvider
from tests.core.test_setup_flow import Gate
from tests.fakes.openai import FakeOpenAI
from tests.fakes.telegram import TOKEN, BotCall, FakeTelegram
from tests.support import eventually

SECRET = "telegram-webhook-secret_42"
CHAT = 777000111
_ids = itertools.count(1000)


def message(text: str) -> dict[str, Any]:
    """A private-chat text update."""
    n = next(_ids)
    return {
        "update_id": n,
        "message": {
            "message_id": n,
            "date": 1764400000,
            "chat": {"id": CHAT, "type": "private", "first_name": "Sam"},
            "from": {"id": CHAT, "is_bot": False, "first_name": "Sam"},
            "text": text,
        },
    }


def press(data: str) -> dict[str, Any]:
    """A callback query: the user pressed an inline button."""
    n = next(_ids)
    return {
        "update_id": n,
        "callback_query": {
            "id": f"cb{n}",
            "chat_instance": "42",
            "data": data,
            "from": {"id": CHAT, "is_bot": False, "first_name": "Sam"},
            "message": {"message_id": 5, "date": 1764400000, "chat": {"id": CHAT, "type": "private"}},
        },
    }


def member(status: str) -> dict[str, Any]:
    """The user blocked ("kicked") or unblocked ("member") the bot."""
    n = next(_ids)
    person = {"id": CHAT, "is_bot": False, "first_name": "Sam"}
    bot = {"id": 1, "is_bot": True, "first_name": "Ava"}
    return {
        "update_id": n,
        "my_chat_member": {
            "chat": {"id": CHAT, "type": "private"},
            "from": person,
            "date": 1764400000,
            "old_chat_member": {"status": "member" if status == "kicked" else "kicked", "user": bot},
            "new_chat_member": {"status": status, "user": bot, **({"until_date": 0} if status == "kicked" else {})},
        },
    }


class Phone:
    """Telegram's side: posts updates with the secret header, reads what the bot sent."""

    def __init__(self, client: TestClient, fake: FakeTelegram) -> None:
        self.client, self.fake = client, fake
        self.seen = 0

    async def post(self, update: dict[str, Any], *, secret: str = SECRET) -> int:
        response = await self.client.post(
            "/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
        )
        return response.status

    async def received(self, count: int) -> list[BotCall]:
        async def arrived() -> bool:
            return len(self.fake.calls_to("sendMessage")) >= self.seen + count

        await eventually(arrived, timeout=20, what=f"{count} Telegram messages")
        new = self.fake.calls_to("sendMessage")[self.seen : self.seen + count]
        self.seen += count
        return new


def keyboard(call: BotCall) -> list[dict[str, Any]]:
    return [button for row in call.params.get("reply_markup", {}).get("inline_keyboard", []) for button in row]


def data_of(call: BotCall, label_start: str) -> str:
    return next(str(b["callback_data"]) for b in keyboard(call) if str(b["text"]).startswith(label_start))


@pytest.fixture
async def fakes() -> Any:
    async with FakeOpenAI() as llm, FakeTelegram() as telegram:
        yield llm, telegram


async def test_telegram_journey(
    db: str, redis: ArqRedis, make_settings: Any, fakes: tuple[FakeOpenAI, FakeTelegram]
) -> None:
    """First message to a photo link on Telegram, with the platform's real errors along the way."""
    llm, telegram = fakes
    settings = make_settings(
        llm_api_key="sk-test",
        llm_base_url=llm.base_url,
        public_base_url="https://ava.example",
        telegram_bot_token=TOKEN,
        telegram_webhook_secret=SECRET,
        telegram_api_base_url=telegram.url,
        photo_backoff_seconds=0.05,
        delivery_backoff_seconds=0.05,
    )
    gate = Gate(open_=False)  # not subscribed yet: the paywall link comes after the setup
    app = await create_app(
        settings,
        redis=redis,
        own_database=False,
        run_worker=True,
        entitlements=gate,
        image_provider=PlaceholderImageProvider(),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        phone = Phone(client, telegram)
        assert await phone.post(message("hi"), secret="wrong") == 401
        assert await Message.all().count() == 0  # nothing stored for a bad secret

        first = message("/start")
        assert await asyncio.gather(*(phone.post(first) for _ in range(3))) == [200, 200, 200]
        (confirm,) = await phone.received(1)  # one reply for the update delivered 3 times
        assert "18 or older" in confirm.params["text"] and len(keyboard(confirm)) == 2
        accept = data_of(confirm, "I'm 18+")
        assert await phone.post(press(accept)) == 200
        _thanks, gender = await phone.received(2)
        assert telegram.calls_to("editMessageReplyMarkup")  # the pressed keyboard is removed
        assert await phone.post(press(accept)) == 200  # an old button pressed again: refused in words
        (passed,) = await phone.received(1)
        assert "That choice has passed" in passed.params["text"]
        telegram.flood(retry_after=1)  # the age question hits flood control once
        await phone.post(press(data_of(gender, "Woman")))

        async def age_sent_after_the_wait() -> bool:
            return sum("How old" in text for text in telegram.sent_texts()) == 2

        await eventually(age_sent_after_the_wait, what="the age question sent again after retry_after")
        refused, sent = [c for c in telegram.calls_to("sendMessage") if "How old" in str(c.params.get("text"))]
        assert sent.at - refused.at >= 1.0  # retry_after honoured, the reply never dropped
        phone.seen = len(telegram.calls_to("sendMessage"))
        for answer in ("27", "Irish", "red curls, green eyes, freckles", "Aoife"):
            await phone.post(message(answer))
            (question,) = await phone.received(1)
        personality = question
        assert len(keyboard(personality)) == 7  # 6 personalities and "← Back"
        await phone.post(press(data_of(personality, "Playful")))
        (summary,) = await phone.received(1)
        assert len(keyboard(summary)) == 7  # "Looks good — take my photo" and one "Change …" per answer
        await phone.post(press(data_of(summary, "Looks good")))
        _intro, reference, review = await phone.received(3)
        (link,) = keyboard(reference)
        assert link["url"].startswith("https://ava.example/photos/")  # a URL button to the signed link
        await phone.post(press(data_of(review, "Keep")))
        _saved, paywall = await phone.received(2)
        # the paywall link: a one-time sign-in link (minted as it left) that opens /subscribe
        assert keyboard(paywall)[0]["url"].startswith("https://ava.example/portal/sign-in/")
        gate.open = True  # subscribed

        user = await User.get(id=(await ChannelIdentity.get(channel="telegram")).user_id)  # type: ignore[attr-defined]
        await User.filter(id=user.id).update(mode=Mode.INTIMATE)
        llm.call_tool("send_photo", {"scene_description": "at a rooftop bar at night"}, text="One moment 📸")
        await phone.post(message("show me where you are"))
        line, photo = await phone.received(2)
        assert line.params["text"] == "One moment 📸" and keyboard(photo)[0]["url"].startswith("https://ava.example/")
        assert telegram.calls_to("sendPhoto") == []
        assert telegram.calls_to("sendChatAction")  # typing / uploading a photo shown

        assert await phone.post(member("kicked")) == 200
        assert (await ChannelIdentity.get(channel="telegram")).unreachable_at is not None
        assert await phone.post(member("member")) == 200
        assert (await ChannelIdentity.get(channel="telegram")).unreachable_at is None
        assert await Message.filter(direction=Direction.INBOUND).count() >= 9
    finally:
        await client.close()


async def test_cli_sets_the_webhook_with_secret_updates_and_commands(fakes: tuple[FakeOpenAI, FakeTelegram]) -> None:
    """`ava-bot telegram set-webhook` registers our URL, the secret, the update kinds and the command menu."""
    import os
    import subprocess
    import sys

    _, telegram = fakes
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE_URL": telegram.url,
        "PUBLIC_BASE_URL": "https://ava.example",
        "AVA_ENV": "development",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ava_bot.cli", "telegram", "set-webhook"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (hook,) = telegram.calls_to("setWebhook")
    assert hook.params["url"] == "https://ava.example/webhooks/telegram" and hook.params["secret_token"] == SECRET
    assert set(hook.params["allowed_updates"]) == {"message", "callback_query", "my_chat_member"}
    commands = {c["command"] for c in telegram.calls_to("setMyCommands")[0].params["commands"]}
    assert {"start", "help", "portal", "subscribe", "avatar", "mode"} <= commands


async def test_dev_polling_feeds_updates_through_the_webhook_handling(
    db: str, redis: ArqRedis, make_settings: Any, fakes: tuple[FakeOpenAI, FakeTelegram]
) -> None:
    """Without a public URL, `ava-bot dev` long-polls: the webhook is removed and updates are answered once."""
    from ava_bot.cli import start_telegram_polling

    llm, telegram = fakes
    settings = make_settings(
        llm_api_key="sk-test", llm_base_url=llm.base_url, telegram_bot_token=TOKEN, telegram_api_base_url=telegram.url
    )
    app = await create_app(settings, redis=redis, own_database=False, run_worker=True, entitlements=Gate(open_=True))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        assert (await client.post("/webhooks/telegram", json=message("hi"))).status == 404  # no secret: no webhook
        polling = start_telegram_polling(app)
        assert polling is not None
        update = message("hello from polling")
        telegram.push_update(update)
        phone = Phone(client, telegram)
        (confirm,) = await phone.received(1)
        assert "18 or older" in confirm.params["text"]
        assert telegram.calls_to("deleteWebhook")
        telegram.push_update(update)  # Telegram would not resend a confirmed update; the inbox would ignore it
        await asyncio.sleep(0.5)
        assert len(telegram.calls_to("sendMessage")) == 1
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
    finally:
        await client.close()
