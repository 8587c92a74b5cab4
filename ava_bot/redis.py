"""Redis for arq: a real pool from REDIS_URL, or in development an in-process fakeredis."""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from fakeredis.aioredis import FakeAsyncRedisMixin
from redis.asyncio.client import Pipeline

from ava_bot.settings import Settings
from core.errors import ConfigError

logger = logging.getLogger(__name__)


class _FakePipeline(Pipeline):
    """A pipeline whose `INFO` (which fakeredis lacks) answers an empty mapping."""

    def info(self, section: str | None = None, *args: Any, **kwargs: Any) -> Any:
        """arq logs a few INFO fields at start-up; fakeredis has no INFO, so answer {} (HGETALL of no key)."""
        return self.execute_command("HGETALL", "ava:fakeredis:no-info")


class FakeArqRedis(FakeAsyncRedisMixin, ArqRedis):  # type: ignore[misc]
    """arq's Redis client backed by fakeredis: only for the single-process `ava-bot dev`.

    arq's public `Worker.async_run()` logs `INFO` fields at start; its pipelines answer those with an empty
    mapping, so the stock worker runs on it unchanged.
    """

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        """A pipeline tolerant of `INFO`."""
        return _FakePipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


async def create_redis(settings: Settings, *, allow_fake: bool = False) -> ArqRedis:
    """Connect to REDIS_URL; without one, an in-process fakeredis when `allow_fake` (dev), else an error."""
    if settings.redis_url:
        return await create_pool(RedisSettings.from_dsn(settings.redis_url))
    if allow_fake and not settings.is_production:
        return FakeArqRedis()
    raise ConfigError("REDIS_URL is required for separate web and worker processes (or run `ava-bot dev`).")
