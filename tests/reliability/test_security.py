"""Security checks the portal suite leaves open: every part of a signed link tampered, a photo link replayed by
another signed-in user, a magic link used from another account, and CSRF on EVERY state-changing POST of the
real application (the route table is read, so a new route is covered the day it is added).

Covered elsewhere (not repeated here): one changed character, expiry and purpose mix-ups of tokens
(tests/portal/test_links.py, test_photos.py, test_auth.py), session fixation, planted cookies, cookie flags and
sign-out replay (tests/portal/test_sessions.py), one-time magic links (tests/portal/test_auth.py).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis
from tortoise import connections

from ava_bot.app import create_app
from ava_bot.http import WEBHOOK_PATHS
from ava_bot.keys import SERVICES
from core.models import ChannelIdentity, User
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from tests.portal.conftest import BASE_URL, magic_path, page_token, serve_portal, sign_up
from tests.portal.pages_env import JPEG, Site, make_avatar, make_photo, serve_site


def _tampered(token: str) -> dict[str, str]:
    """The token with each of its parts (payload, timestamp, signature) changed, and other malformed shapes."""
    payload, stamp, signature = token.split(".")

    def change(part: str) -> str:
        # The FIRST character: the last one of a base64 part may carry only padding bits, so changing it can
        # leave the decoded bytes (and the signature) as they were.
        return ("B" if part[0] == "A" else "A") + part[1:]

    forged_payload = base64.urlsafe_b64encode(b'{"u":2,"p":1,"e":0}').decode().rstrip("=")
    return {
        "payload": f"{change(payload)}.{stamp}.{signature}",
        "forged payload": f"{forged_payload}.{stamp}.{signature}",
        "timestamp": f"{payload}.{change(stamp)}.{signature}",
        "signature": f"{payload}.{stamp}.{change(signature)}",
        "no signature": f"{payload}.{stamp}",
        "empty": "",
        "made up": "eyJ1IjoxfQ.aBcDeF.0123456789abcdefghijklmnopq",
    }


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The portal's pages (photo routes included) on a local port."""
    async with serve_site(tmp_path, redis) as running:
        yield running


async def test_a_photo_link_with_any_part_tampered_serves_nothing(site: Site) -> None:
    """Changing the payload, timestamp or signature of a photo token, or dropping it, never serves bytes or the page."""
    owner = await User.create(email="owner@example.com")
    photo = await make_photo(site, await make_avatar(owner.id))
    await site.confirm_adult()
    path, _, token = (await site.photo_link(owner.id, photo.id)).partition("?t=")
    assert (await (await site.client.get(f"{path}?t={token}")).read()) == JPEG  # the genuine link works
    for part, bad in _tampered(token).items():
        for url in (f"{path}?t={bad}", f"{path}/view?t={bad}"):
            response = await site.client.get(url, allow_redirects=False, headers={"Accept": "application/json"})
            assert JPEG not in await response.read(), part
            if response.status == 303:  # an empty token is no token: the page asks to sign in
                assert response.headers["Location"].startswith("/signin"), part
            else:
                assert response.status in (403, 404), (part, url, response.status)


async def test_a_photo_link_replayed_by_another_signed_in_user_is_refused(site: Site) -> None:
    """Bob, signed in to his own account, opening Alice's photo link gets a 404 and no bytes (the link is hers)."""
    alice = await User.create(email="alice@example.com")
    photo = await make_photo(site, await make_avatar(alice.id))
    link = await site.photo_link(alice.id, photo.id)
    path, _, token = link.partition("?t=")
    await sign_up(site.client, "bob@example.com")
    await site.confirm_adult()
    for url in (link, f"{path}/view?t={token}", f"{path}?t={token}&download=1"):
        response = await site.client.get(url, allow_redirects=False, headers={"Accept": "application/json"})
        assert response.status == 404, (url, response.status)
        assert JPEG not in await response.read()


async def test_a_magic_link_with_any_part_tampered_signs_nobody_in(db: str, redis: ArqRedis) -> None:
    """Every tampered form of a magic link answers 403 (or 404 when it is no token path) and starts no session."""
    async with serve_portal(redis) as portal:
        user_id = await sign_up(portal.client, "magic@example.com")
        portal.forget_cookies()
        token = (await magic_path(portal.links, user_id)).removeprefix("/portal/sign-in/")
        for part, bad in _tampered(token).items():
            response = await portal.client.get(f"/portal/sign-in/{bad}", allow_redirects=False)
            assert response.status in (403, 404), (part, response.status)
            chat = await portal.client.get("/chat", allow_redirects=False)
            assert chat.status == 303 and chat.headers["Location"].startswith("/signin"), part


