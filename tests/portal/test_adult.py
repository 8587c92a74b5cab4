"""The 18+ interstitial: asked once per browser session before the gallery, a photo page or a linked photo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis

from core.models import User
from portal.adult import DEFAULT_NEXT, safe_next
from tests.portal.conftest import PASSWORD, csrf_of, page_token, sign_up
from tests.portal.pages_env import JPEG, Site, interstitial_next, make_avatar, make_photo, serve_site


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The portal's photo pages on a local port."""
    async with serve_site(tmp_path, redis) as running:
        yield running


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/gallery?before=42", "/gallery?before=42"),
        ("/photos/7?t=abc.def", "/photos/7?t=abc.def"),
        ("//evil.example/x", DEFAULT_NEXT),
        ("https://evil.example/", DEFAULT_NEXT),
        ("/\\evil.example", DEFAULT_NEXT),
        ("/photos/7\r\nSet-Cookie: x=1", DEFAULT_NEXT),
        ("/ spaced", DEFAULT_NEXT),
        ("/adult?next=/adult", DEFAULT_NEXT),
        ("gallery", DEFAULT_NEXT),
        ("", DEFAULT_NEXT),
        (None, DEFAULT_NEXT),
        ("/" + "a" * 5000, DEFAULT_NEXT),
    ],
)
def test_safe_next_keeps_local_paths_only(raw: object, expected: str) -> None:
    """Only a local path survives as the place to return to; anything else goes to the gallery."""
    assert safe_next(raw) == expected


async def test_gallery_asks_once_per_session(site: Site) -> None:
    """The gallery sends an unconfirmed session to the interstitial; after the CSRF-checked POST it shows photos,
    and a new session (signing in again) is asked again."""
    user_id = await sign_up(site.client, "adult@example.com")
    photo = await make_photo(site, await make_avatar(user_id))

    gated = await site.client.get("/gallery", allow_redirects=False)
    assert gated.status == 303 and interstitial_next(gated.headers["Location"]) == "/gallery"
    page = await site.client.get(gated.headers["Location"])
    html = await page.text()
    assert page.status == 200 and "AI-generated adult content" in html and "18 or older" in html
    assert f"/photos/{photo.id}" not in html

    refused = await site.client.post("/adult", data={"next": "/gallery"}, allow_redirects=False)
    assert refused.status == 403  # no CSRF token
    assert (await site.client.get("/gallery", allow_redirects=False)).status == 303

    confirm = await site.client.post(
        "/adult", data={"csrf_token": csrf_of(html), "next": "/gallery"}, allow_redirects=False
    )
    assert (confirm.status, confirm.headers["Location"]) == (303, "/gallery")
    shown = await site.client.get("/gallery", allow_redirects=False)
    assert shown.status == 200 and f'src="/photos/{photo.id}"' in await shown.text()
    skip = await site.client.get("/adult?next=/gallery", allow_redirects=False)
    assert (skip.status, skip.headers["Location"]) == (303, "/gallery")  # already confirmed: straight on

    site.client.session.cookie_jar.clear()  # another browser: sign in again
    token = await page_token(site.client, "/signin")
    signed = await site.client.post(
        "/signin", data={"email": "adult@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert signed.status == 200
    again = await site.client.get("/gallery", allow_redirects=False)
    assert again.status == 303 and again.headers["Location"].startswith("/adult?next=")


async def test_signed_link_in_a_new_browser_passes_the_interstitial_first(site: Site) -> None:
    """A photo link opened where nobody confirmed shows the interstitial, then returns to the photo itself."""
    user_id = await sign_up(site.client, "linked@example.com")
    photo = await make_photo(site, await make_avatar(user_id))
    link = await site.photo_link(user_id, photo.id)
    site.client.session.cookie_jar.clear()  # the link was forwarded to, or opened in, a fresh browser

    gated = await site.client.get(link, allow_redirects=False)
    assert gated.status == 303 and gated.headers["Referrer-Policy"] == "no-referrer"
    assert interstitial_next(gated.headers["Location"]) == link
    assert await gated.read() != JPEG

    html = await (await site.client.get(gated.headers["Location"])).text()
    back = await site.client.post("/adult", data={"csrf_token": csrf_of(html), "next": link}, allow_redirects=False)
    assert (back.status, back.headers["Location"]) == (303, link)
    shown = await site.client.get(link)
    assert shown.status == 200 and await shown.read() == JPEG


async def test_a_bad_link_is_refused_before_the_interstitial(site: Site) -> None:
    """A tampered token answers 403 at once: the interstitial never vouches for a broken link."""
    user_id = await sign_up(site.client, "tamper@example.com")
    photo = await make_photo(site, await make_avatar(user_id))
    site.client.session.cookie_jar.clear()
    response = await site.client.get(f"/photos/{photo.id}?t=not-a-token", allow_redirects=False)
    assert response.status == 403


async def test_photo_page_is_gated(site: Site) -> None:
    """The photo page asks first, then shows the photo."""
    user_id = await sign_up(site.client, "page@example.com")
    photo = await make_photo(site, await make_avatar(user_id))
    gated = await site.client.get(f"/photos/{photo.id}/view", allow_redirects=False)
    assert interstitial_next(gated.headers["Location"]) == f"/photos/{photo.id}/view"
    await site.confirm_adult()
    assert (await site.client.get(f"/photos/{photo.id}/view")).status == 200


async def test_chat_photos_count_the_accounts_confirmation(site: Site) -> None:
    """The signed-in owner's photo bytes (the web chat's inline photos) are served when the account confirmed 18+
    in onboarding, without the interstitial; an account that never confirmed is sent to the interstitial."""
    user_id = await sign_up(site.client, "chat@example.com")
    photo = await make_photo(site, await make_avatar(user_id))
    shown = await site.client.get(f"/photos/{photo.id}", allow_redirects=False)
    assert shown.status == 200 and await shown.read() == JPEG

    await User.filter(id=user_id).update(adult_confirmed_at=None)
    gated = await site.client.get(f"/photos/{photo.id}", allow_redirects=False)
    assert gated.status == 303 and interstitial_next(gated.headers["Location"]) == f"/photos/{photo.id}"


async def test_confirming_never_redirects_off_site(site: Site) -> None:
    """A `next` pointing at another site is replaced by the gallery."""
    token = await page_token(site.client, "/adult")
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = await site.client.post("/adult", data={"csrf_token": token, "next": target}, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, DEFAULT_NEXT)


async def test_the_confirmation_survives_signing_in_in_the_same_browser(site: Site) -> None:
    """Confirmed as a visitor, then signed in: the new session keeps the confirmation (and nothing else)."""
    user_id = await sign_up(site.client, "carry@example.com")
    await make_photo(site, await make_avatar(user_id))
    site.client.session.cookie_jar.clear()
    page = await site.client.get("/adult?next=/gallery")
    before = csrf_of(await page.text())
    await site.client.post("/adult", data={"csrf_token": before, "next": "/gallery"}, allow_redirects=False)
    signed = await site.client.post(
        "/signin",
        data={"email": "carry@example.com", "password": PASSWORD, "csrf_token": before},
        allow_redirects=False,
    )
    assert signed.status == 303
    assert (await site.client.get("/gallery", allow_redirects=False)).status == 200
    after = csrf_of(await (await site.client.get("/account")).text())
    assert after != before  # the CSRF token is never carried over
