"""Delete my data: `ava_bot.erasure.Eraser` on the real database and photo files, and the portal pages around it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from ava_bot.erasure import PSEUDONYM_PREFIX, Eraser
from billing.models import QuotaCharge, QuotaKind, QuotaUsage, Subscription, SubscriptionStatus
from core.errors import AvaError
from core.models import (
    Avatar,
    ChannelIdentity,
    DeadLetter,
    Direction,
    LinkCode,
    Message,
    MessageStatus,
    SafetyRefusal,
    User,
    user_ref,
)
from imaging.errors import PhotoNotStored, StorageError
from imaging.models import Photo, PhotoAudit, PhotoKindChoice, PhotoStatus
from imaging.storage import LocalPhotoStore
from tests.billing.conftest import MONTHLY, plans_toml, stripe_settings
from tests.fakes.entitlements import allow_all
from tests.fakes.stripe import FakeStripe
from tests.portal.conftest import csrf_of, page_token, sign_up
from tests.portal.pages_env import JPEG, Site, make_avatar, serve_site


class StripeDown(AvaError):
    """What billing raises when Stripe cannot be reached."""

    http_status = 502


@dataclass
class Person:
    """A user with a bit of everything erasure must remove, and the files of their photos."""

    user_id: int
    photo_ids: list[int]
    files: list[tuple[LocalPhotoStore, str]]


@dataclass
class Stores:
    """The served photos and the private originals."""

    served: LocalPhotoStore
    originals: LocalPhotoStore


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    """Two photo stores on disk."""
    return Stores(LocalPhotoStore(tmp_path / "photos"), LocalPhotoStore(tmp_path / "originals"))


async def _person(stores: Stores, name: str) -> Person:
    """A Telegram + web user with messages, an avatar, photos with files, audit and refusal rows, a subscription,
    quota rows, a link code and dead letters."""
    user = await User.create(email=f"{name}@example.com", adult_confirmed_at=datetime.now(UTC))
    await ChannelIdentity.create(user=user, channel="web", external_user_id=str(user.id))
    await ChannelIdentity.create(user=user, channel="telegram", external_user_id=f"tg-{name}")
    inbound = await Message.create(
        user=user, direction=Direction.INBOUND, channel="telegram", chat_id=f"tg-{name}", text=f"hi from {name}"
    )
    await Message.create(
        user=user, direction=Direction.OUTBOUND, channel="web", chat_id=str(user.id), status=MessageStatus.SENT
    )
    avatar = await make_avatar(user.id, name.title())
    files: list[tuple[LocalPhotoStore, str]] = []
    photo_ids = []
    for kind in (PhotoKindChoice.REFERENCE, PhotoKindChoice.PHOTO):
        served = await stores.served.put(JPEG)
        original = await stores.originals.put(JPEG) if kind == PhotoKindChoice.REFERENCE else None
        photo = await Photo.create(
            user=user,
            avatar=avatar,
            kind=kind,
            status=PhotoStatus.READY,
            source_key=f"{name}:{kind}",
            scene=f"{name} {kind}",
            storage_key=served,
            original_key=original,
        )
        photo_ids.append(photo.id)
        files.append((stores.served, served))
        if original:
            files.append((stores.originals, original))
        for event in ("requested", "ready"):
            await PhotoAudit.create(photo_id=photo.id, user_ref=user_ref(user.id), kind=kind, event=event, status=event)
    queued = await Photo.create(user=user, avatar=avatar, kind=PhotoKindChoice.PHOTO, source_key=f"{name}:queued")
    photo_ids.append(queued.id)
    await SafetyRefusal.create(user_ref=user_ref(user.id), field="scene", layer="rules", code="minor", text="x")
    await Subscription.create(
        user=user,
        status=SubscriptionStatus.ACTIVE,
        stripe_customer_id=f"cus_{name}",
        stripe_subscription_id=f"sub_{name}",
        current_period_end=datetime.now(UTC) + timedelta(days=20),
    )
    await QuotaUsage.create(user=user, kind=QuotaKind.PHOTO, period_key="p1", used=2)
    await QuotaCharge.create(user=user, key=f"photo:{photo_ids[1]}", kind=QuotaKind.PHOTO, period_key="p1")
    await LinkCode.create(
        user=user, channel="telegram", code_hash=f"{name:0<64}"[:64], expires_at=datetime.now(UTC) + timedelta(1)
    )
    await DeadLetter.create(job="turn", payload={"message_id": inbound.id, "user_id": user.id}, error="boom")
    await DeadLetter.create(job="generate_photo", payload={"photo_id": queued.id}, error="boom")
    return Person(user.id, photo_ids, files)


async def _has_file(store: LocalPhotoStore, key: str) -> bool:
    try:
        await store.get(key)
    except PhotoNotStored:
        return False
    return True


async def _rows_of(user_id: int) -> dict[str, int]:
    """How many rows of each user-owned table still name the user."""
    counts = {}
    for model in (
        User,
        ChannelIdentity,
        Message,
        Avatar,
        Photo,
        Subscription,
        QuotaUsage,
        QuotaCharge,
        LinkCode,
    ):
        field = "id" if model is User else "user_id"
        counts[model.__name__] = await model.filter(**{field: user_id}).count()
    return counts


async def test_erasure_removes_rows_and_files_and_pseudonymises_audit(db: str, stores: Stores) -> None:
    """Erasure cancels the subscription, deletes the user's files and rows (messages, identities, avatars, photos,
    subscription, quotas, link codes, dead letters), keeps the audit rows under one pseudonym, and touches nobody
    else."""
    alice, bob = await _person(stores, "alice"), await _person(stores, "bob")
    cancelled: list[int] = []

    async def cancel(user_id: int) -> None:
        cancelled.append(user_id)

    await Eraser(store=stores.served, originals=stores.originals, cancel_subscription=cancel).erase(alice.user_id)

    assert cancelled == [alice.user_id]
    assert set((await _rows_of(alice.user_id)).values()) == {0}
    assert [await _has_file(store, key) for store, key in alice.files] == [False] * 3
    audits = await PhotoAudit.filter(photo_id__in=alice.photo_ids)
    refusals = await SafetyRefusal.filter(user_ref__startswith=PSEUDONYM_PREFIX)
    assert len(audits) == 4 and len(refusals) == 1  # kept, without the user id
    assert {a.user_ref for a in audits} == {refusals[0].user_ref}  # one pseudonym for the erased user
    assert not await PhotoAudit.filter(user_ref=user_ref(alice.user_id)).exists()
    assert not await SafetyRefusal.filter(user_ref=user_ref(alice.user_id)).exists()
    letters = await DeadLetter.all()
    assert [letter.payload for letter in letters if letter.payload.get("user_id") == alice.user_id] == []
    assert not [letter for letter in letters if letter.payload.get("photo_id") in alice.photo_ids]

    assert await _rows_of(bob.user_id) == {
        "User": 1,
        "ChannelIdentity": 2,
        "Message": 2,
        "Avatar": 1,
        "Photo": 3,
        "Subscription": 1,
        "QuotaUsage": 1,
        "QuotaCharge": 1,
        "LinkCode": 1,
    }
    assert [await _has_file(store, key) for store, key in bob.files] == [True] * 3
    assert await PhotoAudit.filter(user_ref=user_ref(bob.user_id)).count() == 4
    assert await SafetyRefusal.filter(user_ref=user_ref(bob.user_id)).count() == 1
    assert await DeadLetter.all().count() == 2


async def test_a_failed_stripe_cancel_changes_nothing_and_a_second_call_finishes(db: str, stores: Stores) -> None:
    """When cancelling the subscription fails, nothing is deleted; erasing again finishes the job."""
    alice = await _person(stores, "alice")
    calls: list[int] = []

    async def cancel(user_id: int) -> None:
        calls.append(user_id)
        if len(calls) == 1:
            raise StripeDown("stripe unreachable")

    eraser = Eraser(store=stores.served, originals=stores.originals, cancel_subscription=cancel)
    with pytest.raises(StripeDown):
        await eraser.erase(alice.user_id)
    assert await User.exists(id=alice.user_id)
    assert [await _has_file(store, key) for store, key in alice.files] == [True] * 3

    await eraser.erase(alice.user_id)
    assert calls == [alice.user_id, alice.user_id]
    assert set((await _rows_of(alice.user_id)).values()) == {0}


class FlakyStore(LocalPhotoStore):
    """A store whose second delete fails once (a storage outage part-way through)."""

    deletes = 0

    async def delete(self, key: str) -> None:
        self.deletes += 1
        if self.deletes == 2:
            raise StorageError("bucket unreachable")
        await super().delete(key)


async def test_a_storage_failure_part_way_is_finished_by_a_second_call(db: str, tmp_path: Path) -> None:
    """A file deletion failing part-way leaves the rows (so the files can be found again); a second call erases
    the rest and the rows."""
    stores = Stores(FlakyStore(tmp_path / "photos"), LocalPhotoStore(tmp_path / "originals"))
    alice = await _person(stores, "alice")
    eraser = Eraser(store=stores.served, originals=stores.originals)
    with pytest.raises(StorageError):
        await eraser.erase(alice.user_id)
    assert await User.exists(id=alice.user_id) and await Photo.filter(user_id=alice.user_id).count() == 3

    await eraser.erase(alice.user_id)
    assert [await _has_file(store, key) for store, key in alice.files] == [False] * 3
    assert set((await _rows_of(alice.user_id)).values()) == {0}


class RacingStore(LocalPhotoStore):
    """On its first delete, a photo job of the same user finishes: a new ready photo with its file appears."""

    def __init__(self, root: Path, user_id: int) -> None:
        super().__init__(root)
        self.user_id = user_id
        self.late_key: str | None = None

    async def delete(self, key: str) -> None:
        if self.late_key is None:
            self.late_key = await self.put(JPEG)
            avatar = await Avatar.filter(user_id=self.user_id).first()
            assert avatar is not None
            await Photo.create(
                user_id=self.user_id,
                avatar=avatar,
                kind=PhotoKindChoice.PHOTO,
                status=PhotoStatus.READY,
                source_key="late",
                storage_key=self.late_key,
            )
        await super().delete(key)


async def test_a_photo_finished_during_erasure_loses_its_file_too(db: str, stores: Stores, tmp_path: Path) -> None:
    """A photo that became ready between the file pass and the deleting transaction has its file deleted after."""
    alice = await _person(stores, "alice")
    racing = RacingStore(stores.served.root, alice.user_id)
    await Eraser(store=racing, originals=stores.originals).erase(alice.user_id)
    assert racing.late_key is not None and not await _has_file(stores.served, racing.late_key)
    assert not await User.exists(id=alice.user_id)


async def test_erasing_an_erased_user_again_is_harmless(db: str, stores: Stores) -> None:
    """A second call after a complete erasure does nothing and does not call billing again."""
    alice = await _person(stores, "alice")
    calls: list[int] = []

    async def cancel(user_id: int) -> None:
        calls.append(user_id)

    eraser = Eraser(store=stores.served, originals=stores.originals, cancel_subscription=cancel)
    await eraser.erase(alice.user_id)
    await eraser.erase(alice.user_id)
    assert calls == [alice.user_id]


# -- the portal ------------------------------------------------------------------------------------------------


@pytest.fixture
async def site(db: str, redis: ArqRedis, tmp_path: Path) -> AsyncIterator[Site]:
    """The portal's account pages with the real eraser (recording subscription cancels)."""
    async with serve_site(tmp_path, redis) as running:
        yield running


