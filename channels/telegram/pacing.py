"""Flood-control pacing for the Bot API: at most one message per chat per interval, and a global rate.

Telegram answers 429 (`RetryAfter`) to a bot that sends more than about one message per second to one chat or
about 30 per second overall. Pacing before sending is cheaper than being told to wait, and it never drops a
message: a caller just waits for its turn.

Per chat, sends are serialised by a lock (parts of one reply, and concurrent replies, leave in call order) and
the next send waits until `per_chat_interval` seconds after the previous one FINISHED: measured from the end,
the gap Telegram sees between two messages is never shorter than the interval. Globally, sends are spaced
`1 / global_rate` seconds apart by reserving the next free slot (no burst), taken only once the chat is ready,
so a busy chat never holds up the others. State is per process; across replicas Telegram's 429s still apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

#: Forget idle chats once this many are tracked (keeps memory flat on a busy bot).
_PRUNE_AT = 4096


@dataclass(slots=True)
class _ChatSlot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Loop time before which the next message to this chat must not start.
    not_before: float = 0.0
    #: Callers waiting for or holding the lock (a slot in use is never pruned).
    users: int = 0


class FloodPacer:
    """Waits so that sends respect a per-chat interval and a process-wide rate; never drops a send."""

    def __init__(self, *, per_chat_interval: float = 1.0, global_rate: float = 30.0) -> None:
        if per_chat_interval < 0:
            raise ValueError(f"per_chat_interval must be >= 0, got {per_chat_interval}")
        if global_rate <= 0:
            raise ValueError(f"global_rate must be > 0, got {global_rate}")
        self.per_chat_interval = per_chat_interval
        self.global_rate = global_rate
        self._chats: dict[str, _ChatSlot] = {}
        self._global_next = 0.0

    @asynccontextmanager
    async def slot(self, chat_id: str) -> AsyncIterator[None]:
        """Hold the chat's turn: entered when a message may be sent, the interval counts from the exit."""
        chat = self._chats.get(chat_id)
        if chat is None:
            self._prune()
            chat = self._chats[chat_id] = _ChatSlot()
        chat.users += 1
        loop = asyncio.get_running_loop()
        try:
            async with chat.lock:
                await _sleep_until(loop, chat.not_before)
                # Reserve the next global slot only now, so a chat that must wait never blocks the others.
                start = max(loop.time(), self._global_next)
                self._global_next = start + 1.0 / self.global_rate
                await _sleep_until(loop, start)
                try:
                    yield
                finally:
                    chat.not_before = max(chat.not_before, loop.time() + self.per_chat_interval)
        finally:
            chat.users -= 1

    def hold_chat(self, chat_id: str, seconds: float) -> None:
        """Send nothing more to this chat for `seconds` (Telegram said so with a 429)."""
        chat = self._chats.setdefault(chat_id, _ChatSlot())
        chat.not_before = max(chat.not_before, asyncio.get_running_loop().time() + seconds)

    def _prune(self) -> None:
        if len(self._chats) < _PRUNE_AT:
            return
        now = asyncio.get_running_loop().time()
        for chat_id in [c for c, slot in self._chats.items() if slot.users == 0 and slot.not_before <= now]:
            del self._chats[chat_id]


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
