"""The header of every signed-in page: her picture and name, the mode switch (through the inbox), the menu, and
the sign-out confirmation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis

from core.models import Avatar, Direction, Message, Mode, User
from imaging.models import PhotoKindChoice
from tests.portal.conftest import csrf_of, sign_up
from tests.portal.markup import outline, text_of
from tests.portal.pages_env import Site, make_avatar, make_photo, serve_site

#: The menu: `data-nav` key -> where it leads.
MENU = {
    "chat": "/chat",
    "photos": "/gallery",
    "account": "/account",
    "subscription": "/subscribe",
    "signout": "/signout",
}


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The portal's pages on a local port."""
    async with serve_site(tmp_path, redis) as running:
        yield running


async def _luna(site: Site, email: str) -> tuple[int, int]:
    """A signed-in user whose avatar Luna has a kept reference (account confirmed 18+); (user id, photo id)."""
    user_id = await sign_up(site.client, email)
    avatar = await make_avatar(user_id, "Luna")
    photo = await make_photo(site, avatar, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=avatar.id).update(reference_photo_id=photo.id)
    return user_id, photo.id


async def test_every_signed_in_page_has_the_header_and_a_menu_that_reaches_every_page(site: Site) -> None:
    """Home, chat, photos, a photo, account, subscription, sign-out, terms and privacy all show one header with the
    menu; every menu link answers 200; no page offers a `/portal` sign-in link."""
    _, reference = await _luna(site, "menu@example.com")
    await site.confirm_adult()
    pages = ["/", "/chat", "/gallery", f"/photos/{reference}/view", "/account", "/subscribe", "/signout"]
    for path in [*pages, "/terms", "/privacy"]:
        response = await site.client.get(path)
        assert response.status == 200, path
        page = outline(await response.text())
        page.one("header", id="topbar")
        nav = {e.attrs["data-nav"]: e.attrs["href"] for e in page.all("a") if e.attrs.get("data-nav") in MENU}
        assert nav == MENU, path
        assert page.one("a", data_nav="chat").text.strip() == "Chat"
        assert not [h for h in page.hrefs() if h.startswith("/portal")], path
    for href in MENU.values():
        assert (await site.client.get(href)).status == 200, href


async def test_the_current_page_is_marked_in_the_menu(site: Site) -> None:
    """The menu marks the page the user is on with `aria-current="page"`."""
    await _luna(site, "current@example.com")
    page = outline(await (await site.client.get("/account")).text())
    assert [e.attrs["data-nav"] for e in page.all("a") if e.attrs.get("aria-current") == "page"] == ["account"]


async def test_header_shows_her_portrait_only_after_an_18_plus_confirmation(site: Site) -> None:
    """Her name and kept reference show when the account confirmed 18+; an unconfirmed account in an unconfirmed
    session sees her initial until the session passes the interstitial."""
    user_id, reference = await _luna(site, "portrait@example.com")
    page = outline(await (await site.client.get("/account")).text())
    assert text_of(page.one("span", class_="who-name")) == "Luna"
    assert page.one("img", class_="face").attrs["src"] == f"/photos/{reference}"

    await User.filter(id=user_id).update(adult_confirmed_at=None)
    page = outline(await (await site.client.get("/account")).text())
    assert not page.all("img", class_="face")
    assert text_of(page.one("span", class_="face initial")) == "L"

    await site.confirm_adult("/account")
    page = outline(await (await site.client.get("/account")).text())
    assert page.one("img", class_="face").attrs["src"] == f"/photos/{reference}"


async def test_before_setup_the_header_says_ava_and_offers_no_mode_switch(site: Site) -> None:
    """A new account (no avatar yet) sees "Ava" with an initial and the menu, but no mode switch."""
    await sign_up(site.client, "new@example.com")
    page = outline(await (await site.client.get("/account")).text())
    assert text_of(page.one("span", class_="who-name")) == "Ava"
    assert not page.all("form", id="mode-switch")
    assert page.one("a", data_nav="photos").attrs["href"] == "/gallery"


