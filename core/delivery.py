"""Outbound delivery: a user's stored replies leave in order, through their channel adapter, exactly once.

Replies are outbound `Message` rows written in the transaction that produced them (a turn, a photo notice).
`Deliverer.deliver_pending` sends a user's pending rows oldest first, with NO transaction open:

- sent -> the row is `sent` with the platform's message id;
- transient `DeliveryError` (flood control, a platform hiccup, an unknown exception) -> the row waits
  (`next_attempt_at`, honouring `retry_after`, else exponential backoff) and the rows behind it wait too, so
  order holds; after `max_attempts` the row fails and is dead-lettered;
- permanent `DeliveryError` (blocked, chat gone, unreachable) -> the row is `failed` with the reason, the
  identity is marked unreachable (the inbox clears that when the user writes again) and delivery goes on;
- a `DeliveryError` with `hold` (WhatsApp's 24-hour window closed) -> that chat's pending replies are `held`
  (in order, not counted as attempts) and leave with the user's next message there; other chats go on.

A row is marked sent right after the platform accepted it; only a crash between the two can send it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.errors import DeliveryError
from core.messages import ChatRef, LinkReply, PhotoReady, Reply, reply_from_payload, reply_text, reply_to_payload
from core.models import ChannelIdentity, DeadLetter, Direction, Message, MessageStatus
from core.outcome import Outcome
from core.ports import Channel, Links

logger = logging.getLogger(__name__)

#: Dead-letter job name of a reply that could not be delivered.
DELIVERY_DEAD_LETTER_JOB = "deliver_reply"


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Retry policy of transient send failures."""

    max_attempts: int = 8
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 300.0


async def store_replies(user_id: int, ref: ChatRef, outcome: Outcome, *, key: str | None = None) -> None:
    """Store the outcome's replies as pending outbound rows to `ref` (inside the caller's transaction).

    `key` makes the rows unique on (channel, external id) — photo notices use the photo id.
    """
    for values in outbound_rows(user_id, ref, outcome, key=key):
        await Message.create(**values)


def outbound_rows(user_id: int, ref: ChatRef, outcome: Outcome, *, key: str | None = None) -> list[dict[str, Any]]:
    """The field values of the outcome's replies as pending outbound rows to `ref` (what `store_replies` writes;
    the turn runner writes them with its commit's one statement)."""
    return [
        {
            "user_id": user_id,
            "direction": Direction.OUTBOUND,
            "channel": ref.channel,
            "chat_id": ref.chat_id,
            "external_message_id": f"{key}:{index}" if key else None,
            "text": reply_text(reply),
            "payload": reply_to_payload(reply),
            "in_history": outcome.history_reply == index,
            "status": MessageStatus.PENDING,
        }
        for index, reply in enumerate(outcome.replies)
    ]


async def hold_chat(ref: ChatRef, reason: str) -> int:
    """Hold every pending reply to `ref` until the user writes there again; return how many."""
    held = await Message.filter(
        direction=Direction.OUTBOUND, channel=ref.channel, chat_id=ref.chat_id, status=MessageStatus.PENDING
    ).update(status=MessageStatus.HELD, error=reason[:2000], next_attempt_at=None)
    logger.info("%s replies to a %s chat held until the user writes again", held, ref.channel)
    return int(held)


async def outside_window(ref: ChatRef, seconds: int) -> bool:
    """Whether the user's last message in `ref` is older than the platform's reply window (or there is none)."""
    last = (
        await Message.filter(direction=Direction.INBOUND, channel=ref.channel, chat_id=ref.chat_id)
        .order_by("-id")
        .first()
    )
    return last is None or last.created_at < datetime.now(UTC) - timedelta(seconds=seconds)


async def release_held(ref: ChatRef) -> int:
    """The user wrote in `ref`: its held replies go out again (before the answer to the new message)."""
    return int(
        await Message.filter(
            direction=Direction.OUTBOUND, channel=ref.channel, chat_id=ref.chat_id, status=MessageStatus.HELD
        ).update(status=MessageStatus.PENDING, next_attempt_at=None)
    )


