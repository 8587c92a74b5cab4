"""Activity indicators: keep a channel showing "typing…" / "uploading a photo…" while Ava works.

Platforms show an activity for a few seconds only (Telegram: about 5 s), so it is repeated until the work
ends. Indicators are best effort: a failure is logged at debug level and never fails the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.messages import ChatRef
from core.ports import ActivityKind, Channel

logger = logging.getLogger(__name__)

#: Seconds between repeats (Telegram's chat action lasts about 5 s).
DEFAULT_INTERVAL = 4.0


async def _repeat(channel: Channel, ref: ChatRef, kind: ActivityKind, interval: float) -> None:
    while True:
        try:
            await channel.show_activity(ref, kind)
        except Exception as exc:  # best effort: an indicator must never fail a turn or a photo
            logger.debug("%s activity on %s failed: %r", kind, ref.channel, exc)
        await asyncio.sleep(interval)


@asynccontextmanager
async def showing(
    channel: Channel | None, ref: ChatRef, kind: ActivityKind, *, interval: float = DEFAULT_INTERVAL
) -> AsyncIterator[None]:
    """Show `kind` in the chat at once and every `interval` seconds for the duration of the block."""
    if channel is None:
        yield
        return
    task = asyncio.create_task(_repeat(channel, ref, kind, interval), name=f"activity-{kind}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
