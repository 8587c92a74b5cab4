"""The web channel: the portal's chat page. Inbound comes from `portal.chat`; outbound replies are DB rows.

The turn runner stores every outbound reply as a message row before it calls `send`, so delivery to the
browser is reading those rows. `WebChannel.send` only pokes the user's Redis pub/sub channel; open event
streams (`GET /chat/events`) wake up and read the new rows. Pokes carry no data: a lost or foreign poke
costs one query, and streams also re-read on every keepalive, so a lost poke only delays a reply.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import DeliveryError
from core.messages import ChatRef, Reply

WEB = "web"


def web_ref(user_id: int) -> ChatRef:
    """Where a web user's replies go: on the web the chat id is the user id."""
    return ChatRef(WEB, str(user_id))


def events_channel(chat_id: str) -> str:
    """The Redis pub/sub channel poked when a web chat has new outbound rows."""
    return f"ava:web:{chat_id}"


class WebChannel:
    """`core.ports.Outbox` for the web: wakes the user's open chat pages."""

    name = WEB

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def send(self, ref: ChatRef, reply: Reply) -> None:
        """Tell open chat pages of `ref` to fetch new rows (the reply row is already stored)."""
        if ref.channel != WEB:
            raise ValueError(f"WebChannel cannot send to channel {ref.channel!r}")
        try:
            await self._redis.publish(events_channel(ref.chat_id), "1")
        except RedisError as exc:
            raise DeliveryError(f"web poke for chat {ref.chat_id} failed: {exc}") from exc
