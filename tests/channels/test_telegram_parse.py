"""`channels.telegram.parse_update` and `is_blocked_update` against recorded Bot API webhook updates."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from telegram import Update

from channels.telegram import is_blocked_update, parse_update
from core.messages import ChatRef

PAYLOADS = Path(__file__).parent.parent / "payloads" / "telegram"


def load(name: str) -> dict[str, Any]:
    """A recorded update (a fresh copy: tests may change it)."""
    return dict(json.loads((PAYLOADS / f"{name}.json").read_text()))


@pytest.mark.parametrize("path", sorted(PAYLOADS.glob("*.json")), ids=lambda p: p.stem)
def test_recorded_payloads_are_valid_updates(path: Path) -> None:
    """Every recorded payload is accepted by python-telegram-bot's own parser (they are real-shaped)."""
    update = Update.de_json(json.loads(path.read_text()), bot=None)
    assert update is not None
    assert update.update_id > 0


def test_private_text_message() -> None:
    """A private text message becomes text keyed by chat and message id, with the update id kept in raw."""
    msg = parse_update(load("private_text"))
    assert msg is not None
    assert msg.ref == ChatRef("telegram", "6103344817")
    assert msg.message_id == "message:6103344817:57"
    assert msg.text == "Hi Ava, how was your day?"
    assert msg.choice is None
    assert msg.raw == {"update_id": 802114567, "message_id": 57, "language_code": "de"}


def test_start_command_with_payload_is_text() -> None:
    """`/start <payload>` arrives as ordinary text; the command handling is the core's business."""
    msg = parse_update(load("private_start_command"))
    assert msg is not None
    assert msg.text == "/start ref_summer24"
    assert msg.message_id == "message:7412230098:1"


def test_callback_query_is_a_choice() -> None:
    """A keyboard press becomes a choice keyed by the callback query id, addressed to the keyboard's chat."""
    msg = parse_update(load("private_callback"))
    assert msg is not None
    assert msg.ref == ChatRef("telegram", "6103344817")
    assert msg.message_id == "callback:4380791573492612163"
    assert msg.text is None
    assert msg.choice == "name:profile"
    assert msg.raw == {"update_id": 802114570, "message_id": 58, "callback_query_id": "4380791573492612163"}


def test_callback_without_message_uses_the_presser() -> None:
    """A press on a keyboard whose message Telegram does not include is answered in the presser's chat."""
    payload = load("private_callback")
    del payload["callback_query"]["message"]
    payload["callback_query"]["inline_message_id"] = "AgAAAHw1AABRV8gFfn3mAh0jxzE"
    msg = parse_update(payload)
    assert msg is not None
    assert msg.ref == ChatRef("telegram", "6103344817")
    assert msg.raw["message_id"] is None


def test_callback_in_a_group_is_ignored() -> None:
    """A press on a keyboard in a group chat is not a private conversation."""
    payload = load("private_callback")
    payload["callback_query"]["message"]["chat"] = {"id": -1002233445566, "title": "Weekend plans", "type": "group"}
    assert parse_update(payload) is None


def test_callback_without_data_is_ignored() -> None:
    """A game-button press (no callback data) carries no choice."""
    payload = load("private_callback")
    del payload["callback_query"]["data"]
    assert parse_update(payload) is None


@pytest.mark.parametrize(
    "name",
    [
        "group_text",
        "channel_post",
        "edited_message",
        "private_sticker",
        "private_photo_caption",
        "my_chat_member_kicked",
        "my_chat_member_member",
    ],
)
def test_other_updates_are_ignored(name: str) -> None:
    """Groups, channel posts, edits, messages without text and membership changes parse to None."""
    assert parse_update(load(name)) is None


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"update_id": "802114567", "message": {}},
        {"update_id": 1, "message": {"message_id": 2, "chat": {"type": "private"}, "text": "hi"}},
        {"update_id": 1, "message": {"message_id": 2, "chat": {"id": 3, "type": "private"}, "text": ""}},
        {"update_id": 1, "message": "not an object"},
        {"update_id": 1, "callback_query": {"data": "x", "from": {"id": 3}}},
    ],
)
def test_malformed_updates_are_ignored(payload: dict[str, Any]) -> None:
    """Broken shapes parse to None instead of raising (a 500 would make Telegram redeliver forever)."""
    assert parse_update(payload) is None


def test_same_message_id_in_two_chats_gives_two_keys() -> None:
    """Message ids are per chat: the same id in another chat is a different message."""
    first = load("private_text")
    second = copy.deepcopy(first)
    second["update_id"] += 1
    second["message"]["chat"]["id"] = second["message"]["from"]["id"] = 7412230098
    a, b = parse_update(first), parse_update(second)
    assert a is not None and b is not None
    assert a.message_id != b.message_id


def test_redelivered_update_gives_the_same_key() -> None:
    """Parsing is deterministic: a redelivery maps to the same idempotency key."""
    first, again = parse_update(load("private_text")), parse_update(load("private_text"))
    assert first is not None and again is not None
    assert first.message_id == again.message_id


def test_blocked_and_unblocked() -> None:
    """`my_chat_member` in a private chat: kicked means blocked, member means unblocked."""
    assert is_blocked_update(load("my_chat_member_kicked")) is True
    assert is_blocked_update(load("my_chat_member_member")) is False


@pytest.mark.parametrize("name", ["my_chat_member_group_kicked", "private_text", "private_callback"])
def test_block_status_unknown_for_other_updates(name: str) -> None:
    """Removal from a group and non-membership updates say nothing about a block."""
    assert is_blocked_update(load(name)) is None


def test_other_member_statuses_say_nothing() -> None:
    """Statuses other than kicked/member (e.g. left) give None."""
    payload = load("my_chat_member_kicked")
    payload["my_chat_member"]["new_chat_member"]["status"] = "left"
    assert is_blocked_update(payload) is None
