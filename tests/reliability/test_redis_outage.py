"""Redis (a private redis-server the test controls) restarted empty, or flushed, while turns and a photo job are in
flight: the web and worker processes keep running, the sweepers re-schedule what Redis lost from PostgreSQL, and
every message is answered exactly once, the photo made once and announced once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.models import Message, User
from imaging.models import Photo, PhotoKindChoice
from tests.reliability.conftest import Fakes
from tests.reliability.drive import TelegramChat, all_answered, entitled_user, photo_user, photos_done, telegram_update
from tests.reliability.faults import (
    FAST_RECOVERY,
    OwnRedis,
    assert_each_reply_sent_once,
    assert_inbound_done_once,
    assert_one_ready_photo,
    llm_busy,
    own_redis,
)
from tests.reliability.processes import AvaProcess, AvaStack
from tests.support import eventually

CHATS = (4300, 4301, 4302)
PHOTO_CHAT = 4310
SLOW = "[slow]"


@pytest.fixture
async def redis_server() -> AsyncIterator[OwnRedis]:
    """A private redis-server for this test (never the shared one)."""
    async with own_redis() as server:
        yield server


async def _busy_stack(
    stack: AvaStack, fakes: Fakes, redis_server: OwnRedis
) -> tuple[AvaProcess, AvaProcess, list[tuple[User, TelegramChat]], User]:
    """Web + worker on the private Redis, three users with two slow turns each and one photo being made."""
    stack.env.update(FAST_RECOVERY, REDIS_URL=redis_server.url)
    users = [(await entitled_user(str(c)), c) for c in CHATS]
    photo_owner = await photo_user(str(PHOTO_CHAT), stack.env_path("MEDIA_DIR"))
    (web,), (worker,) = await stack.start(webs=1, workers=1)
    fakes.replicate.polls_to_finish = 5  # about 5 s at the provider: the job is in flight when Redis goes
    fakes.llm.call_tool("send_photo", {"scene_description": "in a cafe"}, text="One moment 📸")
    photo_chat = TelegramChat(web.url, fakes.telegram_webhook_secret, PHOTO_CHAT)
    assert await photo_chat.say("a photo please") == 200

    async def photo_started() -> bool:
        return await Photo.exists(user_id=photo_owner.id, kind=PhotoKindChoice.PHOTO) and bool(fakes.replicate.created)

    await eventually(photo_started, timeout=20, what="the photo job at the provider")
    fakes.llm.slow_when(SLOW, 3.0)
    chats = [(user, TelegramChat(web.url, fakes.telegram_webhook_secret, chat_id)) for user, chat_id in users]
    for n in (1, 2):
        statuses = await asyncio.gather(*(chat.say(f"{SLOW} message {n}") for _, chat in chats))
        assert statuses == [200] * len(chats)
    await llm_busy(fakes.llm, len(chats))
    return web, worker, chats, photo_owner


async def _assert_everything_once(
    fakes: Fakes, chats: list[tuple[User, TelegramChat]], photo_owner: User, per_user: int = 2
) -> None:
    for user, _ in chats:
        await eventually(lambda u=user: all_answered(u.id, per_user), timeout=40, what=f"user {user.id} answered")
    await eventually(lambda: photos_done(photo_owner.id, 1), timeout=40, what="the photo")
    await eventually(lambda: all_answered(photo_owner.id, 1), timeout=20, what="the photo notice")
    for user, chat in chats:
        await assert_inbound_done_once(user.id, per_user)
        rows = await assert_each_reply_sent_once(user.id, fakes.telegram, chat.chat_id)
        assert [r.text for r in rows] == [f"echo: {SLOW} message {n}" for n in range(1, per_user + 1)]
    await assert_inbound_done_once(photo_owner.id, 1)
    await assert_one_ready_photo(photo_owner.id)
    await assert_each_reply_sent_once(photo_owner.id, fakes.telegram, PHOTO_CHAT)


@pytest.mark.timeout(150)
async def test_redis_restarted_empty_mid_work(ava_stack: AvaStack, fakes: Fakes, redis_server: OwnRedis) -> None:
    """Redis dies and comes back empty during turns and a photo job: no process restart, everything done once."""
    web, worker, chats, photo_owner = await _busy_stack(ava_stack, fakes, redis_server)
    redis_server.stop()
    late_user, late_chat = chats[0][0], chats[0][1]
    update = telegram_update(late_chat.chat_id, f"{SLOW} message 3")
    during = await late_chat.post(update)  # the platform retries whatever is not a 200
    if during == 200:  # acknowledged only if stored: PostgreSQL is up, the sweeper schedules it later
        assert await Message.exists(user_id=late_user.id, text=f"{SLOW} message 3")
    await asyncio.sleep(2)  # the outage lasts a while (this is the fault, not a synchronisation)
    await redis_server.start()
    while during != 200:  # Telegram redelivers the same update until it is acknowledged
        await asyncio.sleep(0.5)
        during = await late_chat.post(update)
    await _assert_everything_once(fakes, chats[1:], photo_owner)
    await eventually(lambda: all_answered(late_user.id, 3), timeout=40, what="the message sent during the outage")
    await assert_inbound_done_once(late_user.id, 3)
    await assert_each_reply_sent_once(late_user.id, fakes.telegram, late_chat.chat_id)
    assert web.running and worker.running, "a process died with Redis instead of riding the outage out"
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()


@pytest.mark.timeout(150)
async def test_redis_flushed_mid_work(ava_stack: AvaStack, fakes: Fakes, redis_server: OwnRedis) -> None:
    """Every queue, job and drain slot lost during turns and a photo job: the sweepers finish all of it, once."""
    web, worker, chats, photo_owner = await _busy_stack(ava_stack, fakes, redis_server)
    await redis_server.flush()
    await _assert_everything_once(fakes, chats, photo_owner)
    assert web.running and worker.running
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()