async def set_reachable(ref: ChatRef, reachable: bool, reason: str = "the user blocked the bot") -> None:
    """A platform event said the user blocked (False) or unblocked (True) the bot in `ref`."""
    if reachable:
        await ChannelIdentity.filter(channel=ref.channel, external_user_id=ref.chat_id).update(
            unreachable_at=None, unreachable_reason=None
        )
    else:
        await mark_unreachable(ref, reason)


#: Platform status names kept on outbound rows.
PLATFORM_STATUSES = frozenset({"sent", "delivered", "read", "failed"})


async def record_platform_status(
    channel: str, platform_message_id: str, status: str, error_code: str | None = None, *, hold_codes: frozenset[str]
) -> bool:
    """A platform's status callback for a sent reply: remember it; a late failure whose code means "the window
    is closed" (`hold_codes`) holds the reply again for the user's next message. False for an unknown id."""
    if status not in PLATFORM_STATUSES:
        return False
    row = await Message.get_or_none(
        channel=channel, platform_message_id=platform_message_id, direction=Direction.OUTBOUND
    )
    if row is None:
        return False
    if status != "failed":
        order = ("sent", "delivered", "read")
        current = row.platform_status if row.platform_status in order else None
        if current is None or order.index(status) > order.index(current):  # callbacks may arrive out of order
            await Message.filter(id=row.id).update(platform_status=status)
        return True
    error = f"platform reported failure {error_code or '(no code)'}"
    if error_code in hold_codes:
        await Message.filter(id=row.id).update(platform_status="failed", status=MessageStatus.HELD, error=error)
    else:
        await Message.filter(id=row.id).update(platform_status="failed", status=MessageStatus.FAILED, error=error)
    return True


async def is_unreachable(ref: ChatRef) -> bool:
    """Whether the platform told us this chat cannot be reached."""
    from core.inbox import _sql  # here: core.inbox imports this module

    return bool(await _sql(UNREACHABLE_CHAT, [ref.channel, ref.chat_id]))


# Plain SQL for what every delivered reply runs (`core.inbox._sql` adapts the placeholders to SQLite). A turn's
# commit reads `UNREACHABLE_CHAT` too (`core.turns.finish_turn_at_once`), and so does the drain's look at the pending
# rows (`core.turns.pending_rows`): their replies go without this look.
UNREACHABLE_CHAT = (
    "SELECT 1 AS unreachable FROM channel_identities "
    "WHERE channel = $1 AND external_user_id = $2 AND unreachable_at IS NOT NULL LIMIT 1"
)
_SENT = (
    "UPDATE messages SET status = $1, processed_at = $2, platform_message_id = $3, next_attempt_at = NULL "
    "WHERE id = $4 AND status = $5 RETURNING id"
)


async def mark_unreachable(ref: ChatRef, reason: str) -> None:
    """Remember that `ref` cannot be reached (until the user writes again)."""
    await ChannelIdentity.filter(channel=ref.channel, external_user_id=ref.chat_id).update(
        unreachable_at=datetime.now(UTC), unreachable_reason=reason[:500]
    )


