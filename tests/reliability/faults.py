"""Shared pieces of the process-level fault tests: fast recovery settings, outcome checks, own Redis, a TCP proxy.

The checks read the end state from PostgreSQL and the fakes, and each says "exactly once": every inbound row
answered, every outbound row sent once to the platform, every photo stored once with one notice, every quota
unit charged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from arq.connections import RedisSettings, create_pool

from billing.models import QuotaUsage
from core.models import Direction, Message, MessageStatus
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from tests.fakes.openai import FakeOpenAI
from tests.fakes.telegram import FakeTelegram
from tests.reliability.processes import free_port
from tests.support import eventually

#: Recovery in seconds instead of minutes: arq re-runs a dead worker's job JOB_TIMEOUT + 10 s after it started,
#: the sweepers run every 2 s and take work left for 3 s.
FAST_RECOVERY = {
    "JOB_TIMEOUT_SECONDS": "8",
    "PHOTO_JOB_TIMEOUT_SECONDS": "8",
    "SWEEP_EVERY_SECONDS": "2",
    "TURN_STUCK_AFTER_SECONDS": "3",
    "PHOTO_STUCK_AFTER_SECONDS": "4",
    "SHUTDOWN_GRACE_SECONDS": "10",
}


def telegram_texts(fake: FakeTelegram, chat_id: int) -> list[str]:
    """Texts the bot sent to `chat_id`, in order."""
    return [
        str(c.params.get("text")) for c in fake.calls_to("sendMessage") if str(c.params.get("chat_id")) == str(chat_id)
    ]


async def assert_each_reply_sent_once(user_id: int, fake: FakeTelegram, chat_id: int) -> list[Message]:
    """Every outbound row of the user is `sent`, and the platform received each text exactly as often as stored."""
    rows = await Message.filter(user_id=user_id, direction=Direction.OUTBOUND).order_by("id")
    assert all(r.status == MessageStatus.SENT for r in rows), [(r.text, r.status) for r in rows]
    stored = Counter(str(r.text) for r in rows)
    sent = Counter(telegram_texts(fake, chat_id))
    assert sent == stored, f"sent {dict(sent)} but stored {dict(stored)}"
    return rows


async def assert_inbound_done_once(user_id: int, count: int) -> None:
    """`count` inbound rows, each processed (done) exactly once: one turn's replies each."""
    rows = await Message.filter(user_id=user_id, direction=Direction.INBOUND).order_by("id")
    assert len(rows) == count, [r.text for r in rows]
    assert all(r.status == MessageStatus.DONE for r in rows), [(r.text, r.status) for r in rows]


async def assert_one_ready_photo(user_id: int) -> Photo:
    """Exactly one photo (references aside), ready, with exactly one notice row and one photo unit charged."""
    photos = await Photo.filter(user_id=user_id, kind=PhotoKindChoice.PHOTO)
    assert len(photos) == 1, [(p.id, p.status) for p in photos]
    assert photos[0].status == PhotoStatus.READY, photos[0].error
    notices = await Message.filter(
        user_id=user_id, direction=Direction.OUTBOUND, payload__contains={"photo_id": photos[0].id}
    ).count()
    assert notices == 1
    assert await used(user_id, "photo") == 1
    return photos[0]


async def used(user_id: int, kind: str) -> int:
    """Quota units of `kind` the user consumed (all periods)."""
    return sum(u.used for u in await QuotaUsage.filter(user_id=user_id, kind=kind))


async def llm_busy(llm: FakeOpenAI, count: int = 1) -> None:
    """Wait until `count` completion requests are being answered right now (turns are at the LLM)."""

    async def busy() -> bool:
        return llm.in_flight >= count

    await eventually(busy, timeout=20, what=f"{count} turns at the LLM")


class OwnRedis:
    """A private `redis-server` on a free port (no persistence) that a test may stop, restart or flush."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start (or start again, empty) on the same port and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:  # required like PostgreSQL and Redis themselves: the run fails, it never skips
            pytest.fail("redis-server (the Redis server binary) is required for the Redis outage tests")
        self._process = subprocess.Popen(  # fixed arguments, our own server
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await eventually(self._answers, timeout=10, what="redis-server up")

    def stop(self) -> None:
        """Kill the server at once (clients see connections reset / refused)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    async def flush(self) -> None:
        """FLUSHALL: every queue, job, slot and session is lost."""
        pool = await create_pool(RedisSettings.from_dsn(self.url))
        try:
            await pool.flushall()
        finally:
            await pool.aclose()

    async def _answers(self) -> bool:
        try:
            pool = await create_pool(RedisSettings.from_dsn(self.url), retry=0)
        except Exception:  # not listening yet: arq raises plain connection errors
            return False
        await pool.aclose()
        return True


@contextlib.asynccontextmanager
async def own_redis() -> AsyncIterator[OwnRedis]:
    """A running `OwnRedis`, stopped at the end."""
    server = OwnRedis()
    await server.start()
    try:
        yield server
    finally:
        server.stop()


class TcpProxy:
    """A TCP proxy on a free loopback port to `target`; `cut()` drops every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.open = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """The database is unreachable: open connections are reset, new ones closed at once."""
        self.open = False
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()

    def restore(self) -> None:
        """New connections reach the target again."""
        self.open = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        self._pipes -= {writer, up_writer}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
