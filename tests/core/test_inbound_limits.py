"""Per-user inbound rate limit: a flood is stored but not answered, gets one slow-down line per window, and never
slows other users. Real PostgreSQL, real Redis (the shared `RedisRateLimiter`), the real worker and openai client."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.jobs import sweep_turns
from ava_bot.queueing import DrainQueue
from ava_bot.ratelimits import RedisRateLimiter
from ava_bot.wiring import Services, build_services
from core.inbox import SLOW_DOWN_LINE, InboundLimit, Inbox
from core.messages import ChatRef, InboundMessage
from core.models import Direction, Message, MessageStatus, User
from core.turns import has_work
from tests.conftest import TEST_REDIS_URL
from tests.fakes.entitlements import allow_all
from tests.fakes.openai import FakeOpenAI
from tests.fakes.queue import RecordingQueue
from tests.support import eventually, ready_user, running_worker


@pytest.fixture
def services(db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI) -> Services:
    settings = make_settings(
        llm_api_key="sk-test",
        llm_base_url=fake_llm.base_url,
        llm_timeout_seconds=10,
        redis_url=TEST_REDIS_URL,
        inbound_per_user_per_minute=5,
    )
    return build_services(settings, redis, entitlements=allow_all())


class CountingQueue:
    """The real drain queue, counting how often each user's drain was asked for."""

    def __init__(self, inner: DrainQueue) -> None:
        self.inner = inner
        self.calls: Counter[int] = Counter()

    async def schedule(self, user_id: int) -> bool:
        """Count, then schedule for real."""
        self.calls[user_id] += 1
        return await self.inner.schedule(user_id)


def inbound(chat_id: str, message_id: str, text: str) -> InboundMessage:
    return InboundMessage(ref=ChatRef("web", chat_id), message_id=message_id, text=text)


async def statuses(user: User) -> Counter[str]:
    rows = await Message.filter(user=user, direction=Direction.INBOUND)
    return Counter(str(row.status) for row in rows)


async def replies(user: User) -> list[Message]:
    return await Message.filter(user=user, direction=Direction.OUTBOUND).order_by("id")


def asked(fake_llm: FakeOpenAI) -> list[str]:
    """The last user message of each LLM request, in the order the turns ran."""
    order = []
    for body in fake_llm.completions():
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        order.append(users[-1])
    return order


async def test_flood_gets_one_line_and_does_not_slow_another_user(
    services: Services, redis: ArqRedis, fake_llm: FakeOpenAI
) -> None:
    """A sends 100 messages at once, B one: B's turn runs among the first limit+1 turns, A gets exactly `limit`
    turns and one slow-down line, every message is stored, and the flood asks for no drain beyond those."""
    flooder, other = await ready_user("a"), await ready_user("b")
    queue = CountingQueue(services.queue)
    inbox = Inbox(queue, limiter=services.limiter, limit=InboundLimit(per_window=5))
    async with running_worker(services.settings, redis, services):
        await asyncio.gather(*(inbox.receive(inbound("a", f"a{i}", f"a-{i}")) for i in range(100)))
        await inbox.receive(inbound("b", "b0", "b-0"))

        async def settled() -> bool:
            rows = [*await replies(flooder), *await replies(other)]
            return len(rows) == 7 and all(r.status == MessageStatus.SENT for r in rows)

        await eventually(settled, what="A's five answers and one line, and B's answer")
    order = asked(fake_llm)
    assert len(order) == 6 and order.count("b-0") == 1
    assert order.index("b-0") <= 5  # at most A's admitted turns ran before B's: the 95 others cost nothing
    assert await statuses(flooder) == Counter({"done": 5, "limited": 95})
    texts = [r.text for r in await replies(flooder)]
    assert texts.count(SLOW_DOWN_LINE) == 1 and len(texts) == 6
    assert [r.text for r in await replies(other)] == ["echo: b-0"]
    # At most one drain request per admitted message and one for the line (messages stored together share one);
    # none for the 94 other limited messages.
    assert 1 <= queue.calls[flooder.id] <= 6 and queue.calls[other.id] == 1 and len(queue.calls) == 2
    # Limited rows are not work: neither the drain's check nor the sweeper picks them up.
    assert not await has_work(flooder.id)
    assert await sweep_turns({"services": services, "turn_stuck_after": timedelta(0)}) == 0


