"""The account page's connected chats: connect Telegram or WhatsApp with a one-time code, unlink a chat.

Connecting shows a deep link carrying a fresh code (`core.linking`): opening it and sending the prefilled
message makes that chat talk to this account's Ava. Unlinking a chat gives it back its own, new Ava the next
time it writes. The web identity itself cannot be unlinked here.
"""

from __future__ import annotations

from urllib.parse import quote

from aiohttp import web

from core.linking import create_link_code, link_token
from core.models import ChannelIdentity, User
from portal.chat import signed_in_user
from portal.csrf import require_csrf
from portal.deps import portal
from portal.pages import render

routes = web.RouteTableDef()

CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp"}


async def _account(request: web.Request) -> User:
    user = await signed_in_user(request)
    if user is None:
        raise web.HTTPSeeOther("/signin")
    return user


def connect_url(request: web.Request, channel: str, code: str) -> str | None:
    """The deep link that sends `code` from `channel`, or None when that channel is not set up."""
    deps = portal(request)
    token = link_token(code)
    if channel == "telegram" and deps.telegram_bot:
        return f"https://t.me/{quote(deps.telegram_bot)}?start={token}"
    if channel == "whatsapp" and deps.whatsapp_number:
        return f"https://wa.me/{quote(deps.whatsapp_number)}?text={quote(token)}"
    return None


async def _page(request: web.Request, user: User, **extra: object) -> web.Response:
    deps = portal(request)
    identities = await ChannelIdentity.filter(user_id=user.id).order_by("id")
    chats = [
        {"id": i.id, "channel": CHANNEL_NAMES.get(i.channel, "Web"), "web": i.channel == deps.web_channel}
        for i in identities
    ]
    available = [
        c
        for c in CHANNEL_NAMES
        if (c == "telegram" and deps.telegram_bot) or (c == "whatsapp" and deps.whatsapp_number)
    ]
    context = {"chats": chats, "available": [(c, CHANNEL_NAMES[c]) for c in available], **extra}
    return await render(request, "account.html", context)


@routes.get("/account")
async def account_page(request: web.Request) -> web.Response:
    """Connected chats, and buttons to connect more."""
    return await _page(request, await _account(request))


@routes.post("/account/connect/{channel}")
async def connect(request: web.Request) -> web.Response:
    """Make a one-time code for a channel and show its deep link."""
    user = await _account(request)
    await require_csrf(request, await request.post())
    channel = request.match_info["channel"]
    if channel not in CHANNEL_NAMES or connect_url(request, channel, "X" * 10) is None:
        raise web.HTTPNotFound()
    code = await create_link_code(user.id, channel)
    return await _page(
        request,
        user,
        connect={
            "channel": CHANNEL_NAMES[channel],
            "url": connect_url(request, channel, code),
            "text": link_token(code),
        },
    )


@routes.post("/account/unlink/{identity_id}")
async def unlink(request: web.Request) -> web.Response:
    """Disconnect one of this account's Telegram / WhatsApp chats (never the web identity)."""
    user = await _account(request)
    await require_csrf(request, await request.post())
    deps = portal(request)
    raw = request.match_info["identity_id"]
    identity = (
        await ChannelIdentity.get_or_none(id=int(raw), user_id=user.id) if raw.isdigit() and len(raw) < 19 else None
    )
    if identity is None or identity.channel == deps.web_channel:
        raise web.HTTPNotFound()
    await identity.delete()
    raise web.HTTPSeeOther("/account")
