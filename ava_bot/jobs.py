"""Job functions run by the arq worker. Each takes arq's `ctx` first."""

from __future__ import annotations

from typing import Any


async def ping(ctx: dict[str, Any]) -> str:
    """Round-trip check used by `ava-bot dev` and the tests: proves a worker is consuming the queue."""
    return "pong"
