"""`GET /photos/{id}` and its page `GET /photos/{id}/view`: the owner only (signed link or session), never cached,
never referred; ids that are not 64-bit numbers are 404."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from urllib.parse import unquote

import pytest
from aiohttp import ClientResponse
from arq.connections import ArqRedis

from core.models import User
from imaging.errors import StorageError
from imaging.library import StoredPhotoLibrary
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.storage import LocalPhotoStore
from portal.ports import PhotoLibrary
from tests.portal.conftest import sign_up
from tests.portal.pages_env import JPEG, PHOTO_LINK_TTL, Site, make_avatar, make_photo, serve_site


@dataclass
class Harness:
    """The running site and the clock its links read."""

    site: Site
    clock: list[float]


@pytest.fixture
async def harness(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Harness]:
    """The photo routes on the portal, links on a movable clock, a browser that passed the 18+ interstitial."""
    clock = [1_900_000_000.0]
    async with serve_site(tmp_path, redis, clock=lambda: clock[0]) as site:
        await site.confirm_adult()
        yield Harness(site=site, clock=clock)


async def _photo(harness: Harness, *, status: PhotoStatus = PhotoStatus.READY, scene: str = "on a beach") -> Photo:
    """A photo of a new user who is not the browser's."""
    user = await User.create()
    return await make_photo(harness.site, await make_avatar(user.id), scene, status=status)


async def _own_photo(harness: Harness, email: str = "owner@example.com") -> Photo:
    """A photo of the user the browser signs up as (confirming 18+ again: sign-up starts a fresh session)."""
    user_id = await sign_up(harness.site.client, email)
    await harness.site.confirm_adult()
    return await make_photo(harness.site, await make_avatar(user_id), "at a rooftop bar at night")


def _assert_private(response: ClientResponse) -> None:
    headers = response.headers
    assert headers["Cache-Control"] == "private, no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_signed_link_serves_the_jpeg(harness: Harness) -> None:
    """A valid link serves the stored bytes as image/jpeg with the privacy headers."""
    photo = await _photo(harness)
    response = await harness.site.client.get(await harness.site.photo_link(photo.user_id, photo.id))
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert response.headers["Content-Disposition"] == f'inline; filename="ava-photo-{photo.id}.jpg"'
    assert await response.read() == JPEG
    _assert_private(response)


async def test_tampered_link_is_403(harness: Harness) -> None:
    """A token with a changed character is refused."""
    photo = await _photo(harness)
    url = await harness.site.photo_link(photo.user_id, photo.id)
    tampered = url[:-3] + ("A" if url[-3] != "A" else "B") + url[-2:]
    response = await harness.site.client.get(tampered)
    assert response.status == 403
    _assert_private(response)
    assert await response.read() != JPEG


async def test_expired_link_is_403(harness: Harness) -> None:
    """A genuine token older than its lifetime is refused."""
    photo = await _photo(harness)
    url = await harness.site.photo_link(photo.user_id, photo.id)
    harness.clock[0] += PHOTO_LINK_TTL + 1
    response = await harness.site.client.get(url)
    assert response.status == 403
    assert "expired" in (await response.text()).lower()


async def test_link_for_another_photo_is_403(harness: Harness) -> None:
    """A token issued for one photo does not open another, neither the bytes nor the page."""
    first = await _photo(harness, scene="a")
    second = await _photo(harness, scene="b")
    token = (await harness.site.photo_link(first.user_id, first.id)).split("?t=", 1)[1]
    assert (await harness.site.client.get(f"/photos/{second.id}?t={token}")).status == 403
    assert (await harness.site.client.get(f"/photos/{second.id}/view?t={token}")).status == 403


async def test_link_issued_to_another_user_is_404(harness: Harness) -> None:
    """A genuine token naming a user who does not own the photo reveals nothing."""
    photo = await _photo(harness)
    other = await User.create()
    response = await harness.site.client.get(await harness.site.photo_link(other.id, photo.id))
    assert response.status == 404


async def test_owner_session_serves_the_jpeg(harness: Harness) -> None:
    """The signed-in owner sees the photo without a token, with the privacy headers; `?download=1` as a file."""
    photo = await _own_photo(harness)
    response = await harness.site.client.get(f"/photos/{photo.id}")
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert await response.read() == JPEG
    _assert_private(response)
    download = await harness.site.client.get(f"/photos/{photo.id}?download=1")
    assert download.headers["Content-Disposition"] == f'attachment; filename="ava-photo-{photo.id}.jpg"'


async def test_another_users_photo_is_404_for_a_session(harness: Harness) -> None:
    """A signed-in user asking for someone else's photo, or its page, gets the same 404 as for a missing one."""
    photo = await _photo(harness)
    await _own_photo(harness, "intruder@example.com")
    response = await harness.site.client.get(f"/photos/{photo.id}")
    missing = await harness.site.client.get(f"/photos/{photo.id + 1000}")
    assert response.status == missing.status == 404
    assert await response.text() == await missing.text()
    _assert_private(response)
    page = await harness.site.client.get(f"/photos/{photo.id}/view")
    assert page.status == 404 and "on a beach" not in await page.text()


