"""The portal's pages as a whole: the home page (price from the Plan table), privacy and terms, styled error pages
with a way back, the favicon and stylesheet, and the document outline of every page (one <h1>, landmarks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis
from redis.asyncio import Redis

from ava_bot.http import make_error_middleware, portal_error_page
from billing.models import Plan
from billing.service import BillingService
from billing.stripe_api import StripeApi
from core.models import Avatar
from imaging.models import PhotoKindChoice
from portal.assets import LONG_CACHE, SHORT_CACHE
from portal.links import PortalLinks
from portal.setup import setup_portal
from tests.portal.conftest import BASE_URL, SECRET, sign_up
from tests.portal.markup import Outline, outline, text_of
from tests.portal.pages_env import Site, make_avatar, make_photo, serve_site

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The portal's pages on a local port, billing from the Plan table (no Stripe)."""
    billing = BillingService(plans=[], stripe_api=None)
    async with serve_site(tmp_path, redis, billing=billing) as running:
        yield running


async def _page(site: Site, path: str, status: int = 200) -> Outline:
    response = await site.client.get(path, headers={"Accept": BROWSER})
    assert response.status == status, path
    return outline(await response.text())


async def test_home_page_says_what_ava_is_with_the_price_from_the_plan_table(site: Site) -> None:
    """Signed out, the home page explains Ava, shows the 18+ notice, the price label of the configured plan (a row
    of the Plan table, not a constant), and links to sign-up, terms and privacy."""
    await Plan.create(
        code="special",
        name="Ava Special",
        price_label="12.34 GBP / fortnight",
        interval="fortnight",
        photos_per_period=7,
        messages_per_day=99,
        is_default=True,
    )
    await Plan.create(code="gone", name="Retired", price_label="1.00 EUR / month", active=False)
    html = await (await site.client.get("/")).text()
    page = outline(html)
    assert "your own AI companion" in text_of(page.one("section", id="home"))
    assert "18 or older" in text_of(page.one("section", id="adults-only"))
    price = text_of(page.one("section", id="price"))
    assert "Ava Special" in price and "12.34 GBP / fortnight" in price and "7 photos per fortnight" in price
    assert "Retired" not in html
    hrefs = page.hrefs()
    assert {"/terms", "/privacy", "/signup", "/signin"} <= set(hrefs)
    assert "no payments are taken here" in price and "Billed through Stripe" not in price  # no Stripe: development


async def test_home_page_says_billed_through_stripe_only_when_stripe_is_configured(
    db: str, redis: ArqRedis, tmp_path: Path
) -> None:
    """With Stripe configured the price section says billing goes through Stripe, and no development line."""
    await Plan.create(code="monthly", name="Ava Monthly", price_label="9.99 EUR / month", is_default=True)
    stripe_api = StripeApi("sk_test_home_page", api_base="http://127.0.0.1:9")  # never called by the home page
    billing = BillingService(plans=[], stripe_api=stripe_api)
    async with serve_site(tmp_path, redis, billing=billing) as running:
        price = text_of(outline(await (await running.client.get("/")).text()).one("section", id="price"))
    assert "Billed through Stripe" in price and "no payments are taken" not in price


async def test_home_page_without_plans_shows_no_price(site: Site) -> None:
    """No active plan: no price section (never a made-up amount)."""
    page = await _page(site, "/")
    assert not page.all("section", id="price")


async def test_privacy_page_and_terms_link_each_other(site: Site) -> None:
    """The privacy notice names what is kept, who else sees it and how to delete it; terms and privacy link each
    other and the home page."""
    page = await _page(site, "/privacy")
    body = text_of(page.one("article", id="privacy"))
    for words in ("What we keep", "Who else sees it", "Stripe", "Delete all your data", "no tracking"):
        assert words in body, words
    assert {"/terms", "/"} <= set(page.hrefs())
    assert "/privacy" in (await _page(site, "/terms")).hrefs()


