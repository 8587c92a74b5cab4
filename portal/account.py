"""The account page (`GET /account`) and the header's mode switch and sign-out confirmation.

* Avatar: a summary of the current avatar with its kept reference portrait (behind the 18+ interstitial like
  every photo page) and "Edit avatar", which sends the chat command `/avatar` for the user through the core
  `Inbox`, exactly as if typed in the web chat: the edit runs the same setup flow, safety checks and quotas.
* Plan: the subscription from the `Billing` port (`portal.ports`): status, renewal or end date, "Cancel at
  period end", a warning when a payment failed, and "Manage payment and invoices" (Stripe's Customer Portal,
  `POST /billing/manage` in `portal.billing`) for Stripe subscriptions.
* Connected chats: connecting shows a deep link carrying a fresh code (`core.linking`): opening it and sending
  the prefilled message makes that chat talk to this account's Ava. Unlinking a chat gives it back its own,
  new Ava the next time it writes. The web identity itself cannot be unlinked here.
* The header of every page (`portal.nav`, `base.html`) posts its mode switch to `POST /mode`, which sends
  `/mode secretary|intimate` through the inbox like "Edit avatar", and links "Sign out" to `GET /signout`, a
  confirmation whose button posts `POST /signout` (`portal.auth`).

Billing and the inbox exist only once the application runs, so `setup_account` takes getters for them.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from core.engine import current_avatar
from core.inbox import Inbox
from core.linking import create_link_code, link_token
from core.messages import ChatRef, InboundMessage
from core.models import ChannelIdentity, Mode, User
from portal.adult import session_confirmed
from portal.csrf import require_csrf
from portal.deps import portal
from portal.pages import bad_request, render
from portal.paths import parse_id, sign_in_first
from portal.ports import Billing, PlanView
from portal.sessions import current_user

routes = web.RouteTableDef()

CHANNEL_NAMES = {"telegram": "Telegram", "whatsapp": "WhatsApp"}
#: The chat command that starts editing the avatar (`core.setup`).
AVATAR_COMMAND = "/avatar"
#: The chat command that switches the conversation mode (`core.engine`), and the modes it takes.
MODE_COMMAND = "/mode"
MODES = tuple(str(m) for m in Mode)
SETTLE_POLL_SECONDS = 0.1
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclass(frozen=True, slots=True)
class AccountServices:
    """What the account page needs beyond the portal's basics (getters: the clients live in `cleanup_ctx`)."""

    #: The billing service; None where a deployment or test has none (the plan section then says so).
    billing: Callable[[], Billing | None]
    inbox: Callable[[], Inbox]
    #: How long the mode switch waits for the turn to apply the new mode before it opens the chat.
    mode_settle_seconds: float = 3.0


ACCOUNT = web.AppKey("ava_account", AccountServices)


def setup_account(
    app: web.Application,
    *,
    billing: Callable[[], Billing | None],
    inbox: Callable[[], Inbox],
    mode_settle_seconds: float = 3.0,
) -> None:
    """Give the account page (its routes come with `portal.setup.setup_portal`) billing and the inbox."""
    app[ACCOUNT] = AccountServices(billing=billing, inbox=inbox, mode_settle_seconds=mode_settle_seconds)


def _services(request: web.Request) -> AccountServices | None:
    return request.app.get(ACCOUNT)


async def offered_plans(request: web.Request) -> Sequence[PlanView]:
    """The active plans (default first) from the `Billing` port, for the home page; none without billing."""
    services = _services(request)
    billing = services.billing() if services is not None else None
    return await billing.plans() if billing is not None else ()


def payments_live(request: web.Request) -> bool:
    """Whether this server takes real payments (Stripe configured), for the home page's billing line."""
    services = _services(request)
    billing = services.billing() if services is not None else None
    return billing is not None and not billing.development


async def _account(request: web.Request) -> User:
    user = await current_user(request)
    if user is None:
        raise sign_in_first(request)
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


async def _chats(request: web.Request, user: User) -> dict[str, Any]:
    deps = portal(request)
    identities = await ChannelIdentity.filter(user_id=user.id).order_by("id")
    chats = [
        {"id": i.id, "channel": CHANNEL_NAMES.get(i.channel, "Web"), "web": i.channel == deps.web_channel}
        for i in identities
    ]
    available = [
        (c, CHANNEL_NAMES[c])
        for c in CHANNEL_NAMES
        if (c == "telegram" and deps.telegram_bot) or (c == "whatsapp" and deps.whatsapp_number)
    ]
    return {"chats": chats, "available": available}


