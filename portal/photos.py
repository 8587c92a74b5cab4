"""`GET /photos/{photo_id}`: a finished photo's JPEG, for its owner only.

Access is granted by a signed photo link (`?t=<token>`, from `PortalLinks.photo_url`, sent in chat) or by
the owner's portal session. A tampered or expired token is 403; a photo that is someone else's, missing or
not ready is 404 (one answer, so the route never reveals whether a photo exists). Errors are raised as
`AvaError`s and answered by the one error middleware (an HTML page for a browser, JSON otherwise). Responses are
never cached and never leak the URL (it carries the token) through a Referer header. The bytes come from the
`PhotoLibrary` port (`portal.ports`), which applies the owner and readiness rules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.errors import AvaError
from portal.errors import PhotoNotFound, PhotoUnavailable, SignInRequired
from portal.links import PortalLinks
from portal.ports import PhotoLibrary

logger = logging.getLogger(__name__)

SessionUser = Callable[[web.Request], Awaitable[int | None]]

#: Headers on every photo answer (the error middleware puts the same ones on every error answer).
PRIVATE_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def setup_photo_routes(
    app: web.Application, *, links: PortalLinks, library: PhotoLibrary, session_user: SessionUser
) -> None:
    """Register `GET /photos/{photo_id}` on `app`."""

    async def photo(request: web.Request) -> web.StreamResponse:
        try:
            photo_id = int(request.match_info["photo_id"])
        except ValueError:
            raise PhotoNotFound(f"not a photo id: {request.match_info['photo_id'][:40]!r}") from None
        token = request.query.get("t")
        viewer: int | None
        if token:
            viewer = links.verify_photo(token, photo_id)  # LinkInvalid / LinkExpired: 403 by the middleware
        else:
            viewer = await session_user(request)
            if viewer is None:
                raise SignInRequired(f"photo {photo_id} asked for without a session")
        try:
            data = await library.photo_bytes(viewer, photo_id)
        except AvaError as exc:  # the library's storage failed
            logger.exception("photo %s could not be read", photo_id)
            raise PhotoUnavailable(f"photo {photo_id}: {type(exc).__name__}") from exc
        if data is None:
            raise PhotoNotFound(f"photo {photo_id} not found for this viewer")
        return web.Response(
            body=data,
            content_type="image/jpeg",
            headers={**PRIVATE_HEADERS, "Content-Disposition": f'inline; filename="ava-photo-{photo_id}.jpg"'},
        )

    app.router.add_get("/photos/{photo_id}", photo)
