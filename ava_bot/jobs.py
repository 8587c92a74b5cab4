"""Job functions run by the arq worker. Each takes arq's `ctx` first; services live in `ctx["services"]`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from arq import Retry

from ava_bot.queueing import turn_job_id
from ava_bot.wiring import Services
from core.errors import Busy, DeliveryError
from core.models import Message, MessageStatus

logger = logging.getLogger(__name__)

#: Pending rows older than this are considered lost by Redis and re-enqueued by the sweeper.
STUCK_AFTER = timedelta(seconds=30)
DELIVERY_TRIES = 5


async def ping(ctx: dict[str, Any]) -> str:
    """Round-trip check used by `ava-bot dev` and the tests: proves a worker is consuming the queue."""
    return "pong"


async def run_turn(ctx: dict[str, Any], user_id: int, message_id: int) -> int:
    """Drain the user's pending messages in order (the message that triggered the job included)."""
    services: Services = ctx["services"]
    try:
        return await services.runner.drain(user_id)
    except Busy:
        raise Retry(defer=1) from None
    except DeliveryError as exc:
        if ctx["job_try"] < DELIVERY_TRIES:
            logger.warning("delivery failed for user %s (try %s): %s", user_id, ctx["job_try"], exc)
            raise Retry(defer=2 ** ctx["job_try"]) from exc
        raise


async def sweep_turns(ctx: dict[str, Any]) -> int:
    """Re-enqueue messages left pending (e.g. after Redis lost its queue); returns how many."""
    services: Services = ctx["services"]
    cutoff = datetime.now(UTC) - ctx.get("turn_stuck_after", STUCK_AFTER)
    rows = await Message.filter(status=MessageStatus.PENDING, created_at__lt=cutoff).order_by("id").limit(500)
    seen: set[int] = set()
    for row in rows:
        user_id = row.user_id  # type: ignore[attr-defined]
        if user_id in seen:
            continue
        seen.add(user_id)
        await services.redis.enqueue_job("run_turn", user_id, row.id, _job_id=turn_job_id(row.id))
    if seen:
        logger.info("sweeper re-enqueued turns of %d users", len(seen))
    return len(seen)