async def _page(request: web.Request, user: User, **extra: object) -> web.Response:
    services = _services(request)
    billing = services.billing() if services is not None else None
    context: dict[str, Any] = {
        **await _chats(request, user),
        "avatar": await current_avatar(user),
        "can_edit_avatar": services is not None,
        "show_photos": await session_confirmed(request),
        "billing_available": billing is not None,
        "stripe_available": billing is not None and not billing.development,
        "subscription": await billing.subscription(user.id) if billing is not None else None,
        "new_client_id": lambda: uuid.uuid4().hex,
        **extra,
    }
    return await render(request, "account.html", context)


@routes.get("/account")
async def account_page(request: web.Request) -> web.Response:
    """Avatar, plan, connected chats and the account's actions."""
    return await _page(request, await _account(request))


@routes.post("/account/avatar")
async def edit_avatar(request: web.Request) -> web.Response:
    """Send `/avatar` for the user through the inbox (as typed in the web chat), then open the chat."""
    user = await _account(request)
    form = await request.post()
    await require_csrf(request, form)
    services = _services(request)
    if services is None:
        raise web.HTTPNotFound()
    client_id = form.get("client_id")
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise bad_request("client_id must be 8-64 letters, digits, '-' or '_'.")
    # Same id scheme as the web chat's posts: a resubmitted form is one command, not two.
    ref = ChatRef(portal(request).web_channel, str(user.id))
    await services.inbox().receive(InboundMessage(ref, f"{user.id}:{client_id}", AVATAR_COMMAND), user)
    raise web.HTTPSeeOther("/chat")


@routes.post("/mode")
async def switch_mode(request: web.Request) -> web.Response:
    """The header's mode switch: send `/mode <mode>` through the inbox (as typed in the web chat), open the chat.

    The answer waits briefly for the turn (`mode_settle_seconds`), so the chat opens with the new mode in its
    header and theme and Ava's answer in it. Choosing the current mode sends nothing.
    """
    user = await _account(request)
    form = await request.post()
    await require_csrf(request, form)
    services = _services(request)
    mode = form.get("mode")
    if services is None:
        raise web.HTTPNotFound()
    if mode not in MODES:
        raise bad_request("mode must be secretary or intimate.")
    if mode != user.mode:
        client_id = form.get("client_id")
        if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
            raise bad_request("client_id must be 8-64 letters, digits, '-' or '_'.")
        ref = ChatRef(portal(request).web_channel, str(user.id))
        await services.inbox().receive(InboundMessage(ref, f"{user.id}:{client_id}", f"{MODE_COMMAND} {mode}"), user)
        await _settle(user.id, mode, services.mode_settle_seconds)
    raise web.HTTPSeeOther("/chat")


async def _settle(user_id: int, mode: str, seconds: float) -> bool:
    """Wait (at most `seconds`) until the turn has switched the mode, so the page the browser opens next shows it
    (header, theme, Ava's answer); a busy worker just means the next page still shows the old mode."""
    deadline = time.monotonic() + seconds
    while True:
        if await User.filter(id=user_id, mode=mode).exists():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(SETTLE_POLL_SECONDS)


@routes.get("/signout")
async def confirm_signout(request: web.Request) -> web.Response:
    """The sign-out confirmation: its button posts `POST /signout` (a GET never signs anyone out: no CSRF)."""
    if await current_user(request) is None:
        raise web.HTTPSeeOther("/")
    return await render(request, "signout.html", {})


@routes.post("/account/cancel")
async def cancel_subscription(request: web.Request) -> web.Response:
    """Cancel the subscription at the end of the paid period; the page then shows the end date."""
    user = await _account(request)
    await require_csrf(request, await request.post())
    services = _services(request)
    billing = services.billing() if services is not None else None
    if billing is None:
        raise web.HTTPNotFound()
    await billing.cancel_at_period_end(user.id)
    raise web.HTTPSeeOther("/account")


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
    identity_id = parse_id(request.match_info["identity_id"])
    identity = await ChannelIdentity.get_or_none(id=identity_id, user_id=user.id) if identity_id is not None else None
    if identity is None or identity.channel == deps.web_channel:
        raise web.HTTPNotFound()
    await identity.delete()
    raise web.HTTPSeeOther("/account")
