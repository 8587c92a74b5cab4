"""Wake-ups (`ava_bot.wakeup`): a job enqueued through the processes' Redis client starts at once, long before the
worker's next poll; a wake-up that is lost (a client that does not publish, a dropped subscription, a Redis outage)
only leaves the job to the poll, and the worker subscribes again by itself."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Worker, func

from ava_bot.redis import create_redis
from ava_bot.wakeup import WakingArqRedis, wake_channel, wake_on_enqueue
from ava_bot.worker import ride_out_redis_outages
from tests.conftest import TEST_REDIS_URL
from tests.reliability.faults import own_redis
from tests.support import eventually

#: A poll so slow that a job started within a second was started by a wake-up.
SLOW_POLL = 30.0


async def record(ctx: dict[str, Any], tag: str) -> None:
    """The job: notes when it started."""
    ctx["started"][tag] = time.monotonic()


@contextlib.asynccontextmanager
async def running(pool: ArqRedis, queue: str, *, poll_delay: float) -> AsyncIterator[dict[str, float]]:
    """A worker on `queue` with the production hooks, subscribed to its wake-ups; yields start times by tag."""
    started: dict[str, float] = {}
    worker = wake_on_enqueue(
        ride_out_redis_outages(
            Worker(
                functions=[func(record, name="record", keep_result=0)],
                redis_pool=pool,
                queue_name=queue,
                handle_signals=False,
                poll_delay=poll_delay,
                ctx={"started": started},
            )
        )
    )
    task = asyncio.create_task(worker.async_run())
    try:
        await subscribed(pool, queue)
        await asyncio.sleep(0.2)  # the poll that follows the subscription is over
        yield started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)


async def subscribed(client: ArqRedis, queue: str) -> None:
    """Wait until a worker listens on the queue's wake-up channel."""

    async def listening() -> bool:
        [(_, count)] = await client.pubsub_numsub(wake_channel(queue))
        return int(count) >= 1

    await eventually(listening, timeout=10, what="a worker subscribed to its wake-ups")


async def started_within(started: dict[str, float], tag: str, since: float, seconds: float) -> float:
    """Wait for job `tag` to start; how long after `since` it did (fails after `seconds`)."""

    async def ran() -> bool:
        return tag in started

    await eventually(ran, timeout=seconds, what=f"job {tag} started")
    return started[tag] - since


async def test_an_enqueued_job_starts_at_once_not_at_the_next_poll(redis: ArqRedis, make_settings: Any) -> None:
    """Through the client `create_redis` gives every process, a job starts well within a second while the worker
    polls every 30 s; a job enqueued by a client that publishes no wake-up still waits for a poll (here the woken
    one)."""
    queue = f"arq:test-wake:{uuid.uuid4().hex[:8]}"
    waking = await create_redis(make_settings(redis_url=TEST_REDIS_URL))
    assert isinstance(waking, WakingArqRedis)
    try:
        async with running(redis, queue, poll_delay=SLOW_POLL) as started:
            await redis.enqueue_job("record", "silent", _queue_name=queue)  # the plain client: no wake-up
            await asyncio.sleep(1.0)
            assert "silent" not in started  # nothing polled: it waits for the poll

            since = time.monotonic()
            await waking.enqueue_job("record", "woken", _queue_name=queue)
            assert await started_within(started, "woken", since, 5) < 1.0
            assert "silent" in started  # the woken poll took every job due
    finally:
        await waking.aclose()


async def test_only_a_new_job_due_now_publishes_a_wake_up(redis: ArqRedis) -> None:
    """A deferred job (arq's poll starts it when due) and a duplicate job id (nothing enqueued) wake nobody."""
    queue = f"arq:test-wake:{uuid.uuid4().hex[:8]}"
    waking = WakingArqRedis.sharing(await create_pool(RedisSettings.from_dsn(TEST_REDIS_URL), retry=0))
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(wake_channel(queue))
    try:
        assert await waking.enqueue_job("record", "later", _queue_name=queue, _defer_by=60) is not None
        assert await waking.enqueue_job("record", "now", _queue_name=queue, _job_id="once") is not None
        assert await waking.enqueue_job("record", "again", _queue_name=queue, _job_id="once") is None
        messages = []
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # (the subscription's confirmation reads as None too)
            if (message := await pubsub.get_message(timeout=0.1)) is not None:
                messages.append(message)
        assert len(messages) == 1 and messages[0]["channel"] == wake_channel(queue).encode()
    finally:
        await pubsub.aclose()
        await waking.aclose()


async def test_without_a_wake_up_the_poll_runs_the_job(redis: ArqRedis) -> None:
    """A job whose enqueuer published no wake-up is started by the worker's timed poll."""
    queue = f"arq:test-wake:{uuid.uuid4().hex[:8]}"
    async with running(redis, queue, poll_delay=0.3) as started:
        since = time.monotonic()
        await redis.enqueue_job("record", "unannounced", _queue_name=queue)  # the plain client: no wake-up
        await started_within(started, "unannounced", since, 10)


async def test_the_worker_subscribes_again_after_losing_its_wake_ups() -> None:
    """Its subscription dropped, or Redis down and back: the worker subscribes again by itself, polls at once for
    the job whose wake-up it missed, and later jobs start at once again (its timed poll being 30 s)."""
    async with own_redis() as server:
        pool = await create_pool(RedisSettings.from_dsn(server.url))
        waking = WakingArqRedis.sharing(await create_pool(RedisSettings.from_dsn(server.url)))
        queue = "arq:queue"
        try:
            async with running(pool, queue, poll_delay=SLOW_POLL) as started:
                await pool.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # the wake-up channel breaks
                [(_, listeners)] = await pool.pubsub_numsub(wake_channel(queue))
                await waking.enqueue_job("record", "missed", _queue_name=queue)
                since = time.monotonic()
                assert await started_within(started, "missed", since, 10) < 10  # not 30 s: polled on resubscribing
                assert listeners == 0  # its wake-up was published to nobody

                server.stop()
                await asyncio.sleep(1.5)  # Redis is down: failed polls and subscriptions are ridden out
                await server.start()
                await subscribed(pool, queue)
                await asyncio.sleep(0.3)
                since = time.monotonic()
                await waking.enqueue_job("record", "after-outage", _queue_name=queue)
                assert await started_within(started, "after-outage", since, 5) < 1.0
        finally:
            await waking.aclose()
            await pool.aclose()
