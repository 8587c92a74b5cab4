"""WhatsApp platform limits and the pure parsing of Cloud API webhooks; the adapter builds on them.

Limits from pywa 4.5 (LIBRARY-NOTES): text 4096; interactive body 1024; at most 3 reply buttons with titles of
at most 20 characters; list messages with at most 10 rows, row titles <= 24, the list button <= 20; CTA URL
button text <= 20. Never an inline image (PLAT-03): photos leave as signed portal links.

Idempotency key (`InboundMessage.message_id`): ``wamid:{id}``; a wamid is unique across WhatsApp.
The chat id is the sender's phone number (`from`, the wa_id). Users who enable WhatsApp usernames may arrive
without one; they are addressed by their business-scoped user id (BSUID, ``US.1349...``) instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from core.messages import ChatRef, InboundMessage
from core.ports import ChannelCapabilities

WHATSAPP = "whatsapp"

WHATSAPP_CAPABILITIES = ChannelCapabilities(
    max_text_chars=4096,
    max_body_chars=1024,
    max_buttons=3,
    max_button_label_chars=20,
    list_rows=10,
    list_row_title_chars=24,
    list_button_label_chars=20,
    url_buttons=True,
    url_button_label_chars=20,
    url_button_https_only=True,
    url_button_local_hosts=False,
    inline_images=False,
    max_choice_data_bytes=256,
    reply_window_seconds=24 * 3600,
)


def _mappings(value: Any) -> list[Mapping[str, Any]]:
    """The mapping items of a JSON list (anything else in it, or a non-list, is dropped)."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _message_values(payload: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Every `value` object of the `messages` field (which carries both messages and statuses)."""
    for entry in _mappings(payload.get("entry")):
        for change in _mappings(entry.get("changes")):
            value = change.get("value")
            if change.get("field", "messages") == "messages" and isinstance(value, Mapping):
                yield value


def parse_webhook(payload: Mapping[str, Any]) -> list[InboundMessage]:
    """The user messages in a webhook body, in order: typed text and pressed buttons or list rows.

    One body can batch several messages. Skipped (the adapter acknowledges them and answers politely later):
    media, stickers, locations, reactions, edits, system and unsupported messages, flow replies, group
    messages and anything malformed. Status callbacks are read by `parse_statuses`.
    """
    parsed: list[InboundMessage] = []
    for value in _message_values(payload):
        contacts = _mappings(value.get("contacts"))
        metadata = value.get("metadata")
        phone_number_id = metadata.get("phone_number_id") if isinstance(metadata, Mapping) else None
        for msg in _mappings(value.get("messages")):
            inbound = _parse_message(msg, contacts, phone_number_id)
            if inbound is not None:
                parsed.append(inbound)
    return parsed


#: Message types Ava cannot read: the sender gets a short polite line.
UNREADABLE_TYPES = frozenset({"image", "audio", "video", "document", "sticker", "location", "contacts", "voice"})


def unreadable_senders(payload: Mapping[str, Any]) -> list[str]:
    """Chat ids (wa_ids) of users who sent something Ava cannot read (media, stickers, locations...)."""
    senders: list[str] = []
    for value in _message_values(payload):
        contacts = _mappings(value.get("contacts"))
        for msg in _mappings(value.get("messages")):
            wa_id, _ = _sender(msg, contacts)
            kind = msg.get("type")  # any JSON value: a list or an object is not hashable
            if isinstance(kind, str) and kind in UNREADABLE_TYPES and wa_id is not None and wa_id not in senders:
                senders.append(wa_id)
    return senders


def _sender(msg: Mapping[str, Any], contacts: list[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(wa_id, bsuid) of the sender; the wa_id is missing for users who hide their number behind a username."""
    contact: Mapping[str, Any] = {}
    wa_id = _str(msg.get("from"))
    for candidate in contacts:
        if wa_id is not None and candidate.get("wa_id") == wa_id:
            contact = candidate
    if not contact and len(contacts) == 1:
        contact = contacts[0]
    return wa_id, _str(msg.get("from_user_id")) or _str(contact.get("user_id"))


def _choice(msg: Mapping[str, Any]) -> str | None:
    """The id of a pressed reply button or list row (or a template quick-reply payload), else None."""
    if msg.get("type") == "button":  # quick-reply button of a template message
        button = msg.get("button")
        return _str(button.get("payload")) if isinstance(button, Mapping) else None
    interactive = msg.get("interactive")
    if msg.get("type") != "interactive" or not isinstance(interactive, Mapping):
        return None
    kind = interactive.get("type")
    if kind not in ("button_reply", "list_reply"):
        return None
    reply = interactive.get(kind)
    return _str(reply.get("id")) if isinstance(reply, Mapping) else None


def _parse_message(
    msg: Mapping[str, Any], contacts: list[Mapping[str, Any]], phone_number_id: Any
) -> InboundMessage | None:
    wamid = _str(msg.get("id"))
    if wamid is None or "group_id" in msg:
        return None
    wa_id, bsuid = _sender(msg, contacts)
    chat_id = wa_id or bsuid
    if chat_id is None:
        return None
    text: str | None = None
    choice: str | None = None
    if msg.get("type") == "text":
        body = msg.get("text")
        text = _str(body.get("body")) if isinstance(body, Mapping) else None
    else:
        choice = _choice(msg)
    if text is None and choice is None:
        return None
    context = msg.get("context")
    return InboundMessage(
        ref=ChatRef(WHATSAPP, chat_id),
        message_id=f"wamid:{wamid}",
        text=text,
        choice=choice,
        raw={
            "wamid": wamid,  # to mark read / show typing (`indicate_typing`)
            "phone_number_id": phone_number_id,  # the business number that received it
            "wa_id": wa_id,
            "bsuid": bsuid,
            # The message a button belonged to (or the one quoted).
            "context_wamid": context.get("id") if isinstance(context, Mapping) else None,
        },
    )


def parse_statuses(payload: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """Status callbacks of our outbound messages as (wamid, status, first error code or None), in order.

    Statuses are sent, delivered, read and failed; error codes are strings (131047: the 24-hour window closed,
    131026: undeliverable).
    """
    statuses: list[tuple[str, str, str | None]] = []
    for value in _message_values(payload):
        for item in _mappings(value.get("statuses")):
            wamid, status = _str(item.get("id")), _str(item.get("status"))
            if wamid is None or status is None:
                continue
            errors = _mappings(item.get("errors"))
            code = errors[0].get("code") if errors else None
            statuses.append((wamid, status, None if code is None else str(code)))
    return statuses
