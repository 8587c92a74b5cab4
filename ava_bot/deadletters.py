"""`ava-bot deadletters list|replay`: turn, delivery and photo dead letters in one place."""

from __future__ import annotations

import json

from arq.connections import ArqRedis

from ava_bot.queueing import DrainQueue
from core import deadletters as core_letters
from core.errors import NotReplayable
from core.models import DeadLetter
from imaging.errors import DeadLetterNotReplayable
from imaging.jobs import replay_dead_letter as replay_photo
from imaging.pipeline import DEAD_LETTER_JOB as PHOTO_JOB


async def list_dead_letters(*, include_replayed: bool = False, limit: int = 50) -> list[str]:
    """One line per dead letter, newest first: id, job, when, attempts, payload, the error's last line."""
    query = DeadLetter.all() if include_replayed else DeadLetter.filter(replayed_at__isnull=True)
    lines = []
    for letter in await query.order_by("-id").limit(limit):
        error_lines = [line for line in letter.error.strip().splitlines() if line.strip()]
        last = error_lines[-1].strip() if error_lines else ""
        replayed = f" replayed {letter.replayed_at:%Y-%m-%d %H:%M}" if letter.replayed_at else ""
        lines.append(
            f"{letter.id}\t{letter.job}\t{letter.created_at:%Y-%m-%d %H:%M:%S}\tattempts={letter.attempts}"
            f"{replayed}\t{json.dumps(letter.payload, sort_keys=True)}\t{last[:200]}"
        )
    return lines


async def replay(redis: ArqRedis, dead_letter_id: int) -> str:
    """Replay one dead letter (fresh attempts) and schedule its work; say what was done."""
    letter = await DeadLetter.get_or_none(id=dead_letter_id)
    if letter is None:
        raise NotReplayable(f"no dead letter {dead_letter_id}")
    if letter.job == PHOTO_JOB:
        try:
            photo_id = await replay_photo(redis, dead_letter_id)
        except DeadLetterNotReplayable as exc:
            raise NotReplayable(str(exc)) from exc
        return f"photo {photo_id} queued again"
    user_id = await core_letters.replay(dead_letter_id)
    await DrainQueue(redis).schedule(user_id)
    return f"{letter.job} of user {user_id} queued again"
