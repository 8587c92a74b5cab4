"""A finished photo, for its owner only: `GET /photos/{id}` (the JPEG), `GET /photos/{id}/view` (its page) and
`POST /photos/{id}/delete` (the owner's session only, CSRF-checked).

Access is granted by a signed photo link (`?t=<token>`, from `PortalLinks.photo_url`, sent in chat) or by
the owner's portal session; a link opened in a browser signed in to another account is refused (404). A
tampered or expired token is 403; a photo that is someone else's, missing or not ready is 404 (one answer, so
the route never reveals whether a photo exists), and so is an id that is not
a number or is outside the 64-bit range. Before a photo is shown the 18+ interstitial applies
(`portal.adult`): a session that has not confirmed is sent there first; for the JPEG requested with the
owner's session (the web chat's inline photos) an account that confirmed 18+ in chat onboarding counts too.

Errors are raised as `AvaError`s and answered by the one error middleware (an HTML page for a browser, JSON
otherwise). Responses are never cached and never leak the URL (it carries the token) through a Referer header.
Photos come from the `PhotoLibrary` port (`portal.ports`), which applies the owner and readiness rules.
Captions are Ava's words: the scene she described for a chat photo, "My portrait" for a reference (never the
user's own description of her). The current avatar's kept reference cannot be deleted (409, `PhotoProtected`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp_session import get_session

from core.errors import AvaError
from core.models import User
from portal.adult import interstitial, require_adult, session_confirmed
from portal.csrf import require_csrf
from portal.errors import PhotoNotDeleted, PhotoNotFound, PhotoProtected, PhotoUnavailable, SignInRequired
from portal.links import PortalLinks, safe_next
from portal.pages import page_origin, render
from portal.paths import parse_id, sign_in_first
from portal.ports import GalleryPhoto, PhotoLibrary

logger = logging.getLogger(__name__)

SessionUser = Callable[[web.Request], Awaitable[int | None]]

#: Headers on every photo answer (the error middleware puts the same ones on every error answer).
PRIVATE_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


#: Captions and page titles of the two kinds of photo, in Ava's voice.
PORTRAIT_CAPTION = "My portrait"
PHOTO_TITLE = "From our chat"
PHOTO_CAPTION = "A photo for you"
#: Where "Back" goes for each origin a photo page may be opened from (`?back=`).
BACK_LABELS = {"/chat": "Back to the chat", "/gallery": "Back to your photos", "/account": "Back to your account"}


def caption(photo: GalleryPhoto) -> str:
    """The caption Ava gives a photo: the scene she described, or "My portrait" for a reference."""
    if photo.kind == "reference":
        return PORTRAIT_CAPTION
    scene = (photo.scene or "").strip()
    return scene[:1].upper() + scene[1:] if scene else PHOTO_CAPTION


def _photo_id(request: web.Request) -> int:
    raw = request.match_info["photo_id"]
    photo_id = parse_id(raw)
    if photo_id is None:
        raise PhotoNotFound(f"not a photo id: {raw[:40]!r}")
    return photo_id


async def _account_confirmed(user_id: int) -> bool:
    """Whether the user confirmed 18+ in the chat's onboarding."""
    return await User.filter(id=user_id, adult_confirmed_at__isnull=False).exists()


async def _not_another_account(request: web.Request, session_user: SessionUser, link_user: int, photo_id: int) -> None:
    """A photo link opened in a browser signed in to ANOTHER account is refused like someone else's photo (404):
    the link is its owner's, and a replayed or forwarded copy must not show it inside a stranger's session."""
    current = await session_user(request)
    if current is not None and current != link_user:
        raise PhotoNotFound(f"photo {photo_id}: a link of another user opened in a signed-in session")


