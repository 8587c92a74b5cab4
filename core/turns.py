"""Inbound pipeline, second half: run a user's turns strictly in arrival order, each exactly once.

A drain job holds the user's drain slot (`TurnQueue`: one drain per user at a time, across processes) and
works for a short slice: it delivers the user's pending replies, then takes the oldest pending inbound
message and runs its turn:

1. read the user and the message (no transaction), count the attempt;
2. `ConversationEngine.handle` with NO transaction or connection held — the LLM call included — while the
   channel shows "typing";
3. commit in ONE short transaction: the inbound status flip (only from pending: a message is done once),
   the engine's effects (avatar versions, photo requests), the user's state (one conditional UPDATE of the
   fields the turn changed, only if no one changed the user meanwhile: `User.version`, else the turn is
   computed again) and the outbound reply rows;
4. dispatch recorded photos, deliver the replies.

A turn that raises counts as a failed attempt: after `max_turn_attempts` the message is `failed`, a dead letter
holds its payload and the error, the user gets one friendly line and the next message goes on. Attempts are
counted before the turn runs, so a message whose turn keeps crashing the worker also ends.

After its slice the job hands the slot over to a continuation queued behind other users' jobs (fairness), or
releases it and looks again (a message stored meanwhile is never left behind).
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from core.activity import DEFAULT_INTERVAL, showing
from core.delivery import Deliverer, is_unreachable, store_replies
from core.engine import ConversationEngine
from core.errors import StateChanged
from core.messages import ChatRef, Choice, InboundMessage, TextReply
from core.models import DeadLetter, Direction, Message, MessageStatus, User
from core.outcome import Outcome
from core.persona import turn_failed_line
from core.ports import PhotoEvent, PhotoRequests, TurnQueue
from core.render import numbered_choice

logger = logging.getLogger(__name__)

#: Dead-letter job name of a turn that failed for good (replayed by putting the message back to pending).
TURN_DEAD_LETTER_JOB = "run_turn"
#: How often a turn is computed again when the user's state changed under it (a photo finished meanwhile).
CONFLICT_RETRIES = 3


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Tunables of the turn runner (from Settings)."""

    max_turn_attempts: int = 3
    turn_backoff_seconds: float = 2.0
    #: A drain job's slice: at most this many turns or seconds, then it queues behind other users.
    slice_turns: int = 3
    slice_seconds: float = 1.0
    activity_interval: float = DEFAULT_INTERVAL


