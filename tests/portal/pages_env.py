"""The portal's pages on a test server, wired as `ava_bot.app.create_app` wires them.

Real PostgreSQL and photo files on disk; billing is the in-memory fake (`tests.fakes.billing`), the turn
queue records, and erasure is the real `ava_bot.erasure.Eraser` with a recording subscription canceller.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from yarl import URL

from ava_bot.erasure import CancelSubscription, Eraser
from ava_bot.http import make_error_middleware, portal_error_page
from core.inbox import Inbox
from core.models import Avatar, User
from imaging.library import StoredPhotoLibrary
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from imaging.storage import LocalPhotoStore
from portal.account import setup_account
from portal.adult import setup_adult
from portal.auth import current_user_id
from portal.billing import setup_billing_pages
from portal.erasure import setup_erasure
from portal.gallery import setup_gallery
from portal.legal import setup_legal
from portal.links import PortalLinks
from portal.photos import setup_photo_routes
from portal.ports import Billing
from portal.setup import setup_portal
from tests.fakes.billing import FakeBilling
from tests.fakes.queue import RecordingQueue
from tests.portal.conftest import BASE_URL, SECRET, page_token

JPEG = b"\xff\xd8\xff\xe0" + b"a signed jpeg" * 20
PHOTO_LINK_TTL = 3600


@dataclass
class Site:
    """The running portal and what the tests inspect."""

    client: TestClient
    links: PortalLinks
    store: LocalPhotoStore
    originals: LocalPhotoStore
    billing: FakeBilling
    queue: RecordingQueue
    cancelled: list[int] = field(default_factory=list)

    def path_of(self, url: str) -> str:
        """A portal URL without its base, for the test client."""
        return url.removeprefix(BASE_URL)

    async def photo_link(self, user_id: int, photo_id: int) -> str:
        """The signed photo link a chat message carries when it leaves (path and query only)."""
        return self.path_of(await self.links.for_sending(user_id, self.links.photo_url(user_id, photo_id)))

    async def confirm_adult(self, next_path: str = "/gallery") -> None:
        """Pass the 18+ interstitial in this browser session, as a visitor does."""
        token = await page_token(self.client, f"/adult?next={next_path}")
        response = await self.client.post(
            "/adult", data={"csrf_token": token, "next": next_path}, allow_redirects=False
        )
        assert response.status == 303, await response.text()

    def cookies(self) -> dict[str, str]:
        """The browser's cookies (to replay an old session later)."""
        return {c.key: c.value for c in self.client.session.cookie_jar}

    def restore_cookies(self, cookies: dict[str, str]) -> None:
        """Replace the browser's cookies by `cookies`."""
        jar = self.client.session.cookie_jar
        jar.clear()
        jar.update_cookies(cookies, URL(str(self.client.make_url("/"))))


@asynccontextmanager
async def serve_site(
    tmp_path: Path,
    redis: Redis,
    *,
    clock: Callable[[], float] = time.time,
    store: LocalPhotoStore | None = None,
    cancel: CancelSubscription | None = None,
    billing: Billing | None = None,
    mode_settle_seconds: float = 0.2,
) -> AsyncIterator[Site]:
    """Portal, photo routes, gallery, 18+ interstitial, account, erasure, legal and subscribe pages on a local port
    (sessions in `redis`, links on `clock`; erasure cancels subscriptions through `cancel`, by default a recorder
    of `Site.cancelled`; `billing` replaces the in-memory fake for the home, account and subscribe pages; the mode
    switch waits `mode_settle_seconds` for a turn, which nothing runs here)."""
    links = PortalLinks(SECRET, BASE_URL, photo_link_ttl=PHOTO_LINK_TTL, clock=clock)
    store = store or LocalPhotoStore(tmp_path / "photos")
    originals = LocalPhotoStore(tmp_path / "originals")
    fake, queue, cancelled = FakeBilling(), RecordingQueue(), []
    pages_billing: Billing = billing or fake
    inbox = Inbox(queue)

    async def record(user_id: int) -> None:
        cancelled.append(user_id)

    eraser = Eraser(store=store, originals=originals, cancel_subscription=cancel or record)
    app = web.Application(middlewares=[make_error_middleware(page=portal_error_page)])
    setup_portal(app, links=links, web_channel="web", secure_cookies=False, redis=lambda: redis)
    library = StoredPhotoLibrary(store, originals)
    setup_photo_routes(app, links=links, library=library, session_user=current_user_id)
    setup_gallery(app, library=library)
    setup_adult(app)
    setup_account(app, billing=lambda: pages_billing, inbox=lambda: inbox, mode_settle_seconds=mode_settle_seconds)
    setup_erasure(app, eraser=lambda: eraser)
    setup_legal(app)
    setup_billing_pages(app, billing=pages_billing, public_base_url=BASE_URL)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Site(client, links, store, originals, fake, queue, cancelled)
    finally:
        await client.close()


async def make_avatar(user_id: int, name: str = "Luna") -> Avatar:
    """An approved avatar of the user (and the user's 18+ confirmation, as after chat onboarding)."""
    await User.filter(id=user_id).update(adult_confirmed_at=datetime.now(UTC))
    return await Avatar.create(
        user_id=user_id,
        name=name,
        gender="woman",
        age=27,
        nationality="Brazilian",
        appearance="curly auburn hair",
        personality="adventurous",
        approved_at=datetime.now(UTC),
    )


async def make_photo(
    site: Site,
    avatar: Avatar,
    scene: str | None = "at a rooftop bar",
    *,
    status: PhotoStatus = PhotoStatus.READY,
    kind: PhotoKindChoice = PhotoKindChoice.PHOTO,
) -> Photo:
    """A photo of the avatar; a ready one has its JPEG in the store (a reference also has an original)."""
    ready = status == PhotoStatus.READY
    storage_key = await site.store.put(JPEG) if ready else None
    original_key = await site.originals.put(JPEG) if ready and kind == PhotoKindChoice.REFERENCE else None
    return await Photo.create(
        user_id=avatar.user_id,  # type: ignore[attr-defined]
        avatar=avatar,
        kind=kind,
        status=status,
        scene=scene,
        source_key=f"test:{uuid.uuid4().hex}",
        storage_key=storage_key,
        original_key=original_key,
    )


def interstitial_next(response_location: str) -> str:
    """The `next` path of a redirect to the interstitial (fails when it is not one)."""
    match = re.fullmatch(r"/adult\?next=(.+)", response_location)
    assert match, response_location
    return unquote(match.group(1))
