"""Install the portal on an aiohttp application: sessions, templates, services, security headers and routes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from redis.asyncio import Redis

from core.ports import RateLimiter
from portal import account, auth, chat
from portal.assets import setup_assets
from portal.auth import AUTH, AuthServices
from portal.deps import PORTAL, Portal
from portal.humane import time_tag
from portal.links import PortalLinks
from portal.pages import add_hsts
from portal.passwords import Passwords
from portal.sessions import DEFAULT_MAX_AGE, SESSION_POLICY, RedisSessionStorage, SessionPolicy
from portal.throttle import DEFAULT_TRUSTED_PROXIES, IPNetwork, SignInGuard, SignInLimits


def setup_portal(
    app: web.Application,
    *,
    links: PortalLinks,
    web_channel: str,
    secure_cookies: bool,
    redis: Callable[[], Redis],
    limiter: Callable[[], RateLimiter] | None = None,
    limits: SignInLimits | None = None,
    trusted_proxies: Sequence[IPNetwork] = DEFAULT_TRUSTED_PROXIES,
    password_hash_concurrency: int = 2,
    passwords: Passwords | None = None,
    session_max_age: int = DEFAULT_MAX_AGE,
    hsts: bool = False,
    telegram_bot: str | None = None,
    whatsapp_number: str | None = None,
) -> None:
    """Add the portal (landing, sign-up/in/out, magic links, the chat page) to `app`.

    `web_channel` is the web chat adapter's channel name: web accounts get an identity on it and the chat
    page shows its messages. Posting and the event stream are the adapter's routes (`ava_bot.app` adds them).
    `redis` gives the application's Redis client once it runs (sessions live there: the in-process fakeredis
    in `dev`). `limiter` gives the shared rate limiter (None: sign-in is not limited). With `secure_cookies`
    the session cookie is `Secure` and `__Host-` prefixed, with `hsts` every answer carries
    Strict-Transport-Security (HTTPS deployments).
    """
    storage = RedisSessionStorage(
        redis,
        cookie_name="__Host-ava_session" if secure_cookies else "ava_session",
        secure=secure_cookies,
    )
    aiohttp_session.setup(app, storage)
    env = aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("portal", "templates"), autoescape=True)
    env.globals["static_url"] = setup_assets(app).url
    env.globals["when"] = time_tag
    app[SESSION_POLICY] = SessionPolicy(max_age=session_max_age)
    app[AUTH] = AuthServices(
        passwords=passwords or Passwords(concurrency=password_hash_concurrency),
        guard=SignInGuard(limiter, limits, trusted_proxies=trusted_proxies),
    )
    app[PORTAL] = Portal(
        links=links, web_channel=web_channel, telegram_bot=telegram_bot, whatsapp_number=whatsapp_number
    )
    if hsts:
        app.on_response_prepare.append(add_hsts)
    app.router.add_routes(auth.routes)
    app.router.add_routes(chat.routes)
    app.router.add_routes(account.routes)