async def test_mode_switch_sends_the_mode_command_through_the_inbox(site: Site) -> None:
    """The header's switch posts the other mode: `/mode intimate` is stored as the user's web chat message (once,
    even when the form is sent twice), the turn is scheduled and the chat opens; choosing the current mode sends
    nothing; without CSRF or with an unknown mode nothing is stored."""
    user_id, _ = await _luna(site, "mode@example.com")
    html = await (await site.client.get("/gallery")).text()
    switch = outline(html).one("form", id="mode-switch")
    assert (switch.attrs["action"], switch.attrs["method"]) == ("/mode", "post")
    buttons = {e.attrs["value"]: e.attrs["aria-pressed"] for e in outline(html).all("button", name="mode")}
    assert buttons == {"secretary": "true", "intimate": "false"}
    client_id = next(e.attrs["value"] for e in outline(html).all("input", name="client_id"))
    form = {"csrf_token": csrf_of(html), "client_id": client_id}

    assert (await site.client.post("/mode", data={**form, "csrf_token": "forged", "mode": "intimate"})).status == 403
    assert (await site.client.post("/mode", data={**form, "mode": "naughty"})).status == 400
    same = await site.client.post("/mode", data={**form, "mode": "secretary"}, allow_redirects=False)
    assert (same.status, same.headers["Location"]) == (303, "/chat")
    assert not await Message.exists(user_id=user_id)

    for _ in range(2):
        response = await site.client.post("/mode", data={**form, "mode": "intimate"}, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/chat")
    (row,) = await Message.filter(user_id=user_id)
    assert (row.direction, row.channel, row.chat_id, row.text) == (
        Direction.INBOUND,
        "web",
        str(user_id),
        "/mode intimate",
    )
    assert site.queue.calls == [user_id]


async def test_mode_switch_opens_the_chat_once_the_turn_switched_the_mode(
    db: str, redis: ArqRedis, tmp_path: Path
) -> None:
    """The switch waits for the turn (here a stand-in worker switching after 0.3 s), so the chat opens in the new
    mode; it does not wait longer than needed."""
    async with serve_site(tmp_path, redis, mode_settle_seconds=10) as site:
        user_id, _ = await _luna(site, "settle@example.com")
        html = await (await site.client.get("/account")).text()
        client_id = next(e.attrs["value"] for e in outline(html).all("input", name="client_id"))

        async def worker() -> None:
            await asyncio.sleep(0.3)
            await User.filter(id=user_id).update(mode=Mode.INTIMATE)

        started = time.monotonic()
        turn = asyncio.create_task(worker())
        form = {"csrf_token": csrf_of(html), "client_id": client_id, "mode": "intimate"}
        chat = await site.client.post("/mode", data=form)
        await turn
        assert chat.status == 200 and chat.url.path == "/chat"
        assert 0.3 <= time.monotonic() - started < 5
        assert "mode-intimate" in outline(await chat.text()).one("body").attrs["class"].split()


async def test_the_page_theme_follows_the_users_mode(site: Site) -> None:
    """`<body>` carries the user's mode as a class, and the switch shows it pressed."""
    user_id, _ = await _luna(site, "theme@example.com")
    page = outline(await (await site.client.get("/account")).text())
    assert "mode-secretary" in page.one("body").attrs["class"].split()
    await User.filter(id=user_id).update(mode=Mode.INTIMATE)
    page = outline(await (await site.client.get("/account")).text())
    assert "mode-intimate" in page.one("body").attrs["class"].split()
    assert page.one("button", value="intimate").attrs["aria-pressed"] == "true"


async def test_sign_out_asks_first(site: Site) -> None:
    """The menu's "Sign out" opens a confirmation; only its CSRF-checked POST ends the session; signed out, the
    confirmation page sends the browser home."""
    await _luna(site, "bye@example.com")
    response = await site.client.get("/signout")
    assert response.status == 200
    html = await response.text()
    page = outline(html)
    form = page.one("form", action="/signout")
    assert form.attrs["method"] == "post"
    assert page.one("button", data_action="signout-confirm").attrs["type"] == "submit"
    assert page.one("a", data_action="signout-cancel").attrs["href"] == "/chat"
    assert (await site.client.get("/account", allow_redirects=False)).status == 200  # the GET signed nobody out

    assert (await site.client.post("/signout", data={"csrf_token": "forged"})).status == 403
    out = await site.client.post("/signout", data={"csrf_token": csrf_of(html)}, allow_redirects=False)
    assert (out.status, out.headers["Location"]) == (303, "/")
    assert (await site.client.get("/account", allow_redirects=False)).status == 303
    gone = await site.client.get("/signout", allow_redirects=False)
    assert (gone.status, gone.headers["Location"]) == (303, "/")
