"""Boundary types crossing the channel boundary: frozen, slotted, platform-agnostic.

Adapters parse platform payloads into `InboundMessage` and render `Reply` values back; core never sees
an adapter object, only the opaque `ChatRef` saying where to answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ChatRef:
    """Where to answer. In private chats the chat id is also the platform user id (one identity)."""

    channel: str  # "telegram" | "whatsapp" | "web"
    chat_id: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A user's message: typed text or a pressed choice. `message_id` is the platform's idempotency key."""

    ref: ChatRef
    message_id: str
    text: str | None
    choice: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Choice:
    """One button: what the user sees and the data sent back when pressed."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class TextReply:
    """Plain text."""

    text: str


@dataclass(frozen=True, slots=True)
class ChoicesReply:
    """A question with buttons; free text is usually accepted as well."""

    text: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True, slots=True)
class LinkReply:
    """Text with one link button (sign-in, subscribe, gallery)."""

    text: str
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class PhotoReady:
    """A finished photo: channels show a link button to the signed portal URL (web shows it inline)."""

    photo_id: int
    url: str
    caption: str
    kind: str = "photo"  # "reference" | "photo"


Reply = TextReply | ChoicesReply | LinkReply | PhotoReady


def reply_to_payload(reply: Reply) -> dict[str, Any]:
    """Serialise a reply for storage (outbound message rows) and for the web chat's event stream."""
    match reply:
        case TextReply(text=text):
            return {"type": "text", "text": text}
        case ChoicesReply(text=text, choices=choices):
            return {"type": "choices", "text": text, "choices": [{"label": c.label, "data": c.data} for c in choices]}
        case LinkReply(text=text, label=label, url=url):
            return {"type": "link", "text": text, "label": label, "url": url}
        case PhotoReady(photo_id=photo_id, url=url, caption=caption, kind=kind):
            return {"type": "photo", "photo_id": photo_id, "url": url, "text": caption, "kind": kind}
    raise TypeError(f"not a reply: {reply!r}")


def reply_from_payload(payload: Mapping[str, Any]) -> Reply:
    """Inverse of `reply_to_payload`."""
    match payload.get("type"):
        case "text":
            return TextReply(payload["text"])
        case "choices":
            return ChoicesReply(payload["text"], tuple(Choice(c["label"], c["data"]) for c in payload["choices"]))
        case "link":
            return LinkReply(payload["text"], payload["label"], payload["url"])
        case "photo":
            return PhotoReady(payload["photo_id"], payload["url"], payload["text"], payload.get("kind", "photo"))
    raise ValueError(f"unknown reply payload type: {payload.get('type')!r}")


def reply_text(reply: Reply) -> str:
    """The human text of any reply (what history and plain-text channels show)."""
    return reply.caption if isinstance(reply, PhotoReady) else reply.text