async def test_after_the_window_messages_are_answered_again(
    services: Services, redis: ArqRedis, fake_llm: FakeOpenAI
) -> None:
    """Once the window has passed the user's next message is answered (no new line); a new flood in the next
    window gets a new line: one line per window."""
    user = await ready_user("w")
    limit = InboundLimit(per_window=2, window_seconds=2)
    limiter = RedisRateLimiter.from_url(TEST_REDIS_URL)
    inbox = Inbox(services.queue, limiter=limiter, limit=limit)
    async with running_worker(services.settings, redis, services):
        for i in range(4):
            await inbox.receive(inbound("w", f"w{i}", f"first-{i}"))
        assert (await statuses(user))["limited"] == 2

        await asyncio.sleep(limit.window_seconds + 0.1)  # the window passes
        await inbox.receive(inbound("w", "w4", "after-window"))

        async def answered() -> bool:
            return any(r.text == "echo: after-window" and r.status == MessageStatus.SENT for r in await replies(user))

        await eventually(answered, what="the answer after the window")
        assert [r.text for r in await replies(user)].count(SLOW_DOWN_LINE) == 1
        for i in range(3):
            await inbox.receive(inbound("w", f"x{i}", f"second-{i}"))

        async def second_line() -> bool:
            rows = await replies(user)
            return [r.text for r in rows].count(SLOW_DOWN_LINE) == 2 and all(
                r.status == MessageStatus.SENT for r in rows
            )

        await eventually(second_line, what="the second window's line")
    assert await statuses(user) == Counter({"done": 4, "limited": 4})
    assert "echo: after-window" in [r.text for r in await replies(user)]


async def test_redelivered_messages_count_once(db: str, redis: ArqRedis) -> None:
    """The same platform message delivered five times counts once: the next two distinct messages still pass."""
    user = await ready_user("t", channel="telegram")
    inbox = Inbox(RecordingQueue(), limiter=RedisRateLimiter.from_url(TEST_REDIS_URL), limit=InboundLimit(per_window=3))
    ref = ChatRef("telegram", "t")
    for _ in range(5):
        await inbox.receive(InboundMessage(ref=ref, message_id="t:1", text="hi"))
    second = await inbox.receive(InboundMessage(ref=ref, message_id="t:2", text="again"))
    third = await inbox.receive(InboundMessage(ref=ref, message_id="t:3", text="and again"))
    fourth = await inbox.receive(InboundMessage(ref=ref, message_id="t:4", text="too many"))
    assert not second.limited and not third.limited and fourth.limited
    assert await statuses(user) == Counter({"pending": 3, "limited": 1})
    # The line goes to the chat the flood came from.
    line = await Message.get(user=user, direction=Direction.OUTBOUND)
    assert (line.channel, line.chat_id, line.text) == ("telegram", "t", SLOW_DOWN_LINE)


async def test_limited_duplicate_is_not_scheduled_again(db: str, redis: ArqRedis) -> None:
    """A redelivered message that was limited stays limited and asks for no drain."""
    await ready_user("d")
    queue = RecordingQueue()
    inbox = Inbox(queue, limiter=RedisRateLimiter.from_url(TEST_REDIS_URL), limit=InboundLimit(per_window=1))
    first = await inbox.receive(inbound("d", "d1", "one"))
    limited = await inbox.receive(inbound("d", "d2", "two"))
    queue.calls.clear()
    again = await inbox.receive(inbound("d", "d2", "two"))
    assert not first.limited and limited.limited
    assert (again.created, again.message_id) == (False, limited.message_id)
    assert queue.calls == []
    assert (await Message.get(id=limited.message_id)).status == MessageStatus.LIMITED


