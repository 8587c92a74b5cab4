"""Rendering portal pages: templates with the CSRF token and a CSP nonce, and the security headers.

Every page gets a strict Content-Security-Policy (scripts only with the per-response nonce; styles from the
site's own stylesheet `/static/ava.css` or with the nonce),
`Referrer-Policy: no-referrer` (portal URLs can carry signed tokens, which must not leak to other sites),
no framing, and `Cache-Control: no-store` (pages show private conversations). On HTTPS deployments every
answer of the application also carries HSTS (`add_hsts`, installed by `portal.setup`).
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import Session, get_session

from portal.csrf import csrf_token
from portal.nav import MENU, header_for
from portal.sessions import current_user

#: Pages a photo can be opened from, remembered in the session (`remember_origin`) under `ORIGIN_KEY`.
ORIGIN_PAGES = frozenset({"/chat", "/gallery", "/account"})
ORIGIN_KEY = "origin"
#: One year, subdomains included: browsers then never try plain HTTP to this host.
HSTS = "max-age=31536000; includeSubDomains"


async def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """Render `template` with the CSRF token, the nonce, whether someone is signed in and their header."""
    user = await current_user(request)  # first: a dead session is replaced before the token
    header = await header_for(request, user) if user is not None else None
    session = await get_session(request)
    remember_origin(session, request)
    nonce = secrets.token_urlsafe(16)
    full = {
        "csrf_token": csrf_token(session),
        "nonce": nonce,
        "signed_in": user is not None,
        "header": header,
        "menu": MENU,
        "mode": header.mode if header is not None else "secretary",
        "path": request.path,
        # The header's mode switch posts an inbound chat command: a fresh id makes a resubmitted form one command.
        "header_client_id": uuid.uuid4().hex,
        **context,
    }
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    apply_security_headers(response, nonce)
    return response


def remember_origin(session: Session, request: web.Request) -> None:
    """Note the last chat, gallery or account page shown in this session: a photo page's "Back" returns there.

    (Pages send no Referer, even to this site, so the photo page cannot learn it otherwise.)
    """
    if request.method == "GET" and request.path in ORIGIN_PAGES and session.get(ORIGIN_KEY) != request.path_qs:
        session[ORIGIN_KEY] = request.path_qs


def page_origin(session: Session) -> str | None:
    """The last chat, gallery or account page this session showed (`remember_origin`), if any."""
    origin = session.get(ORIGIN_KEY)
    return origin if isinstance(origin, str) else None


def apply_security_headers(response: web.StreamResponse, nonce: str) -> None:
    """Set CSP, referrer, framing and caching headers on a portal page."""
    # No `form-action`: Chrome applies it to redirects too, which would block Stripe Checkout redirects.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"


async def add_hsts(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: HSTS on every answer (pages, redirects, errors, photos) of an HTTPS site."""
    response.headers["Strict-Transport-Security"] = HSTS


def json_error(status: int, message: str) -> web.Response:
    """A JSON error body shaped like the app's error middleware answers."""
    return web.Response(status=status, text=json.dumps({"error": message}), content_type="application/json")


def bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 to raise, with a JSON error body."""
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def safe_href(url: object) -> str | None:
    """`url` if it is an http(s) or site-relative URL, else None (never render `javascript:` links)."""
    if not isinstance(url, str):
        return None
    if url.startswith(("https://", "http://")) or (url.startswith("/") and not url.startswith("//")):
        return url
    return None
