"""`GET /gallery`: the signed-in user's ready photos, newest first, from the `PhotoLibrary` port."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.models import Avatar, User
from imaging.library import GalleryEntry, StoredPhotoLibrary
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.storage import LocalPhotoStore
from portal.gallery import setup_gallery
from portal.links import PortalLinks
from portal.setup import setup_portal
from tests.portal.conftest import BASE_URL, SECRET


class FakeLibrary:
    """A `PhotoLibrary` that records what the gallery asks for."""

    def __init__(self, photos: Sequence[GalleryEntry]) -> None:
        self.photos = photos
        self.asked: list[tuple[int, int]] = []

    async def photo_bytes(self, owner_id: int, photo_id: int) -> bytes | None:
        return None

    async def gallery(self, owner_id: int, limit: int) -> Sequence[GalleryEntry]:
        self.asked.append((owner_id, limit))
        return self.photos


async def _client(library: FakeLibrary | StoredPhotoLibrary) -> tuple[TestClient, PortalLinks]:
    app = web.Application()
    links = PortalLinks(SECRET, BASE_URL)
    setup_portal(app, secret_key=SECRET, links=links, web_channel="web", secure_cookies=False)
    setup_gallery(app, library=library)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, links


async def test_gallery_lists_the_users_photos(db: str) -> None:
    """The page shows each photo from the library with its caption, asking for the signed-in user only."""
    taken = datetime(2030, 5, 17, tzinfo=UTC)
    library = FakeLibrary([GalleryEntry(9, "photo", "At the beach", taken), GalleryEntry(3, "reference", None, taken)])
    client, links = await _client(library)
    try:
        user = await User.create()
        await client.get(links.sign_in_url(user.id).removeprefix(BASE_URL))
        html = await (await client.get("/gallery")).text()
        assert '<img src="/photos/9"' in html and "At the beach · 2030-05-17" in html
        assert '<img src="/photos/3"' in html and "Reference · 2030-05-17" in html
        assert library.asked == [(user.id, 200)]
    finally:
        await client.close()


async def test_gallery_requires_a_session(db: str) -> None:
    """Without a session the gallery sends the browser to sign in."""
    client, _ = await _client(FakeLibrary([]))
    try:
        response = await client.get("/gallery", allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/signin")
    finally:
        await client.close()


async def test_stored_library_lists_only_the_owners_ready_photos(db: str, tmp_path: Path) -> None:
    """imaging's library returns the owner's ready photos, newest first, within the limit."""
    owner, other = await User.create(), await User.create()
    avatar = await Avatar.create(
        user=owner, name="Ava", gender="woman", age=27, nationality="Italian", appearance="dark hair", personality="x"
    )
    other_avatar = await Avatar.create(
        user=other, name="Ava", gender="woman", age=27, nationality="Italian", appearance="dark hair", personality="x"
    )

    async def photo(key: str, status: PhotoStatus, user: User = owner, av: Avatar = avatar) -> Photo:
        return await Photo.create(
            user=user, avatar=av, kind=PhotoKindChoice.PHOTO, status=status, source_key=key, scene=key, storage_key="s"
        )

    first = await photo("first", PhotoStatus.READY)
    await photo("queued", PhotoStatus.QUEUED)
    second = await photo("second", PhotoStatus.READY)
    await photo("foreign", PhotoStatus.READY, other, other_avatar)
    library = StoredPhotoLibrary(LocalPhotoStore(tmp_path))
    entries = await library.gallery(owner.id, 10)
    assert [(e.id, e.kind, e.scene) for e in entries] == [(second.id, "photo", "second"), (first.id, "photo", "first")]
    assert [e.id for e in await library.gallery(owner.id, 1)] == [second.id]
