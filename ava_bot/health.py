"""`GET /health` (liveness: touches nothing) and `GET /ready` (database and Redis reachable)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from tortoise import connections

from ava_bot import __version__
from ava_bot.keys import REDIS

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


async def health(request: web.Request) -> web.Response:
    """Liveness for the uptime monitor: 200 and the version, no dependency touched."""
    return web.json_response({"status": "ok", "version": __version__})


async def _database_ok() -> None:
    await connections.get("default").execute_query("SELECT 1")


async def ready(request: web.Request) -> web.Response:
    """Readiness: 200 when the database and Redis answer, else 503 naming what failed."""
    redis = request.app[REDIS]
    checks: dict[str, Callable[[], Awaitable[object]]] = {"database": _database_ok, "redis": redis.ping}
    failed = []
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), READY_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure means "not ready"; say which dependency
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
            failed.append(name)
    if failed:
        return web.json_response({"status": "unavailable", "failed": failed}, status=503)
    return web.json_response({"status": "ready", "version": __version__})


def setup(app: web.Application) -> None:
    """Register the health routes."""
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
