"""What the portal's handlers need, held on the application under one typed key.

The inbox and the Redis client may be opened after the routes are registered (in the composition root's
`cleanup_ctx`), so each can be given as the object itself or as a zero-argument callable returning it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis

from core.inbox import Inbox
from portal.links import PortalLinks


@dataclass(slots=True)
class Portal:
    """Services and settings of the portal's handlers."""

    links: PortalLinks
    inbox_source: Inbox | Callable[[], Inbox]
    redis_source: Redis | Callable[[], Redis]
    #: Seconds between keepalive comments (and safety re-reads) on chat event streams.
    keepalive: float = 15.0
    #: Set when the application shuts down, so long-lived event streams end promptly.
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def inbox(self) -> Inbox:
        """The inbox that stores and enqueues inbound web messages."""
        source = self.inbox_source
        return source if isinstance(source, Inbox) else source()

    def redis(self) -> Redis:
        """The Redis client used for the chat's pub/sub pokes."""
        source = self.redis_source
        return source if isinstance(source, Redis) else source()


PORTAL = web.AppKey("ava_portal", Portal)
#: Session key holding the signed-in user's id.
SESSION_USER = "uid"


def portal(request: web.Request) -> Portal:
    """The portal services of the application handling `request`."""
    return request.app[PORTAL]
