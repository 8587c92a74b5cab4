"""The gallery page: every finished photo of the signed-in user (served by the owner-only photo route)."""

from __future__ import annotations

from aiohttp import web

from imaging.models import Photo, PhotoStatus
from portal.auth import current_user_id
from portal.pages import render

GALLERY_LIMIT = 200


async def gallery(request: web.Request) -> web.Response:
    """Newest first; photo bytes come from `/photos/{id}`, which checks ownership again."""
    user_id = await current_user_id(request)
    if user_id is None:
        raise web.HTTPSeeOther("/signin")
    photos = await Photo.filter(user_id=user_id, status=PhotoStatus.READY).order_by("-id").limit(GALLERY_LIMIT)
    return await render(request, "gallery.html", {"photos": photos})


def setup_gallery(app: web.Application) -> None:
    """Register `GET /gallery`."""
    app.router.add_get("/gallery", gallery)