class TurnRunner:
    """Processes one user's pending messages and deliveries at a time."""

    def __init__(
        self,
        *,
        engine: ConversationEngine,
        deliverer: Deliverer,
        queue: TurnQueue,
        photos: PhotoRequests,
        config: RunnerConfig | None = None,
    ) -> None:
        self._engine = engine
        self._deliverer = deliverer
        self._queue = queue
        self._photos = photos
        self._config = config or RunnerConfig()

    # -- the drain job -----------------------------------------------------------------------------------------

    async def run_drain_job(self, user_id: int, token: str) -> str:
        """Body of the drain job: work one slice for the user if `token` holds the slot; say what happened."""
        if not await self._queue.adopt(user_id, token):
            return "skipped: another drain holds the slot"
        try:
            wait = await self.drain(user_id, token=token)
        except Exception:
            # An unexpected error (the database went away...): try again later; the sweeper is the safety net.
            logger.exception("drain of user %s failed; it continues later", user_id)
            with contextlib.suppress(Exception):
                await self._queue.hand_over(user_id, token, defer=self._config.turn_backoff_seconds * 4)
            raise
        except BaseException:  # cancelled (job timeout, shutdown): free the slot for the next job
            with contextlib.suppress(Exception):
                await self._queue.release(user_id, token)
            raise
        if wait is not None:
            await self._queue.hand_over(user_id, token, defer=wait)
            return f"continues in {wait:.2f} s"
        await self._queue.release(user_id, token)
        if await has_work(user_id):  # stored after our last look: it must not wait for the sweeper
            await self._queue.schedule(user_id)
        return "idle"

    async def drain(self, user_id: int, *, token: str | None = None, whole: bool = False) -> float | None:
        """Deliver and process the user's pending work for one slice; return seconds until the next slice, or
        None when nothing is left. `whole=True` ignores the slice (tests, tools)."""
        deadline = time.monotonic() + self._config.slice_seconds
        turns = 0
        while True:
            # One look at the user's pending rows, both directions: replies first (all of them, in order), then
            # the oldest pending message. A look that hit the limit and held no message looks again.
            rows = await pending_rows(user_id)
            wait = await self._deliverer.deliver_rows([r for r in rows if r.direction == Direction.OUTBOUND])
            if wait is not None:
                return wait
            pending = next((r for r in rows if r.direction == Direction.INBOUND), None)
            if pending is None:
                if len(rows) < PENDING_LOOK:
                    return None
                continue
            if not whole and (turns >= self._config.slice_turns or time.monotonic() >= deadline):
                return 0.0
            retry_in = await self._run_turn(pending)
            turns += 1
            if token is not None:
                await self._queue.keep(user_id, token)
            if retry_in is not None:
                await self._deliverer.deliver_pending(user_id)
                return retry_in

    # -- one turn ----------------------------------------------------------------------------------------------

    async def run_turn(self, message_id: int) -> float | None:
        """Run the turn of a pending inbound message; return seconds to wait before retrying a failed attempt."""
        row = await Message.get_or_none(id=message_id)
        if row is None or row.status != MessageStatus.PENDING:
            return None
        return await self._run_turn(row)

    async def _run_turn(self, row: Message) -> float | None:
        """`run_turn` of a row just read pending (by the drain holding the user's slot)."""
        started = time.monotonic()
        attempts = row.attempts + 1
        await Message.filter(id=row.id).update(attempts=attempts)
        if attempts > self._config.max_turn_attempts:  # earlier runs crashed the worker before they could count
            await self._give_up(row, attempts - 1, "the turn never finished (the worker stopped during it)")
            return None
        ref = ChatRef(row.channel, row.chat_id)
        try:
            outcome = await self._compute_and_commit(row, ref)
        except Exception as exc:
            return await self._failed_attempt(row, attempts, exc, started)
        duration_ms = (time.monotonic() - started) * 1000
        outcome_name = "done" if outcome is not None else "already done"
        logger.info(
            "turn user=%s message=%s attempt=%s duration_ms=%.1f outcome=%s",
            row.user_id,
            row.id,
            attempts,
            duration_ms,
            outcome_name,
        )
        for photo_id in outcome.photo_ids if outcome is not None else ():
            await self._photos.dispatch(photo_id)
        return None

    async def _compute_and_commit(self, row: Message, ref: ChatRef) -> Outcome | None:
        for _ in range(CONFLICT_RETRIES):
            user = await User.get(id=row.user_id)
            before = user_state(user)
            msg = await self._inbound(row, user, ref)
            channel = self._deliverer.channel(ref.channel)
            async with showing(channel, ref, "typing", interval=self._config.activity_interval):
                outcome = await self._engine.handle(user, msg, message_id=row.id)
            try:
                return await self._commit(row, user, before, ref, outcome)
            except StateChanged:
                logger.info("user %s changed during message %s: computing the turn again", user.id, row.id)
        raise RuntimeError(f"user state kept changing during message {row.id}")

    async def _commit(
        self, row: Message, user: User, before: dict[str, Any], ref: ChatRef, outcome: Outcome
    ) -> Outcome | None:
        async with in_transaction():
            now = datetime.now(UTC)
            flipped = await Message.filter(id=row.id, status=MessageStatus.PENDING).update(
                status=MessageStatus.DONE, processed_at=now, in_history=outcome.user_in_history, error=None
            )
            if not flipped:  # another run finished it first
                return None
            for effect in outcome.effects:  # they may set user fields (the avatar being set up): saved below
                await effect()
            # One conditional UPDATE locks the user, checks that no one changed the state the turn was computed
            # on (else everything above rolls back and the turn is computed again) and writes what the turn
            # changed: only those fields, so a concurrent write of another field (sign-out's auth_epoch) stays.
            changed = {name: value for name, value in user_state(user).items() if value != before[name]}
            saved = await User.filter(id=user.id, version=user.version).update(
                **changed, version=user.version + 1, updated_at=now
            )
            if not saved:
                raise StateChanged()
            user.version += 1
            await store_replies(user.id, ref, outcome)
        return outcome

    async def _inbound(self, row: Message, user: User, ref: ChatRef) -> InboundMessage:
        """The stored message as the engine sees it; a typed number answers a question shown as a numbered list."""
        msg = InboundMessage(
            ref=ref, message_id=row.external_message_id or str(row.id), text=row.text, choice=row.choice
        )
        channel = self._deliverer.channel(ref.channel)
        if msg.choice is not None or not msg.text or channel is None or not _may_be_number(msg.text):
            return msg
        choices = await open_choices(user, ref)
        picked = numbered_choice(msg.text, choices, channel.capabilities) if choices else None
        return replace(msg, choice=picked, text=None) if picked is not None else msg

    async def _failed_attempt(self, row: Message, attempts: int, exc: Exception, started: float) -> float | None:
        duration_ms = (time.monotonic() - started) * 1000
        logger.error(
            "turn user=%s message=%s attempt=%s duration_ms=%.1f outcome=error",
            row.user_id,
            row.id,
            attempts,
            duration_ms,
            exc_info=exc,
        )
        error = "".join(traceback.format_exception(exc))[-8000:]
        if attempts < self._config.max_turn_attempts:
            await Message.filter(id=row.id).update(error=error)
            return float(self._config.turn_backoff_seconds * 2 ** (attempts - 1))
        await self._give_up(row, attempts, error)
        return None

    async def _give_up(self, row: Message, attempts: int, error: str) -> None:
        """Fail the message for good: dead letter, one friendly line to the user; the next message goes on."""
        async with in_transaction():
            flipped = await Message.filter(id=row.id, status=MessageStatus.PENDING).update(
                status=MessageStatus.FAILED, processed_at=datetime.now(UTC), error=error, in_history=False
            )
            if not flipped:
                return
            await DeadLetter.create(
                job=TURN_DEAD_LETTER_JOB,
                payload={"message_id": row.id, "user_id": row.user_id, "channel": row.channel},
                error=error,
                attempts=attempts,
            )
            await store_replies(
                row.user_id, ChatRef(row.channel, row.chat_id), Outcome([TextReply(turn_failed_line())])
            )
        await self._engine.abandoned(row.id)
        logger.error("message %s of user %s dead-lettered after %s attempts", row.id, row.user_id, attempts)

    # -- photo notices -----------------------------------------------------------------------------------------

    async def record_photo_event(self, event: PhotoEvent) -> None:
        """Write the notice of a finished photo as outbound rows, INSIDE the caller's transaction (the one that
        marks the photo ready / failed), so a notice exists exactly when the photo is finished. No network."""
        user = await User.select_for_update().get(id=event.user_id)
        ref = await notice_chat(event)
        before = _setup_state(user)
        outcome = await self._engine.photo_event(user, event)
        if _setup_state(user) != before:  # only then: a turn computed meanwhile must be computed again
            user.version += 1
            await user.save()
        if ref is None:
            logger.warning("photo %s of user %s finished but the user has no chat to tell", event.photo_id, user.id)
            return
        await store_replies(user.id, ref, outcome, key=f"photo:{event.photo_id}")

    def photo_activity(self, ref: ChatRef) -> AbstractAsyncContextManager[None]:
        """Show "uploading a photo" in `ref` for the duration of an `async with` block."""
        return showing(
            self._deliverer.channel(ref.channel), ref, "upload_photo", interval=self._config.activity_interval
        )


