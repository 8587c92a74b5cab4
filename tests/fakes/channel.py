"""A recording chat-platform adapter for core tests: implements `core.ports.Channel` (no base class).

It renders every reply with the core renderer for its capabilities (as real adapters do), records what it
"sent" with a timestamp, and raises the `DeliveryError`s a test queues — per chat, or for photo notices only.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from core.errors import DeliveryError
from core.messages import ChatRef, PhotoReady, Reply
from core.ports import ActivityKind, ChannelCapabilities, Delivery
from core.render import RenderedPart, render

#: A small phone-like platform: 3 buttons, no list messages (more choices become a numbered list).
FAKE_CAPABILITIES = ChannelCapabilities(
    max_text_chars=1000,
    max_body_chars=500,
    max_buttons=3,
    max_button_label_chars=20,
    list_rows=0,
    url_buttons=True,
    url_button_https_only=False,
    url_button_local_hosts=True,
)


@dataclass
class Sent:
    """One delivered reply."""

    chat_id: str
    reply: Reply
    parts: tuple[RenderedPart, ...]
    at: float


@dataclass
class RecordingChannel:
    """`core.ports.Channel` that records deliveries and fails on demand."""

    name: str = "fake"
    capabilities: ChannelCapabilities = FAKE_CAPABILITIES
    sent: list[Sent] = field(default_factory=list)
    attempts: list[tuple[str, float]] = field(default_factory=list)
    activities: list[tuple[str, ActivityKind, float]] = field(default_factory=list)
    failures: dict[str, deque[DeliveryError]] = field(default_factory=lambda: defaultdict(deque))
    photo_failures: deque[DeliveryError] = field(default_factory=deque)

    def fail(self, chat_id: str, *errors: DeliveryError) -> None:
        """The next sends to `chat_id` raise these errors, in order."""
        self.failures[chat_id].extend(errors)

    def fail_photo_notices(self, *errors: DeliveryError) -> None:
        """The next photo notice sends raise these errors, in order."""
        self.photo_failures.extend(errors)

    async def send(self, ref: ChatRef, reply: Reply) -> Delivery:
        """Record the reply, or raise the next queued error."""
        self.attempts.append((ref.chat_id, time.monotonic()))
        if isinstance(reply, PhotoReady) and self.photo_failures:
            raise self.photo_failures.popleft()
        if self.failures[ref.chat_id]:
            raise self.failures[ref.chat_id].popleft()
        self.sent.append(Sent(ref.chat_id, reply, render(reply, self.capabilities), time.monotonic()))
        return Delivery(f"{ref.chat_id}-{len(self.sent)}")

    async def show_activity(self, ref: ChatRef, kind: ActivityKind) -> None:
        """Record the indicator."""
        self.activities.append((ref.chat_id, kind, time.monotonic()))

    def texts(self, chat_id: str | None = None) -> list[str]:
        """Texts of the delivered replies (photo notices: their caption), optionally of one chat."""
        out = []
        for item in self.sent:
            if chat_id is None or item.chat_id == chat_id:
                out.append(item.reply.caption if isinstance(item.reply, PhotoReady) else item.reply.text)
        return out
