"""The inbound store on real PostgreSQL: what one webhook costs in statements, and the per-user arrival lock.

The webhook is the web process's hottest path: a new message of a known chat is ONE statement (look-up, arrival
lock, window count, insert: `ava_receive_inbound`), and so is a redelivery (counted from Tortoise's statement log,
which every query goes through); messages arriving together share it. What needs more first (a first contact, a
chat marked unreachable or holding replies) goes on to a look-up and a store call. The user's advisory lock is taken
before any id is drawn, so a user's message ids commit in order.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import Counter
from datetime import UTC, datetime

import asyncpg  # type: ignore[import-untyped]

from ava_bot.ratelimits import RedisRateLimiter
from core.inbox import LANES, InboundLimit, Inbox, Stored, arrival_lock_key, store_batch, store_inbound
from core.messages import ChatRef, InboundMessage
from core.models import ChannelIdentity, Direction, Message, MessageStatus, User
from tests.conftest import TEST_REDIS_URL, _asyncpg_dsn
from tests.fakes.queue import RecordingQueue
from tests.support import eventually, statements

MARA = ChatRef("telegram", "6103344817")
#: Whether a session of this database waits for the advisory lock `$1` (a bigint key: its high half is `classid`,
#: its low half `objid`).
WAITING_FOR_KEY = """
SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()
  AND (l.classid::bigint << 32) | l.objid::bigint = $1
