"""One Ava across channels: a web account links its Telegram and WhatsApp chats with one-time codes.

The account page makes a code for one channel (single-use, 15 minutes, bound to the account; only its
SHA-256 is stored) and shows it as a deep link: `t.me/<bot>?start=link-CODE` or `wa.me/<number>?text=link-CODE`.
When that text arrives, the inbox calls `apply_link` BEFORE storing it: the chat's identity then belongs to
the account, so the message and everything after it are the account's — same avatar, history, photos.

A chat that already has its own Ava (an avatar) is not taken over silently: the engine asks, and only
`link-CODE confirm` moves it; that chat's own Ava and her history are then deleted. A chat that had only just
started (no avatar yet) is linked at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from core.messages import InboundMessage
from core.models import Avatar, ChannelIdentity, LinkCode, User

CODE_TTL = timedelta(minutes=15)
CODE_LENGTH = 10
#: Letters and digits that cannot be mistaken for one another when typed.
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_LINK_TEXT = re.compile(r"^\s*(?:/start\s+)?link[-_ ]([A-Za-z0-9]{10})(\s+confirm)?\s*$", re.IGNORECASE)


def _hash(code: str) -> str:
    return hashlib.sha256(code.upper().encode()).hexdigest()


def link_token(code: str) -> str:
    """The text (and Telegram `start` payload) carrying a code."""
    return f"link-{code}"


def parse_link(text: str | None) -> tuple[str, bool] | None:
    """(code, confirmed) when `text` is a link message ("link-CODE", "/start link-CODE", "link-CODE confirm")."""
    match = _LINK_TEXT.match(text or "")
    return (match.group(1).upper(), bool(match.group(2))) if match else None


async def create_link_code(user_id: int, channel: str, *, now: datetime | None = None) -> str:
    """A new one-time code for linking a `channel` chat to account `user_id` (shown once, stored hashed)."""
    code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
    moment = now or datetime.now(UTC)
    await LinkCode.create(user_id=user_id, channel=channel, code_hash=_hash(code), expires_at=moment + CODE_TTL)
    return code


async def find_code(code: str) -> LinkCode | None:
    """The stored code row, whatever its state."""
    return await LinkCode.get_or_none(code_hash=_hash(code))


def usable(row: LinkCode | None, channel: str, *, now: datetime | None = None) -> bool:
    """Whether a code may still link a chat of `channel`."""
    moment = now or datetime.now(UTC)
    return row is not None and row.used_at is None and row.channel == channel and row.expires_at > moment


async def apply_link(msg: InboundMessage) -> User | None:
    """If `msg` carries a usable code for its channel, make its chat the account's; return the account to store
    the message under. None when nothing was linked (no code, a bad one, or a chat with its own Ava that has not
    confirmed): the message is stored as usual and the engine answers it."""
    parsed = parse_link(msg.text)
    if parsed is None:
        return None
    code, confirmed = parsed
    row = await find_code(code)
    if row is None or not usable(row, msg.ref.channel):
        return None
    account_id = row.user_id
    identity = await ChannelIdentity.get_or_none(channel=msg.ref.channel, external_user_id=msg.ref.chat_id)
    taken = identity is not None and identity.user_id != account_id
    if taken and not confirmed and identity is not None and await Avatar.exists(user_id=identity.user_id):
        return None  # the chat has its own Ava: the engine asks which one to keep
    async with in_transaction():
        if not await LinkCode.filter(id=row.id, used_at__isnull=True).update(used_at=datetime.now(UTC)):
            return None  # used meanwhile (single use)
        if identity is None:
            await ChannelIdentity.create(user_id=account_id, channel=msg.ref.channel, external_user_id=msg.ref.chat_id)
        elif identity.user_id != account_id:
            previous = identity.user_id
            await ChannelIdentity.filter(id=identity.id).update(user_id=account_id)
            if not await ChannelIdentity.exists(user_id=previous):
                await User.filter(id=previous).delete()  # that chat's own Ava and her history go with it
    return await User.get(id=account_id)
