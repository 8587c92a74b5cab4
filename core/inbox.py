"""Inbound pipeline, first half: store a message idempotently and schedule its turn. Adapters call this.

A redelivered platform message (same channel + external id) is recognised and does nothing. The external id
must be globally unique on its platform (Telegram: chat id + message id, or the callback query id - a bare
message id is unique per chat only, and update ids restart at random after a week without updates; WhatsApp:
the wamid; web: the user id + the browser's client id). The store step serialises inserts per user on PostgreSQL
(an advisory lock taken in the insert's transaction, before the rows' ids are drawn) so message ids follow arrival
order per user, which is the order turns are processed in.

Messages that arrive while earlier ones are being stored are stored together (`Inbox`, `store_batch`). On
PostgreSQL ONE call of the database function `ava_receive_inbound` (migration 0012) serves the common case: it
looks every message up (its chat's user, whether it is stored already, whether the chat is marked unreachable or has
held replies), takes the arrival locks of the users whose messages need nothing else first, counts their admitted
messages in the rate-limit window and inserts them with one `INSERT ... ON CONFLICT DO NOTHING`; then one Redis round
trip claims the drain slots. A redelivery costs that one call too. The messages it leaves (a first contact, a chat
marked unreachable or holding replies, and a user's later messages of the batch, whose order must hold) take the
longer way: one look-up, the user's creation or the updates that make the chat reachable again and release its held
replies, then one call of `ava_store_inbound` (migration 0010), which does the locks, the count and the insert.
SQLite (`dev`) takes the longer way, row by row.

Per-user inbound rate limit (`InboundLimit`; on when the inbox has a `RateLimiter`): a user's new message is
admitted while they have fewer than `per_window` admitted messages in the last `window_seconds`, counted in
PostgreSQL under their arrival lock, so the count is exact across every replica. A message over the limit is still
stored (nothing is lost, idempotency unchanged) but as `limited`, which no drain, sweeper or `has_work` looks at,
so a flood schedules no drain work and never slows other users. The first limited message of a window stores ONE
slow-down line for the chat it came from (the limiter counts those lines) and schedules its delivery. Only new
messages count: a redelivery is recognised before the window is counted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core.batching import Coalescer
from core.delivery import release_held, store_replies
from core.linking import apply_link
from core.messages import ChatRef, InboundMessage, TextReply
from core.models import ChannelIdentity, MessageStatus, User
from core.outcome import Outcome
from core.ports import BatchTurnQueue, RateLimiter, TurnQueue

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


#: Where users' arrival lock keys start: above every CRC-32 (the keys of migration 0010's callers).
ARRIVAL_LOCK_BASE = 0x4156_4100_0000_0000


def arrival_lock_key(user_id: int) -> int:
    """The PostgreSQL advisory lock key serialising one user's inbound inserts (ids then follow commit order); the
    database computes the same (`ava_arrival_lock`, migration 0012)."""
    return ARRIVAL_LOCK_BASE + user_id


# Messages that arrive together are stored together (`store_batch`): one look-up for all of them, then one call
# that locks, counts and inserts. Plain SQL: the webhook is the hottest path of the web process, and building these
# through the ORM cost more CPU than running them. `$n` placeholders; SQLite (`dev`) reads them as `?n`.
_LOOKUP = """
SELECT ci.user_id, ci.unreachable_at IS NOT NULL AS unreachable, m.id AS message_id, m.status AS message_status,
  m.id IS NULL AND EXISTS (
    SELECT 1 FROM messages h WHERE h.status = 'held' AND h.direction = 'out' AND h.channel = $1 AND h.chat_id = $2
  ) AS held
