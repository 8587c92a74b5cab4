"""Server-side sessions: cookie attributes, rotation at sign-in, sign-out, sign out everywhere, erasure, HSTS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from arq.connections import ArqRedis

from core.models import User
from portal.errors import LinkInvalid
from portal.sessions import KEY_PREFIX
from tests.portal.conftest import Portal, magic_path, page_token, serve_portal, sign_up
from tests.portal.pages_env import JPEG, make_avatar, make_photo, serve_site

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def session_cookie(portal: Portal, name: str = "ava_session") -> str:
    """The session id the browser holds."""
    for cookie in portal.client.session.cookie_jar:
        if cookie.key == name:
            return cookie.value
    raise AssertionError("no session cookie")


async def stored(redis: ArqRedis, session_id: str) -> dict[str, Any] | None:
    """The session's server-side data, or None when there is none."""
    raw = await redis.get(KEY_PREFIX + session_id)
    return json.loads(raw)["session"] if raw is not None else None


async def chat_with_cookie(portal: Portal, session_id: str) -> ClientResponse:
    """/chat requested by another browser replaying `session_id` (e.g. a copied or stolen cookie)."""
    portal.forget_cookies()
    return await portal.client.get("/chat", headers={"Cookie": f"ava_session={session_id}"}, allow_redirects=False)


