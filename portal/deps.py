"""What the portal's handlers need, held on the application under one typed key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from portal.links import PortalLinks


@dataclass(frozen=True, slots=True)
class Portal:
    """Services and settings of the portal's handlers."""

    links: PortalLinks
    #: Name of the web chat channel (`core.models.Message.channel`, `ChannelIdentity.channel`), from its adapter.
    web_channel: str
    #: Telegram bot username (for `t.me/<bot>?start=...` connect links); None when Telegram is not set up.
    telegram_bot: str | None = None
    #: WhatsApp number in international format without "+" (for `wa.me/<number>?text=...`); None when off.
    whatsapp_number: str | None = None


PORTAL = web.AppKey("ava_portal", Portal)
#: Session key holding the signed-in user's id.
SESSION_USER = "uid"


def portal(request: web.Request) -> Portal:
    """The portal services of the application handling `request`."""
    return request.app[PORTAL]
