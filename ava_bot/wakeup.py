"""Wake-ups: an idle arq worker starts a job the moment it is enqueued instead of at its next poll.

arq only polls its queue (every `poll_delay`), so a job due now waits half a poll on average before it starts.
Here the enqueue side publishes a wake-up on the queue's Redis pub/sub channel right after it queued a job due now
(`WakingArqRedis`, the client every process gets from `ava_bot.redis.create_redis`, so no enqueue site can forget
it), and the worker (`wake_on_enqueue`) listens on that channel and polls at once when one arrives.

The poll stays, as the fallback for whatever a wake-up misses: pub/sub keeps nothing for a subscriber that is not
connected, a failed PUBLISH is only logged (the job is queued either way), deferred jobs and arq's retries are not
announced, and a listener that lost Redis keeps the worker polling on schedule until it has subscribed again (and
then polls once at once, for what it may have missed). So a lost wake-up only leaves a job to the next poll.

Hooks into arq 0.28 (pinned by `arq>=0.28,<0.29` and the lock file) through two of the worker's attributes:
`_poll_iteration`, wrapped as `ava_bot.worker.ride_out_redis_outages` wraps it, and `poll_delay_s`, the wait
between polls, which the wrapper takes over (arq's own loop then no longer sleeps between polls).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from arq.connections import ArqRedis
from arq.jobs import Job
from arq.worker import Worker
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

#: Pause before subscribing again after the wake-up subscription failed (Redis down or restarting).
RESUBSCRIBE_SECONDS = 1.0


def wake_channel(queue_name: str) -> str:
    """The pub/sub channel announcing jobs due now on `queue_name`."""
    return f"{queue_name}:wake"


class WakingArqRedis(ArqRedis):
    """arq's Redis client whose `enqueue_job` also wakes the queue's workers when the job is due now."""

    @classmethod
    def sharing(cls, client: ArqRedis) -> WakingArqRedis:
        """A waking client on `client`'s connection pool and job settings; it takes over closing the pool."""
        waking = cls(
            client.connection_pool,
            job_serializer=client.job_serializer,
            job_deserializer=client.job_deserializer,
            default_queue_name=client.default_queue_name,
            expires_extra_ms=client.expires_extra_ms,
        )
        waking.auto_close_connection_pool = client.auto_close_connection_pool
        return waking

    async def enqueue_job(self, function: str, *args: Any, **kwargs: Any) -> Job | None:
        """arq's `enqueue_job`, then a wake-up for a job due now (not for a deferred one, nor a duplicate)."""
        job = await super().enqueue_job(function, *args, **kwargs)
        if job is not None and not kwargs.get("_defer_by") and kwargs.get("_defer_until") is None:
            await self.wake(kwargs.get("_queue_name") or self.default_queue_name)
        return job

    async def wake(self, queue_name: str) -> None:
        """Tell the workers of `queue_name` to poll now; best effort (the poll finds the job anyway)."""
        try:
            await self.publish(wake_channel(queue_name), b"")
        except (RedisError, OSError) as exc:
            logger.debug("no wake-up for %s (%r): the job waits for the next poll", queue_name, exc)


def wake_on_enqueue(worker: Worker) -> Worker:
    """Make `worker` poll as soon as a wake-up arrives on its queue's channel, else every `poll_delay` as before.

    Apply after `ride_out_redis_outages` (its guarded poll is the one called here). The listener runs while the
    worker's main loop runs and ends with it."""
    delay = worker.poll_delay_s
    worker.poll_delay_s = 0.0  # arq's loop no longer sleeps between polls: `poll_then_wait` does, interruptibly
    poll = worker._poll_iteration
    channel = wake_channel(worker.queue_name)
    woken = asyncio.Event()
    listener: asyncio.Task[None] | None = None

    def stop_listening(_: object) -> None:
        nonlocal listener
        if listener is not None:
            listener.cancel()
            listener = None

    async def poll_then_wait() -> None:
        nonlocal listener
        loop = asyncio.get_running_loop()
        if listener is None:
            listener = loop.create_task(_listen(worker.pool, channel, woken), name=f"wake-ups {channel}")
            main = asyncio.current_task()  # arq's main loop: the listener ends with it
            if main is not None:
                main.add_done_callback(stop_listening)
        started = loop.time()
        woken.clear()  # before polling: a wake-up arriving during the poll makes the wait below return at once
        await poll()
        remaining = delay - (loop.time() - started)
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await woken.wait()

    worker._poll_iteration = poll_then_wait  # type: ignore[method-assign]
    return worker


async def _listen(redis: ArqRedis, channel: str, woken: asyncio.Event) -> None:
    """Set `woken` on every wake-up published on `channel`, and after each (re)subscription; ride out outages."""
    lost = False
    while True:
        try:
            async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                if lost:
                    logger.info("wake-ups on %s received again", channel)
                    lost = False
                woken.set()  # whatever was enqueued while we were not subscribed is found by this poll
                async for _ in pubsub.listen():
                    woken.set()
        except Exception as exc:  # Redis down or restarting (RedisError, OSError), or anything else: never give up
            if not lost:
                logger.warning("wake-ups on %s lost (%r): polling on schedule until subscribed again", channel, exc)
            lost = True
        await asyncio.sleep(RESUBSCRIBE_SECONDS)
