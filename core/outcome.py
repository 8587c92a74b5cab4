"""`Outcome`: what one turn (or photo event) produced, handed from the engine to the turn runner."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.messages import Reply


@dataclass(slots=True)
class Outcome:
    """Replies to send, photos to dispatch after commit, and what enters LLM history.

    `history_reply` is the index of the reply recorded as the assistant's history entry, with
    `history_text` as its text (which may note a sent photo); `user_in_history` records the user's message.
    """

    replies: list[Reply] = field(default_factory=list)
    photo_ids: list[int] = field(default_factory=list)
    user_in_history: bool = False
    history_reply: int | None = None
    history_text: str | None = None
