"""Redis-backed implementations of core ports: the turn queue (arq) and the per-user lock (redis-py Lock)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from redis.exceptions import LockError

from core.errors import Busy

TURN_JOB = "run_turn"


def turn_job_id(message_id: int) -> str:
    """One job per inbound message (a re-enqueue of a finished one is allowed: keep_result=0)."""
    return f"turn:{message_id}"


class ArqTurnQueue:
    """`core.ports.TurnQueue` on arq."""

    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis

    async def enqueue_turn(self, user_id: int, message_id: int) -> None:
        """Enqueue the drain of the user's pending messages (deduplicated per message)."""
        await self._redis.enqueue_job(TURN_JOB, user_id, message_id, _job_id=turn_job_id(message_id))


class RedisUserLock:
    """`core.ports.UserLock`: a redis-py `Lock` per user, so turns of one user never overlap across workers."""

    def __init__(self, redis: ArqRedis, *, ttl: float = 180.0, wait: float = 60.0) -> None:
        self._redis = redis
        self._ttl = ttl
        self._wait = wait

    @asynccontextmanager
    async def hold(self, user_id: int) -> AsyncIterator[None]:
        """Hold the user's lock for the block; `Busy` when it cannot be had within `wait` seconds."""
        lock = self._redis.lock(f"ava:user-lock:{user_id}", timeout=self._ttl, blocking_timeout=self._wait)
        if not await lock.acquire():
            raise Busy(f"user {user_id} is busy")
        try:
            yield
        finally:
            # LockError: it expired while held; the DB row lock still kept the turn safe.
            with contextlib.suppress(LockError):
                await lock.release()
