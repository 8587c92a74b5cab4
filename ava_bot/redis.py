"""Redis for arq: a real pool from REDIS_URL, or in development an in-process fakeredis."""

from __future__ import annotations

import logging

from arq.connections import ArqRedis, RedisSettings, create_pool
from fakeredis.aioredis import FakeAsyncRedisMixin

from ava_bot.settings import Settings
from core.errors import ConfigError

logger = logging.getLogger(__name__)


class FakeArqRedis(FakeAsyncRedisMixin, ArqRedis):  # type: ignore[misc]
    """arq's Redis client backed by fakeredis: only for the single-process `ava-bot dev`."""


async def create_redis(settings: Settings, *, allow_fake: bool = False) -> ArqRedis:
    """Connect to REDIS_URL; without one, an in-process fakeredis when `allow_fake` (dev), else an error."""
    if settings.redis_url:
        return await create_pool(RedisSettings.from_dsn(settings.redis_url))
    if allow_fake and not settings.is_production:
        return FakeArqRedis()
    raise ConfigError("REDIS_URL is required for separate web and worker processes (or run `ava-bot dev`).")
