"""The inbound store on real PostgreSQL: what one webhook costs in statements, and the per-user arrival lock.

The webhook is the web process's hottest path: a new message of a known chat is one look-up and one insert, a
redelivery only the look-up (counted from Tortoise's statement log, which every query goes through). The insert
takes the user's advisory lock before its id is drawn, so a user's message ids commit in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import asyncpg  # type: ignore[import-untyped]

from core.inbox import Inbox, arrival_lock_key, store_inbound
from core.messages import ChatRef, InboundMessage
from core.models import ChannelIdentity, Direction, Message, MessageStatus, User
from tests.conftest import _asyncpg_dsn
from tests.fakes.queue import RecordingQueue
from tests.support import eventually

MARA = ChatRef("telegram", "6103344817")
#: Whether a session of this database waits for the advisory lock `$1` (a key below 2**32: its low half is `objid`).
WAITING_FOR_KEY = """
SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database() AND l.objid::bigint = $1
"""


def text(n: int, ref: ChatRef = MARA) -> InboundMessage:
    """Message number `n` of a chat."""
    return InboundMessage(ref, f"message:{ref.chat_id}:{n}", f"Hi Ava ({n})")


class _Statements(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def statements() -> Iterator[list[logging.LogRecord]]:
    """The SQL statements run in the block (Tortoise logs each at DEBUG, with its parameters)."""
    log = logging.getLogger("tortoise.db_client")
    handler, level = _Statements(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        log.setLevel(level)
        log.removeHandler(handler)


async def test_a_new_message_of_a_known_chat_is_two_statements_and_a_redelivery_one(db: str) -> None:
    """Known chat: a new message costs one look-up and one insert; its redelivery only the look-up."""
    queue = RecordingQueue()
    inbox = Inbox(queue)
    first = await inbox.receive(text(1))  # first contact creates the user
    with statements() as new:
        second = await inbox.receive(text(2))
    with statements() as again:
        redelivered = await inbox.receive(text(2))
    assert len(new) == 2, [r.getMessage()[:80] for r in new]
    assert len(again) == 1, [r.getMessage()[:80] for r in again]
    assert (second.created, redelivered.created) == (True, False)
    assert redelivered.message_id == second.message_id
    assert second.user_id == first.user_id
    assert [m.text for m in await Message.filter(direction=Direction.INBOUND).order_by("id")] == [
        "Hi Ava (1)",
        "Hi Ava (2)",
    ]


async def test_a_redelivered_pending_message_schedules_its_drain_again(db: str) -> None:
    """A redelivery of a message still pending asks for the drain again (a lost schedule must not wait for the
    sweeper); one already answered does not."""
    queue = RecordingQueue()
    stored = await Inbox(queue).receive(text(1))
    again = RecordingQueue()
    await Inbox(again).receive(text(1))
    assert again.calls == [stored.user_id]
    await Message.filter(id=stored.message_id).update(status=MessageStatus.DONE)
    done = RecordingQueue()
    await Inbox(done).receive(text(1))
    assert done.calls == []


async def test_writing_again_clears_unreachable_and_releases_held_replies(db: str) -> None:
    """A new message marks the chat reachable again and puts its held replies back to pending."""
    stored = await store_inbound(text(1))
    await ChannelIdentity.filter(channel=MARA.channel, external_user_id=MARA.chat_id).update(
        unreachable_at=datetime.now(UTC), unreachable_reason="blocked"
    )
    held = await Message.create(
        user_id=stored.user_id,
        direction=Direction.OUTBOUND,
        channel=MARA.channel,
        chat_id=MARA.chat_id,
        text="A reply that waited",
        status=MessageStatus.HELD,
    )
    second = await store_inbound(text(2))
    assert second.released
    identity = await ChannelIdentity.get(channel=MARA.channel, external_user_id=MARA.chat_id)
    assert (identity.unreachable_at, identity.unreachable_reason) == (None, None)
    assert (await Message.get(id=held.id)).status == MessageStatus.PENDING
    third = await store_inbound(text(3))
    assert not third.released


async def test_an_insert_waits_for_the_users_arrival_lock(db: str) -> None:
    """While another transaction holds the user's arrival lock, a new message of theirs is not inserted; it is
    once the lock is released (so ids are drawn and committed in one order per user)."""
    user = await User.create()
    await ChannelIdentity.create(user=user, channel=MARA.channel, external_user_id=MARA.chat_id)
    holder = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", arrival_lock_key(user.id))
        task = asyncio.create_task(store_inbound(text(1)))

        async def waiting() -> bool:
            # pg_locks covers the whole server: only this database's waiter on this user's key counts.
            return bool(await holder.fetchval(WAITING_FOR_KEY, arrival_lock_key(user.id)))

        await eventually(waiting, what="the insert waiting for the arrival lock")
        assert not task.done()
        assert await holder.fetchval("SELECT count(*) FROM messages") == 0
        await transaction.commit()
        stored = await asyncio.wait_for(task, 10)
    finally:
        await holder.close()
    assert stored.created and stored.user_id == user.id
    assert await Message.filter(id=stored.message_id, status=MessageStatus.PENDING).exists()
