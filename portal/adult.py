"""The 18+ interstitial: a browser session sees photos only after the visitor confirms being an adult.

Photos are AI-generated adult content. Before the gallery, a photo page, or a photo opened by a signed link (a
forwarded link lands in a browser that may never have seen Ava) is shown, the session must hold the
confirmation, set by `POST /adult` (CSRF-protected). Otherwise the visitor is sent to `GET /adult?next=<where
they were going>` and returns there after confirming. `next` is only ever a local path, so the page can never
send anyone to another site.

Inline photos in the web chat (`/photos/{id}` without a token, for the signed-in owner) are the user's own, and
the user confirmed 18+ in the chat's onboarding: there an account with `adult_confirmed_at` counts as confirmed
(`portal.photos`). Pages (gallery, photo page, account thumbnail) always ask once per session.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp_session import get_session

from portal.csrf import require_csrf
from portal.links import safe_next as local_path
from portal.pages import render
from portal.sessions import CARRIED_OVER

#: Session key set once the visitor confirmed being 18 or older.
ADULT_SESSION_KEY = CARRIED_OVER[0]
#: Where a confirmation without a usable `next` goes.
DEFAULT_NEXT = "/gallery"
INTERSTITIAL_PATH = "/adult"


async def session_confirmed(request: web.Request) -> bool:
    """Whether this browser session confirmed being 18 or older."""
    return (await get_session(request)).get(ADULT_SESSION_KEY) is True


def safe_next(raw: object) -> str:
    """`raw` when it is a local path other than the interstitial itself (`portal.links.safe_next`), else the gallery."""
    target = local_path(raw, DEFAULT_NEXT)
    return DEFAULT_NEXT if urlsplit(target).path == INTERSTITIAL_PATH else target


def interstitial(request: web.Request) -> web.HTTPSeeOther:
    """A redirect to the interstitial that comes back to this request's path and query."""
    # The path may carry a signed photo token: never cache the redirect, never refer it onwards.
    return web.HTTPSeeOther(
        f"{INTERSTITIAL_PATH}?next={quote(request.path_qs, safe='')}",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def require_adult(request: web.Request) -> None:
    """Raise the redirect to the interstitial unless this session confirmed."""
    if not await session_confirmed(request):
        raise interstitial(request)


async def adult_page(request: web.Request) -> web.Response:
    """The interstitial; a session that already confirmed goes straight on."""
    target = safe_next(request.query.get("next"))
    if await session_confirmed(request):
        raise web.HTTPSeeOther(target)
    return await render(request, "adult.html", {"next": target})


async def confirm_adult(request: web.Request) -> web.Response:
    """Mark the session as confirmed (CSRF-checked) and return to where the visitor was going."""
    form = await request.post()
    await require_csrf(request, form)
    session = await get_session(request)
    session[ADULT_SESSION_KEY] = True
    raise web.HTTPSeeOther(safe_next(form.get("next")))


def setup_adult(app: web.Application) -> None:
    """Register `GET /adult` and `POST /adult`."""
    app.router.add_get(INTERSTITIAL_PATH, adult_page)
    app.router.add_post(INTERSTITIAL_PATH, confirm_adult)
