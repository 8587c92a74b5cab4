"""The in-process Redis of `ava-bot dev`: arq's client backed by fakeredis.

Apart from `ava_bot.redis` so that only a process that uses it loads fakeredis (a few MB of modules that the web
and worker processes, which always talk to REDIS_URL, never need).
"""

from __future__ import annotations

from typing import Any

from fakeredis.aioredis import FakeAsyncRedisMixin
from redis.asyncio.client import Pipeline

from ava_bot.wakeup import WakingArqRedis


class _FakePipeline(Pipeline):
    """A pipeline whose `INFO` (which fakeredis lacks) answers an empty mapping."""

    def info(self, section: str | None = None, *args: Any, **kwargs: Any) -> Any:
        """arq logs a few INFO fields at start-up; fakeredis has no INFO, so answer {} (HGETALL of no key)."""
        return self.execute_command("HGETALL", "ava:fakeredis:no-info")


class FakeArqRedis(FakeAsyncRedisMixin, WakingArqRedis):  # type: ignore[misc]
    """arq's waking Redis client backed by fakeredis: only for the single-process `ava-bot dev`.

    arq's public `Worker.async_run()` logs `INFO` fields at start; its pipelines answer those with an empty
    mapping, so the stock worker runs on it unchanged.
    """

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        """A pipeline tolerant of `INFO`."""
        return _FakePipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
