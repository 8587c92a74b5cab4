"""Dead letters of the conversation core: failed turns and undeliverable replies, listed and replayed.

Replaying puts the row back to pending with fresh attempts (marking the dead letter replayed in the same
transaction, so a letter is replayed once); the caller then schedules the user's drain.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.transactions import in_transaction

from core.delivery import DELIVERY_DEAD_LETTER_JOB
from core.errors import NotReplayable
from core.models import DeadLetter, Direction, Message, MessageStatus
from core.turns import TURN_DEAD_LETTER_JOB

#: Dead-letter jobs this module replays.
CORE_JOBS = frozenset({TURN_DEAD_LETTER_JOB, DELIVERY_DEAD_LETTER_JOB})


async def replay(dead_letter_id: int) -> int:
    """Put the message of a turn / delivery dead letter back to pending; return its user id."""
    letter = await DeadLetter.get_or_none(id=dead_letter_id)
    if letter is None or letter.job not in CORE_JOBS:
        raise NotReplayable(f"no turn or delivery dead letter {dead_letter_id}")
    message_id = int(letter.payload["message_id"])
    direction = Direction.INBOUND if letter.job == TURN_DEAD_LETTER_JOB else Direction.OUTBOUND
    async with in_transaction():
        if not await DeadLetter.filter(id=dead_letter_id, replayed_at__isnull=True).update(
            replayed_at=datetime.now(UTC)
        ):
            raise NotReplayable(f"dead letter {dead_letter_id} was already replayed")
        row = await Message.get_or_none(id=message_id, direction=direction)
        if row is None:
            raise NotReplayable(f"message {message_id} of dead letter {dead_letter_id} no longer exists")
        changed = await Message.filter(id=message_id, status=MessageStatus.FAILED).update(
            status=MessageStatus.PENDING, attempts=0, error=None, next_attempt_at=None, processed_at=None
        )
        if not changed:
            raise NotReplayable(f"message {message_id} is {row.status}, not failed")
    return row.user_id