def setup_photo_routes(
    app: web.Application, *, links: PortalLinks, library: PhotoLibrary, session_user: SessionUser
) -> None:
    """Register `GET /photos/{photo_id}` (the JPEG; `?download=1` as an attachment), its page and its delete."""

    async def photo(request: web.Request) -> web.StreamResponse:
        photo_id = _photo_id(request)
        token = request.query.get("t")
        viewer: int | None
        if token:
            # LinkInvalid / LinkExpired (tampered, old, or the user signed out everywhere or was erased): 403.
            viewer = await links.photo_viewer(token, photo_id)
            await _not_another_account(request, session_user, viewer, photo_id)
            await require_adult(request)
        else:
            viewer = await session_user(request)
            if viewer is None:
                raise SignInRequired(f"photo {photo_id} asked for without a session")
            if not await session_confirmed(request) and not await _account_confirmed(viewer):
                raise interstitial(request)
        try:
            data = await library.photo_bytes(viewer, photo_id)
        except AvaError as exc:  # the library's storage failed
            logger.exception("photo %s could not be read", photo_id)
            raise PhotoUnavailable(f"photo {photo_id}: {type(exc).__name__}") from exc
        if data is None:
            raise PhotoNotFound(f"photo {photo_id} not found for this viewer")
        disposition = "attachment" if request.query.get("download") == "1" else "inline"
        return web.Response(
            body=data,
            content_type="image/jpeg",
            headers={**PRIVATE_HEADERS, "Content-Disposition": f'{disposition}; filename="ava-photo-{photo_id}.jpg"'},
        )

    async def photo_page(request: web.Request) -> web.StreamResponse:
        """The photo with its date and Ava's caption, a download link and the way back to the gallery."""
        photo_id = _photo_id(request)
        token = request.query.get("t")
        session_viewer = await session_user(request)
        if token:
            viewer = await links.photo_viewer(token, photo_id)
            if session_viewer is not None and session_viewer != viewer:
                raise PhotoNotFound(f"photo page {photo_id}: a link of another user opened in a signed-in session")
        elif session_viewer is None:
            raise sign_in_first(request)
        else:
            viewer = session_viewer
        await require_adult(request)
        entry = await library.photo(viewer, photo_id)
        if entry is None:
            raise PhotoNotFound(f"photo page {photo_id} not found for this viewer")
        src = f"/photos/{photo_id}" + (f"?t={quote(token, safe='')}" if token else "")
        owner_session = session_viewer == viewer
        # Where the page was opened from: `?back=`, else the last chat/gallery/account page of this session.
        origin = page_origin(await get_session(request)) if owner_session else None
        back = safe_next(request.query.get("back"), origin or ("/gallery" if owner_session else "/"))
        path = urlsplit(back).path
        context = {
            "photo": entry,
            "title": PORTRAIT_CAPTION if entry.kind == "reference" else PHOTO_TITLE,
            "caption": caption(entry),
            "src": src,
            "download": src + ("&" if token else "?") + "download=1",
            "owner_session": owner_session,
            "back": back,
            "back_label": BACK_LABELS.get(path, "Back"),
            "request_path": request.path_qs,
        }
        return await render(request, "photo.html", context)

    async def delete_photo(request: web.Request) -> web.StreamResponse:
        """Delete the photo and its files (the owner's session only; never by a signed link), then the gallery."""
        photo_id = _photo_id(request)
        viewer = await session_user(request)
        if viewer is None:
            raise SignInRequired(f"photo {photo_id} delete without a session")
        await require_csrf(request, await request.post())
        try:
            outcome = await library.delete(viewer, photo_id)
        except AvaError as exc:  # the library's storage failed: the photo stays
            logger.exception("photo %s could not be deleted", photo_id)
            raise PhotoNotDeleted(f"photo {photo_id}: {type(exc).__name__}") from exc
        if outcome == "protected":
            raise PhotoProtected(f"photo {photo_id} is the current avatar's reference")
        if outcome == "missing":
            raise PhotoNotFound(f"photo {photo_id} to delete not found for this viewer")
        raise web.HTTPSeeOther("/gallery?deleted=1")

    app.router.add_get("/photos/{photo_id}", photo)
    app.router.add_get("/photos/{photo_id}/view", photo_page)
    app.router.add_post("/photos/{photo_id}/delete", delete_photo)