"""


def text(n: int, ref: ChatRef = MARA) -> InboundMessage:
    """Message number `n` of a chat."""
    return InboundMessage(ref, f"message:{ref.chat_id}:{n}", f"Hi Ava ({n})")


async def test_a_new_message_of_a_known_chat_is_one_statement_and_so_is_a_redelivery(db: str) -> None:
    """Known chat: a new message costs one call that looks it up, takes the arrival lock, counts the window (with the
    rate limit on) and inserts; its redelivery the same one call (which finds it and inserts nothing)."""
    queue = RecordingQueue()
    inbox = Inbox(queue)
    limited = Inbox(queue, limiter=RedisRateLimiter.from_url(TEST_REDIS_URL), limit=InboundLimit(per_window=5))
    first = await inbox.receive(text(1))  # first contact creates the user
    with statements() as new:
        second = await inbox.receive(text(2))
    with statements() as again:
        redelivered = await inbox.receive(text(2))
    with statements() as counted:
        third = await limited.receive(text(3))
    assert _kinds(new) == ["receive"]
    assert _kinds(again) == ["receive"]
    assert _kinds(counted) == ["receive"]
    assert (second.created, redelivered.created, third.created) == (True, False, True)
    assert redelivered.message_id == second.message_id
    assert second.user_id == first.user_id == third.user_id
    assert [m.text for m in await Message.filter(direction=Direction.INBOUND).order_by("id")] == [
        "Hi Ava (1)",
        "Hi Ava (2)",
        "Hi Ava (3)",
    ]


def _kinds(records: list[logging.LogRecord]) -> list[str]:
    """What each logged statement is (a transaction's BEGIN and COMMIT would be logged too)."""
    kinds = {
        "SELECT * FROM ava_receive_inbound": "receive",
        "SELECT b.ord": "look-up",
        "SELECT * FROM ava_store_inbound": "store",
    }
    found = []
    for record in records:
        sql = " ".join(str(record.args[0] if record.args else record.getMessage()).split())
        found.append(next((kind for start, kind in kinds.items() if sql.startswith(start)), sql[:40]))
    return found


async def test_messages_arriving_together_are_stored_with_one_statement(db: str) -> None:
    """Twenty webhooks of twenty known chats at once: one call per lane for all of them; each gets its own row,
    pending, scheduled."""
    refs = [ChatRef("telegram", str(6_200_000_000 + i)) for i in range(20)]
    queue = RecordingQueue()
    inbox = Inbox(queue, limiter=RedisRateLimiter.from_url(TEST_REDIS_URL), limit=InboundLimit(per_window=5))
    users = [await inbox.receive(text(0, ref)) for ref in refs]  # first contact, one by one
    queue.calls.clear()
    with statements() as together:
        stored = await asyncio.gather(*(inbox.receive(text(1, ref)) for ref in refs))
    kinds = _kinds(together)  # one batch per lane the chats fall in
    batches = kinds.count("receive")
    assert 1 <= batches <= LANES, kinds
    assert Counter(kinds) == Counter({"receive": batches})
    assert [s.user_id for s in stored] == [u.user_id for u in users]
    assert all(s.created and not s.limited for s in stored)
    assert len({s.message_id for s in stored}) == 20
    assert sorted(queue.calls) == sorted(u.user_id for u in users)
    rows = await Message.filter(id__in=[s.message_id for s in stored])
    assert {(r.chat_id, r.text, r.status) for r in rows} == {(ref.chat_id, "Hi Ava (1)", "pending") for ref in refs}


async def test_a_users_messages_stored_together_keep_their_order_and_their_limit(db: str) -> None:
    """Eight messages of one user in one batch (limit 5, one admitted earlier): ids follow arrival order, the
    first four are admitted and the rest limited; the same message twice in the batch is stored once."""
    queue = RecordingQueue()
    inbox = Inbox(queue, limiter=RedisRateLimiter.from_url(TEST_REDIS_URL), limit=InboundLimit(per_window=5))
    first = await inbox.receive(text(0))
    batch = [text(n) for n in range(1, 8)]
    batch.insert(3, text(2))  # a redelivery of message 2 arriving with it
    stored = await asyncio.gather(*(inbox.receive(msg) for msg in batch))
    duplicate = stored.pop(3)
    assert [s.message_id for s in stored] == sorted(s.message_id for s in stored)
    assert all(s.message_id > first.message_id for s in stored)
    assert [s.limited for s in stored] == [False] * 4 + [True] * 3
    assert (duplicate.created, duplicate.message_id, duplicate.pending) == (False, stored[1].message_id, True)
    rows = await Message.filter(direction=Direction.INBOUND).order_by("id")
    assert [r.text for r in rows] == [f"Hi Ava ({n})" for n in range(8)]
    assert [r.status for r in rows] == ["pending"] * 5 + ["limited"] * 3
    assert all(r.processed_at is not None for r in rows[5:])


async def test_a_message_the_database_refuses_fails_alone(db: str) -> None:
    """In a batch, a message the database cannot store (an id longer than its column) fails with its error; the
    others of the batch are stored and scheduled as if it were not there."""
    queue = RecordingQueue()
    inbox = Inbox(queue)
    await inbox.receive(text(0))
    bad = InboundMessage(MARA, "x" * 500, "too long an id")
    results = await asyncio.gather(
        inbox.receive(text(1)), inbox.receive(bad), inbox.receive(text(2)), return_exceptions=True
    )
    assert isinstance(results[1], Exception), results[1]
    good = [r for i, r in enumerate(results) if i != 1]
    assert all(isinstance(r, Stored) and r.created for r in good), good
    assert [m.text for m in await Message.filter(direction=Direction.INBOUND).order_by("id")] == [
        "Hi Ava (0)",
        "Hi Ava (1)",
        "Hi Ava (2)",
    ]


async def test_two_inboxes_storing_the_same_users_at_once_neither_deadlock_nor_reorder(db: str) -> None:
    """Two web processes (two inboxes) storing batches of the same ten users at once, each user's messages
    alternating between them: every message is stored once, no deadlock (the locks are taken in key order), and
    each user's ids follow the order each inbox received their messages in."""
    refs = [ChatRef("telegram", str(6_300_000_000 + i)) for i in range(10)]
    one, two = Inbox(RecordingQueue()), Inbox(RecordingQueue())
    for ref in refs:
        await one.receive(text(0, ref))
    calls = [(one if n % 2 else two).receive(text(n, ref)) for n in range(1, 21) for ref in reversed(refs)]
    stored = await asyncio.wait_for(asyncio.gather(*calls), 30)
    assert all(s.created for s in stored) and len({s.message_id for s in stored}) == 200
    for ref in refs:
        rows = await Message.filter(chat_id=ref.chat_id, direction=Direction.INBOUND).order_by("id")
        numbers = [int((r.text or "").removeprefix("Hi Ava (").removesuffix(")")) for r in rows]
        assert numbers[0] == 0 and sorted(numbers) == list(range(21))
        # Each inbox stored this user's messages in the order it received them.
        assert [n for n in numbers if n % 2] == list(range(1, 21, 2))
        assert [n for n in numbers[1:] if not n % 2] == list(range(2, 21, 2))


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


async def test_first_contacts_arriving_together_each_get_one_user(db: str) -> None:
    """Twenty new chats at once, one of them twice: twenty users (created side by side), one identity each, the
    repeated chat's two messages under its one user."""
    refs = [ChatRef("whatsapp", str(4_917_000_000 + i)) for i in range(20)]
    inbox = Inbox(RecordingQueue())
    calls = [inbox.receive(text(1, ref)) for ref in refs] + [inbox.receive(text(2, refs[0]))]
    stored = await asyncio.gather(*calls)
    assert len({s.user_id for s in stored}) == 20 and stored[0].user_id == stored[-1].user_id
    assert await User.all().count() == 20
    assert await ChannelIdentity.all().count() == 20
    assert all(s.created for s in stored)


async def test_a_chat_that_needs_more_first_takes_the_longer_way_and_its_users_order_holds(db: str) -> None:
    """One user, two chats, three messages arriving together: Telegram, then WhatsApp (marked unreachable), then
    Telegram again. The first is stored by the one call; the unreachable chat's message needs its update first, and
    the user's later message waits with it (the longer way: look-up, the update, store call), so ids follow
    arrival order and the chat is reachable again."""
    user = await User.create()
    whatsapp = ChatRef("whatsapp", "4915112345678")
    await ChannelIdentity.create(user=user, channel=MARA.channel, external_user_id=MARA.chat_id)
    await ChannelIdentity.create(
        user=user, channel=whatsapp.channel, external_user_id=whatsapp.chat_id, unreachable_at=datetime.now(UTC)
    )
    batch = [text(1), text(2, whatsapp), text(3)]
    with statements() as run:
        stored = await store_batch([(msg, None) for msg in batch])
    kinds = _kinds(run)
    assert kinds[:2] == ["receive", "look-up"] and kinds[-1] == "store", kinds
    assert all(s.created and s.user_id == user.id for s in stored)
    assert [s.message_id for s in stored] == sorted(s.message_id for s in stored)
    rows = await Message.filter(direction=Direction.INBOUND).order_by("id")
    assert [r.text for r in rows] == ["Hi Ava (1)", "Hi Ava (2)", "Hi Ava (3)"]
    identity = await ChannelIdentity.get(channel=whatsapp.channel, external_user_id=whatsapp.chat_id)
    assert identity.unreachable_at is None
    with statements() as after:  # reachable now: the one call again
        [fourth] = await store_batch([(text(4, whatsapp), None)])
    assert _kinds(after) == ["receive"] and fourth.created and fourth.message_id > stored[-1].message_id


async def test_a_first_contact_takes_the_longer_way(db: str) -> None:
    """A new chat: the one call finds no user and stores nothing; the look-up, the user's creation and the store
    call follow, and the chat's next message is the one call."""
    with statements() as first_contact:
        first = await store_inbound(text(1))
    kinds = _kinds(first_contact)
    assert kinds[:2] == ["receive", "look-up"] and kinds[-1] == "store", kinds
    with statements() as known:
        second = await store_inbound(text(2))
    assert _kinds(known) == ["receive"]
    assert first.created and second.created and first.user_id == second.user_id
    assert await User.all().count() == 1


async def test_the_database_computes_the_same_arrival_lock_key(db: str) -> None:
    """`ava_arrival_lock` (SQL) and `arrival_lock_key` (Python) agree, above every CRC-32 key of the previous
    release."""
    connection = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        for user_id in (1, 42, 2**31 + 7, 10**12):
            assert await connection.fetchval("SELECT ava_arrival_lock($1)", user_id) == arrival_lock_key(user_id)
            assert arrival_lock_key(user_id) > 2**32
    finally:
        await connection.close()


async def test_a_previous_release_storing_the_same_user_waits_for_the_lock(db: str) -> None:
    """Rolling deploy: a web replica of the previous release calls `ava_store_inbound` with its CRC-32 lock key;
    while this release holds the user's arrival lock, that insert waits for it too."""
    user = await User.create()
    holder = await asyncpg.connect(_asyncpg_dsn(db))
    previous = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", arrival_lock_key(user.id))
        old_key = zlib.crc32(f"ava-inbox:{user.id}".encode())  # what the previous release passed
        call = previous.fetch(
            "SELECT * FROM ava_store_inbound($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [user.id],
            [MARA.channel],
            [MARA.chat_id],
            ["message:old:1"],
            ["Hi from the old release"],
            [None],
            [old_key],
            None,
            datetime.now(UTC),
            datetime.now(UTC),
        )
        task = asyncio.create_task(call)

        async def waiting() -> bool:
            return bool(await holder.fetchval(WAITING_FOR_KEY, arrival_lock_key(user.id)))

        await eventually(waiting, what="the previous release's insert waiting for the arrival lock")
        assert await holder.fetchval("SELECT count(*) FROM messages") == 0
        await transaction.commit()
        [row] = await asyncio.wait_for(task, 10)
    finally:
        await holder.close()
        await previous.close()
    assert row["stored_status"] == "pending"
    assert await Message.filter(id=row["stored_id"], user_id=user.id).exists()
