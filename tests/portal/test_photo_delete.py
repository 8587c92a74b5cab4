"""Deleting a photo from its page: `POST /photos/{id}/delete`, the owner's session only, CSRF-checked; files and row
go; the current avatar's kept reference stays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis

from core.models import Avatar, User
from imaging.errors import PhotoNotStored
from imaging.models import Photo, PhotoAudit, PhotoKindChoice
from imaging.storage import LocalPhotoStore
from tests.portal.conftest import csrf_of, sign_up
from tests.portal.markup import outline
from tests.portal.pages_env import Site, make_avatar, make_photo, serve_site

BROWSER = "text/html,application/xhtml+xml,*/*;q=0.8"


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The portal's photo pages on a local port."""
    async with serve_site(tmp_path, redis) as running:
        yield running


async def _signed_in_owner(site: Site, email: str) -> Avatar:
    """A signed-in user (18+ confirmed in this session) with an approved avatar."""
    user_id = await sign_up(site.client, email)
    await site.confirm_adult()
    return await make_avatar(user_id)


async def _page_token(site: Site, photo_id: int) -> str:
    response = await site.client.get(f"/photos/{photo_id}/view")
    assert response.status == 200
    return csrf_of(await response.text())


async def _gone(store: LocalPhotoStore, key: str | None) -> bool:
    assert key is not None
    try:
        await store.get(key)
    except PhotoNotStored:
        return True
    return False


async def test_owner_deletes_a_photo_with_its_files(site: Site) -> None:
    """The confirmed delete removes the row and its served file, keeps the audit trail, and returns to the gallery
    saying so; the photo then answers 404 and is no longer listed."""
    avatar = await _signed_in_owner(site, "del@example.com")
    photo = await make_photo(site, avatar, "on a sailing boat")
    kept = await make_photo(site, avatar, "in a garden")
    await PhotoAudit.create(photo_id=photo.id, user_ref=str(avatar.user_id), kind="photo", event="ready", status="ok")
    page = outline(await (await site.client.get(f"/photos/{photo.id}/view")).text())
    assert page.one("form", action=f"/photos/{photo.id}/delete").attrs["method"] == "post"
    page.one("button", data_action="photo-delete-confirm")

    token = await _page_token(site, photo.id)
    response = await site.client.post(f"/photos/{photo.id}/delete", data={"csrf_token": token}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/gallery?deleted=1")
    assert not await Photo.exists(id=photo.id)
    assert await _gone(site.store, photo.storage_key)
    assert await PhotoAudit.exists(photo_id=photo.id)
    assert (await site.client.get(f"/photos/{photo.id}")).status == 404
    gallery = await (await site.client.get("/gallery?deleted=1")).text()
    assert f"/photos/{photo.id}/view" not in gallery and f"/photos/{kept.id}/view" in gallery
    assert outline(gallery).one("p", id="photo-deleted").text == "Photo deleted."


async def test_delete_needs_the_csrf_token(site: Site) -> None:
    """Without the session's CSRF token nothing is deleted (403)."""
    avatar = await _signed_in_owner(site, "csrf@example.com")
    photo = await make_photo(site, avatar)
    response = await site.client.post(f"/photos/{photo.id}/delete", data={"csrf_token": "forged"})
    assert response.status == 403
    assert await Photo.exists(id=photo.id) and not await _gone(site.store, photo.storage_key)


async def test_only_the_owner_can_delete(site: Site) -> None:
    """Another user's photo is 404 for the delete (nothing deleted); a signed link's holder without a session cannot
    delete at all (403)."""
    other = await User.create()
    theirs = await make_photo(site, await make_avatar(other.id))
    await _signed_in_owner(site, "intruder@example.com")
    token = csrf_of(await (await site.client.get("/gallery")).text())
    response = await site.client.post(f"/photos/{theirs.id}/delete", data={"csrf_token": token})
    assert response.status == 404
    assert await Photo.exists(id=theirs.id)

    site.client.session.cookie_jar.clear()
    link = await site.photo_link(other.id, theirs.id)  # the owner's signed link, held by someone without a session
    response = await site.client.post(link.replace("?t=", "/delete?t="), data={"csrf_token": token})
    assert response.status == 403
    assert await Photo.exists(id=theirs.id) and not await _gone(site.store, theirs.storage_key)


async def test_the_current_avatars_kept_reference_cannot_be_deleted(site: Site) -> None:
    """Its page offers no delete and says why; a forged POST is refused (409, a styled page) and keeps it."""
    avatar = await _signed_in_owner(site, "ref@example.com")
    reference = await make_photo(site, avatar, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=avatar.id).update(reference_photo_id=reference.id)
    html = await (await site.client.get(f"/photos/{reference.id}/view")).text()
    page = outline(html)
    assert not page.all("form", action=f"/photos/{reference.id}/delete")
    assert "it stays while I look like this" in page.one("p", id="delete-protected").text

    response = await site.client.post(
        f"/photos/{reference.id}/delete", data={"csrf_token": csrf_of(html)}, headers={"Accept": BROWSER}
    )
    assert response.status == 409
    assert "cannot be deleted" in await response.text()
    assert await Photo.exists(id=reference.id) and not await _gone(site.store, reference.storage_key)


async def test_an_older_avatars_reference_goes_with_its_original(site: Site) -> None:
    """After an edit, the previous look's portrait can be deleted: its served copy and private original go, and
    the old avatar version no longer names it."""
    old = await _signed_in_owner(site, "old@example.com")
    old_reference = await make_photo(site, old, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=old.id).update(reference_photo_id=old_reference.id)
    new = await make_avatar(old.user_id, "Mia")  # approved later: the current avatar
    new_reference = await make_photo(site, new, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=new.id).update(reference_photo_id=new_reference.id)

    token = await _page_token(site, old_reference.id)
    response = await site.client.post(f"/photos/{old_reference.id}/delete", data={"csrf_token": token})
    assert response.status == 200  # followed to the gallery
    assert not await Photo.exists(id=old_reference.id)
    assert await _gone(site.store, old_reference.storage_key)
    assert await _gone(site.originals, old_reference.original_key)
    assert (await Avatar.get(id=old.id)).reference_photo_id is None
    assert await Photo.exists(id=new_reference.id)
