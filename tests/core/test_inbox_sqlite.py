"""The inbound store on SQLite, the single-process `ava-bot dev` database: the same results as on PostgreSQL (one
row per message, order, the rate limit's window, redeliveries), row by row. Run in a subprocess, as the test
session's ORM is open on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, json, sys
from ava_bot.db import close_db, init_db
from ava_bot.ratelimits import RedisRateLimiter
from core.inbox import InboundLimit, Inbox
from core.messages import ChatRef, InboundMessage
from core.models import Message
from tests.fakes.queue import RecordingQueue

async def main():
    await init_db(sys.argv[1])
    queue = RecordingQueue()
    inbox = Inbox(queue, limiter=RedisRateLimiter.from_url(None), limit=InboundLimit(per_window=3))
    ref = ChatRef("telegram", "42")
    first = await inbox.receive(InboundMessage(ref, "m:0", "zero"))
    batch = [InboundMessage(ref, f"m:{n}", f"text {n}") for n in range(1, 5)] + [InboundMessage(ref, "m:1", "again")]
    stored = await asyncio.gather(*(inbox.receive(m) for m in batch))
    rows = await Message.filter(direction="in").order_by("id").values_list("external_message_id", "status", "text")
    print(json.dumps({
        "first": [first.created, first.limited],
        "stored": [[s.message_id, s.created, s.limited] for s in stored],
        "rows": rows,
        "lines": await Message.filter(direction="out").count(),
        "scheduled": sorted(set(queue.calls)) == [first.user_id],
    }))
    await close_db()

asyncio.run(main())
"""


def test_sqlite_stores_orders_and_limits_like_postgres(sqlite_db: Path) -> None:
    """Limit 3: the first message and the next two are admitted, two limited, the redelivery stored once; one
    slow-down line; ids in arrival order."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "AVA_ENV"}}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"sqlite://{sqlite_db}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["first"] == [True, False]
    stored = result["stored"]
    assert [s[1:] for s in stored] == [[True, False], [True, False], [True, True], [True, True], [False, False]]
    assert stored[4][0] == stored[0][0]  # the redelivery of m:1 is m:1's row
    assert [s[0] for s in stored[:4]] == sorted(s[0] for s in stored[:4])
    assert result["rows"] == [
        ["m:0", "pending", "zero"],
        ["m:1", "pending", "text 1"],
        ["m:2", "pending", "text 2"],
        ["m:3", "limited", "text 3"],
        ["m:4", "limited", "text 4"],
    ]
    assert result["lines"] == 1
    assert result["scheduled"]
