"""Inbound idempotency keys on real PostgreSQL: redeliveries are stored once, other chats' messages never dropped.

The inbox stores messages uniquely on (channel, message_id); these tests feed it what the parsers make of
recorded platform payloads.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from channels.telegram import parse_update
from channels.whatsapp import parse_webhook
from core.inbox import Stored, store_inbound
from core.messages import InboundMessage
from core.models import Direction, Message

PAYLOADS = Path(__file__).parent.parent / "payloads"
OTHER_TELEGRAM_CHAT = 7412230098


def load(channel: str, name: str) -> dict[str, Any]:
    """A recorded payload (a fresh copy: tests may change it)."""
    return dict(json.loads((PAYLOADS / channel / f"{name}.json").read_text()))


def telegram(payload: dict[str, Any]) -> InboundMessage:
    """The parsed update (it must be one we handle)."""
    msg = parse_update(payload)
    assert msg is not None
    return msg


def in_other_chat(payload: dict[str, Any], update_id: int, *, message_key: str) -> dict[str, Any]:
    """The same update as if sent from another user's private chat, with a new update id."""
    other = copy.deepcopy(payload)
    other["update_id"] = update_id
    body = other[message_key]
    body["from"]["id"] = OTHER_TELEGRAM_CHAT
    chat = body["message"]["chat"] if message_key == "callback_query" else body["chat"]
    chat.update(id=OTHER_TELEGRAM_CHAT, first_name="Jonas", username="jonas_b")
    return other


async def inbound_rows() -> list[Message]:
    """All stored inbound rows, oldest first."""
    return await Message.filter(direction=Direction.INBOUND).order_by("id")


async def test_same_telegram_message_id_in_two_chats_is_stored_twice(db: str) -> None:
    """Two users' messages with the same per-chat message id are two messages, for two users."""
    mara = load("telegram", "private_text")
    jonas = in_other_chat(mara, mara["update_id"] + 1, message_key="message")
    assert jonas["message"]["message_id"] == mara["message"]["message_id"]

    first = await store_inbound(telegram(mara))
    second = await store_inbound(telegram(jonas))

    assert first.created and second.created
    assert first.user_id != second.user_id
    rows = await inbound_rows()
    assert [(r.chat_id, r.text) for r in rows] == [
        ("6103344817", "Hi Ava, how was your day?"),
        (str(OTHER_TELEGRAM_CHAT), "Hi Ava, how was your day?"),
    ]


async def test_redelivered_telegram_update_is_stored_once(db: str) -> None:
    """Telegram retrying the same update does not create a second row."""
    first = await store_inbound(telegram(load("telegram", "private_text")))
    again = await store_inbound(telegram(load("telegram", "private_text")))

    assert first.created and not again.created
    assert again == Stored(first.user_id, first.message_id, created=False)
    assert len(await inbound_rows()) == 1


async def test_reused_update_id_is_not_taken_for_a_redelivery(db: str) -> None:
    """A new message whose update id repeats an old one (Telegram restarts them at random after a quiet week)."""
    old = load("telegram", "private_text")
    new = copy.deepcopy(old)
    new["message"]["message_id"] += 40
    new["message"]["text"] = "I'm back!"

    first = await store_inbound(telegram(old))
    second = await store_inbound(telegram(new))

    assert first.created and second.created
    assert [r.text for r in await inbound_rows()] == ["Hi Ava, how was your day?", "I'm back!"]


async def test_same_button_pressed_in_two_chats_is_stored_twice(db: str) -> None:
    """Two users pressing a button with the same data (and same keyboard message id) are two choices."""
    mara = load("telegram", "private_callback")
    jonas = in_other_chat(mara, mara["update_id"] + 1, message_key="callback_query")
    jonas["callback_query"]["id"] = "3183951836208730591"

    first = await store_inbound(telegram(mara))
    second = await store_inbound(telegram(jonas))
    again = await store_inbound(telegram(load("telegram", "private_callback")))

    assert first.created and second.created and not again.created
    assert first.user_id != second.user_id
    rows = await inbound_rows()
    assert [(r.chat_id, r.text, r.choice) for r in rows] == [
        ("6103344817", None, "name:profile"),
        (str(OTHER_TELEGRAM_CHAT), None, "name:profile"),
    ]


async def test_redelivered_whatsapp_message_is_stored_once(db: str) -> None:
    """A webhook body Meta delivers twice stores its wamid once."""
    [first_msg] = parse_webhook(load("whatsapp", "text"))
    [again_msg] = parse_webhook(load("whatsapp", "text"))

    first = await store_inbound(first_msg)
    again = await store_inbound(again_msg)

    assert first.created and not again.created
    rows = await inbound_rows()
    assert [(r.channel, r.chat_id, r.external_message_id) for r in rows] == [
        ("whatsapp", "16505551234", "wamid:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=")
    ]


async def test_whatsapp_batch_stores_each_user_once(db: str) -> None:
    """A batched body stores one row per message and user; redelivering the batch adds nothing."""
    stored = [await store_inbound(m) for m in parse_webhook(load("whatsapp", "batch_two_users"))]
    again = [await store_inbound(m) for m in parse_webhook(load("whatsapp", "batch_two_users"))]

    assert [s.created for s in stored] == [True, True]
    assert [s.created for s in again] == [False, False]
    assert stored[0].user_id != stored[1].user_id
    assert len(await inbound_rows()) == 2
