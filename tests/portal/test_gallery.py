"""`GET /gallery`: the signed-in user's ready photos, newest first, 24 a page, from the `PhotoLibrary` port."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from core.models import Avatar, User
from imaging.library import GalleryEntry, StoredPhotoLibrary
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.storage import LocalPhotoStore
from portal.adult import setup_adult
from portal.gallery import GALLERY_PAGE, setup_gallery
from portal.humane import human_time
from portal.links import PortalLinks
from portal.setup import setup_portal
from tests.portal.conftest import BASE_URL, SECRET, page_token, sign_up
from tests.portal.markup import outline, text_of
from tests.portal.pages_env import Site, make_avatar, make_photo, serve_site


class FakeLibrary:
    """A `PhotoLibrary` that records what the gallery asks for."""

    def __init__(self, photos: Sequence[GalleryEntry]) -> None:
        self.photos = photos
        self.asked: list[tuple[int, int, int | None]] = []

    async def photo_bytes(self, owner_id: int, photo_id: int) -> bytes | None:
        return None

    async def gallery(self, owner_id: int, limit: int, before: int | None = None) -> Sequence[GalleryEntry]:
        self.asked.append((owner_id, limit, before))
        return self.photos

    async def photo(self, owner_id: int, photo_id: int) -> GalleryEntry | None:
        return None

    async def delete(self, owner_id: int, photo_id: int) -> Literal["deleted", "missing", "protected"]:
        return "missing"


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The portal's photo pages on a local port."""
    async with serve_site(tmp_path, redis) as running:
        yield running


def _shown(html: str) -> list[int]:
    """Photo ids the page links to, in page order."""
    return [int(m) for m in re.findall(r'href="/photos/(\d+)/view"', html)]


async def _signed_up_and_confirmed(site: Site, email: str) -> int:
    user_id = await sign_up(site.client, email)
    await site.confirm_adult()
    return user_id


async def test_gallery_lists_what_the_library_gives_for_the_signed_in_user(db: str, redis: ArqRedis) -> None:
    """The page shows each photo from the library with Ava's caption and a human date, asking for the signed-in
    user's first page."""
    taken = datetime(2030, 5, 17, tzinfo=UTC)
    library = FakeLibrary([GalleryEntry(9, "photo", "At the beach", taken), GalleryEntry(3, "reference", None, taken)])
    app = web.Application()
    links = PortalLinks(SECRET, BASE_URL)
    setup_portal(app, links=links, web_channel="web", secure_cookies=False, redis=lambda: redis)
    setup_gallery(app, library=library)
    setup_adult(app)
    async with TestClient(TestServer(app)) as client:
        user_id = await sign_up(client, "lib@example.com")
        token = await page_token(client, "/adult")
        await client.post("/adult", data={"csrf_token": token, "next": "/gallery"}, allow_redirects=False)
        html = await (await client.get("/gallery")).text()
        assert '<img src="/photos/9"' in html and ">At the beach</span>" in html
        assert '<img src="/photos/3"' in html and ">My portrait</span>" in html
        assert html.count('<time class="when" datetime="2030-05-17T00:00:00Z">17 May 2030</time>') == 2
        assert library.asked == [(user_id, GALLERY_PAGE + 1, None)]


async def test_gallery_requires_a_session(site: Site) -> None:
    """Without a session the gallery sends the browser to sign in."""
    response = await site.client.get("/gallery", allow_redirects=False)
    assert (response.status, unquote(response.headers["Location"])) == (303, "/signin?next=/gallery")


async def test_gallery_pages_newest_first_with_an_older_link(site: Site) -> None:
    """30 ready photos: the first page shows the newest 24 in order and links to the older 6; the last page has no
    further link; photos not ready are never listed."""
    user_id = await _signed_up_and_confirmed(site, "pages@example.com")
    avatar = await make_avatar(user_id)
    ready = [(await make_photo(site, avatar, f"scene {i}")).id for i in range(30)]
    await make_photo(site, avatar, "still queued", status=PhotoStatus.QUEUED)
    await make_photo(site, avatar, "failed", status=PhotoStatus.FAILED)
    newest_first = sorted(ready, reverse=True)

    first = await (await site.client.get("/gallery")).text()
    assert _shown(first) == newest_first[:24]
    older = re.search(r'href="/gallery\?before=(\d+)"', first)
    assert older and int(older.group(1)) == newest_first[23]

    second = await (await site.client.get(f"/gallery?before={older.group(1)}")).text()
    assert _shown(second) == newest_first[24:]
    assert "before=" not in second and 'href="/gallery"' in second  # no older page; a link to the newest
    assert "still queued" not in first + second and "failed" not in first + second

    past_the_end = await (await site.client.get(f"/gallery?before={min(ready)}")).text()
    assert _shown(past_the_end) == [] and "No older photos." in past_the_end


