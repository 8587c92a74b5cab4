"""Inbound pipeline, second half: run a user's turns strictly in arrival order, each exactly once.

`TurnRunner.drain(user_id)` holds the user's lock (across processes), then repeatedly takes the user's
oldest pending inbound message and processes it in ONE database transaction with the user row locked:
engine state changes, the outbound reply rows and the inbound status flip commit together, so a crash
re-runs the message from scratch and a finished message is never run again. Replies are then sent from
the stored outbound rows (pending -> sent), photos are dispatched after commit, and a later drain or the
sweeper redelivers anything left pending.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from core.engine import ConversationEngine, PhotoEvent
from core.messages import ChatRef, InboundMessage, reply_from_payload, reply_text, reply_to_payload
from core.models import Direction, Message, MessageStatus, User
from core.outcome import Outcome
from core.ports import Outbox, PhotoRequests, UserLock

logger = logging.getLogger(__name__)


class TurnRunner:
    """Processes pending messages and photo events of one user at a time."""

    def __init__(self, *, engine: ConversationEngine, outbox: Outbox, lock: UserLock, photos: PhotoRequests) -> None:
        self._engine = engine
        self._outbox = outbox
        self._lock = lock
        self._photos = photos

    async def drain(self, user_id: int) -> int:
        """Process every pending inbound message of the user, oldest first; return how many were processed."""
        processed = 0
        async with self._lock.hold(user_id):
            await self.deliver_pending(user_id)
            while True:
                pending = (
                    await Message.filter(user_id=user_id, direction=Direction.INBOUND, status=MessageStatus.PENDING)
                    .order_by("id")
                    .first()
                )
                if pending is None:
                    return processed
                photo_ids = await self._process(pending.id)
                for photo_id in photo_ids:
                    await self._photos.dispatch(photo_id)
                await self.deliver_pending(user_id)
                processed += 1

    async def _process(self, message_id: int) -> list[int]:
        async with in_transaction():
            row = await Message.select_for_update().get(id=message_id)
            if row.status != MessageStatus.PENDING:  # already done by an earlier run
                return []
            user = await User.select_for_update().get(id=row.user_id)  # type: ignore[attr-defined]
            msg = InboundMessage(
                ref=ChatRef(row.channel, row.chat_id), message_id=row.external_message_id or str(row.id),
                text=row.text, choice=row.choice,
            )
            outcome = await self._engine.handle(user, msg, message_id=row.id)
            await user.save()
            await _store_replies(user, ChatRef(row.channel, row.chat_id), outcome, key=None)
            row.status = MessageStatus.DONE
            row.processed_at = datetime.now(UTC)
            row.in_history = outcome.user_in_history
            await row.save(update_fields=["status", "processed_at", "in_history"])
        return outcome.photo_ids

    async def deliver_pending(self, user_id: int) -> int:
        """Send the user's stored, not yet sent replies in order; a failure leaves the rest for a retry."""
        rows = await Message.filter(
            user_id=user_id, direction=Direction.OUTBOUND, status=MessageStatus.PENDING
        ).order_by("id")
        for row in rows:
            assert row.payload is not None
            await self._outbox.send(ChatRef(row.channel, row.chat_id), reply_from_payload(row.payload))
            row.status = MessageStatus.SENT
            row.processed_at = datetime.now(UTC)
            await row.save(update_fields=["status", "processed_at"])
        return len(rows)

    async def photo_event(self, user_id: int, event: PhotoEvent) -> None:
        """Tell the user about a finished/failed/blocked photo, once, even if called again after a crash."""
        key = f"photo:{event.photo_id}:{event.status}"
        async with self._lock.hold(user_id):
            async with in_transaction():
                user = await User.select_for_update().get(id=user_id)
                ref = await last_chat(user_id)
                if ref is not None and not await Message.exists(channel=ref.channel, external_message_id=key + ":0"):
                    outcome = await self._engine.photo_event(user, event)
                    await user.save()
                    await _store_replies(user, ref, outcome, key=key)
            await self.deliver_pending(user_id)


async def last_chat(user_id: int) -> ChatRef | None:
    """Where the user last wrote from (photo notices go there)."""
    row = await Message.filter(user_id=user_id, direction=Direction.INBOUND).order_by("-id").first()
    return ChatRef(row.channel, row.chat_id) if row is not None else None


async def _store_replies(user: User, ref: ChatRef, outcome: Outcome, *, key: str | None) -> None:
    """Store replies as pending outbound rows; `key` makes them unique (idempotent photo notices)."""
    for index, reply in enumerate(outcome.replies):
        is_history = outcome.history_reply == index
        await Message.create(
            user=user,
            direction=Direction.OUTBOUND,
            channel=ref.channel,
            chat_id=ref.chat_id,
            external_message_id=f"{key}:{index}" if key else None,
            text=outcome.history_text if is_history and outcome.history_text else reply_text(reply),
            payload=reply_to_payload(reply),
            in_history=is_history,
            status=MessageStatus.PENDING,
        )
