"""The Telegram webhook route: secret token, idempotent storage through the real `Inbox` on PostgreSQL, callback
answers, block notices and ignored updates. The real PTB `Bot` talks to the fake Bot API."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from telegram import Bot

from channels.telegram import SECRET_HEADER, UNREADABLE_REPLY, build_bot, setup_telegram_webhook
from core.inbox import Inbox
from core.messages import ChatRef
from core.models import Direction, Message, MessageStatus
from tests.fakes.queue import RecordingQueue
from tests.fakes.telegram import BotCall, FakeTelegram

PAYLOADS = Path(__file__).parent.parent / "payloads" / "telegram"
SECRET = "webhook-Secret_0123456789"
PATH = "/webhooks/telegram"
MARA = ChatRef("telegram", "6103344817")


def load(name: str) -> dict[str, Any]:
    """A recorded update."""
    return dict(json.loads((PAYLOADS / f"{name}.json").read_text()))


@dataclass
class Hook:
    """The served webhook and what the tests inspect."""

    client: TestClient[web.Request, web.Application]
    fake: FakeTelegram
    queue: RecordingQueue
    blocked: list[tuple[ChatRef, bool]]
    block_fails: list[bool]

    async def post(self, update: Any, *, secret: str | None = SECRET) -> ClientResponse:
        """POST an update as Telegram does (JSON, the secret-token header when given)."""
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        return await self.client.post(PATH, json=update, headers=headers)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API."""
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """A real PTB `Bot` on the fake."""
    async with build_bot(fake.token, fake.url) as client:
        yield client


@pytest.fixture
async def hook(db: str, fake: FakeTelegram, bot: Bot) -> AsyncIterator[Hook]:
    """The webhook route on a bare application with the real `Inbox`, served on a local port."""
    queue = RecordingQueue()
    blocked: list[tuple[ChatRef, bool]] = []
    block_fails: list[bool] = []

    async def on_blocked(ref: ChatRef, is_blocked: bool) -> None:
        if block_fails:
            raise ConnectionError("database is down")
        blocked.append((ref, is_blocked))

    app = web.Application()
    setup_telegram_webhook(app, secret=SECRET, inbox=Inbox(queue), bot=lambda: bot, on_blocked=on_blocked)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Hook(client, fake, queue, blocked, block_fails)
    finally:
        await client.close()  # shutdown waits for background Bot API calls


async def eventually(calls: Callable[[], list[BotCall]], count: int = 1, timeout: float = 3.0) -> list[BotCall]:
    """Wait until the fake recorded `count` calls (background tasks answer after the 200)."""
    async with asyncio.timeout(timeout):
        while len(calls()) < count:
            await asyncio.sleep(0.01)
    return calls()


async def test_missing_or_wrong_secret_is_401_and_stores_nothing(hook: Hook) -> None:
    """Without the right secret token the update is refused before anything is read or stored."""
    for secret in (None, "", "wrong", SECRET + "x", SECRET.upper()):
        response = await hook.post(load("private_text"), secret=secret)
        assert response.status == 401, secret
    assert await Message.all().count() == 0
    assert hook.queue.calls == []
    assert [c.method for c in hook.fake.calls] == ["getMe"]


async def test_text_update_is_stored_once_when_delivered_three_times_at_once(hook: Hook) -> None:
    """Three concurrent deliveries of one update: all answered 200, one pending inbound row, one drain scheduled."""
    update = load("private_text")
    responses = await asyncio.gather(*(hook.post(update) for _ in range(3)))
    assert [r.status for r in responses] == [200, 200, 200]
    [row] = await Message.all()
    assert (row.direction, row.channel, row.chat_id) == (Direction.INBOUND, "telegram", "6103344817")
    assert row.external_message_id == "message:6103344817:57"
    assert row.text == "Hi Ava, how was your day?"
    assert row.status == MessageStatus.PENDING
    assert hook.queue.calls == [row.user_id]
    assert hook.fake.calls_to("sendMessage") == []  # a text is for the turn, not answered here


async def test_button_press_is_stored_and_answered(hook: Hook) -> None:
    """A callback query is stored as a choice and answered (answerCallbackQuery) after the 200."""
    response = await hook.post(load("private_callback"))
    assert response.status == 200
    [row] = await Message.all()
    assert (row.choice, row.text, row.external_message_id) == ("name:profile", None, "callback:4380791573492612163")
    [answer] = await eventually(lambda: hook.fake.calls_to("answerCallbackQuery"))
    assert answer.params["callback_query_id"] == "4380791573492612163"


