"""`Outcome`: what one turn (or photo event) produced, handed from the engine to the turn runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from core.messages import Reply

#: A database write the engine wants, run by the runner inside the transaction that commits the turn.
Effect = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Outcome:
    """Replies to store, database writes to commit with them, photos to dispatch after commit, history flags.

    The engine computes an outcome with no transaction open (the LLM call included); the runner then runs
    `effects` in order, saves the user and stores `replies` in ONE short transaction. Effects append the ids
    of photos they recorded to `photo_ids`, which the runner dispatches after the commit.
    `history_reply` is the index of the reply recorded as the assistant's history entry; `user_in_history`
    records the user's message.
    """

    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    photo_ids: list[int] = field(default_factory=list)
    user_in_history: bool = False
    history_reply: int | None = None
    #: The effects as ONE SQL boolean expression with its values (placeholders `$1`...; PostgreSQL), true when they
    #: took place: the runner then commits the turn in one statement, rolled back as a whole when it is false. None:
    #: the effects run one by one in the commit's transaction.
    effects_sql: tuple[str, list[Any]] | None = None