async def test_no_token_and_no_session_is_refused(harness: Harness) -> None:
    """Without a link or a session nothing is served: the bytes are 403, the page sends the browser to sign in."""
    photo = await _photo(harness)
    assert (await harness.site.client.get(f"/photos/{photo.id}")).status == 403
    page = await harness.site.client.get(f"/photos/{photo.id}/view", allow_redirects=False)
    assert (page.status, unquote(page.headers["Location"])) == (303, f"/signin?next=/photos/{photo.id}/view")


async def test_photo_not_ready_is_404(harness: Harness) -> None:
    """A queued photo has nothing to show, even to its owner with a valid link."""
    photo = await _photo(harness, status=PhotoStatus.GENERATING)
    link = await harness.site.photo_link(photo.user_id, photo.id)
    assert (await harness.site.client.get(link)).status == 404
    assert (await harness.site.client.get(link.replace("?t=", "/view?t="))).status == 404


@pytest.mark.parametrize(
    "raw",
    ["abc", "9223372036854775808", "99999999999999999999999999", "-1", "+5", "1.0", "%C2%B2", "%D9%A5", "0x10", "5%0A"],
)
async def test_ids_that_are_not_64_bit_numbers_are_404(harness: Harness, raw: str) -> None:
    """Malformed ids, ids past the BIGINT range and non-ASCII digits are simply not found (never a 500)."""
    await _own_photo(harness)
    assert (await harness.site.client.get(f"/photos/{raw}")).status == 404
    assert (await harness.site.client.get(f"/photos/{raw}/view")).status == 404


async def test_largest_64_bit_id_is_a_plain_404(harness: Harness) -> None:
    """The largest BIGINT is a valid id that is not found."""
    await _own_photo(harness)
    assert (await harness.site.client.get("/photos/9223372036854775807")).status == 404


async def test_photo_page_shows_the_photo_date_caption_and_download(harness: Harness) -> None:
    """The owner's page shows the image, Ava's caption, the date, a download link and the way back."""
    photo = await _own_photo(harness)
    response = await harness.site.client.get(f"/photos/{photo.id}/view")
    html = await response.text()
    assert response.status == 200 and response.headers["Referrer-Policy"] == "no-referrer"
    assert f'<img src="/photos/{photo.id}"' in html
    assert '<span class="caption">At a rooftop bar at night</span>' in html  # Ava's scene, as a sentence
    clock = f"{photo.created_at.astimezone(UTC):%H:%M}</time>"
    assert f">Today, {clock}" in html or f">Yesterday, {clock}" in html  # the page may load just after midnight
    assert f'href="/photos/{photo.id}?download=1"' in html
    assert 'href="/gallery"' in html


async def test_photo_page_by_signed_link_keeps_the_token_for_its_image(harness: Harness) -> None:
    """Opened by a signed link without a session, the page loads its image and download through the same token."""
    photo = await _photo(harness)
    link = await harness.site.photo_link(photo.user_id, photo.id)
    page = await harness.site.client.get(link.replace("?t=", "/view?t="))
    html = await page.text()
    assert page.status == 200
    match = re.search(r'<img src="([^"]+)"', html)
    assert match and match.group(1).replace("&amp;", "&") == link
    assert 'href="/gallery"' not in html  # the link holder is not signed in as the owner
    image = await harness.site.client.get(match.group(1).replace("&amp;", "&"))
    assert await image.read() == JPEG


async def test_ready_photo_with_a_missing_file_is_404(harness: Harness) -> None:
    """A ready photo whose file is gone answers the same 404 as a missing photo."""
    photo = await _photo(harness)
    assert photo.storage_key is not None
    await harness.site.store.delete(photo.storage_key)
    response = await harness.site.client.get(await harness.site.photo_link(photo.user_id, photo.id))
    assert response.status == 404
    _assert_private(response)


class BrokenStore(LocalPhotoStore):
    """A store whose reads fail (a disk or bucket outage)."""

    async def get(self, key: str) -> bytes:
        raise StorageError(f"cannot read {key!r}: disk on fire")


async def test_storage_failure_is_503_with_private_headers(db: str, redis: ArqRedis, tmp_path: Path) -> None:
    """When the library cannot read a ready photo the route answers 503, still private."""
    async with serve_site(tmp_path, redis, store=BrokenStore(tmp_path / "photos")) as site:
        await site.confirm_adult()
        user = await User.create()
        avatar = await make_avatar(user.id)
        photo = await Photo.create(
            user=user,
            avatar=avatar,
            kind=PhotoKindChoice.PHOTO,
            status=PhotoStatus.READY,
            source_key="x",
            storage_key="ab/cd/" + "e" * 43 + ".jpg",
        )
        response = await site.client.get(await site.photo_link(user.id, photo.id))
        assert response.status == 503
        _assert_private(response)


def test_stored_library_implements_the_portal_port(tmp_path: Path) -> None:
    """imaging's library satisfies the portal's `PhotoLibrary` port (wired in `ava_bot.app`)."""
    assert isinstance(StoredPhotoLibrary(LocalPhotoStore(tmp_path)), PhotoLibrary)