async def test_unknown_path_is_a_styled_404_with_a_way_back(site: Site) -> None:
    """A browser gets the styled 404 page (home link signed out, chat link signed in); a script gets plain 404."""
    page = await _page(site, "/no/such/page", 404)
    assert text_of(page.one("h1")) == "Page not found"
    assert page.one("a", data_action="error-back").attrs["href"] == "/"
    await sign_up(site.client, "lost@example.com")
    page = await _page(site, "/no/such/page", 404)
    assert page.one("a", data_action="error-back").attrs["href"] == "/chat"
    script = await site.client.get("/no/such/page", headers={"Accept": "*/*"})
    assert script.status == 404 and script.content_type == "text/plain"


async def test_csrf_refusal_is_a_styled_403_for_a_browser(site: Site) -> None:
    """A form posted without its token gets the styled 403 page naming the problem, with a way back."""
    await sign_up(site.client, "forged@example.com")
    response = await site.client.post("/signout", data={"csrf_token": "forged"}, headers={"Accept": BROWSER})
    assert response.status == 403 and response.headers["Cache-Control"] == "private, no-store"
    page = outline(await response.text())
    assert text_of(page.one("h1")) == "Not allowed"
    assert "Reload the page and try again" in text_of(page.one("section", id="error-page"))
    assert page.one("a", data_action="error-back").attrs["href"] == "/chat"


async def test_a_bug_is_a_styled_500_with_a_way_back(db: str, redis: Redis) -> None:
    """An unexpected exception in a page gives a browser the styled 500 page (no details), with a way home."""

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret detail")

    app = web.Application(middlewares=[make_error_middleware(page=portal_error_page)])
    setup_portal(app, links=PortalLinks(SECRET, BASE_URL), web_channel="web", secure_cookies=False, redis=lambda: redis)
    app.router.add_get("/broken", broken)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/broken", headers={"Accept": BROWSER})
        html = await response.text()
    assert response.status == 500 and "secret detail" not in html
    page = outline(html)
    assert text_of(page.one("h1")) == "Something went wrong"
    assert page.one("a", data_action="error-back").attrs["href"] == "/"


async def test_favicon_and_stylesheet_are_linked_and_served_with_long_caching(site: Site) -> None:
    """Every page links the SVG favicon and the one stylesheet by versioned URLs; those answer with a year of
    caching, an unversioned request revalidates, an unknown or sneaky name is 404; the page's CSP allows the
    site's own stylesheet."""
    response = await site.client.get("/")
    assert "style-src 'self'" in response.headers["Content-Security-Policy"]
    page = outline(await response.text())
    icon = page.one("link", rel="icon")
    assert icon.attrs["type"] == "image/svg+xml"
    sheets = [e.attrs["href"] for e in page.all("link", rel="stylesheet")]
    assert len(sheets) == 1 and sheets[0].startswith("/static/ava.css?v=")

    served = await site.client.get(icon.attrs["href"])
    assert served.status == 200 and served.content_type == "image/svg+xml"
    assert served.headers["Cache-Control"] == LONG_CACHE
    assert (await served.text()).lstrip().startswith("<svg")
    css = await site.client.get(sheets[0])
    assert css.content_type == "text/css" and css.headers["Cache-Control"] == LONG_CACHE
    assert "/* == chat page == */" in await css.text()
    plain = await site.client.get("/static/ava.css")
    assert plain.headers["Cache-Control"] == SHORT_CACHE
    again = await site.client.get("/static/ava.css", headers={"If-None-Match": plain.headers["ETag"]})
    assert again.status == 304
    for name in ("nope.css", ".hidden.css", "..%2Fassets.py", "ava.py"):
        assert (await site.client.get(f"/static/{name}")).status == 404, name