#: The user fields a turn may change (everything but the key, the version and the timestamps).
USER_STATE_FIELDS = tuple(sorted(User._meta.db_fields - {User._meta.pk_attr, "version", "created_at", "updated_at"}))
#: How many pending rows one look of the drain reads.
PENDING_LOOK = 50
_DIGITS = frozenset("0123456789")


def user_state(user: User) -> dict[str, Any]:
    """The values of the user's state fields (compared after the turn: only changed ones are written)."""
    return {name: getattr(user, name) for name in USER_STATE_FIELDS}


def _may_be_number(text: str) -> bool:
    """Whether `text` could pick a numbered choice (it starts with a digit): only then are open choices read."""
    stripped = text.lstrip()
    return bool(stripped) and stripped[0] in _DIGITS


async def pending_rows(user_id: int) -> list[Message]:
    """The user's pending rows of both directions, oldest first (at most `PENDING_LOOK`)."""
    return await Message.filter(user_id=user_id, status=MessageStatus.PENDING).order_by("id").limit(PENDING_LOOK)


def _setup_state(user: User) -> tuple[object, ...]:
    """The user fields a photo event may change."""
    return (
        user.setup_step,
        user.setup_avatar_id,
        user.setup_photo_id,
        user.draft_appearance,
        user.question_round,
    )


async def open_choices(user: User, ref: ChatRef) -> tuple[Choice, ...]:
    """The choices of the question open in `ref` (the latest choices sent there, if of the current round)."""
    rows = (
        await Message.filter(user_id=user.id, direction=Direction.OUTBOUND, channel=ref.channel, chat_id=ref.chat_id)
        .order_by("-id")
        .limit(10)
    )
    for row in rows:
        payload: dict[str, Any] = row.payload or {}
        if payload.get("type") == "choices":
            choices = tuple(Choice(str(c["label"]), str(c["data"])) for c in payload.get("choices") or [])
            prefix = f"{user.question_round}."
            return choices if choices and all(c.data.startswith(prefix) for c in choices) else ()
    return ()


async def has_work(user_id: int) -> bool:
    """Whether the user has a pending inbound message or a reply due for delivery now (one query)."""
    due = Q(direction=Direction.INBOUND) | Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=datetime.now(UTC))
    return bool(await Message.filter(Q(user_id=user_id, status=MessageStatus.PENDING) & due).exists())


async def last_chat(user_id: int) -> ChatRef | None:
    """Where the user last wrote from and can still be reached."""
    rows = await Message.filter(user_id=user_id, direction=Direction.INBOUND).order_by("-id").limit(20)
    for row in rows:
        ref = ChatRef(row.channel, row.chat_id)
        if not await is_unreachable(ref):
            return ref
    return None


async def notice_chat(event: PhotoEvent) -> ChatRef | None:
    """The chat a photo notice goes to: where the request came from, else the user's last active chat."""
    if event.ref is not None and not await is_unreachable(event.ref):
        return event.ref
    return await last_chat(event.user_id) or event.ref
