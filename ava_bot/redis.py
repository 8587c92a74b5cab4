"""Redis for arq: a real pool from REDIS_URL, or in development an in-process fakeredis."""

from __future__ import annotations

import logging

from arq.connections import ArqRedis, RedisSettings, create_pool

from ava_bot.settings import Settings
from ava_bot.wakeup import WakingArqRedis
from core.errors import ConfigError

logger = logging.getLogger(__name__)


async def create_redis(settings: Settings, *, allow_fake: bool = False) -> ArqRedis:
    """Connect to REDIS_URL; without one, an in-process fakeredis when `allow_fake` (dev), else an error. Either
    client wakes the workers when it enqueues a job (`ava_bot.wakeup`)."""
    if settings.redis_url:
        return WakingArqRedis.sharing(await create_pool(RedisSettings.from_dsn(settings.redis_url)))
    if allow_fake and not settings.is_production:
        from ava_bot.devredis import FakeArqRedis  # here: only `dev` needs fakeredis

        return FakeArqRedis()
    raise ConfigError("REDIS_URL is required for separate web and worker processes (or run `ava-bot dev`).")
