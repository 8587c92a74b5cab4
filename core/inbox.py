"""Inbound pipeline, first half: store a message idempotently and schedule its turn. Adapters call this.

A redelivered platform message (same channel + external id) is recognised and does nothing. The external id
must be globally unique on its platform (Telegram: chat id + message id, or the callback query id - a bare
message id is unique per chat only, and update ids restart at random after a week without updates; WhatsApp:
the wamid; web: the user id + the browser's client id). The store
step serialises inserts per user on PostgreSQL (an advisory lock taken by the insert statement itself, before the
row's id is drawn) so message ids follow arrival order per user, which is the order turns are processed in.

A new message of a known chat costs two SQL statements: one look-up (the chat's user, whether this message is
stored already, whether the chat is marked unreachable or has held replies) and one `INSERT ... ON CONFLICT DO
NOTHING`; the updates that make the chat reachable again and release its held replies run only when the look-up
says they have something to change. A redelivery costs the look-up alone.

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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.delivery import release_held, store_replies
from core.linking import apply_link
from core.messages import ChatRef, InboundMessage, TextReply
from core.models import ChannelIdentity, Direction, MessageStatus, User
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
    #: A redelivered message was still waiting for its turn when looked up (its drain is then scheduled again).
    #: A snapshot, not part of what was stored: left out of comparisons.
    pending: bool = field(default=False, compare=False)


async def user_for(channel: str, external_user_id: str) -> User:
    """The user behind a channel identity, created on first contact (race-safe)."""
    identity = await ChannelIdentity.get_or_none(channel=channel, external_user_id=external_user_id).select_related(
        "user"
    )
    if identity is not None:
        return identity.user
    return await User.get(id=await _create_user(channel, external_user_id))


async def _create_user(channel: str, external_user_id: str) -> int:
    """The id of a new user for a first-contact chat, or of the one a concurrent request created first."""
    try:
        async with in_transaction():
            user = await User.create()
            await ChannelIdentity.create(user=user, channel=channel, external_user_id=external_user_id)
        return int(user.id)
    except IntegrityError:  # another request created it first
        identity = await ChannelIdentity.get(channel=channel, external_user_id=external_user_id)
        return identity.user_id


def arrival_lock_key(user_id: int) -> int:
    """The PostgreSQL advisory lock key serialising one user's inbound inserts (ids then follow commit order)."""
    return zlib.crc32(f"ava-inbox:{user_id}".encode())


# Storing a message of a known chat costs two statements (`store_inbound`): this look-up, then the insert. Both
# are plain SQL: the webhook is the hottest path of the web process, and building them through the ORM cost
# more CPU than running them. `$n` placeholders; SQLite (`dev`) reads them as `?n`.
_LOOKUP = """
SELECT ci.user_id, ci.unreachable_at IS NOT NULL AS unreachable, m.id AS message_id, m.status AS message_status,
  m.id IS NULL AND EXISTS (
    SELECT 1 FROM messages h WHERE h.status = 'held' AND h.direction = 'out' AND h.channel = $1 AND h.chat_id = $2
  ) AS held
FROM (SELECT 1) AS one
LEFT JOIN channel_identities ci ON ci.channel = $1 AND ci.external_user_id = $2
LEFT JOIN messages m ON m.channel = $1 AND m.external_message_id = $3
"""
# The advisory lock (held until this statement's own transaction commits) is taken before the row's id is drawn,
# so a user's ids are committed in id order and a drain reading their oldest pending row never skips one that
# commits later. ON CONFLICT: a concurrent redelivery that won the race leaves this insert with no row.
_INSERT_POSTGRES = """
WITH arrival AS MATERIALIZED (SELECT pg_advisory_xact_lock($11))
INSERT INTO messages (user_id, direction, channel, chat_id, external_message_id, text, choice, status, processed_at,
  created_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM arrival
ON CONFLICT (channel, external_message_id) DO NOTHING
RETURNING id
"""
# SQLite (the single-process `dev`) serialises every write: no lock needed.
_INSERT_SQLITE = """
INSERT INTO messages (user_id, direction, channel, chat_id, external_message_id, text, choice, status, processed_at,
  created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (channel, external_message_id) DO NOTHING
RETURNING id
"""
_EXISTING = "SELECT id, status FROM messages WHERE channel = $1 AND external_message_id = $2"
_PLACEHOLDER = re.compile(r"\$(\d+)")


async def _sql(query: str, values: list[Any]) -> list[dict[str, Any]]:
    """Rows of `query` on the default connection (the caller's transaction, if one is open)."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres":
        query = _PLACEHOLDER.sub(r"?\1", query)
    return list(await conn.execute_query_dict(query, values))


def _postgres() -> bool:
    return bool(connections.get("default").capabilities.dialect == "postgres")


async def store_inbound(msg: InboundMessage, user: User | None = None, *, admit: Admit | None = None) -> Stored:
    """Store `msg` as a pending inbound row unless the platform already delivered it; `admit` (asked only for a
    new message) refusing it stores it as `limited` instead."""
    channel, chat_id = msg.ref.channel, msg.ref.chat_id
    [seen] = await _sql(_LOOKUP, [channel, chat_id, msg.message_id])
    user_id = user.id if user is not None else seen["user_id"]
    if user_id is None:
        user_id = await _create_user(channel, chat_id)
    if seen["message_id"] is not None:
        return Stored(
            user_id, seen["message_id"], created=False, pending=seen["message_status"] == MessageStatus.PENDING
        )
    # The user wrote: their chat is reachable again (it was marked unreachable after a permanent send failure),
    # and replies held for it (a closed 24-hour window) leave before the answer to this message. The look-up said
    # whether either applies, so the common case writes nothing here; the updates themselves stay conditional.
    if seen["unreachable"]:
        await ChannelIdentity.filter(channel=channel, external_user_id=chat_id, unreachable_at__isnull=False).update(
            unreachable_at=None, unreachable_reason=None
        )
    released = await release_held(msg.ref) if seen["held"] else 0
    admitted = admit is None or await admit(user_id)
    text = make_storable(msg.text[:MAX_TEXT_CHARS] if msg.text else msg.text)
    now = datetime.now(UTC)
    values: list[Any] = [
        user_id,
        Direction.INBOUND.value,
        channel,
        chat_id,
        msg.message_id,
        text,
        make_storable(msg.choice),
        (MessageStatus.PENDING if admitted else MessageStatus.LIMITED).value,
        None if admitted else now,
        now,
    ]
    if _postgres():
        rows = await _sql(_INSERT_POSTGRES, [*values, arrival_lock_key(user_id)])
    else:
        rows = await _sql(_INSERT_SQLITE, values)
    if not rows:  # a concurrent redelivery won the race (and, rarely, both counted against the limit)
        [existing] = await _sql(_EXISTING, [channel, msg.message_id])
        return Stored(user_id, existing["id"], created=False, pending=existing["status"] == MessageStatus.PENDING)
    return Stored(user_id, rows[0]["id"], created=True, limited=not admitted, released=released > 0)


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
            if not stored.pending:
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
