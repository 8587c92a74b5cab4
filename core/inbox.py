"""Inbound pipeline, first half: store a message idempotently and schedule its turn. Adapters call this.

A redelivered platform message (same channel + external id) is recognised and does nothing. The external id
must be globally unique on its platform (Telegram: chat id + message id, or the callback query id - a bare
message id is unique per chat only, and update ids restart at random after a week without updates; WhatsApp:
the wamid; web: the user id + the browser's client id). The store
step serialises inserts per identity on PostgreSQL (advisory transaction lock) so message ids follow
arrival order per user, which is the order turns are processed in.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.delivery import release_held
from core.linking import apply_link
from core.messages import InboundMessage
from core.models import ChannelIdentity, Direction, Message, MessageStatus, User
from core.ports import TurnQueue

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Stored:
    """Result of receiving a message: the user and message row ids, and whether it was new."""

    user_id: int
    message_id: int
    created: bool


async def user_for(channel: str, external_user_id: str) -> User:
    """The user behind a channel identity, created on first contact (race-safe)."""
    identity = await ChannelIdentity.get_or_none(channel=channel, external_user_id=external_user_id)
    if identity is not None:
        return await User.get(id=identity.user_id)
    try:
        async with in_transaction():
            user = await User.create()
            await ChannelIdentity.create(user=user, channel=channel, external_user_id=external_user_id)
        return user
    except IntegrityError:  # another request created it first
        identity = await ChannelIdentity.get(channel=channel, external_user_id=external_user_id)
        return await User.get(id=identity.user_id)


async def _lock_identity_for_insert(user_id: int) -> None:
    conn = connections.get("default")
    if conn.capabilities.dialect == "postgres":
        key = zlib.crc32(f"ava-inbox:{user_id}".encode())
        await conn.execute_query("SELECT pg_advisory_xact_lock($1)", [key])


async def store_inbound(msg: InboundMessage, user: User | None = None) -> Stored:
    """Store `msg` as a pending inbound row unless the platform already delivered it."""
    if user is None:
        user = await user_for(msg.ref.channel, msg.ref.chat_id)
    existing = await Message.get_or_none(channel=msg.ref.channel, external_message_id=msg.message_id)
    if existing is not None:
        return Stored(user.id, existing.id, created=False)
    # The user wrote: their chat is reachable again (it was marked unreachable after a permanent send failure),
    # and replies held for it (a closed 24-hour window) leave before the answer to this message.
    await ChannelIdentity.filter(
        channel=msg.ref.channel, external_user_id=msg.ref.chat_id, unreachable_at__isnull=False
    ).update(unreachable_at=None, unreachable_reason=None)
    await release_held(msg.ref)
    text = msg.text[:MAX_TEXT_CHARS] if msg.text else msg.text
    try:
        async with in_transaction():
            await _lock_identity_for_insert(user.id)
            row = await Message.create(
                user=user,
                direction=Direction.INBOUND,
                channel=msg.ref.channel,
                chat_id=msg.ref.chat_id,
                external_message_id=msg.message_id,
                text=text,
                choice=msg.choice,
                status=MessageStatus.PENDING,
            )
    except IntegrityError:  # a concurrent redelivery won the race
        existing = await Message.get(channel=msg.ref.channel, external_message_id=msg.message_id)
        return Stored(user.id, existing.id, created=False)
    return Stored(user.id, row.id, created=True)


class Inbox:
    """Adapters' entry point: store, then enqueue the turn, then return at once."""

    def __init__(self, queue: TurnQueue) -> None:
        self._queue = queue

    async def receive(self, msg: InboundMessage, user: User | None = None) -> Stored:
        """Store `msg` idempotently and schedule processing; a duplicate is acknowledged and ignored."""
        if user is None:
            user = await apply_link(msg)  # a link code moves the chat to its web account first
        stored = await store_inbound(msg, user)
        if not stored.created:
            logger.info("duplicate inbound %s message ignored", msg.ref.channel)
            # A redelivery after a failed schedule (Redis hiccup, 5xx to the platform) must not wait for the
            # sweeper: schedule again while it is pending (a no-op when a drain holds the slot).
            if not await Message.exists(id=stored.message_id, status=MessageStatus.PENDING):
                return stored
        await self._queue.schedule(stored.user_id)
        return stored