async def test_a_slow_callback_answer_does_not_delay_the_200(hook: Hook) -> None:
    """Answering the button press runs in the background: the webhook answers before the Bot API does."""
    hook.fake.slow("answerCallbackQuery", 1.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await hook.post(load("private_callback"))
    assert response.status == 200
    assert loop.time() - started < 0.8
    await eventually(lambda: hook.fake.calls_to("answerCallbackQuery"))


async def test_a_failing_callback_answer_is_only_logged(hook: Hook) -> None:
    """When Telegram refuses the answer (query too old) the update is still stored and acknowledged."""
    hook.fake.fail(400, "Bad Request: query is too old and response timeout expired", method="answerCallbackQuery")
    response = await hook.post(load("private_callback"))
    assert response.status == 200
    assert await Message.all().count() == 1
    await eventually(lambda: hook.fake.calls_to("answerCallbackQuery"))


async def test_kicked_my_chat_member_reports_blocked(hook: Hook) -> None:
    """A user blocking the bot calls on_blocked(ref, True); unblocking calls it with False; nothing is stored."""
    assert (await hook.post(load("my_chat_member_kicked"))).status == 200
    assert (await hook.post(load("my_chat_member_member"))).status == 200
    assert hook.blocked == [(MARA, True), (MARA, False)]
    assert await Message.all().count() == 0


async def test_group_my_chat_member_is_ignored(hook: Hook) -> None:
    """Being removed from a group is not a user blocking Ava."""
    assert (await hook.post(load("my_chat_member_group_kicked"))).status == 200
    assert hook.blocked == []


async def test_malformed_body_is_400(hook: Hook) -> None:
    """A body that is not JSON, or JSON that is not an object, is a 400 and stores nothing."""
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    for body in (b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b""):
        response = await hook.client.post(PATH, data=body, headers=headers)
        assert response.status == 400, body
    assert await Message.all().count() == 0


async def test_sticker_is_acknowledged_stored_nowhere_and_answered_politely(hook: Hook) -> None:
    """A sticker in a private chat: 200, nothing stored, a short "I can only read text" reply."""
    response = await hook.post(load("private_sticker"))
    assert response.status == 200
    assert await Message.all().count() == 0
    assert hook.queue.calls == []
    [notice] = await eventually(lambda: hook.fake.calls_to("sendMessage"))
    assert notice.params == {"chat_id": "6103344817", "text": UNREADABLE_REPLY}


@pytest.mark.parametrize("name", ["edited_message", "group_text", "channel_post"])
async def test_other_updates_are_acknowledged_and_ignored(hook: Hook, name: str) -> None:
    """Edits, group messages and channel posts: 200, nothing stored, nothing said."""
    response = await hook.post(load(name))
    assert response.status == 200
    await asyncio.sleep(0.05)
    assert await Message.all().count() == 0
    assert hook.fake.calls_to("sendMessage") == []


async def test_nonsense_updates_are_acknowledged(hook: Hook) -> None:
    """Objects that are no valid update still get a 200 (Telegram would redeliver an error forever)."""
    broken = copy.deepcopy(load("private_text"))
    broken["message"]["chat"] = "not an object"
    for update in ({}, {"update_id": "x"}, {"update_id": 1, "message": [1]}, broken, {"update_id": 2, "poll": {}}):
        assert (await hook.post(update)).status == 200, update
    assert await Message.all().count() == 0


async def test_storage_failure_is_503_so_telegram_redelivers(hook: Hook) -> None:
    """When the update cannot be stored and scheduled the answer is 503; the redelivery then works, once."""
    hook.queue.broken = True
    assert (await hook.post(load("private_text"))).status == 503
    hook.queue.broken = False
    assert (await hook.post(load("private_text"))).status == 200
    assert await Message.all().count() == 1
    assert len(hook.queue.calls) == 1


async def test_block_notice_failure_is_503(hook: Hook) -> None:
    """When recording a block fails the answer is 503, so Telegram sends the update again."""
    hook.block_fails.append(True)
    assert (await hook.post(load("my_chat_member_kicked"))).status == 503


def test_setup_refuses_a_secret_telegram_would_not_send(bot: Bot) -> None:
    """The webhook secret must be one Telegram accepts (it is also the setWebhook secret_token)."""
    with pytest.raises(ValueError, match="secret"):
        setup_telegram_webhook(web.Application(), secret="", inbox=Inbox(RecordingQueue()), bot=bot, on_blocked=_noop)


async def _noop(ref: ChatRef, blocked: bool) -> None:
    return None
