"""The outbox: routes each reply to the adapter of its channel."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from core.errors import DeliveryError
from core.messages import ChatRef, Reply


class Channel(Protocol):
    """A channel adapter able to send replies."""

    name: str

    async def send(self, ref: ChatRef, reply: Reply) -> None:
        """Deliver one reply."""
        ...


class ChannelOutbox:
    """`core.ports.Outbox` dispatching on `ref.channel`."""

    def __init__(self, channels: Iterable[Channel]) -> None:
        self._channels = {channel.name: channel for channel in channels}

    async def send(self, ref: ChatRef, reply: Reply) -> None:
        """Send through the channel named in `ref`; an unknown channel is a delivery error."""
        channel = self._channels.get(ref.channel)
        if channel is None:
            raise DeliveryError(f"no adapter for channel {ref.channel!r}")
        await channel.send(ref, reply)
