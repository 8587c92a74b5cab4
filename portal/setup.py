"""Install the portal on an aiohttp application: sessions, templates, services and routes."""

from __future__ import annotations

import aiohttp_jinja2
import aiohttp_session
import jinja2
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from portal import account, auth, chat
from portal.deps import PORTAL, Portal
from portal.links import PortalLinks

#: Sessions end this long after sign-in.
SESSION_MAX_AGE = 30 * 24 * 3600


def session_key(secret_key: str) -> bytes:
    """The 32-byte cookie-encryption key, derived from `secret_key` for this purpose only (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"ava portal session cookie v1")
    return hkdf.derive(secret_key.encode())


def setup_portal(
    app: web.Application,
    *,
    secret_key: str,
    links: PortalLinks,
    web_channel: str,
    secure_cookies: bool,
    telegram_bot: str | None = None,
    whatsapp_number: str | None = None,
) -> None:
    """Add the portal (landing, sign-up/in/out, magic links, the chat page) to `app`.

    `web_channel` is the web chat adapter's channel name: web accounts get an identity on it and the chat
    page shows its messages. Posting and the event stream are the adapter's routes (`ava_bot.app` adds them).
    With `secure_cookies` the session cookie is `Secure` and `__Host-` prefixed (HTTPS deployments).
    """
    if not secret_key:
        raise ValueError("secret_key must not be empty")
    storage = EncryptedCookieStorage(
        session_key(secret_key),
        cookie_name="__Host-ava_session" if secure_cookies else "ava_session",
        max_age=SESSION_MAX_AGE,
        secure=secure_cookies,
        httponly=True,
        samesite="Lax",
    )
    aiohttp_session.setup(app, storage)
    aiohttp_jinja2.setup(app, loader=jinja2.PackageLoader("portal", "templates"), autoescape=True)
    app[PORTAL] = Portal(
        links=links, web_channel=web_channel, telegram_bot=telegram_bot, whatsapp_number=whatsapp_number
    )
    app.router.add_routes(auth.routes)
    app.router.add_routes(chat.routes)
    app.router.add_routes(account.routes)
