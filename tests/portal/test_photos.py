"""`GET /photos/{id}`: served to the owner only (signed link or session), never cached, never referred."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp_session
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from ava_bot.http import make_error_middleware
from core.models import Avatar, User
from imaging.errors import StorageError
from imaging.library import StoredPhotoLibrary
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.storage import LocalPhotoStore
from portal.auth import current_user_id, start_session
from portal.links import PortalLinks
from portal.photos import setup_photo_routes
from portal.ports import PhotoLibrary

SECRET = "test-secret-key-for-photo-links"
JPEG = b"\xff\xd8\xff\xe0" + b"signed jpeg bytes" * 10
TTL = 3600


@dataclass
class Harness:
    """The app under test and what the tests drive."""

    client: TestClient
    links: PortalLinks
    store: LocalPhotoStore
    clock: list[float]

    async def sign_in(self, user_id: int) -> None:
        """Give the client a real portal session for `user_id`."""
        response = await self.client.post(f"/test/sign-in/{user_id}")
        assert response.status == 204


@pytest.fixture
async def harness(db: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The photo route on an app with encrypted cookie sessions, links on a movable clock."""
    clock = [1_900_000_000.0]
    links = PortalLinks(SECRET, "http://portal.test", photo_link_ttl=TTL, clock=lambda: clock[0])
    store = LocalPhotoStore(tmp_path / "photos")
    app = web.Application(middlewares=[make_error_middleware()])
    aiohttp_session.setup(app, EncryptedCookieStorage(b"k" * 32, cookie_name="ava_session"))
    setup_photo_routes(app, links=links, library=StoredPhotoLibrary(store), session_user=current_user_id)

    async def sign_in(request: web.Request) -> web.Response:
        await start_session(request, int(request.match_info["user_id"]))
        return web.Response(status=204)

    app.router.add_post("/test/sign-in/{user_id}", sign_in)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Harness(client=client, links=links, store=store, clock=clock)
    finally:
        await client.close()


async def _photo(harness: Harness, *, status: PhotoStatus = PhotoStatus.READY, key: str = "k") -> Photo:
    user = await User.create()
    avatar = await Avatar.create(
        user=user, name="Ava", gender="woman", age=27, nationality="Italian", appearance="dark hair", personality="x"
    )
    storage_key = await harness.store.put(JPEG) if status == PhotoStatus.READY else None
    return await Photo.create(
        user=user, avatar=avatar, kind=PhotoKindChoice.PHOTO, status=status, source_key=key, storage_key=storage_key
    )


def _path_of(url: str) -> str:
    return url.removeprefix("http://portal.test")


def _assert_private(response: ClientResponse) -> None:
    headers = response.headers
    assert headers["Cache-Control"] == "private, no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_signed_link_serves_the_jpeg(harness: Harness) -> None:
    """A valid link serves the stored bytes as image/jpeg with the privacy headers."""
    photo = await _photo(harness)
    response = await harness.client.get(_path_of(harness.links.photo_url(photo.user_id, photo.id)))
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert await response.read() == JPEG
    _assert_private(response)


async def test_tampered_link_is_403(harness: Harness) -> None:
    """A token with a changed character is refused."""
    photo = await _photo(harness)
    url = _path_of(harness.links.photo_url(photo.user_id, photo.id))
    tampered = url[:-3] + ("A" if url[-3] != "A" else "B") + url[-2:]
    response = await harness.client.get(tampered)
    assert response.status == 403
    _assert_private(response)
    assert await response.read() != JPEG


async def test_expired_link_is_403(harness: Harness) -> None:
    """A genuine token older than its lifetime is refused."""
    photo = await _photo(harness)
    url = _path_of(harness.links.photo_url(photo.user_id, photo.id))
    harness.clock[0] += TTL + 1
    response = await harness.client.get(url)
    assert response.status == 403
    assert "expired" in (await response.text()).lower()