async def test_without_a_limiter_nothing_is_limited(db: str) -> None:
    """An inbox built without a limiter (tests that do not care) stores every message as pending."""
    user = await ready_user("n")
    inbox = Inbox(RecordingQueue())
    for i in range(30):
        await inbox.receive(inbound("n", f"n{i}", "hi"))
    assert await statuses(user) == Counter({"pending": 30})


async def test_schedule_many_claims_only_free_slots_in_one_go(redis: ArqRedis) -> None:
    """The drain queue's batch form: users whose slot is free get it and a drain job; a held slot is left alone."""
    queue = DrainQueue(redis)
    assert await queue.schedule(2)
    assert await queue.schedule_many([1, 2, 3]) == [True, False, True]
    assert await queue.schedule_many([]) == []
    jobs = {job.job_id for job in await redis.queued_jobs()}
    assert len(jobs) == 3 and {job_id.split(":")[1] for job_id in jobs} == {"1", "2", "3"}
    holders = [await redis.get(f"ava:drain:{user}") for user in (1, 2, 3)]
    assert all(holders) and len(set(holders)) == 3


class CountingLimiter:
    """The real Redis limiter, counting the hits asked of it (each a Redis round trip)."""

    def __init__(self, inner: RedisRateLimiter) -> None:
        self.inner = inner
        self.hits: Counter[str] = Counter()

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count, then hit for real."""
        self.hits[key] += 1
        return await self.inner.hit(key, limit, window_seconds)

    async def peek(self, key: str, limit: int, window_seconds: int) -> bool:
        """Peek for real."""
        return await self.inner.peek(key, limit, window_seconds)

    async def reset(self, key: str, limit: int, window_seconds: int) -> None:
        """Reset for real."""
        await self.inner.reset(key, limit, window_seconds)


async def test_a_long_flood_asks_the_limiter_once_per_window(db: str, redis: ArqRedis) -> None:
    """Forty messages of one chat arriving one by one (each a batch of its own), limit 5: the first limited one asks
    the shared limiter for the window's line and gets it; the 34 after it in the same window cost no Redis call (this
    process told them, so no other line is due before the window ends). A second process, which did not tell them,
    asks and is refused; after the window the next limited message gets the next line."""
    user = await ready_user("f", channel="telegram")
    ref = ChatRef("telegram", "f")
    limit = InboundLimit(per_window=5, window_seconds=2)
    limiter = CountingLimiter(RedisRateLimiter.from_url(TEST_REDIS_URL))
    inbox = Inbox(RecordingQueue(), limiter=limiter, limit=limit)
    for i in range(40):
        await inbox.receive(InboundMessage(ref=ref, message_id=f"f:{i}", text=f"flood {i}"))
    key = f"inbound:slowdown:{user.id}"
    assert limiter.hits == Counter({key: 1})
    assert await statuses(user) == Counter({"pending": 5, "limited": 35})
    other = Inbox(RecordingQueue(), limiter=limiter, limit=limit)
    await other.receive(InboundMessage(ref=ref, message_id="f:other", text="from another replica"))
    assert limiter.hits[key] == 2  # asked, refused: the line of this window was given
    lines = await Message.filter(user=user, direction=Direction.OUTBOUND, text=SLOW_DOWN_LINE).count()
    assert lines == 1
    await asyncio.sleep(limit.window_seconds + 0.1)
    for i in range(40, 47):  # five admitted again, then two limited: one new line, one more ask
        await inbox.receive(InboundMessage(ref=ref, message_id=f"f:{i}", text=f"flood {i}"))
    assert limiter.hits[key] == 3
    assert await Message.filter(user=user, direction=Direction.OUTBOUND, text=SLOW_DOWN_LINE).count() == 2
