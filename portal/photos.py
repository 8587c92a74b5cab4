"""`GET /photos/{photo_id}`: a finished photo's JPEG, for its owner only.

Access is granted by a signed photo link (`?t=<token>`, from `PortalLinks.photo_url`, sent in chat) or by
the owner's portal session. A tampered or expired token is 403; a photo that is someone else's, missing or
not ready is 404 (one answer, so the route never reveals whether a photo exists). Responses are never cached
and never leak the URL (it carries the token) through a Referer header. The bytes come from the
`PhotoLibrary` port (`portal.ports`), which applies the owner and readiness rules.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.errors import AvaError
from portal.errors import LinkInvalid
from portal.links import PortalLinks
from portal.ports import PhotoLibrary

logger = logging.getLogger(__name__)

SessionUser = Callable[[web.Request], Awaitable[int | None]]

#: Headers on every answer of the route, photo or error.
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
            return _error(404, "Not found.")
        token = request.query.get("t")
        viewer: int | None
        if token:
            try:
                viewer = links.verify_photo(token, photo_id)
            except LinkInvalid as exc:  # LinkExpired included: its message says to ask for a new link
                return _error(403, exc.public_message)
        else:
            viewer = await session_user(request)
            if viewer is None:
                return _error(403, "Sign in to see this photo.")
        try:
            data = await library.photo_bytes(viewer, photo_id)
        except AvaError:  # the library's storage failed: answered here, with the private headers
            logger.exception("photo %s could not be read", photo_id)
            return _error(503, "The photo cannot be shown right now.")
        if data is None:
            return _error(404, "Not found.")
        return web.Response(
            body=data,
            content_type="image/jpeg",
            headers={**PRIVATE_HEADERS, "Content-Disposition": f'inline; filename="ava-photo-{photo_id}.jpg"'},
        )

    app.router.add_get("/photos/{photo_id}", photo)


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, headers=PRIVATE_HEADERS)
