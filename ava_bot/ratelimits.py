"""Rate limits shared by every web and worker replica: a moving window per key, stored in Redis (`limits`).

Implements `core.ports.RateLimiter`. Keys name what is limited (`signin:ip:<ip>`, `inbound:user:<id>`); the
limit and window come from the caller, so one limiter serves every rule. `dev` without Redis counts in memory
(one process, so nothing is lost by it). A Redis failure lets the hit through and logs it: a limiter must not
take the service down with it.
"""

from __future__ import annotations

import logging

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

logger = logging.getLogger(__name__)

KEY_PREFIX = "ava:limits"


def _item(limit: int, window_seconds: int) -> RateLimitItem:
    if limit < 1 or window_seconds < 1:
        raise ValueError("limit and window_seconds must be at least 1")
    return RateLimitItemPerSecond(limit, window_seconds)


class RedisRateLimiter:
    """Moving-window rate limits in Redis (or in memory for the single-process `dev`)."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_url(cls, redis_url: str | None) -> RedisRateLimiter:
        """Redis at `redis_url`; None means memory (only for one process: `ava-bot dev` with fakeredis)."""
        if redis_url is None:
            return cls(MemoryStorage())
        return cls(RedisStorage(redis_url, implementation="redispy", key_prefix=KEY_PREFIX, wrap_exceptions=True))

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit on `key`; False when over `limit` within `window_seconds` (the hit is then not counted)."""
        try:
            return await self._limiter.hit(_item(limit, window_seconds), key)
        except Exception as exc:  # limits wraps every storage error: never fail the request for it
            logger.warning("rate limiter unavailable, letting %s through: %s", key.split(":")[0], exc)
            return True

    async def peek(self, key: str, limit: int, window_seconds: int) -> bool:
        """Whether one more hit on `key` would be allowed now."""
        try:
            return await self._limiter.test(_item(limit, window_seconds), key)
        except Exception as exc:
            logger.warning("rate limiter unavailable, letting %s through: %s", key.split(":")[0], exc)
            return True

    async def reset(self, key: str, limit: int, window_seconds: int) -> None:
        """Forget the hits on `key`."""
        try:
            await self._limiter.clear(_item(limit, window_seconds), key)
        except Exception as exc:
            logger.warning("rate limiter unavailable, %s not reset: %s", key.split(":")[0], exc)