async def test_exactly_one_page_has_no_older_link(site: Site) -> None:
    """With exactly 24 photos there is no "older photos" link."""
    user_id = await _signed_up_and_confirmed(site, "exact@example.com")
    avatar = await make_avatar(user_id)
    for i in range(GALLERY_PAGE):
        await make_photo(site, avatar, f"scene {i}")
    html = await (await site.client.get("/gallery")).text()
    assert len(_shown(html)) == GALLERY_PAGE and "before=" not in html


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "9223372036854775808", "99999999999999999999999", "%C2%B2"])
async def test_a_bad_cursor_is_404(site: Site, cursor: str) -> None:
    """A cursor that is not a 64-bit id is not found (never a 500)."""
    await _signed_up_and_confirmed(site, "cursor@example.com")
    assert (await site.client.get(f"/gallery?before={cursor}")).status == 404


async def test_gallery_shows_only_the_users_own_photos(site: Site) -> None:
    """User B's gallery never lists user A's photos, on any page."""
    a = await _signed_up_and_confirmed(site, "a@example.com")
    theirs = await make_photo(site, await make_avatar(a, "Alba"), "a's secret scene")
    site.client.session.cookie_jar.clear()
    b = await _signed_up_and_confirmed(site, "b@example.com")
    mine = await make_photo(site, await make_avatar(b, "Bea"), "b's scene")
    html = await (await site.client.get("/gallery")).text()
    assert _shown(html) == [mine.id]
    assert "a's secret scene" not in html
    assert _shown(await (await site.client.get(f"/gallery?before={theirs.id + 1}")).text()) == []


async def test_stored_library_lists_only_the_owners_ready_photos(db: str, tmp_path: Path) -> None:
    """imaging's library returns the owner's ready photos, newest first, within the limit and before the cursor."""
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
    queued = await photo("queued", PhotoStatus.QUEUED)
    second = await photo("second", PhotoStatus.READY)
    foreign = await photo("foreign", PhotoStatus.READY, other, other_avatar)
    library = StoredPhotoLibrary(LocalPhotoStore(tmp_path))
    entries = await library.gallery(owner.id, 10)
    assert [(e.id, e.kind, e.scene) for e in entries] == [(second.id, "photo", "second"), (first.id, "photo", "first")]
    assert [e.id for e in await library.gallery(owner.id, 1)] == [second.id]
    assert [e.id for e in await library.gallery(owner.id, 10, before=second.id)] == [first.id]
    assert await library.gallery(owner.id, 10, before=first.id) == []
    found = await library.photo(owner.id, second.id)
    assert found is not None and found.scene == "second"
    assert await library.photo(owner.id, queued.id) is None
    assert await library.photo(owner.id, foreign.id) is None


async def test_gallery_shows_kept_portraits_and_chat_photos_but_not_discarded_portraits(site: Site) -> None:
    """Portraits the user regenerated away during setup are not listed; the kept one (of the current look and of
    an earlier one) and chat photos are, captioned in Ava's words: "My portrait", never the user's description."""
    user_id = await _signed_up_and_confirmed(site, "keep@example.com")
    first_look = await make_avatar(user_id, "Luna")
    discarded = await make_photo(site, first_look, None, kind=PhotoKindChoice.REFERENCE)
    kept_before = await make_photo(site, first_look, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=first_look.id).update(reference_photo_id=kept_before.id)
    chat = await make_photo(site, first_look, "sipping coffee on a sunny balcony")
    new_look = await make_avatar(user_id, "Luna")
    discarded_again = await make_photo(site, new_look, None, kind=PhotoKindChoice.REFERENCE)
    kept_now = await make_photo(site, new_look, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=new_look.id).update(reference_photo_id=kept_now.id)

    html = await (await site.client.get("/gallery")).text()
    assert _shown(html) == [kept_now.id, chat.id, kept_before.id]
    assert discarded.id not in _shown(html) and discarded_again.id not in _shown(html)
    captions = [text_of(e) for e in outline(html).all("span") if "caption" in e.attrs.get("class", "").split()]
    assert captions == ["My portrait", "Sipping coffee on a sunny balcony", "My portrait"]
    assert "curly auburn hair" not in html  # the user's own description of her appearance


async def test_gallery_dates_are_human_and_machine_readable(site: Site) -> None:
    """Each photo carries a `<time>` with its UTC instant and a human label: "Yesterday, 21:04" for yesterday,
    "3 Nov 2024" for another year."""
    user_id = await _signed_up_and_confirmed(site, "dates@example.com")
    avatar = await make_avatar(user_id)
    old = await make_photo(site, avatar, "long ago")
    await Photo.filter(id=old.id).update(created_at=datetime(2024, 11, 3, 21, 4, tzinfo=UTC))
    recent = await make_photo(site, avatar, "yesterday")
    yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    await Photo.filter(id=recent.id).update(created_at=yesterday)
    times = outline(await (await site.client.get("/gallery")).text()).all("time")
    assert [(t.attrs["class"], t.attrs["datetime"]) for t in times] == [
        ("when", yesterday.isoformat().replace("+00:00", "Z")),
        ("when", "2024-11-03T21:04:00Z"),
    ]
    assert text_of(times[0]) in (f"Yesterday, {yesterday:%H:%M}", human_time(yesterday))  # unless midnight passed
    assert text_of(times[1]) == "3 Nov 2024"
