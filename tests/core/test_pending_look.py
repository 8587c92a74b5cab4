"""The drain's plain-SQL looks on both databases: `pending_rows` (the user's pending rows, and which replies' chats
are reachable) and `has_work` (anything pending and due), PostgreSQL in this process and SQLite, the `ava-bot dev`
database, in a subprocess (the test session's ORM is open on PostgreSQL) running the same scenario; and
`lock_user`'s row lock."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise.exceptions import DoesNotExist
from tortoise.transactions import in_transaction

from core.models import ChannelIdentity, Direction, Message, MessageStatus, User
from core.turns import has_work, lock_user, pending_rows
from tests.ava_bot.test_database import _asyncpg_dsn

EXPECTED = {
    "order": ["hello", "late", "later", "hi"],
    "reachable": ["hello", "later"],
    "work": [True, False, True],
    "locked": True,
}


async def scenario() -> dict[str, Any]:
    """One user with a reachable and an unreachable chat: what the looks say as rows are sent and arrive."""
    user = await User.create()
    await ChannelIdentity.create(user=user, channel="telegram", external_user_id="home")
    await ChannelIdentity.create(
        user=user, channel="telegram", external_user_id="old", unreachable_at=datetime.now(UTC) - timedelta(days=1)
    )
    hour = datetime.now(UTC) + timedelta(hours=1)
    for chat_id, text, next_attempt_at in (("home", "hello", None), ("old", "late", None), ("home", "later", hour)):
        await Message.create(
            user=user,
            direction=Direction.OUTBOUND,
            channel="telegram",
            chat_id=chat_id,
            text=text,
            payload={"type": "text", "text": text},
            status=MessageStatus.PENDING,
            next_attempt_at=next_attempt_at,
        )
    other = await User.create()  # another user's pending work is never this user's
    await Message.create(user=other, direction=Direction.INBOUND, channel="web", chat_id="x", text="x")
    await Message.create(user=user, direction=Direction.INBOUND, channel="telegram", chat_id="home", text="hi")
    await Message.create(
        user=user, direction=Direction.INBOUND, channel="telegram", chat_id="home", text="done", status="done"
    )
    rows, reachable = await pending_rows(user.id)
    work = [await has_work(user.id)]
    # The due replies are sent and the message answered: only the reply due in an hour is left (not due yet).
    await Message.filter(user=user, text__in=["hello", "late", "hi"]).update(status=MessageStatus.DONE)
    work.append(await has_work(user.id))
    await Message.create(user=user, direction=Direction.INBOUND, channel="telegram", chat_id="home", text="again")
    work.append(await has_work(user.id))
    return {
        "order": [r.text for r in rows],
        "reachable": [r.text for r in rows if r.id in reachable],
        "work": work,
        "locked": (await lock_user(user.id)).id == user.id,  # on SQLite a plain read: no row locks there
    }


async def test_the_looks_on_postgresql(db: str) -> None:
    """Pending rows in order, both directions, only this user's; the reachable chat's replies marked (a reply not
    due yet included: the drain decides when), the unreachable one's not; has_work sees due work only."""
    assert await scenario() == EXPECTED


SCRIPT = """
import asyncio, json, sys
from ava_bot.db import close_db, init_db
from tests.core.test_pending_look import scenario

async def main():
    await init_db(sys.argv[1])
    print(json.dumps(await scenario()))
    await close_db()

asyncio.run(main())
"""


def test_the_looks_on_sqlite(sqlite_db: Path) -> None:
    """The same scenario on SQLite (placeholders adapted, EXISTS, datetimes compared as stored): the same answers."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AVA_ENV"}}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"sqlite://{sqlite_db}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == EXPECTED


async def test_lock_user_holds_the_row_until_the_transaction_ends(db: str) -> None:
    """`lock_user` (a photo's terminal transition writing its notice) locks the user's row: another connection's
    write waits for the transaction's end. A user who is gone is `DoesNotExist`, as the ORM's `get` says."""
    user = await User.create()
    other = await asyncpg.connect(_asyncpg_dsn(db))
    try:
        async with in_transaction():
            assert (await lock_user(user.id)).id == user.id
            write = asyncio.ensure_future(
                other.execute("UPDATE users SET version = version + 1 WHERE id = $1", user.id)
            )
            await asyncio.sleep(0.3)
            assert not write.done()  # waiting for the lock
        assert await asyncio.wait_for(write, 5) == "UPDATE 1"
    finally:
        await other.close()
    with pytest.raises(DoesNotExist):
        await lock_user(user.id + 1000)
