"""Job functions run by the arq worker. Each takes arq's `ctx` first; services live in `ctx["services"]`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from tortoise.expressions import Q

from ava_bot.settings import Settings
from ava_bot.wiring import Services
from core.models import Direction, Message, MessageStatus, UsedToken

logger = logging.getLogger(__name__)

#: Pending rows older than this are considered lost by Redis and their users scheduled again by the sweeper.
STUCK_AFTER = timedelta(seconds=30)
SWEEP_BATCH = 500
#: Spent sign-in links are kept this long past their lifetime (clock skew between replicas).
USED_TOKEN_MARGIN = timedelta(minutes=5)


async def ping(ctx: dict[str, Any]) -> str:
    """Round-trip check used by `ava-bot dev` and the tests: proves a worker is consuming the queue."""
    return "pong"


async def run_turn(ctx: dict[str, Any], user_id: int, token: str) -> str:
    """One slice of the user's drain (deliveries and turns, in order) if `token` holds the user's slot."""
    services: Services = ctx["services"]
    return await services.runner.run_drain_job(user_id, str(token))


async def sweep_turns(ctx: dict[str, Any]) -> int:
    """Schedule users whose work was left behind (Redis lost a job, a worker died); returns how many."""
    services: Services = ctx["services"]
    now = datetime.now(UTC)
    stuck_after: timedelta = ctx.get("turn_stuck_after", STUCK_AFTER)
    cutoff = now - stuck_after
    stuck_inbound = Q(direction=Direction.INBOUND, created_at__lt=cutoff)
    stuck_outbound = Q(direction=Direction.OUTBOUND) & (
        Q(next_attempt_at__isnull=True, created_at__lt=cutoff) | Q(next_attempt_at__lt=cutoff)
    )
    user_ids = (
        await Message.filter(Q(status=MessageStatus.PENDING) & (stuck_inbound | stuck_outbound))
        .distinct()
        .limit(SWEEP_BATCH)
        .values_list("user_id", flat=True)
    )
    scheduled = 0
    for user_id in cast(list[int], user_ids):
        if await services.queue.schedule(user_id):
            scheduled += 1
    if scheduled:
        logger.warning("sweeper scheduled the work of %d users again", scheduled)
    return scheduled


async def sweep_used_tokens(ctx: dict[str, Any]) -> int:
    """Forget spent sign-in links older than their lifetime (an expired link is refused by its signature anyway)."""
    settings: Settings = ctx["settings"]
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.sign_in_link_ttl_seconds) - USED_TOKEN_MARGIN
    deleted = await UsedToken.filter(used_at__lt=cutoff).delete()
    if deleted:
        logger.info("forgot %d spent sign-in links past their lifetime", deleted)
    return int(deleted)
