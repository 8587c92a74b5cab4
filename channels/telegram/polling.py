"""Long polling for `ava-bot dev`: Telegram updates without a public URL, through the webhook's own handling.

`getUpdates` cannot run while a webhook is set, so polling deletes it first (re-register it for production
with `ava-bot telegram set-webhook`). An update is confirmed (the next offset) only once it was handled; one
that could not be stored (database down) is fetched again after a pause.
"""

from __future__ import annotations

import asyncio
import logging

from telegram.error import TelegramError

from channels.telegram.bot import ALLOWED_UPDATES
from channels.telegram.webhook import TelegramWebhook, handle_update

logger = logging.getLogger(__name__)

#: Seconds Telegram holds a getUpdates call open when there is nothing new.
LONG_POLL_SECONDS = 20
_PAUSE_AFTER_ERROR = 3.0


async def poll_updates(deps: TelegramWebhook, *, long_poll: int = LONG_POLL_SECONDS) -> None:
    """Fetch and handle updates until cancelled."""
    bot = deps.bot()
    await bot.delete_webhook(drop_pending_updates=False)
    logger.info("telegram: polling for updates (development; the webhook was removed)")
    offset: int | None = None
    while True:
        try:
            updates = await bot.get_updates(offset=offset, timeout=long_poll, allowed_updates=list(ALLOWED_UPDATES))
        except TelegramError as exc:
            logger.warning("telegram polling failed, retrying: %s", exc)
            await asyncio.sleep(_PAUSE_AFTER_ERROR)
            continue
        for update in updates:
            if await handle_update(deps, update.to_dict()) != 200:
                await asyncio.sleep(_PAUSE_AFTER_ERROR)
                break  # fetched again from this offset
            offset = update.update_id + 1