FROM (SELECT 1) AS one
LEFT JOIN channel_identities ci ON ci.channel = $1 AND ci.external_user_id = $2
LEFT JOIN messages m ON m.channel = $1 AND m.external_message_id = $3
"""
_LOOKUP_MANY = """
SELECT b.ord, ci.user_id, ci.unreachable_at IS NOT NULL AS unreachable, m.id AS message_id,
  m.status AS message_status,
  m.id IS NULL AND EXISTS (
    SELECT 1 FROM messages h
    WHERE h.status = 'held' AND h.direction = 'out' AND h.channel = b.channel AND h.chat_id = b.chat_id
  ) AS held
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS b(channel, chat_id, external_id, ord)
LEFT JOIN channel_identities ci ON ci.channel = b.channel AND ci.external_user_id = b.chat_id
LEFT JOIN messages m ON m.channel = b.channel AND m.external_message_id = b.external_id
ORDER BY b.ord
"""
# PostgreSQL stores a batch's new messages in one round trip: `ava_store_inbound` (migration 0010) takes the users'
# arrival locks in key order, then inserts the rows in arrival order, each admitted or limited by its user's
# admitted messages in the window, counted under the lock. Returns each inserted row's id and status.
_STORE_MANY = "SELECT * FROM ava_store_inbound($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
# The common case in ONE round trip: `ava_receive_inbound` (migration 0012) is the look-up and the store together,
# for the messages that need nothing else first (known chat, reachable, no held replies). The rest is left to the
# look-up and store above.
_RECEIVE_MANY = "SELECT * FROM ava_receive_inbound($1, $2, $3, $4, $5, $6, $7, $8, $9)"
_RECENT_ONE = """
SELECT count(*) AS recent FROM (
  SELECT 1 FROM messages m
  WHERE m.user_id = $1 AND m.direction = 'in' AND m.status <> 'limited' AND m.created_at > $2
  LIMIT $3
) AS w
"""
# SQLite (the single-process `dev`) serialises every write: no lock needed; one row at a time, in a transaction with
# the window count (`_RECENT_ONE`) that decides its status.
_INSERT_ONE = """
INSERT INTO messages (user_id, direction, channel, chat_id, external_message_id, text, choice, status, processed_at,
  created_at)
