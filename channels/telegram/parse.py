"""Telegram: platform limits and the pure parsing of webhook updates (the rest of the package builds on them).

Limits from python-telegram-bot 22.8 constants (LIBRARY-NOTES): text 4096 characters, callback data 1-64 bytes.
Telegram refuses URL buttons to local hosts (and we only send https links as buttons).

Idempotency keys (`InboundMessage.message_id`, stored unique per channel):

- text: ``message:{chat_id}:{message_id}``. Telegram message ids are unique per chat only, so the chat is part
  of the key. The `update_id` is NOT used: after a week without updates Telegram picks the next update id at
  random, so an old stored update id can come back on a different message and would drop it as a "duplicate".
- button press: ``callback:{callback_query.id}`` (callback query ids are unique per bot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.inbox import storable
from core.messages import ChatRef, InboundMessage
from core.ports import ChannelCapabilities

TELEGRAM = "telegram"
#: Longest callback query id read (Telegram's are ~19 digits; the row's external id holds 128 characters).
MAX_CALLBACK_ID_CHARS = 64

TELEGRAM_CAPABILITIES = ChannelCapabilities(
    max_text_chars=4096,
    max_body_chars=4096,
    # Inline keyboards hold up to 100 buttons; more than a handful is unreadable on a phone, so longer choice
    # sets become a numbered list in the text.
    max_buttons=8,
    max_button_label_chars=64,
    list_rows=0,
    url_buttons=True,
    url_button_label_chars=64,
    url_button_https_only=True,
    url_button_local_hosts=False,
    inline_images=False,
    max_choice_data_bytes=64,
)


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _int(value: Any) -> int | None:
    # bool is an int subclass; a JSON true is never an id. Telegram ids are 64-bit: a longer number is no id.
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return value if is_int and -(2**63) <= value < 2**63 else None


def _private_chat_id(message: Mapping[str, Any] | None) -> int | None:
    """The chat id of `message` if it belongs to a private chat, else None."""
    chat = _mapping(message.get("chat")) if message is not None else None
    if chat is None or chat.get("type") != "private":
        return None
    return _int(chat.get("id"))


def parse_update(payload: Mapping[str, Any]) -> InboundMessage | None:
    """Turn a raw webhook update into an `InboundMessage`, or None for updates the turn pipeline ignores.

    Handled: text messages (commands such as ``/start <payload>`` included) and inline-keyboard presses in
    private chats. Ignored for now (None), which the adapter still acknowledges with 200 and later answers
    politely where a user is waiting: groups, supergroups and channel posts, edited messages, messages without
    text (stickers, photos even with a caption, voice, documents), `my_chat_member` (see `is_blocked_update`)
    and every other update kind. Malformed updates are ignored too: a 500 would make Telegram redeliver forever.
    """
    update_id = _int(payload.get("update_id"))
    if update_id is None:
        return None
    if (message := _mapping(payload.get("message"))) is not None:
        return _parse_text_message(update_id, message)
    if (query := _mapping(payload.get("callback_query"))) is not None:
        return _parse_callback_query(update_id, query)
    return None


def _parse_text_message(update_id: int, message: Mapping[str, Any]) -> InboundMessage | None:
    chat_id = _private_chat_id(message)
    message_id = _int(message.get("message_id"))
    text = message.get("text")
    if chat_id is None or message_id is None or not isinstance(text, str) or not text:
        return None
    sender = _mapping(message.get("from")) or {}
    return InboundMessage(
        ref=ChatRef(TELEGRAM, str(chat_id)),
        message_id=f"message:{chat_id}:{message_id}",
        text=text,
        raw={"update_id": update_id, "message_id": message_id, "language_code": sender.get("language_code")},
    )


def _parse_callback_query(update_id: int, query: Mapping[str, Any]) -> InboundMessage | None:
    query_id = query.get("id")
    data = query.get("data")  # absent for game buttons, which we never send
    if not isinstance(query_id, str) or not query_id or not isinstance(data, str) or not data:
        return None
    if len(query_id) > MAX_CALLBACK_ID_CHARS or not storable(query_id):  # no row could hold it: never a real id
        return None
    message = _mapping(query.get("message"))
    if message is not None:
        chat_id = _private_chat_id(message)  # a keyboard in a group chat is not ours to answer
        message_id = _int(message.get("message_id"))
    else:
        # Keyboards on inline-mode messages carry no message; answer the presser in their private chat.
        chat_id = _int((_mapping(query.get("from")) or {}).get("id"))
        message_id = None
    if chat_id is None:
        return None
    return InboundMessage(
        ref=ChatRef(TELEGRAM, str(chat_id)),
        message_id=f"callback:{query_id}",
        text=None,
        choice=data,
        # message_id: the keyboard message (to edit or clear it); callback_query_id: for answerCallbackQuery.
        raw={"update_id": update_id, "message_id": message_id, "callback_query_id": query_id},
    )


def is_blocked_update(payload: Mapping[str, Any]) -> bool | None:
    """For a private-chat `my_chat_member` update: True if the user blocked the bot, False if unblocked, else None."""
    parsed = parse_blocked_update(payload)
    return parsed[1] if parsed is not None else None


def parse_blocked_update(payload: Mapping[str, Any]) -> tuple[ChatRef, bool] | None:
    """For a private-chat `my_chat_member` update: the chat and whether the user blocked (True) or unblocked it."""
    member_update = _mapping(payload.get("my_chat_member"))
    chat_id = _private_chat_id(member_update)
    if member_update is None or chat_id is None:
        return None
    status = (_mapping(member_update.get("new_chat_member")) or {}).get("status")
    if status == "kicked":
        return ChatRef(TELEGRAM, str(chat_id)), True
    if status == "member":
        return ChatRef(TELEGRAM, str(chat_id)), False
    return None


#: Message kinds a person sends that carry no text we can read (the webhook may say so politely).
_NON_TEXT_CONTENT = (
    "sticker", "photo", "voice", "video", "video_note", "audio", "animation", "document", "location", "contact",
    "poll", "dice", "venue", "story", "paid_media",
)  # fmt: skip


def unreadable_private_message(payload: Mapping[str, Any]) -> ChatRef | None:
    """The chat of a new private-chat message without text (a sticker, a photo, a voice note...), else None."""
    message = _mapping(payload.get("message"))
    chat_id = _private_chat_id(message)
    if message is None or chat_id is None or isinstance(message.get("text"), str):
        return None
    if (_mapping(message.get("from")) or {}).get("is_bot") is True:
        return None
    return ChatRef(TELEGRAM, str(chat_id)) if any(key in message for key in _NON_TEXT_CONTENT) else None
