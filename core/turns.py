"""Inbound pipeline, second half: run a user's turns strictly in arrival order, each exactly once.

A drain job holds the user's drain slot (`TurnQueue`: one drain per user at a time, across processes) and
works for a short slice: it delivers the user's pending replies, then takes the oldest pending inbound
message and runs its turn:

1. count the attempt (committed before the turn runs) and read the user: one statement on PostgreSQL;
2. `ConversationEngine.handle` with NO transaction or connection held — the LLM call included — while the
   channel shows "typing";
3. commit in ONE short transaction: the engine's effects (the message's quota unit, avatar versions, photo
   requests), then one statement: the inbound status flip (only from pending: a message is done once; else
   everything rolls back), the user's state (one conditional UPDATE of the
   fields the turn changed, only if no one changed the user meanwhile: `User.version`, else the turn is
   computed again) and the outbound reply rows. On PostgreSQL a turn whose only effect is its quota unit
   (`Outcome.effects_sql`: a chat turn) is all of that as ONE statement without BEGIN / COMMIT, rolled back whole
   by `ava_require` when a part did not take place; the transaction then answers as it always did;
4. dispatch recorded photos, deliver the replies (the rows the commit stored: the slice read its rows once).

A turn that raises counts as a failed attempt: after `max_turn_attempts` the message is `failed`, a dead letter
holds its payload and the error, the user gets one friendly line and the next message goes on. Attempts are
counted before the turn runs, so a message whose turn keeps crashing the worker also ends.

After its slice the job hands the slot over to a continuation queued behind other users' jobs (fairness), or
releases it and looks again (a message stored meanwhile is never left behind).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import traceback
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import DoesNotExist
from tortoise.transactions import in_transaction

from core.activity import DEFAULT_INTERVAL, showing
from core.delivery import UNREACHABLE_CHAT, Deliverer, is_unreachable, outbound_rows, store_replies
from core.engine import ConversationEngine
from core.errors import StateChanged
from core.inbox import NOT_COMMITTED, _postgres, _sql
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
    #: A drain extends its slot's lease (`TurnQueue.keep`) after a turn only when it last did so this long ago:
    #: well within the lease (minutes), and a Redis round trip saved on most turns.
    keep_every_seconds: float = 15.0


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

    async def run_drain_job(self, user_id: int, token: str, *, claimed: bool = False) -> str:
        """Body of the drain job: work one slice for the user if `token` holds the slot; say what happened.
        `claimed`: the caller claimed the slot for `token` just now (`drain_here`), so it is not adopted again."""
        if not claimed and not await self._queue.adopt(user_id, token):
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

    async def drain_here(self, user_id: int) -> None:
        """Run one slice of the user's drain in the calling job when no drain holds the user's slot: a photo job
        that just committed its notice sends it at once, instead of after a drain job's trip through the queue
        behind other users' jobs. The slice is the drain job's own (`run_drain_job`: same slot, order and limits;
        more work is handed over to a continuation job). When a drain holds the slot, that drain sends the notice
        (in its next look at the pending rows, or when it finds the row after releasing the slot).

        A failure is the drain's to retry (it handed the slot over with a back-off) and is not raised: the caller's
        work is done and stored."""
        token = await self._queue.claim(user_id)
        if token is None:
            return
        try:
            await self.run_drain_job(user_id, token, claimed=True)
        except Exception as exc:  # the drain's failure path handed the slot over with a back-off where it could
            logger.warning("user %s's drain in this job failed (%s); it continues later", user_id, type(exc).__name__)

    async def drain(self, user_id: int, *, token: str | None = None, whole: bool = False) -> float | None:
        """Deliver and process the user's pending work for one slice; return seconds until the next slice, or
        None when nothing is left. `whole=True` ignores the slice (tests, tools)."""
        kept = time.monotonic()  # the job took or adopted the slot (a fresh lease) just before
        deadline = kept + self._config.slice_seconds
        turns = 0
        # One look at the user's pending rows, both directions, oldest first: replies first (all of them, in order),
        # then the messages in order. After a turn its replies (known from its commit) are delivered and the next
        # message read by that look goes on, without another look; the drain looks again when the rows it read
        # are used up (`complete`: that look held every pending row then), or after a turn that stored no replies
        # it knows of. Rows stored meanwhile by others (a photo's notice) wait for the next look, or for the
        # `has_work` check after the slot is released: they are never left behind.
        rows, reachable = await pending_rows(user_id)  # and the reply rows whose chat was found reachable
        complete = len(rows) < PENDING_LOOK
        while True:
            outbound = [r for r in rows if r.direction == Direction.OUTBOUND]
            if outbound and token is not None:
                # Sending is the one step a second drain must never repeat: if the slot is no longer this job's
                # (its lease ran out, or Redis lost it and another drain took it), stop and leave the rows to that
                # drain. Checking also extends the lease.
                if not await self._queue.keep(user_id, token):
                    logger.info("drain of user %s stopped: its slot belongs to another job now", user_id)
                    return None
                kept = time.monotonic()
            wait = await self._deliverer.deliver_rows(outbound, reachable=reachable)
            if wait is not None:
                return wait
            inbound = [r for r in rows if r.direction == Direction.INBOUND]
            if not inbound:
                if complete:
                    return None
                rows, reachable = await pending_rows(user_id)
                complete = len(rows) < PENDING_LOOK
                continue
            if not whole and (turns >= self._config.slice_turns or time.monotonic() >= deadline):
                return 0.0
            retry_in, replies, reachable = await self._run_turn(inbound[0])
            turns += 1
            if token is not None and time.monotonic() - kept >= self._config.keep_every_seconds:
                await self._queue.keep(user_id, token)
                kept = time.monotonic()
            if retry_in is not None:
                if token is None or await self._queue.keep(user_id, token):  # as above: never send twice
                    await self._deliverer.deliver_pending(user_id)
                return retry_in
            if replies is None:  # what the turn stored is not known (it failed for good, or was done elsewhere)
                rows, reachable = await pending_rows(user_id)
                complete = len(rows) < PENDING_LOOK
            else:
                rows = [*replies, *inbound[1:]]

    # -- one turn ----------------------------------------------------------------------------------------------

    async def run_turn(self, message_id: int) -> float | None:
        """Run the turn of a pending inbound message; return seconds to wait before retrying a failed attempt."""
        row = await Message.get_or_none(id=message_id)
        if row is None or row.status != MessageStatus.PENDING:
            return None
        retry_in, _, _ = await self._run_turn(row)
        return retry_in

    async def _run_turn(self, row: Message) -> tuple[float | None, list[Message] | None, frozenset[int]]:
        """`run_turn` of a row just read pending (by the drain holding the user's slot); also the reply rows its
        commit stored (None: not known, e.g. the turn failed for good or another run did it), and the ids of those
        whose chat the commit found reachable (`Deliverer.deliver_rows`' `reachable`)."""
        started = time.monotonic()
        attempts = row.attempts + 1
        user = await count_attempt(row.id, attempts, row.user_id)
        if attempts > self._config.max_turn_attempts:  # earlier runs crashed the worker before they could count
            await self._give_up(row, attempts - 1, "the turn never finished (the worker stopped during it)")
            return None, None, frozenset()
        ref = ChatRef(row.channel, row.chat_id)
        try:
            committed = await self._compute_and_commit(row, ref, user)
        except Exception as exc:
            return await self._failed_attempt(row, attempts, exc, started), None, frozenset()
        outcome, replies, reachable = committed if committed is not None else (None, None, False)
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
        return None, replies, frozenset(r.id for r in replies or ()) if reachable else frozenset()

    async def _compute_and_commit(
        self, row: Message, ref: ChatRef, user: User | None
    ) -> tuple[Outcome, list[Message], bool] | None:
        """Compute the turn on `user` (read with the attempt; None: gone) and commit it (see `_commit`); on a state
        change, read the user again and compute it again."""
        for _ in range(CONFLICT_RETRIES):
            if user is None:
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
            user = None
        raise RuntimeError(f"user state kept changing during message {row.id}")

    async def _commit(
        self, row: Message, user: User, before: dict[str, Any], ref: ChatRef, outcome: Outcome
    ) -> tuple[Outcome, list[Message], bool] | None:
        """Commit the computed turn; the outcome, its stored reply rows and whether the commit found their chat
        reachable (False: not looked at), or None when another run did it."""
        if outcome.effects_sql is not None and _postgres():
            changed = {name: value for name, value in user_state(user).items() if value != before[name]}
            committed = await finish_turn_at_once(row, user, changed, ref, outcome, outcome.effects_sql)
            if committed is not None:
                user.version += 1
                replies, reachable = committed
                return outcome, replies, reachable
            # A part did not take place (another run finished the message, the user changed, no unit left) and
            # nothing was written: the transaction below finds out which, and answers as it always did.
        try:
            async with in_transaction():
                for effect in outcome.effects:  # they may set user fields (the avatar being set up): saved below
                    await effect()
                changed = {name: value for name, value in user_state(user).items() if value != before[name]}
                flipped, saved, replies = await finish_turn(row, user, changed, ref, outcome)
                if not flipped:  # another run finished it first: roll back what the effects wrote
                    raise _AlreadyDone()
                if not saved:  # the user changed under the turn: roll back, compute it again
                    raise StateChanged()
                user.version += 1
        except _AlreadyDone:
            return None
        return outcome, replies, False

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
        user = await lock_user(event.user_id)
        ref = await notice_chat(event)
        before = user_state(user)
        outcome = await self._engine.photo_event(user, event)
        now = datetime.now(UTC)
        parts: list[tuple[str, list[Any]]] = []
        changed = {name: value for name, value in user_state(user).items() if value != before[name]}
        if changed:  # the fields it changed (a new question round, setup moved on), with a new version: a turn
            parts.append(_save_user(user, changed, now))  # computed meanwhile must be computed again
        if ref is None:
            logger.warning("photo %s of user %s finished but the user has no chat to tell", event.photo_id, user.id)
        else:
            replies = outbound_rows(user.id, ref, outcome, key=f"photo:{event.photo_id}")
            if replies:
                parts.append(_insert_replies([reply | {"created_at": now} for reply in replies]))
        if not parts:
            return
        ids = await _run_together(parts)  # one statement on PostgreSQL
        if changed and not ids[0]:  # the row is locked: only a bug gets here; the caller's transaction rolls back
            raise RuntimeError(f"user {user.id} changed while locked for photo {event.photo_id}'s notice")

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


async def pending_rows(user_id: int) -> tuple[list[Message], frozenset[int]]:
    """The user's pending rows of both directions, oldest first (at most `PENDING_LOOK`), and the ids of the
    outbound ones whose chat the same statement found reachable (`Deliverer.deliver_rows`' `reachable`: a reply
    read by this look is sent without looking its chat up again)."""
    rows = await _sql(_PENDING, [user_id, MessageStatus.PENDING.value, PENDING_LOOK, Direction.OUTBOUND.value])
    messages, reachable = [], set()
    for values in rows:
        if values.pop("reachable"):
            reachable.add(values["id"])
        messages.append(Message._init_from_db(**values))
    return messages, frozenset(reachable)


class _AlreadyDone(Exception):
    """Rolls a turn's commit back: another run finished the message first."""


# The statements of every turn are plain SQL (the ORM's query building cost more CPU than running them), with `$n`
# placeholders (`core.inbox._sql` adapts them to SQLite). On PostgreSQL the statements of one step go as one
# statement (data-modifying CTEs); SQLite (`dev`) has no such CTEs and runs them one after the other.
_PENDING = (
    "SELECT m.*, m.direction = $4 AND NOT EXISTS (SELECT 1 FROM channel_identities c "  # `UNREACHABLE_CHAT`'s look
    "WHERE c.channel = m.channel AND c.external_user_id = m.chat_id AND c.unreachable_at IS NOT NULL) AS reachable "
    "FROM messages m WHERE m.user_id = $1 AND m.status = $2 ORDER BY m.id LIMIT $3"
)
_HAS_WORK = (
    "SELECT 1 AS due FROM messages WHERE user_id = $1 AND status = $2 "
    "AND (direction = $3 OR next_attempt_at IS NULL OR next_attempt_at <= $4) LIMIT 1"
)
_COUNT_ATTEMPT = "UPDATE messages SET attempts = $2 WHERE id = $1"
_READ_USER = "SELECT * FROM users WHERE id = $1"
_LOCK_USER = f"{_READ_USER} FOR UPDATE"
_COUNT_AND_READ = f"WITH counted AS ({_COUNT_ATTEMPT}) SELECT * FROM users WHERE id = $3"  # noqa: S608
_FLIP = (
    "UPDATE messages SET status = $1, processed_at = $2, in_history = $3, error = NULL WHERE id = $4 AND status = $5 "
    "RETURNING id"
)
_OUTBOUND_COLUMNS = (
    "user_id",
    "direction",
    "channel",
    "chat_id",
    "external_message_id",
    "text",
    "payload",
    "in_history",
    "status",
    "created_at",
)
_PLACEHOLDER = re.compile(r"\$(\d+)")


async def lock_user(user_id: int) -> User:
    """The user's row, locked until the caller's transaction ends (`DoesNotExist` when gone); plain SQL (every
    photo's terminal transition takes it). SQLite (`dev`, one writer at a time) has no row locks: a plain read."""
    rows = await _sql(_LOCK_USER if _postgres() else _READ_USER, [user_id])
    if not rows:
        raise DoesNotExist(User)
    return User._init_from_db(**rows[0])


async def count_attempt(message_id: int, attempts: int, user_id: int) -> User | None:
    """Record `attempts` on the message (committed before its turn runs) and read its user (None: gone); one
    statement on PostgreSQL."""
    if _postgres():
        rows = await _sql(_COUNT_AND_READ, [message_id, attempts, user_id])
    else:
        await _sql(_COUNT_ATTEMPT, [message_id, attempts])
        rows = await _sql(_READ_USER, [user_id])
    return User._init_from_db(**rows[0]) if rows else None


async def finish_turn(
    row: Message, user: User, changed: dict[str, Any], ref: ChatRef, outcome: Outcome
) -> tuple[bool, bool, list[Message]]:
    """Inside the commit's transaction: flip the message to done (only from pending), write the user fields the
    turn `changed` unless someone changed the user meanwhile (`User.version`: a concurrent write of another field,
    e.g. sign-out's auth_epoch, stays), and store the replies as pending outbound rows. (flipped, saved, the stored
    reply rows): when either of the first two is False the caller rolls back."""
    parts, replies = _turn_parts(row, user, changed, ref, outcome)
    flipped, saved, *stored = await _run_together(parts)
    return bool(flipped), bool(saved), _reply_rows(replies, stored[0] if stored else [])


async def finish_turn_at_once(
    row: Message, user: User, changed: dict[str, Any], ref: ChatRef, outcome: Outcome, effects: tuple[str, list[Any]]
) -> tuple[list[Message], bool] | None:
    """PostgreSQL, with no transaction open: `finish_turn` and the outcome's `effects` (an SQL boolean expression,
    `Outcome.effects_sql`) as ONE statement, committed on its own: no BEGIN and COMMIT round trips. Everything or
    nothing: unless the effects took place, the message was flipped and the user saved, `ava_require` (migration
    0011) raises and the statement rolls back as a whole; then None, else the stored reply rows and whether their
    chat (`ref`) is reachable (not marked unreachable): the delivery right after need not look it up again."""
    expression, every = effects
    parts, replies = _turn_parts(row, user, changed, ref, outcome)
    ctes = [f"e AS (SELECT {expression} AS ok)"]
    for index, (query, values) in enumerate(parts):
        ctes.append(f"s{index} AS ({_shift(query, len(every))})")
        every = [*every, *values]
    # Data-modifying CTEs run to completion whether read or not; `e` runs when read: the check reads it (if another
    # part failed first, the check fails anyway).
    check = "(SELECT ok FROM e) AND (SELECT count(*) FROM s0) = 1 AND (SELECT count(*) FROM s1) = 1"
    ids = "ARRAY(SELECT id FROM s2 ORDER BY id)" if replies else "'{}'::bigint[]"
    unreachable = _shift(UNREACHABLE_CHAT, len(every))
    try:
        [result] = await _sql(
            f"WITH {', '.join(ctes)} SELECT ava_require({check}, 'turn not committed') AS ok, {ids} AS ids, "
            f"EXISTS ({unreachable}) AS unreachable",
            [*every, ref.channel, ref.chat_id],
        )
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == NOT_COMMITTED:
            return None
        raise
    return _reply_rows(replies, list(result["ids"])), not result["unreachable"]


def _turn_parts(
    row: Message, user: User, changed: dict[str, Any], ref: ChatRef, outcome: Outcome
) -> tuple[list[tuple[str, list[Any]]], list[dict[str, Any]]]:
    """`finish_turn`'s statements, each ending in RETURNING id: the flip, the user's save, the replies (if any);
    and the replies' field values."""
    now = datetime.now(UTC)
    parts: list[tuple[str, list[Any]]] = [
        (_FLIP, [MessageStatus.DONE.value, now, outcome.user_in_history, row.id, MessageStatus.PENDING.value]),
        _save_user(user, changed, now),
    ]
    replies = [reply | {"created_at": now} for reply in outbound_rows(user.id, ref, outcome)]
    if replies:
        parts.append(_insert_replies(replies))
    return parts, replies


def _save_user(user: User, changed: dict[str, Any], now: datetime) -> tuple[str, list[Any]]:
    """The statement writing the user fields in `changed` with the next version, only if the user is still at
    `user.version` (RETURNING id: none when someone changed the user meanwhile)."""
    fields = User._meta.fields_map
    assignments = [f'"{name}" = ${n}' for n, name in enumerate(changed, start=1)]
    values: list[Any] = [fields[name].to_db_value(value, user) for name, value in changed.items()]
    k = len(values)
    save = (
        f"UPDATE users SET {', '.join([*assignments, f'version = ${k + 1}', f'updated_at = ${k + 2}'])} "  # noqa: S608
        f"WHERE id = ${k + 3} AND version = ${k + 4} RETURNING id"
    )
    return save, [*values, user.version + 1, now, user.id, user.version]


def _insert_replies(replies: list[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The statement storing `replies` (`outbound_rows` with their `created_at`) as pending outbound rows, RETURNING
    their ids."""
    payload = Message._meta.fields_map["payload"]
    width = len(_OUTBOUND_COLUMNS)
    tuples = ", ".join(
        "(" + ", ".join(f"${i * width + j}" for j in range(1, width + 1)) + ")" for i in range(len(replies))
    )
    insert = f"INSERT INTO messages ({', '.join(_OUTBOUND_COLUMNS)}) VALUES {tuples} RETURNING id"  # noqa: S608
    inserted: list[Any] = []
    for reply in replies:
        stored = reply | {
            "payload": payload.to_db_value(reply["payload"], Message),
            "direction": reply["direction"].value,
            "status": reply["status"].value,
        }
        inserted += [stored[column] for column in _OUTBOUND_COLUMNS]
    return insert, inserted


def _reply_rows(replies: list[dict[str, Any]], ids: list[int]) -> list[Message]:
    """The stored reply rows as the drain delivers them (ids in insertion order are the replies' order)."""
    if len(ids) != len(replies):
        raise RuntimeError(f"{len(replies)} replies stored as {len(ids)} rows")
    return [Message(id=row_id, **values) for row_id, values in zip(sorted(ids), replies, strict=True)]


async def _run_together(parts: list[tuple[str, list[Any]]]) -> list[list[int]]:
    """Run statements that each end in `RETURNING id` (in the caller's transaction); the ids each returned. On
    PostgreSQL as ONE statement (each a CTE; they see the same snapshot, so they must not depend on each other)."""
    if not _postgres():
        return [[row["id"] for row in await _sql(query, values)] for query, values in parts]
    ctes: list[str] = []
    every: list[Any] = []
    for index, (query, values) in enumerate(parts):
        ctes.append(f"s{index} AS ({_shift(query, len(every))})")
        every += values
    ids = ", ".join(f"ARRAY(SELECT id FROM s{i} ORDER BY id) AS r{i}" for i in range(len(parts)))  # noqa: S608
    [row] = await _sql(f"WITH {', '.join(ctes)} SELECT {ids}", every)
    return [list(row[f"r{index}"]) for index in range(len(parts))]


def _shift(query: str, offset: int) -> str:
    """`query` with its placeholders `$n` renumbered `$(n + offset)`."""
    return _PLACEHOLDER.sub(lambda match: f"${int(match.group(1)) + offset}", query)


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
    """Whether the user has a pending inbound message or a reply due for delivery now (one query, plain SQL: every
    drain job asks once it released the slot, and the ORM's query building cost more than the statement)."""
    values = [user_id, MessageStatus.PENDING.value, Direction.INBOUND.value, datetime.now(UTC)]
    return bool(await _sql(_HAS_WORK, values))


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
