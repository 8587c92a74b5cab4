"""Builder functions shared by the web app and the worker: open the database and Redis, build services.

`create_app` (aiohttp `cleanup_ctx`) and `create_worker` (arq `ctx`) call the same functions here, so the
two processes are always wired identically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from arq.connections import ArqRedis

from ava_bot.db import close_db, init_db
from ava_bot.redis import create_redis
from ava_bot.settings import Settings


@dataclass(frozen=True, slots=True)
class Resources:
    """Long-lived clients of one process."""

    settings: Settings
    redis: ArqRedis


@asynccontextmanager
async def open_resources(
    settings: Settings,
    *,
    redis: ArqRedis | None = None,
    own_database: bool = True,
    allow_fake_redis: bool = False,
) -> AsyncIterator[Resources]:
    """Open the ORM and Redis for one process and close what it opened on exit.

    `redis` injects an existing client (shared by web and worker in `dev`, or by tests); `own_database=False`
    leaves the ORM to the caller (the test harness initialises it once per session).
    """
    if own_database:
        await init_db(settings.effective_database_url)
    owned_redis = redis is None
    client = redis if redis is not None else await create_redis(settings, allow_fake=allow_fake_redis)
    try:
        yield Resources(settings=settings, redis=client)
    finally:
        if owned_redis:
            await client.aclose()
        if own_database:
            await close_db()
