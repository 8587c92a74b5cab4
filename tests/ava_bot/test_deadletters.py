"""`ava-bot deadletters list|replay` over turn, delivery and photo dead letters (real PostgreSQL and Redis)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from arq.connections import ArqRedis

from ava_bot.deadletters import list_dead_letters, replay
from ava_bot.queueing import slot_key
from core.errors import NotReplayable
from core.models import ChannelIdentity, DeadLetter, Direction, Message, MessageStatus, User
from tests.conftest import TEST_REDIS_URL


async def failed_turn() -> tuple[User, Message, DeadLetter]:
    user = await User.create(adult_confirmed_at=datetime.now(UTC))
    await ChannelIdentity.create(user=user, channel="web", external_user_id=str(user.id))
    message = await Message.create(
        user=user,
        direction=Direction.INBOUND,
        channel="web",
        chat_id=str(user.id),
        text="hi",
        status=MessageStatus.FAILED,
        attempts=3,
        error="Traceback...\ncore.errors.LLMUnavailable: LLM error 500",
    )
    letter = await DeadLetter.create(
        job="run_turn", payload={"message_id": message.id, "user_id": user.id}, error=message.error, attempts=3
    )
    return user, message, letter


async def test_replaying_a_turn_puts_the_message_back_once_and_schedules_the_user(db: str, redis: ArqRedis) -> None:
    """Replay resets the failed message to pending with fresh attempts, schedules a drain, and only once."""
    user, message, letter = await failed_turn()
    listed = await list_dead_letters()
    assert len(listed) == 1 and listed[0].startswith(f"{letter.id}\trun_turn") and "LLM error 500" in listed[0]
    assert "queued again" in await replay(redis, letter.id)
    row = await Message.get(id=message.id)
    assert (row.status, row.attempts, row.error) == (MessageStatus.PENDING, 0, None)
    assert await redis.get(slot_key(user.id)) is not None  # a drain job holds the user's slot
    assert await redis.zcard("arq:queue") == 1
    with pytest.raises(NotReplayable):
        await replay(redis, letter.id)
    assert await list_dead_letters() == [] and len(await list_dead_letters(include_replayed=True)) == 1


async def test_an_unknown_dead_letter_is_not_replayable(db: str, redis: ArqRedis) -> None:
    """A missing id is refused with a clear error."""
    with pytest.raises(NotReplayable):
        await replay(redis, 424242)


async def test_cli_lists_and_replays(db: str, redis: ArqRedis) -> None:
    """The console command lists the letter and replays it; a second replay exits 1 with a message."""
    _, message, letter = await failed_turn()
    env = {**os.environ, "DATABASE_URL": db, "REDIS_URL": TEST_REDIS_URL, "AVA_ENV": "development"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ava_bot.cli", "deadletters", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = cli("list")
    assert listed.returncode == 0 and f"{letter.id}\trun_turn" in listed.stdout, listed.stderr
    replayed = cli("replay", str(letter.id))
    assert replayed.returncode == 0 and "queued again" in replayed.stdout, replayed.stderr
    assert (await Message.get(id=message.id)).status == MessageStatus.PENDING
    again = cli("replay", str(letter.id))
    assert again.returncode == 1 and "already replayed" in again.stderr