VALUES ($1, 'in', $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (channel, external_message_id) DO NOTHING
RETURNING id AS stored_id, channel AS stored_channel, external_message_id AS stored_external_id,
  status AS stored_status
"""
_EXISTING = "SELECT id, status FROM messages WHERE channel = $1 AND external_message_id = $2"
_PLACEHOLDER = re.compile(r"\$(\d+)")


#: SQLSTATE of `ava_require` (migration 0011): a one-statement write rolled back because a part did not take place.
NOT_COMMITTED = "AVA01"


async def _sql(query: str, values: list[Any]) -> list[dict[str, Any]]:
    """Rows of `query` on the default connection (the caller's transaction, if one is open)."""
    conn = connections.get("default")
    if conn.capabilities.dialect != "postgres":
        query = _PLACEHOLDER.sub(r"?\1", query)
    return list(await conn.execute_query_dict(query, values))


def _postgres() -> bool:
    return bool(connections.get("default").capabilities.dialect == "postgres")


@dataclass(frozen=True, slots=True)
class _New:
    """A message to insert: where it is in the batch, its user, and whether its chat's held replies were released."""

    index: int
    msg: InboundMessage
    user_id: int
    released: bool = False


async def store_inbound(msg: InboundMessage, user: User | None = None, *, limit: InboundLimit | None = None) -> Stored:
    """Store `msg` as a pending inbound row unless the platform already delivered it; with a `limit`, a new message
    over the user's limit is stored as `limited` instead."""
    [stored] = await store_batch([(msg, user)], limit=limit)
    return stored


async def store_batch(
    received: Sequence[tuple[InboundMessage, User | None]], *, limit: InboundLimit | None = None
) -> list[Stored]:
    """Store messages that arrived together, in their order (see `store_inbound`). On PostgreSQL one call
    (`_RECEIVE_MANY`) looks them up and stores those of known chats; the others (first contacts, a chat marked
    unreachable or holding replies, and what must stay after them) go on to one look-up, then one store call
    (`_STORE_MANY`). A message's user is the given one, else its chat's (created on first contact). A message that
    is in the batch twice is stored once (the second is a redelivery)."""
    if not _postgres():
        return await _look_up_and_store(received, limit)
    results, left = await _receive(received, limit)
    if left:
        for index, stored in zip(left, await _look_up_and_store([received[i] for i in left], limit), strict=True):
            results[index] = stored
    assert all(stored is not None for stored in results)
    return [stored for stored in results if stored is not None]


async def _receive(
    received: Sequence[tuple[InboundMessage, User | None]], limit: InboundLimit | None
) -> tuple[list[Stored | None], list[int]]:
    """PostgreSQL, one round trip: the look-up and the store of every message that needs nothing else first. The
    results (None where not settled) and the indexes of the messages left for `_look_up_and_store`."""
    now = datetime.now(UTC)
    since = now - timedelta(seconds=limit.window_seconds) if limit is not None else now
    rows = await _sql(
        _RECEIVE_MANY,
        [
            [user.id if user is not None else None for _, user in received],
            *_message_columns([msg for msg, _ in received]),
            limit.per_window if limit is not None else None,
            since,
            now,
        ],
    )
    results: list[Stored | None] = [None] * len(received)
    first_of: dict[tuple[str, str], int] = {}
    left: list[int] = []
    for index, ((msg, _), row) in enumerate(zip(received, rows, strict=True)):
        key = (msg.ref.channel, msg.message_id)
        first = first_of.setdefault(key, index)
        if row["stored_id"] is not None:
            limited = row["stored_status"] == MessageStatus.LIMITED
            results[index] = Stored(row["user_id"], row["stored_id"], created=True, limited=limited)
        elif row["message_id"] is not None:  # a redelivery
            pending = row["message_status"] == MessageStatus.PENDING
            results[index] = Stored(row["user_id"], row["message_id"], created=False, pending=pending)
        elif first != index and (earlier := results[first]) is not None:  # twice in the batch: stored once
            results[index] = Stored(earlier.user_id, earlier.message_id, created=False, pending=_is_pending(earlier))
        else:
            left.append(index)
    return results, left


async def _look_up_and_store(
    received: Sequence[tuple[InboundMessage, User | None]], limit: InboundLimit | None
) -> list[Stored]:
    """`store_batch` in two steps: one look-up for all the messages, then one store call (`_STORE_MANY`; SQLite:
    row by row)."""
    results: list[Stored | None] = [None] * len(received)
    new: list[_New] = []
    first_of: dict[tuple[str, str], int] = {}  # (channel, external id) -> index of its first occurrence
    looked_up = await _look_up(received)
    # First contacts: each new chat's user is created once, the batch's new chats at the same time.
    new_chats = list(
        dict.fromkeys(
            (msg.ref.channel, msg.ref.chat_id)
            for (msg, user), seen in zip(received, looked_up, strict=True)
            if user is None and seen["user_id"] is None
        )
    )
    created = await asyncio.gather(*(_create_user(channel, chat_id) for channel, chat_id in new_chats))
    users_of_new_chats = dict(zip(new_chats, created, strict=True))
    for index, ((msg, user), seen) in enumerate(zip(received, looked_up, strict=True)):
        channel, chat_id = msg.ref.channel, msg.ref.chat_id
        key = (channel, msg.message_id)
        if key in first_of:
            continue  # resolved from its first occurrence below
        first_of[key] = index
        user_id = user.id if user is not None else seen["user_id"] or users_of_new_chats[(channel, chat_id)]
        if seen["message_id"] is not None:
            results[index] = Stored(
                user_id, seen["message_id"], created=False, pending=seen["message_status"] == MessageStatus.PENDING
            )
            continue
        # The user wrote: their chat is reachable again (it was marked unreachable after a permanent send failure),
        # and replies held for it (a closed 24-hour window) leave before the answer to this message. The look-up
        # said whether either applies, so the common case writes nothing here; the updates stay conditional.
        if seen["unreachable"]:
            await ChannelIdentity.filter(
                channel=channel, external_user_id=chat_id, unreachable_at__isnull=False
            ).update(unreachable_at=None, unreachable_reason=None)
        released = await release_held(msg.ref) if seen["held"] else 0
        new.append(_New(index, msg, user_id, released=released > 0))
    if new:
        for item, stored in zip(new, await _insert(new, limit), strict=True):
            results[item.index] = stored
    for index, (msg, _) in enumerate(received):
        if results[index] is None:  # the same message twice in one batch: the second one is a redelivery
            first = results[first_of[(msg.ref.channel, msg.message_id)]]
            assert first is not None
            results[index] = Stored(first.user_id, first.message_id, created=False, pending=_is_pending(first))
    assert all(stored is not None for stored in results)
    return [stored for stored in results if stored is not None]


def _is_pending(stored: Stored) -> bool:
    return not stored.limited if stored.created else stored.pending


async def _look_up(received: Sequence[tuple[InboundMessage, User | None]]) -> list[dict[str, Any]]:
    """Per message: its chat's user (None for a new chat), whether it is stored already (and its status), whether
    its chat is unreachable, whether the chat has held replies."""
    if not _postgres():
        return [(await _sql(_LOOKUP, [msg.ref.channel, msg.ref.chat_id, msg.message_id]))[0] for msg, _ in received]
    return await _sql(
        _LOOKUP_MANY,
        [
            [msg.ref.channel for msg, _ in received],
            [msg.ref.chat_id for msg, _ in received],
            [msg.message_id for msg, _ in received],
        ],
    )


async def _insert(new: list[_New], limit: InboundLimit | None) -> list[Stored]:
    """Insert the new messages (see `_STORE_MANY`); the stored rows in `new`'s order."""
    now = datetime.now(UTC)
    since = now - timedelta(seconds=limit.window_seconds) if limit is not None else now
    per_window = limit.per_window if limit is not None else None
    if _postgres():
        rows = await _sql(
            _STORE_MANY, [*_columns(new), [arrival_lock_key(i.user_id) for i in new], per_window, since, now]
        )
    else:
        rows = await _insert_one_by_one(new, per_window, since, now)
    inserted = {(row["stored_channel"], row["stored_external_id"]): row for row in rows}
    stored = []
    for item in new:
        channel, external_id = item.msg.ref.channel, item.msg.message_id
        row = inserted.get((channel, external_id))
        if row is None:  # a concurrent redelivery won the race (and, rarely, both counted against the limit)
            [existing] = await _sql(_EXISTING, [channel, external_id])
            stored.append(
                Stored(item.user_id, existing["id"], created=False, pending=existing["status"] == MessageStatus.PENDING)
            )
        else:
            limited = row["stored_status"] == MessageStatus.LIMITED
            stored.append(Stored(item.user_id, row["stored_id"], created=True, limited=limited, released=item.released))
    return stored


def _columns(new: list[_New]) -> list[list[Any]]:
    """The new rows as columns: user ids, channels, chat ids, external ids, texts, choices."""
    return [[item.user_id for item in new], *_message_columns([item.msg for item in new])]


def _message_columns(messages: Sequence[InboundMessage]) -> list[list[Any]]:
    """The messages as columns: channels, chat ids, external ids, texts (cut to `MAX_TEXT_CHARS`), choices."""
    return [
        [msg.ref.channel for msg in messages],
        [msg.ref.chat_id for msg in messages],
        [msg.message_id for msg in messages],
        [make_storable(msg.text[:MAX_TEXT_CHARS] if msg.text else msg.text) for msg in messages],
        [make_storable(msg.choice) for msg in messages],
    ]


async def _insert_one_by_one(
    new: list[_New], per_window: int | None, since: datetime, now: datetime
) -> list[dict[str, Any]]:
    """SQLite: `_STORE_MANY`'s work row by row, in one transaction."""
    rows = []
    recent: dict[int, int] = {}
    async with in_transaction():
        for row in zip(*_columns(new), strict=True):
            user_id = row[0]
            status = MessageStatus.PENDING
            if per_window is not None:
                if user_id not in recent:
                    [counted] = await _sql(_RECENT_ONE, [user_id, since, per_window])
                    recent[user_id] = int(counted["recent"])
                if recent[user_id] >= per_window:
                    status = MessageStatus.LIMITED
                else:
                    recent[user_id] += 1
            processed_at = now if status == MessageStatus.LIMITED else None
            rows += await _sql(_INSERT_ONE, [*row, status.value, processed_at, now])
    return rows


#: Batches an inbox stores at once (each chat always in the same lane).
LANES = 2
#: Users an inbox remembers having told to slow down before it forgets those whose window is over.
TOLD_USERS_KEPT = 10_000


class Inbox:
    """Adapters' entry point: store, then enqueue the turn, then return at once.

    Messages received while the previous ones are being stored are stored together (`store_batch`) and their
    drains scheduled together: under load, one look-up, one transaction and one Redis round trip serve many
    webhooks, and a lone message waits for nothing. Chats are spread over `LANES` lanes, each storing one batch at
    a time, so a chat's messages are stored in the order they arrived while several batches use the database at
    once. If a batch fails, its messages are retried one by one, so one message the database refuses fails alone.

    With a `limiter`, each user's new messages are counted against `limit` (see the module docstring).
    """

    def __init__(
        self, queue: TurnQueue, *, limiter: RateLimiter | None = None, limit: InboundLimit | None = None
    ) -> None:
        self._queue = queue
        self._limiter = limiter
        self._limit = limit or InboundLimit()
        self._lanes: list[Coalescer[tuple[InboundMessage, User | None], Stored]] = [
            Coalescer(self._receive_batch) for _ in range(LANES)
        ]
        #: Users this process gave the slow-down line, until when (monotonic): no line is due before (see `_slow_down`).
        self._told_until: dict[int, float] = {}

    async def receive(self, msg: InboundMessage, user: User | None = None) -> Stored:
        """Store `msg` idempotently and schedule processing; a duplicate is acknowledged and ignored."""
        if user is None:
            user = await apply_link(msg)  # a link code moves the chat to its web account first
        lane = self._lanes[hash((msg.ref.channel, msg.ref.chat_id)) % LANES]  # a chat keeps to one lane
        return await lane.submit((msg, user))

    async def _receive_batch(self, received: list[tuple[InboundMessage, User | None]]) -> list[Stored]:
        stored = await store_batch(received, limit=self._limit if self._limiter is not None else None)
        drains: list[int] = []
        told: set[int] = set()  # users whose slow-down line was asked for in this batch
        for (msg, _), result in zip(received, stored, strict=True):
            if not result.created:
                logger.info("duplicate inbound %s message ignored", msg.ref.channel)
                # A redelivery after a failed schedule (Redis hiccup, 5xx to the platform) must not wait for the
                # sweeper: schedule again while it is pending (a no-op when a drain holds the slot).
                if not result.pending:
                    continue
            elif result.limited:
                # No turn: only the window's one slow-down line (or released held replies) needs the drain.
                line = result.user_id not in told and await self._slow_down(msg.ref, result)
                told.add(result.user_id)
                if not (line or result.released):
                    continue
            drains.append(result.user_id)
        await schedule_drains(self._queue, drains)
        return stored

    async def _slow_down(self, ref: ChatRef, stored: Stored) -> bool:
        """Store the slow-down line unless the user got it in this window already; True when stored.

        The shared limiter decides (one line per window across every replica). Once it gave this process the line,
        the window is known to be taken until a window's length after: a flood's later messages do not ask it again
        (one Redis round trip per limited message) until then."""
        assert self._limiter is not None
        now = time.monotonic()
        if self._told_until.get(stored.user_id, 0.0) > now:
            return False
        if not await self._limiter.hit(f"inbound:slowdown:{stored.user_id}", 1, self._limit.window_seconds):
            return False
        if len(self._told_until) >= TOLD_USERS_KEPT:  # bounded: forget the windows that are over
            self._told_until = {user: until for user, until in self._told_until.items() if until > now}
        self._told_until[stored.user_id] = now + self._limit.window_seconds
        # Keyed by the limited message: a retried call stores the line once.
        await store_replies(
            stored.user_id, ref, Outcome([TextReply(SLOW_DOWN_LINE)]), key=f"slowdown:{stored.message_id}"
        )
        logger.info("user %s is over the inbound limit: told to slow down", stored.user_id)
        return True


async def schedule_drains(queue: TurnQueue, user_ids: Sequence[int]) -> None:
    """Schedule the drains of `user_ids` (each once), in one round trip when the queue can."""
    users = list(dict.fromkeys(user_ids))
    if isinstance(queue, BatchTurnQueue):
        await queue.schedule_many(users)
    else:
        for user_id in users:
            await queue.schedule(user_id)
