"""Telling a user something outside a turn (a subscription started or ended, a quota renewed).

`notify_user` stores the replies as pending outbound rows in the user's last reachable chat, INSIDE the
caller's transaction (so a notice exists exactly when the state change that causes it committed); the caller
schedules delivery after commit (`TurnQueue.schedule(user_id)`). A `key` makes it idempotent: a webhook
delivered three times tells the user once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.delivery import is_unreachable, store_replies
from core.messages import ChatRef, Reply
from core.models import ChannelIdentity, Message
from core.outcome import Outcome
from core.turns import last_chat

logger = logging.getLogger(__name__)

#: The web chat's channel name (its chat id is the user id); core knows it only as the fallback for notices.
WEB_CHANNEL = "web"


async def notice_ref(user_id: int) -> ChatRef | None:
    """Where a notice goes: the chat the user last wrote from and can be reached in, else their web chat."""
    ref = await last_chat(user_id)
    if ref is not None:
        return ref
    if await ChannelIdentity.exists(user_id=user_id, channel=WEB_CHANNEL):
        web = ChatRef(WEB_CHANNEL, str(user_id))
        return None if await is_unreachable(web) else web
    return None


async def notify_user(user_id: int, replies: Sequence[Reply], *, key: str) -> ChatRef | None:
    """Store `replies` for the user under `key` (once per key); return the chat, or None when there is none."""
    ref = await notice_ref(user_id)
    if ref is None:
        logger.info("notice %s for user %s not stored: no chat to tell", key.split(":")[0], user_id)
        return None
    if await Message.exists(channel=ref.channel, external_message_id=f"{key}:0"):
        return ref  # told already (a redelivered event)
    await store_replies(user_id, ref, Outcome(list(replies)), key=key)
    return ref
