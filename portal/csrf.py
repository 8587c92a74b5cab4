"""CSRF defence for the portal's state-changing requests.

Scheme (synchroniser token, plus a fetch-metadata check as defence in depth):

* Each session holds a random token (`csrf_token`), created when a page is rendered and replaced on every
  sign-in. Pages put it in a hidden form field (`csrf_token`) and in `<meta name="csrf-token">`, from
  where the chat's script sends it as the `X-CSRF-Token` header.
* Every POST must present the session's token (compared in constant time). A cross-site page cannot
  read it: it lives server-side in the session (`portal.sessions`) and in same-origin pages only.
* Browsers that send `Sec-Fetch-Site` must report `same-origin` (or `none`, a user-initiated request):
  `cross-site` and `same-site` (a sibling subdomain) are refused even with a token.

The session cookie is also `SameSite=Lax`, so modern browsers do not send it on cross-site POSTs at all.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping

from aiohttp import web
from aiohttp_session import Session, get_session

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SESSION_KEY = "csrf"
_ALLOWED_FETCH_SITES = {"same-origin", "none"}


def csrf_token(session: Session) -> str:
    """The session's CSRF token, created on first use."""
    token = session.get(_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


async def require_csrf(request: web.Request, form: Mapping[str, object] | None = None) -> None:
    """Raise 403 unless the request is same-origin and carries the session's CSRF token.

    The token is read from the `X-CSRF-Token` header, else from the `csrf_token` field of `form`.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in _ALLOWED_FETCH_SITES:
        raise forbidden("Cross-site request refused.")
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None and form is not None:
        value = form.get(CSRF_FIELD)
        submitted = value if isinstance(value, str) else None
    session = await get_session(request)
    expected = session.get(_SESSION_KEY)
    if not submitted or not isinstance(expected, str) or not hmac.compare_digest(submitted, expected):
        raise forbidden("Missing or invalid CSRF token. Reload the page and try again.")


def forbidden(message: str) -> web.HTTPForbidden:
    """A 403 with a JSON error body, shaped like the app's other errors."""
    return web.HTTPForbidden(text=json.dumps({"error": message}), content_type="application/json")