async def test_a_magic_link_opened_in_another_account_asks_and_a_forged_confirmation_fails(
    db: str, redis: ArqRedis
) -> None:
    """Bob signed in opening Alice's link sees a question (still Bob, link not spent); confirming without or with a
    foreign CSRF token is 403 and he stays Bob; Alice can still use her link once, and never twice."""
    async with serve_portal(redis) as portal:
        alice = await sign_up(portal.client, "alice@example.com")
        link = await magic_path(portal.links, alice)
        portal.forget_cookies()
        foreign = await page_token(portal.client, "/signin")  # a token of some other session
        portal.forget_cookies()
        await sign_up(portal.client, "bob@example.com")
        asked = await portal.client.get(link, allow_redirects=False)
        assert asked.status == 200 and "alice@example.com" not in await asked.text()
        for data in ({}, {"csrf_token": foreign}):
            assert (await portal.client.post(link, data=data, allow_redirects=False)).status == 403
        assert (await portal.client.get("/chat", allow_redirects=False)).status == 200  # still signed in...
        assert (await portal.client.get(link, allow_redirects=False)).status == 200  # ...as Bob: asked again
        portal.forget_cookies()
        assert (await portal.client.get(link, allow_redirects=False)).status == 303  # not spent by Bob
        portal.forget_cookies()
        assert (await portal.client.get(link, allow_redirects=False)).status == 403  # once only


async def _database_digest() -> dict[str, str]:
    """A fingerprint of every application table's rows."""
    conn = connections.get("default")
    _, rows = await conn.execute_query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    digest = {}
    for (table,) in ((r["tablename"],) for r in rows):
        query = f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS d FROM \"{table}\" t"
        _, found = await conn.execute_query(query)
        digest[table] = found[0]["d"]
    return digest


def _concrete(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


async def test_every_state_changing_post_refuses_a_missing_or_foreign_csrf_token(
    db: str, redis: ArqRedis, make_settings: Any
) -> None:
    """Each POST route of the real app (webhooks aside: they are signed) answers 403 without the session's CSRF
    token or with another session's, and no row anywhere changes; the victim stays signed in."""
    settings = make_settings(public_base_url=BASE_URL, secret_key="s" * 8 + "-csrf-route-table-secret-0123456789")
    app = await create_app(settings, redis=redis, own_database=False)
    async with TestClient(TestServer(app)) as victim, TestClient(TestServer(app)) as attacker:
        user_id = await sign_up(victim, "victim@example.com")
        await sign_up(attacker, "attacker@example.com")
        foreign = await page_token(attacker, "/chat")
        photo = await make_photo_row(user_id)
        identity = await ChannelIdentity.get(user_id=user_id)
        links = app[SERVICES].links
        magic = await links.for_sending(user_id, links.sign_in_url(user_id))
        values = {
            "token": magic.rsplit("/", 1)[1],
            "photo_id": str(photo),
            "channel": "telegram",
            "identity_id": str(identity.id),
        }
        posts = sorted(
            {_concrete(r.resource.canonical, values) for r in app.router.routes() if r.method == "POST" and r.resource}
        )
        checked = [p for p in posts if p not in WEBHOOK_PATHS]
        assert "/account/delete" in checked and "/chat/messages" in checked and len(checked) >= 15
        before = await _database_digest()
        for path in checked:
            for token in (None, foreign):
                form = {"email": "victim@example.com", "password": "x" * 12, "text": "hi", "mode": "intimate"}
                headers = {"Accept": "application/json"}
                if path == "/chat/messages":
                    headers |= {"X-CSRF-Token": token} if token else {}
                    response = await victim.post(path, json={"text": "hi"}, headers=headers, allow_redirects=False)
                else:
                    data = form | ({"csrf_token": token} if token else {})
                    response = await victim.post(path, data=data, headers=headers, allow_redirects=False)
                assert response.status == 403, (path, token is not None, response.status)
        assert await _database_digest() == before
        assert (await victim.get("/chat", allow_redirects=False)).status == 200


async def make_photo_row(user_id: int) -> int:
    """A ready-looking photo row of the user (its bytes do not matter: nothing may reach them)."""
    avatar = await make_avatar(user_id)
    photo = await Photo.create(
        user_id=user_id,
        avatar=avatar,
        kind=PhotoKindChoice.PHOTO,
        status=PhotoStatus.READY,
        scene="at a cafe",
        source_key="test:csrf-route-table",
        storage_key="missing.jpg",
    )
    return int(photo.id)


async def test_the_real_app_behind_https_sets_host_prefixed_secure_cookies(
    db: str, redis: ArqRedis, make_settings: Any
) -> None:
    """Built from settings with an https PUBLIC_BASE_URL (production), the app's session cookie is `__Host-`
    prefixed, Secure, HttpOnly and SameSite=Lax, without a Domain."""
    settings = make_settings(
        public_base_url="https://ava.example", secret_key="h" * 8 + "-https-cookie-secret-0123456789ab"
    )
    app = await create_app(settings, redis=redis, own_database=False)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/signin")
        cookies = [c for c in response.headers.getall("Set-Cookie", []) if "session" in c.lower()]
        assert cookies, response.headers
        for cookie in cookies:
            attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
            assert cookie.startswith("__Host-"), cookie
            assert {"secure", "httponly", "samesite", "path"} <= attributes and "domain" not in attributes, cookie
            assert "SameSite=Lax" in cookie, cookie
