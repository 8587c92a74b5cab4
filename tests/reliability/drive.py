"""Driving a running stack like the platforms and users do, and reading the outcome from the database.

user = await entitled_user("5001")                   # set up, subscribed, on Telegram chat 5001
chat = TelegramChat(web.url, fakes.telegram_webhook_secret, chat_id=5001)
assert await chat.say("hello") == 200                 # what the webhook answered
await eventually(lambda: replied_to(user.id, 1))
"""

from __future__ import annotations

import io
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from core.models import Avatar, Direction, Message, MessageStatus, Mode, User
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.storage import LocalPhotoStore
from tests.fakes.entitlements import subscribe
from tests.fakes.stripe import sign as sign_stripe
from tests.fakes.whatsapp import PHONE_ID
from tests.fakes.whatsapp import sign as sign_whatsapp
from tests.support import ready_user

_ids = itertools.count(int(time.time()) % 100_000 * 1000)


async def entitled_user(chat_id: str, *, channel: str = "telegram", mode: Mode = Mode.SECRETARY) -> User:
    """A user who finished onboarding and avatar setup and holds an active subscription."""
    user = await ready_user(chat_id, channel=channel, mode=mode)
    await subscribe(user.id, photos=50, messages=1000)
    return user


async def photo_user(chat_id: str, media_dir: Path, *, channel: str = "telegram") -> User:
    """An entitled user in intimate mode whose avatar has an approved reference photo stored under `media_dir`
    (local-disk storage, as the worker's MEDIA_DIR): ready for `send_photo`."""
    user = await entitled_user(chat_id, channel=channel, mode=Mode.INTIMATE)
    avatar = await Avatar.get(user_id=user.id)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 96), (120, 90, 200)).save(jpeg, format="JPEG")
    storage_key = await LocalPhotoStore(media_dir / "photos").put(jpeg.getvalue())
    original_key = await LocalPhotoStore(media_dir / "originals").put(jpeg.getvalue())
    reference = await Photo.create(
        user_id=user.id,
        avatar_id=avatar.id,
        kind=PhotoKindChoice.REFERENCE,
        status=PhotoStatus.READY,
        source_key=f"reliability-reference:{user.id}",
        storage_key=storage_key,
        original_key=original_key,
        ready_at=datetime.now(UTC),
    )
    await Avatar.filter(id=avatar.id).update(reference_photo_id=reference.id)
    return user


def telegram_update(chat_id: int, text: str, *, update_id: int | None = None) -> dict[str, Any]:
    """A private-chat text message update (a fresh update and message id unless `update_id` is given)."""
    n = next(_ids) if update_id is None else update_id
    person = {"id": chat_id, "is_bot": False, "first_name": "Sam"}
    return {
        "update_id": n,
        "message": {
            "message_id": n,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Sam"},
            "from": person,
            "text": text,
        },
    }


class TelegramChat:
    """Telegram's side of one private chat: posts updates to a web process's webhook with the secret header."""

    def __init__(self, base_url: str, secret: str, chat_id: int) -> None:
        self.base_url, self.secret, self.chat_id = base_url, secret, chat_id

    async def post(self, update: dict[str, Any], *, base_url: str | None = None, timeout: float = 10.0) -> int:
        """Deliver `update`; the HTTP status, or 0 when the connection failed (Telegram retries both)."""
        url = f"{base_url or self.base_url}/webhooks/telegram"
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.secret}
        async with httpx.AsyncClient(timeout=timeout) as client:
            try:
                return (await client.post(url, json=update, headers=headers)).status_code
            except httpx.TransportError:
                return 0

    async def say(self, text: str, **kwargs: Any) -> int:
        """Send a new text message."""
        return await self.post(telegram_update(self.chat_id, text), **kwargs)


async def inbound(user_id: int) -> list[Message]:
    """The user's inbound rows, in arrival order."""
    return await Message.filter(user_id=user_id, direction=Direction.INBOUND).order_by("id")


async def replies(user_id: int) -> list[Message]:
    """The user's outbound rows, in order."""
    return await Message.filter(user_id=user_id, direction=Direction.OUTBOUND).order_by("id")


async def all_answered(user_id: int, count: int) -> bool:
    """True when the user has `count` inbound rows, none pending, and no outbound row waits to be sent."""
    rows = await inbound(user_id)
    if len(rows) != count or any(r.status == MessageStatus.PENDING for r in rows):
        return False
    return not await Message.filter(
        user_id=user_id, direction=Direction.OUTBOUND, status=MessageStatus.PENDING
    ).exists()


async def photos_done(user_id: int, count: int) -> bool:
    """True when the user has `count` photos (references aside) and all of them are ready or failed."""
    photos = await Photo.filter(user_id=user_id, kind=PhotoKindChoice.PHOTO)
    return len(photos) == count and all(p.status in (PhotoStatus.READY, PhotoStatus.FAILED) for p in photos)


def whatsapp_text(wa_id: str, text: str, *, wamid: str | None = None) -> bytes:
    """A WhatsApp Cloud API webhook body carrying one text message (a fresh wamid unless given)."""
    message_id = wamid or f"wamid.HBgL{next(_ids):012d}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
        "contacts": [{"profile": {"name": "Sam"}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": message_id,
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": text},
            }
        ],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(body).encode()


async def post_signed(url: str, body: bytes, headers: dict[str, str], *, timeout: float = 10.0) -> int:
    """POST a signed webhook body; the HTTP status, or 0 when the connection failed (platforms retry both)."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            response = await client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
        except httpx.TransportError:
            return 0
        return response.status_code


async def post_whatsapp(base_url: str, body: bytes, app_secret: str) -> int:
    """Deliver a WhatsApp webhook body signed with the app secret, as Meta does."""
    return await post_signed(
        f"{base_url}/webhooks/whatsapp", body, {"X-Hub-Signature-256": sign_whatsapp(body, app_secret)}
    )


async def post_stripe(base_url: str, body: bytes, webhook_secret: str) -> int:
    """Deliver a Stripe event body signed with the webhook secret, as Stripe does."""
    return await post_signed(
        f"{base_url}/billing/webhook", body, {"Stripe-Signature": sign_stripe(body, webhook_secret)}
    )
