"""The gallery page: the signed-in user's chat photos and kept portraits, newest first, 24 a page.

Pages are keyset-paginated on the photo id (`?before=<id>` lists photos older than that one), so a page never
repeats or skips a photo when new ones arrive between loads. The 18+ interstitial applies (`portal.adult`).
Thumbnails load from `/photos/{id}` and open the photo page; both check ownership again. Captions are Ava's
(`portal.photos.caption`), dates human ("Yesterday, 21:04": `portal.humane`). `?deleted=1` (after a photo was
deleted) says so.
"""

from __future__ import annotations

from aiohttp import web

from portal.adult import require_adult
from portal.errors import PageNotFound
from portal.pages import render
from portal.paths import parse_id, sign_in_first
from portal.photos import caption
from portal.ports import PhotoLibrary
from portal.sessions import current_user

#: Photos per gallery page.
GALLERY_PAGE = 24


def setup_gallery(app: web.Application, *, library: PhotoLibrary) -> None:
    """Register `GET /gallery`, listing photos from `library`."""

    async def gallery(request: web.Request) -> web.Response:
        """One page of photos, with an "older photos" link when there are more."""
        user = await current_user(request)
        if user is None:
            raise sign_in_first(request)
        raw = request.query.get("before")
        before = parse_id(raw) if raw is not None else None
        if raw is not None and before is None:
            raise PageNotFound(f"gallery cursor {raw[:40]!r}")
        await require_adult(request)
        # One more than a page tells whether an older page exists without counting.
        found = await library.gallery(user.id, GALLERY_PAGE + 1, before=before)
        photos = list(found[:GALLERY_PAGE])
        older = photos[-1].id if len(found) > GALLERY_PAGE else None
        context = {
            "photos": photos,
            "older": older,
            "paged": before is not None,
            "caption": caption,
            "deleted": request.query.get("deleted") == "1",
        }
        return await render(request, "gallery.html", context)

    app.router.add_get("/gallery", gallery)