async def test_cookie_holds_only_an_opaque_id_and_is_httponly_lax(portal: Portal, redis: ArqRedis) -> None:
    """The cookie is HttpOnly, SameSite=Lax, not Secure on plain HTTP, and the user id lives only in Redis."""
    response = await portal.client.post(
        "/signup",
        data={
            "email": "eve@example.com",
            "password": "correct horse battery",
            "csrf_token": await page_token(portal.client),
        },
        allow_redirects=False,
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    user = await User.get(email="eve@example.com")
    session_id = session_cookie(portal)
    assert len(session_id) == 43 and "." not in session_id  # 256 random bits, nothing encoded or signed in it
    data = await stored(redis, session_id)
    assert data is not None and data["uid"] == user.id and data["epoch"] == user.auth_epoch


async def test_https_cookie_is_secure_and_host_prefixed(db: str, redis: ArqRedis) -> None:
    """With secure cookies the session cookie is `__Host-` prefixed, Secure, HttpOnly and SameSite=Lax."""
    async with serve_portal(redis, secure_cookies=True) as portal:
        response = await portal.client.get("/signin")
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-ava_session=")
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


async def test_session_lasts_the_configured_age_from_sign_in(db: str, redis: ArqRedis) -> None:
    """A signed-in session expires SESSION_MAX_AGE after sign-in (Redis TTL and cookie); a visitor's in hours."""
    async with serve_portal(redis, session_max_age=600) as portal:
        await page_token(portal.client, "/signin")
        visitor_ttl = await redis.ttl(KEY_PREFIX + session_cookie(portal))
        assert 3600 <= visitor_ttl <= 4 * 3600
        response = await portal.client.post(
            "/signup",
            data={
                "email": "a@example.com",
                "password": "correct horse battery",
                "csrf_token": await page_token(portal.client),
            },
            allow_redirects=False,
        )
        assert "Max-Age=600" in response.headers["Set-Cookie"] or "Max-Age=599" in response.headers["Set-Cookie"]
        assert 590 <= await redis.ttl(KEY_PREFIX + session_cookie(portal)) <= 600


async def test_sign_in_rotates_the_session_id(portal: Portal, redis: ArqRedis) -> None:
    """Fixation: the pre-sign-in session id is deleted at sign-in; replaying it later is not signed in."""
    await page_token(portal.client, "/signup")
    before = session_cookie(portal)
    assert await stored(redis, before) is not None
    await sign_up(portal.client)
    after = session_cookie(portal)
    assert after != before
    assert await stored(redis, before) is None
    assert (await chat_with_cookie(portal, before)).status == 303
    assert (await chat_with_cookie(portal, after)).status == 200


async def test_a_planted_session_id_is_never_adopted(portal: Portal, redis: ArqRedis) -> None:
    """A cookie value the server never issued starts a new session under a new id (it is not used as given)."""
    planted = "A" * 43
    response = await portal.client.get("/signin", headers={"Cookie": f"ava_session={planted}"})
    assert response.status == 200
    assert session_cookie(portal) != planted
    assert await stored(redis, planted) is None


async def test_sign_out_deletes_the_session_and_an_old_cookie_is_dead(portal: Portal, redis: ArqRedis) -> None:
    """After signing out, the server-side session is gone and a replayed copy of the cookie is not signed in."""
    await sign_up(portal.client)
    session_id = session_cookie(portal)
    token = await page_token(portal.client, "/chat")
    response = await portal.client.post("/signout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    assert await stored(redis, session_id) is None
    assert (await chat_with_cookie(portal, session_id)).status == 303


async def test_sign_out_without_csrf_is_refused(portal: Portal) -> None:
    """A CSRF-less sign-out form post is refused and the session stays."""
    await sign_up(portal.client)
    response = await portal.client.post("/signout", data={}, allow_redirects=False)
    assert response.status == 403
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 200


async def test_sign_out_everywhere_kills_every_session_and_link(db: str, redis: ArqRedis) -> None:
    """ "Sign out everywhere" ends this and every other browser's session and voids earlier sign-in/photo links."""
    async with serve_portal(redis) as laptop, serve_portal(redis, links=laptop.links) as phone:
        user_id = await sign_up(laptop.client)
        user = await User.get(id=user_id)
        await phone.client.get(await magic_path(phone.links, user_id), allow_redirects=False)
        assert (await phone.client.get("/chat", allow_redirects=False)).status == 200
        phone_session = session_cookie(phone)
        unused_link = await magic_path(laptop.links, user_id)
        photo_link = laptop.links.signed_photo_url(user_id, 5, user.auth_epoch)

        token = await page_token(laptop.client, "/chat")
        response = await laptop.client.post(
            "/account/sign-out-everywhere", data={"csrf_token": token}, allow_redirects=False
        )
        assert response.status == 303 and response.headers["Location"] == "/signin"

        assert (await User.get(id=user_id)).auth_epoch == user.auth_epoch + 1
        assert (await laptop.client.get("/chat", allow_redirects=False)).status == 303
        assert (await phone.client.get("/chat", allow_redirects=False)).status == 303
        assert (await chat_with_cookie(phone, phone_session)).status == 303
        refused = await laptop.client.get(unused_link, headers={"Accept": "application/json"}, allow_redirects=False)
        assert refused.status == 403
        with pytest.raises(LinkInvalid):
            await laptop.links.photo_viewer(photo_link.split("?t=", 1)[1], 5)


async def test_sign_out_everywhere_needs_csrf(portal: Portal) -> None:
    """Without the CSRF token "sign out everywhere" is refused and changes nothing."""
    user_id = await sign_up(portal.client)
    response = await portal.client.post("/account/sign-out-everywhere", data={}, allow_redirects=False)
    assert response.status == 403
    assert (await User.get(id=user_id)).auth_epoch == 0
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 200


async def test_an_erased_account_has_no_session(portal: Portal, redis: ArqRedis) -> None:
    """When the user row is deleted (erasure) the session is dead: /chat asks to sign in, the data is deleted."""
    user_id = await sign_up(portal.client)
    session_id = session_cookie(portal)
    await User.filter(id=user_id).delete()
    assert (await portal.client.get("/chat", allow_redirects=False)).status == 303
    assert await stored(redis, session_id) is None


@pytest.fixture
async def https_portal(db: str, redis: ArqRedis) -> AsyncIterator[Portal]:
    """The portal of an HTTPS production deployment (HSTS on)."""
    async with serve_portal(redis, secure_cookies=True, hsts=True) as portal:
        yield portal


async def test_hsts_on_every_answer_in_production(https_portal: Portal) -> None:
    """Pages, redirects, error pages and 404s all carry HSTS for a year, subdomains included."""
    hsts = "max-age=31536000; includeSubDomains"
    user = await User.create()
    bad_link = (await magic_path(https_portal.links, user.id))[:-3] + "xyz"
    answers = [
        await https_portal.client.get("/"),
        await https_portal.client.get("/chat", allow_redirects=False),
        await https_portal.client.get(bad_link, headers={"Accept": BROWSER_ACCEPT}, allow_redirects=False),
        await https_portal.client.get("/no-such-page"),
        await https_portal.client.post("/signout", data={}),
    ]
    assert [a.status for a in answers] == [200, 303, 403, 404, 403]
    for answer in answers:
        assert answer.headers.get("Strict-Transport-Security") == hsts
    page = answers[0]
    assert page.headers["Referrer-Policy"] == "no-referrer" and page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]


async def test_no_hsts_on_plain_http(portal: Portal) -> None:
    """A development portal on http:// sends no HSTS (it would pin the host to HTTPS)."""
    assert "Strict-Transport-Security" not in (await portal.client.get("/")).headers


async def test_sessions_work_on_the_in_process_redis_of_dev(db: str, make_settings: Any) -> None:
    """`ava-bot dev` keeps sessions in its in-process fakeredis: sign up, then the chat opens."""
    from aiohttp.test_utils import TestClient, TestServer

    from ava_bot.app import create_app
    from ava_bot.devredis import FakeArqRedis
    from tests.fakes.entitlements import Gate

    fake = FakeArqRedis()
    app = await create_app(make_settings(), redis=fake, own_database=False, entitlements=Gate(open_=True))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        await sign_up(client)
        assert (await client.get("/chat", allow_redirects=False)).status == 200
        assert [key async for key in fake.scan_iter(KEY_PREFIX + "*")]
    finally:
        await client.close()
        await fake.aclose()


async def test_a_photo_link_shows_only_its_photo_and_never_signs_in(db: str, redis: ArqRedis, tmp_path: Path) -> None:
    """Whoever holds a forwarded photo link sees that photo, and is not signed in to the owner's account."""
    async with serve_site(tmp_path, redis) as site:
        owner = await User.create(email="owner@example.com")
        photo = await make_photo(site, await make_avatar(owner.id))
        other = await make_photo(site, await make_avatar(owner.id, name="Mia"), "in a cafe")
        await site.confirm_adult()  # the holder's own browser passes the 18+ interstitial
        link = await site.photo_link(owner.id, photo.id)
        shown = await site.client.get(link)
        assert shown.status == 200 and await shown.read() == JPEG
        assert (await site.client.get(f"/photos/{other.id}", allow_redirects=False)).status == 403
        for page in ("/chat", "/gallery", "/account"):
            response = await site.client.get(page, allow_redirects=False)
            assert response.status == 303 and response.headers["Location"].startswith("/signin"), page


async def test_sign_out_everywhere_kills_photo_links_on_the_photo_route(
    db: str, redis: ArqRedis, tmp_path: Path
) -> None:
    """A photo link that worked before "sign out everywhere" answers 403 afterwards."""
    async with serve_site(tmp_path, redis) as site:
        user_id = await sign_up(site.client, "owner@example.com")
        await site.confirm_adult()
        photo = await make_photo(site, await make_avatar(user_id))
        link = await site.photo_link(user_id, photo.id)
        assert (await site.client.get(link)).status == 200
        token = await page_token(site.client, "/chat")
        signed_out = await site.client.post("/account/sign-out-everywhere", data={"csrf_token": token})
        assert signed_out.status == 200  # followed to the sign-in page
        await site.confirm_adult()
        refused = await site.client.get(link, headers={"Accept": "application/json"})
        assert refused.status == 403
        assert await refused.read() != JPEG