async def test_delete_my_data_erases_and_kills_sessions_and_links(site: Site) -> None:
    """The confirm page asks for DELETE; confirming erases the user (subscription cancelled, files gone), ends the
    session, shows the goodbye page; the old cookie is no longer signed in and the photo link is dead."""
    user_id = await sign_up(site.client, "leaving@example.com")
    avatar = await make_avatar(user_id)
    key = await site.store.put(JPEG)
    photo = await Photo.create(
        user_id=user_id,
        avatar=avatar,
        kind=PhotoKindChoice.PHOTO,
        status=PhotoStatus.READY,
        source_key="p",
        storage_key=key,
    )
    link = await site.photo_link(user_id, photo.id)
    await site.confirm_adult()
    assert await (await site.client.get(link)).read() == JPEG
    old_cookies = site.cookies()

    page = await site.client.get("/account/delete")
    html = await page.text()
    assert page.status == 200 and "Type <strong>DELETE</strong>" in html and "cannot be undone" in html
    assert (await site.client.post("/account/delete", data={"confirm": "DELETE"})).status == 403  # no CSRF
    wrong = await site.client.post("/account/delete", data={"csrf_token": csrf_of(html), "confirm": "delete it"})
    assert wrong.status == 400 and "Type DELETE to confirm." in await wrong.text()
    assert await User.exists(id=user_id) and site.cancelled == []

    done = await site.client.post(
        "/account/delete", data={"csrf_token": csrf_of(html), "confirm": " DELETE "}, allow_redirects=False
    )
    assert (done.status, done.headers["Location"]) == (303, "/account/deleted")
    goodbye = await site.client.get("/account/deleted")
    assert goodbye.status == 200 and "Your data is deleted" in await goodbye.text()
    assert not await User.exists(id=user_id) and site.cancelled == [user_id]
    with pytest.raises(PhotoNotStored):
        await site.store.get(key)

    site.restore_cookies(old_cookies)  # the browser (or a thief) replays the old session cookie
    for path in ("/account", "/gallery", "/chat", "/account/delete"):
        response = await site.client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"].split("?")[0]) == (303, "/signin"), path
    dead = await site.client.get(link, allow_redirects=False)
    assert dead.status in {403, 404} and await dead.read() != JPEG