async def test_link_for_another_photo_is_403(harness: Harness) -> None:
    """A token issued for one photo does not open another."""
    first = await _photo(harness, key="a")
    second = await _photo(harness, key="b")
    token = harness.links.photo_url(first.user_id, first.id).split("?t=", 1)[1]
    response = await harness.client.get(f"/photos/{second.id}?t={token}")
    assert response.status == 403


async def test_link_issued_to_another_user_is_404(harness: Harness) -> None:
    """A genuine token naming a user who does not own the photo reveals nothing."""
    photo = await _photo(harness)
    other = await User.create()
    response = await harness.client.get(_path_of(harness.links.photo_url(other.id, photo.id)))
    assert response.status == 404


async def test_owner_session_serves_the_jpeg(harness: Harness) -> None:
    """The signed-in owner sees the photo without a token, with the privacy headers."""
    photo = await _photo(harness)
    await harness.sign_in(photo.user_id)
    response = await harness.client.get(f"/photos/{photo.id}")
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert await response.read() == JPEG
    _assert_private(response)


async def test_another_users_photo_is_404_for_a_session(harness: Harness) -> None:
    """A signed-in user asking for someone else's photo gets the same 404 as for a missing one."""
    photo = await _photo(harness)
    intruder = await User.create()
    await harness.sign_in(intruder.id)
    response = await harness.client.get(f"/photos/{photo.id}")
    missing = await harness.client.get(f"/photos/{photo.id + 1000}")
    assert response.status == missing.status == 404
    assert await response.text() == await missing.text()
    _assert_private(response)


async def test_no_token_and_no_session_is_403(harness: Harness) -> None:
    """Without a link or a session nothing is served."""
    photo = await _photo(harness)
    response = await harness.client.get(f"/photos/{photo.id}")
    assert response.status == 403


async def test_photo_not_ready_is_404(harness: Harness) -> None:
    """A queued photo has nothing to show, even to its owner with a valid link."""
    photo = await _photo(harness, status=PhotoStatus.GENERATING)
    response = await harness.client.get(_path_of(harness.links.photo_url(photo.user_id, photo.id)))
    assert response.status == 404


async def test_non_numeric_id_is_404(harness: Harness) -> None:
    """A malformed photo id is simply not found."""
    response = await harness.client.get("/photos/abc")
    assert response.status == 404


async def test_ready_photo_with_a_missing_file_is_404(harness: Harness) -> None:
    """A ready photo whose file is gone answers the same 404 as a missing photo."""
    photo = await _photo(harness)
    assert photo.storage_key is not None
    await harness.store.delete(photo.storage_key)
    response = await harness.client.get(_path_of(harness.links.photo_url(photo.user_id, photo.id)))
    assert response.status == 404
    _assert_private(response)


class BrokenStore(LocalPhotoStore):
    """A store whose reads fail (a disk or bucket outage)."""

    async def get(self, key: str) -> bytes:
        raise StorageError(f"cannot read {key!r}: disk on fire")


async def test_storage_failure_is_503_with_private_headers(harness: Harness, tmp_path: Path) -> None:
    """When the library cannot read a ready photo the route answers 503, still private."""
    photo = await _photo(harness)
    app = web.Application(middlewares=[make_error_middleware()])
    aiohttp_session.setup(app, EncryptedCookieStorage(b"k" * 32, cookie_name="ava_session"))
    library = StoredPhotoLibrary(BrokenStore(tmp_path / "photos"))
    setup_photo_routes(app, links=harness.links, library=library, session_user=current_user_id)
    async with TestClient(TestServer(app)) as client:
        response = await client.get(_path_of(harness.links.photo_url(photo.user_id, photo.id)))
        assert response.status == 503
        _assert_private(response)


def test_stored_library_implements_the_portal_port(tmp_path: Path) -> None:
    """imaging's library satisfies the portal's `PhotoLibrary` port (wired in `ava_bot.app`)."""
    assert isinstance(StoredPhotoLibrary(LocalPhotoStore(tmp_path)), PhotoLibrary)
