"""The gallery page: every finished photo of the signed-in user (served by the owner-only photo route)."""

from __future__ import annotations

from aiohttp import web

from portal.auth import current_user_id
from portal.pages import render
from portal.ports import PhotoLibrary

GALLERY_LIMIT = 200


def setup_gallery(app: web.Application, *, library: PhotoLibrary) -> None:
    """Register `GET /gallery`, listing photos from `library`."""

    async def gallery(request: web.Request) -> web.Response:
        """Newest first; photo bytes come from `/photos/{id}`, which checks ownership again."""
        user_id = await current_user_id(request)
        if user_id is None:
            raise web.HTTPSeeOther("/signin")
        photos = await library.gallery(user_id, GALLERY_LIMIT)
        return await render(request, "gallery.html", {"photos": photos})

    app.router.add_get("/gallery", gallery)