async def test_typing_the_account_email_confirms_too(site: Site) -> None:
    """The account's email (any letter case) confirms as well as DELETE."""
    user_id = await sign_up(site.client, "typed@example.com")
    token = await page_token(site.client, "/account/delete")
    response = await site.client.post(
        "/account/delete", data={"csrf_token": token, "confirm": "Typed@Example.com"}, allow_redirects=False
    )
    assert response.status == 303 and not await User.exists(id=user_id)


async def test_a_failed_erasure_keeps_the_session_to_try_again(db: str, redis: ArqRedis, tmp_path: Path) -> None:
    """When erasure fails part-way the page says so (503), the user stays signed in and nothing is deleted."""

    async def stripe_down(user_id: int) -> None:
        raise StripeDown("stripe unreachable")

    async with serve_site(tmp_path, redis, cancel=stripe_down) as site:
        user_id = await sign_up(site.client, "retry@example.com")
        token = await page_token(site.client, "/account/delete")
        response = await site.client.post(
            "/account/delete", data={"csrf_token": token, "confirm": "DELETE"}, headers={"Accept": "text/html"}
        )
        assert response.status == 503 and "Try again" in await response.text()
        assert await User.exists(id=user_id)
        assert (await site.client.get("/account", allow_redirects=False)).status == 200


