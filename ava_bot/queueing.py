"""`core.ports.TurnQueue` on Redis + arq: one drain slot per user, drain jobs, fair hand-over.

The slot is a Redis key `ava:drain:{user}` holding the token of the drain job that works for the user, with a
lease (`ttl`) the job extends while it works; a worker killed mid-job frees it when the lease runs out and the
sweeper schedules again. Each drain job has its own id `drain:{user}:{token}`, so a continuation can always be
enqueued; the slot, not arq's job-id dedupe, guarantees one drain per user at a time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from arq.connections import ArqRedis

DRAIN_JOB = "run_turn"

#: Take the slot when free, or refresh it when `token` already holds it. Returns 1 when `token` holds it.
_ADOPT = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
#: Replace `token` by a successor token (hand-over to a continuation). Returns 1 on success.
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_KEEP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def slot_key(user_id: int) -> str:
    """The Redis key of the user's drain slot."""
    return f"ava:drain:{user_id}"


def drain_job_id(user_id: int, token: str) -> str:
    """The arq job id of one drain job."""
    return f"drain:{user_id}:{token}"


class DrainQueue:
    """`core.ports.TurnQueue`: per-user drain slots in Redis, drain jobs on arq."""

    def __init__(self, redis: ArqRedis, *, ttl: float = 180.0) -> None:
        self._redis = redis
        self._ttl_ms = int(ttl * 1000)
        self._adopt = redis.register_script(_ADOPT)
        self._swap = redis.register_script(_SWAP)
        self._keep = redis.register_script(_KEEP)
        self._release = redis.register_script(_RELEASE)

    async def schedule(self, user_id: int) -> bool:
        """Claim the free slot and enqueue a drain job; False when a drain holds the slot already."""
        token = await self.claim(user_id)
        if token is None:
            return False
        await self._enqueue(user_id, token, defer=0.0)
        return True

    async def claim(self, user_id: int) -> str | None:
        """Claim the free slot with a new token, for a drain its caller runs; None when a drain holds the slot."""
        token = uuid.uuid4().hex
        if not await self._redis.set(slot_key(user_id), token, nx=True, px=self._ttl_ms):
            return None
        return token

    async def schedule_many(self, user_ids: Sequence[int]) -> list[bool]:
        """`schedule` for each of `user_ids` (distinct): the slots claimed in one round trip, the drain jobs of the
        claimed ones enqueued at the same time; per user, whether this call claimed the slot."""
        if not user_ids:
            return []
        tokens = [uuid.uuid4().hex for _ in user_ids]
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, token in zip(user_ids, tokens, strict=True):
                pipe.set(slot_key(user_id), token, nx=True, px=self._ttl_ms)
            claimed = [bool(ok) for ok in await pipe.execute()]
        await asyncio.gather(
            *(
                self._enqueue(user_id, token, defer=0.0)
                for user_id, token, ok in zip(user_ids, tokens, claimed, strict=True)
                if ok
            )
        )
        return claimed

    async def adopt(self, user_id: int, token: str) -> bool:
        """True when `token` holds the slot, or the slot was free (e.g. Redis lost it) and is now `token`'s."""
        return bool(await self._adopt(keys=[slot_key(user_id)], args=[token, self._ttl_ms]))

    async def keep(self, user_id: int, token: str) -> bool:
        """Extend the lease of `token`'s slot; False when `token` no longer holds it."""
        return bool(await self._keep(keys=[slot_key(user_id)], args=[token, self._ttl_ms]))

    async def hand_over(self, user_id: int, token: str, *, defer: float = 0.0) -> None:
        """Pass the slot to a continuation job enqueued now (runs after `defer` s, behind queued jobs)."""
        successor = uuid.uuid4().hex
        lease = self._ttl_ms + int(defer * 1000)
        if await self._swap(keys=[slot_key(user_id)], args=[token, successor, lease]):
            await self._enqueue(user_id, successor, defer=defer)
        else:  # the lease ran out and someone else holds the slot now: they drain
            await self.schedule(user_id)

    async def release(self, user_id: int, token: str) -> None:
        """Free the slot if `token` still holds it."""
        await self._release(keys=[slot_key(user_id)], args=[token])

    async def _enqueue(self, user_id: int, token: str, *, defer: float) -> None:
        await self._redis.enqueue_job(
            DRAIN_JOB, user_id, token, _job_id=drain_job_id(user_id, token), _defer_by=defer if defer > 0 else None
        )