class Deliverer:
    """Sends stored replies through the channel adapters."""

    def __init__(
        self, channels: Mapping[str, Channel], config: DeliveryConfig | None = None, *, links: Links | None = None
    ) -> None:
        """`links`: links are signed only when sent (`Links.for_sending`): stored rows hold placeholders without
        a token, and a reply that waited (held, retried) never carries an expired link."""
        self._channels = dict(channels)
        self._config = config or DeliveryConfig()
        self._links = links

    def channel(self, name: str) -> Channel | None:
        """The adapter of channel `name`, if this process has one."""
        return self._channels.get(name)

    async def deliver_pending(self, user_id: int) -> float | None:
        """Send the user's pending replies in order; return seconds to wait when one must be retried later."""
        rows = await Message.filter(
            user_id=user_id, direction=Direction.OUTBOUND, status=MessageStatus.PENDING
        ).order_by("id")
        return await self.deliver_rows(rows)

    async def deliver_rows(self, rows: Sequence[Message], *, reachable: Collection[int] = ()) -> float | None:
        """`deliver_pending` of rows the caller just read: one user's pending outbound rows, oldest first.
        `reachable`: ids of rows whose chat the statement that stored or read them found reachable just now (a
        turn's commit, the drain's look at the pending rows): their chat is not looked up again."""
        for row in rows:
            now = datetime.now(UTC)
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                return (row.next_attempt_at - now).total_seconds()
            wait = await self._deliver(row, checked=row.id in reachable)
            if wait is not None:
                return wait
        return None

    async def _deliver(self, row: Message, *, checked: bool = False) -> float | None:
        ref = ChatRef(row.channel, row.chat_id)
        channel = self._channels.get(row.channel)
        if channel is None:
            await self._fail(row, f"no adapter for channel {row.channel!r} in this process")
            return None
        if not checked and await is_unreachable(ref):
            await self._fail(row, "recipient unreachable (the platform refused an earlier message)")
            return None
        window = channel.capabilities.reply_window_seconds
        if window is not None and await outside_window(ref, window):
            await hold_chat(ref, "outside the platform's reply window (the user has not written recently)")
            return None
        assert row.payload is not None
        reply = await self._signed(row.user_id, reply_from_payload(row.payload))
        try:
            delivery = await channel.send(ref, reply)
        except DeliveryError as exc:
            if exc.hold:
                await hold_chat(ref, str(exc))
                return None
            if exc.permanent:
                logger.warning("reply %s to a %s chat refused for good: %s", row.id, row.channel, exc)
                await self._fail(row, f"permanent: {exc}")
                await mark_unreachable(ref, str(exc))
                return None
            return await self._retry_later(row, str(exc), exc.retry_after)
        except Exception as exc:  # an adapter bug or an unexpected client error: retried, then dead-lettered
            logger.exception("sending reply %s through %s failed", row.id, row.channel)
            return await self._retry_later(row, f"{type(exc).__name__}: {exc}", None)
        from core.inbox import _sql  # here: core.inbox imports this module

        await _sql(
            _SENT,
            [
                MessageStatus.SENT.value,
                datetime.now(UTC),
                delivery.platform_message_id,
                row.id,
                MessageStatus.PENDING.value,
            ],
        )
        return None

    async def _signed(self, user_id: int, reply: Reply) -> Reply:
        """The reply with its links minted now: the token exists only in what the platform receives."""
        if self._links is None:
            return reply
        if isinstance(reply, PhotoReady):
            placeholder = self._links.photo_url(user_id, reply.photo_id)  # also replaces an old signed link
            return replace(reply, url=await self._links.for_sending(user_id, placeholder))
        if isinstance(reply, LinkReply):
            return replace(reply, url=await self._links.for_sending(user_id, reply.url))
        return reply

    async def _retry_later(self, row: Message, error: str, retry_after: float | None) -> float | None:
        attempts = row.attempts + 1
        if attempts >= self._config.max_attempts:
            logger.error("reply %s undeliverable after %s attempts: %s", row.id, attempts, error)
            await self._fail(row, f"gave up after {attempts} attempts: {error}", attempts=attempts, dead_letter=True)
            return None
        backoff = min(self._config.backoff_seconds * 2 ** (attempts - 1), self._config.max_backoff_seconds)
        wait = max(backoff, retry_after or 0.0)
        logger.warning("reply %s not delivered (attempt %s), retrying in %.1f s: %s", row.id, attempts, wait, error)
        await Message.filter(id=row.id).update(
            attempts=attempts, error=error[:2000], next_attempt_at=datetime.now(UTC) + timedelta(seconds=wait)
        )
        return float(wait)

    async def _fail(self, row: Message, reason: str, *, attempts: int | None = None, dead_letter: bool = False) -> None:
        await Message.filter(id=row.id, status=MessageStatus.PENDING).update(
            status=MessageStatus.FAILED,
            error=reason[:2000],
            processed_at=datetime.now(UTC),
            attempts=attempts if attempts is not None else row.attempts,
        )
        if dead_letter:
            await DeadLetter.create(
                job=DELIVERY_DEAD_LETTER_JOB,
                payload={"message_id": row.id, "user_id": row.user_id},
                error=reason,
                attempts=attempts or row.attempts,
            )