async def test_the_application_wires_the_pages(db: str, redis: ArqRedis, make_settings: Any) -> None:
    """`create_app` serves the interstitial, the account page and delete my data with the real eraser."""
    app = await create_app(make_settings(), redis=redis, own_database=False, entitlements=allow_all())
    async with TestClient(TestServer(app)) as client:
        user_id = await sign_up(client, "wired@example.com")
        assert (await client.get("/adult")).status == 200
        assert "Delete my data" in await (await client.get("/account")).text()
        token = await page_token(client, "/account/delete")
        response = await client.post(
            "/account/delete", data={"csrf_token": token, "confirm": "DELETE"}, allow_redirects=False
        )
        assert (response.status, response.headers["Location"]) == (303, "/account/deleted")
        assert not await User.exists(id=user_id)


async def test_delete_my_data_cancels_the_stripe_subscription(
    db: str, redis: ArqRedis, make_settings: Any, tmp_path: Path
) -> None:
    """Through the real app and billing service against the fake Stripe: delete my data cancels the user's
    subscription at Stripe at once, then erases the user; when Stripe refuses, the account stays for a retry."""
    plans = tmp_path / "plans.toml"
    plans.write_text(plans_toml(MONTHLY), encoding="utf-8")
    async with FakeStripe() as fake:
        settings = make_settings(**stripe_settings(fake, plans))
        app = await create_app(settings, redis=redis, own_database=False, entitlements=allow_all())
        async with TestClient(TestServer(app)) as client:
            user_id = await sign_up(client, "payer@example.com")
            sub = fake.add_subscription(user_id=user_id)
            await Subscription.create(
                user_id=user_id,
                status=SubscriptionStatus.ACTIVE,
                source="stripe",
                stripe_customer_id=sub["customer"],
                stripe_subscription_id=sub["id"],
                current_period_end=datetime.now(UTC) + timedelta(days=30),
            )
            cancels = f"/v1/subscriptions/{sub['id']}"
            fake.fail("DELETE", "/v1/subscriptions/{id}", status=400)
            token = await page_token(client, "/account/delete")
            form = {"csrf_token": token, "confirm": "DELETE"}

            refused = await client.post("/account/delete", data=form, allow_redirects=False)
            assert refused.status == 503 and await User.exists(id=user_id)
            assert fake.subscriptions[sub["id"]]["status"] == "active"

            done = await client.post("/account/delete", data=form, allow_redirects=False)
            assert (done.status, done.headers["Location"]) == (303, "/account/deleted")
            assert len(fake.calls_to("DELETE", cancels)) == 2
            assert fake.subscriptions[sub["id"]]["status"] == "canceled"
            assert not await User.exists(id=user_id) and not await Subscription.exists(user_id=user_id)