async def _every_page(site: Site) -> list[tuple[str, int]]:
    """(path, status) of every page a visitor and then a signed-in user with photos can open."""
    pages = [("/", 200), ("/signin", 200), ("/signup", 200), ("/terms", 200), ("/privacy", 200), ("/x", 404)]
    user_id = await sign_up(site.client, "outline@example.com")
    avatar = await make_avatar(user_id)
    reference = await make_photo(site, avatar, None, kind=PhotoKindChoice.REFERENCE)
    await Avatar.filter(id=avatar.id).update(reference_photo_id=reference.id)
    photo = await make_photo(site, avatar, "on a terrace")
    pages.append(("/adult?next=/gallery", 200))
    await site.confirm_adult()
    signed_in = [
        "/",
        "/chat",
        "/gallery",
        f"/photos/{photo.id}/view",
        f"/photos/{reference.id}/view",
        "/account",
        "/account/delete",
        "/subscribe",
        "/billing/cancel",
        "/signout",
        "/terms",
        "/privacy",
    ]
    return pages + [(p, 200) for p in signed_in] + [("/x", 404)]


async def test_every_page_has_one_h1_a_language_and_landmarks(site: Site) -> None:
    """Each page, signed out and signed in (errors included), has exactly one <h1>, `lang`, one header, one main,
    a named navigation, a skip link to the content, and a label for every visible form field."""
    for path, status in await _every_page(site):
        response = await site.client.get(path, headers={"Accept": BROWSER})
        assert response.status == status, path
        page = outline(await response.text())
        assert len(page.all("h1")) == 1, path
        assert page.one("html").attrs["lang"] == "en", path
        page.one("header")
        page.one("main", id="main")
        assert page.all("nav", aria_label="Main"), path
        assert page.all("a", class_="skip-link"), path
        labelled = {e.attrs.get("for") for e in page.all("label")}
        for field in page.all("input") + page.all("textarea"):
            if field.attrs.get("type") not in ("hidden", "submit"):
                named = field.attrs.get("aria-label") or field.attrs.get("aria-labelledby")
                assert field.attrs.get("id") in labelled or named, (path, field.attrs)


async def test_signed_in_pages_never_offer_a_portal_sign_in_link(site: Site) -> None:
    """Inside the portal there is no `/portal` link or instruction: the reader is already signed in."""
    await sign_up(site.client, "inside@example.com")
    for path in ("/", "/account", "/subscribe", "/gallery", "/signout", "/privacy", "/terms"):
        response = await site.client.get(path)
        assert response.status == 200, path
        assert "/portal" not in await response.text(), path


async def test_photo_page_has_back_and_download(site: Site) -> None:
    """The photo page goes back to where it was opened from (a local `back` path, else the gallery) and offers the
    download; a foreign `back` is ignored."""
    user_id = await sign_up(site.client, "back@example.com")
    await site.confirm_adult()
    photo = await make_photo(site, await make_avatar(user_id), "on a terrace")
    page = await _page(site, f"/photos/{photo.id}/view")
    assert page.one("a", data_action="photo-back").attrs["href"] == "/gallery"
    assert page.one("a", data_action="photo-download").attrs["href"] == f"/photos/{photo.id}?download=1"
    page = await _page(site, f"/photos/{photo.id}/view?back=/chat")
    back = page.one("a", data_action="photo-back")
    assert (back.attrs["href"], back.attrs["aria-label"]) == ("/chat", "Back to the chat")
    page = await _page(site, f"/photos/{photo.id}/view?back=//evil.example/")
    assert page.one("a", data_action="photo-back").attrs["href"] == "/gallery"


async def test_photo_page_goes_back_to_the_page_it_was_opened_from(site: Site) -> None:
    """Without `?back=`, "Back" returns to the last chat, gallery or account page of this session (pages send no
    Referer): opened from the chat, it goes back to the chat."""
    user_id = await sign_up(site.client, "origin@example.com")
    await site.confirm_adult()
    photo = await make_photo(site, await make_avatar(user_id), "on a terrace")
    for origin in ("/chat", "/gallery", "/account", "/chat"):
        assert (await site.client.get(origin)).status == 200
        await site.client.get("/terms")  # other pages in between do not count
        page = await _page(site, f"/photos/{photo.id}/view")
        assert page.one("a", data_action="photo-back").attrs["href"] == origin
