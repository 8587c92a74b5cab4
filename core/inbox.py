"""Inbound pipeline, first half: store a message idempotently and schedule its turn. Adapters call this.

A redelivered platform message (same channel + external id) is recognised and does nothing. The external id
must be globally unique on its platform (Telegram: chat id + message id, or the callback query id - a bare
message id is unique per chat only, and update ids restart at random after a week without updates; WhatsApp:
the wamid; web: the user id + the browser's client id). The store
step serialises inserts per identity on PostgreSQL (advisory transaction lock) so message ids follow
arrival order per user, which is the order turns are processed in.

Per-user inbound rate limit (`InboundLimit`, counted by a `RateLimiter` shared by every replica): a message over
the limit is still stored (nothing is lost, idempotency unchanged) but as `limited`, which no drain, sweeper or
`has_work` looks at, so a flood schedules no drain work and never slows other users. The first limited message
of a window stores ONE slow-down line for the chat it came from and schedules its delivery. Only new messages
count: a redelivery is recognised before the limiter is asked.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.delivery import release_held, store_replies
from core.linking import apply_link
from core.messages import ChatRef, InboundMessage, TextReply
from core.models import ChannelIdentity, Direction, Message, MessageStatus, User
from core.outcome import Outcome
from core.ports import RateLimiter, TurnQueue

logger = logging.getLogger(__name__)

MAX_TEXT_CHARS = 4000
#: What PostgreSQL text cannot hold: NUL, and lone surrogates (a `str` holds them; UTF-8 cannot encode them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

#: The one line a user over the inbound rate limit gets per window.
SLOW_DOWN_LINE = "You're sending messages faster than I can read them; I'll answer again in a minute."


def storable(text: str) -> bool:
    """Whether PostgreSQL text can hold `text` (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(text) is None


def make_storable(text: str | None) -> str | None:
    """`text` with what PostgreSQL text cannot hold replaced by U+FFFD: a platform's odd message is kept, never
    refused by the database over and over (each refusal would be a 5xx, and the platform would redeliver it)."""
    return _UNSTORABLE.sub("\ufffd", text) if text else text


@dataclass(frozen=True, slots=True)
class InboundLimit:
    """Messages one user may send per window (all channels together) before the rest go unanswered."""

    per_window: int = 20
    window_seconds: int = 60


#: Counts one new message of a user against the limit: False when it is over (the message is then `limited`).
Admit = Callable[[int], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Stored:
    """Result of receiving a message: the user and message row ids, and whether it was new."""

    user_id: int
    message_id: int
    created: bool
    #: Stored over the user's rate limit: kept, but no turn runs for it.
    limited: bool = False
    #: Held replies of this chat were released (they need a drain to leave).
    released: bool = False


async def user_for(channel: str, external_user_id: str) -> User:
    """The user behind a channel identity, created on first contact (race-safe)."""
    # A known chat (nearly every webhook) costs one query: the identity with its user joined.
    identity = await ChannelIdentity.get_or_none(channel=channel, external_user_id=external_user_id).select_related(
        "user"
    )
    if identity is not None:
        return identity.user
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


async def store_inbound(msg: InboundMessage, user: User | None = None, *, admit: Admit | None = None) -> Stored:
    """Store `msg` as a pending inbound row unless the platform already delivered it; `admit` (asked only for a
    new message) refusing it stores it as `limited` instead."""
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
    released = await release_held(msg.ref)
    admitted = admit is None or await admit(user.id)
    text = make_storable(msg.text[:MAX_TEXT_CHARS] if msg.text else msg.text)
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
                choice=make_storable(msg.choice),
                status=MessageStatus.PENDING if admitted else MessageStatus.LIMITED,
                processed_at=None if admitted else datetime.now(UTC),
            )
    except IntegrityError:  # a concurrent redelivery won the race (and, rarely, both counted against the limit)
        existing = await Message.get(channel=msg.ref.channel, external_message_id=msg.message_id)
        return Stored(user.id, existing.id, created=False)
    return Stored(user.id, row.id, created=True, limited=not admitted, released=released > 0)


class Inbox:
    """Adapters' entry point: store, then enqueue the turn, then return at once.

    With a `limiter`, each user's new messages are counted against `limit` (see the module docstring).
    """

    def __init__(
        self, queue: TurnQueue, *, limiter: RateLimiter | None = None, limit: InboundLimit | None = None
    ) -> None:
        self._queue = queue
        self._limiter = limiter
        self._limit = limit or InboundLimit()

    async def receive(self, msg: InboundMessage, user: User | None = None) -> Stored:
        """Store `msg` idempotently and schedule processing; a duplicate is acknowledged and ignored."""
        if user is None:
            user = await apply_link(msg)  # a link code moves the chat to its web account first
        stored = await store_inbound(msg, user, admit=self._admit if self._limiter is not None else None)
        if not stored.created:
            logger.info("duplicate inbound %s message ignored", msg.ref.channel)
            # A redelivery after a failed schedule (Redis hiccup, 5xx to the platform) must not wait for the
            # sweeper: schedule again while it is pending (a no-op when a drain holds the slot).
            if not await Message.exists(id=stored.message_id, status=MessageStatus.PENDING):
                return stored
        elif stored.limited:
            # No turn: only the window's one slow-down line (or released held replies) needs the drain.
            told = await self._slow_down(msg.ref, stored)
            if not (told or stored.released):
                return stored
        await self._queue.schedule(stored.user_id)
        return stored

    async def _admit(self, user_id: int) -> bool:
        assert self._limiter is not None
        limit = self._limit
        return await self._limiter.hit(f"inbound:user:{user_id}", limit.per_window, limit.window_seconds)

    async def _slow_down(self, ref: ChatRef, stored: Stored) -> bool:
        """Store the slow-down line unless the user got it in this window already; True when stored."""
        assert self._limiter is not None
        if not await self._limiter.hit(f"inbound:slowdown:{stored.user_id}", 1, self._limit.window_seconds):
            return False
        # Keyed by the limited message: a retried call stores the line once.
        await store_replies(
            stored.user_id, ref, Outcome([TextReply(SLOW_DOWN_LINE)]), key=f"slowdown:{stored.message_id}"
        )
        logger.info("user %s is over the inbound limit: told to slow down", stored.user_id)
        return True
