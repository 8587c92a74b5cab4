"""S3 unreachable during a photo job: the real arq worker, pipeline and wiring on S3 storage (moto's server,
stopped and started again), the real Replicate client against the fake, billing entitlements, the web channel.

While the bucket cannot be reached the job is retried (backoff); after the last attempt it is dead-lettered, the
photo failed, its quota unit refunded and the user told once. When the bucket comes back during the retries the
photo is stored once and shown once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.wiring import Services, build_services
from billing.entitlements import BillingEntitlements
from billing.models import QuotaCharge, QuotaKind, QuotaUsage
from core.messages import ChatRef
from core.models import Avatar, DeadLetter, Direction, Message, MessageStatus, Mode
from core.persona import photo_failed_line
from core.quota import photo_key
from imaging.models import Photo, PhotoAudit, PhotoStatus
from imaging.providers import GeneratedImage, ImageRequest
from imaging.providers.replicate import ReplicateImageProvider
from tests.fakes.entitlements import subscribe
from tests.fakes.replicate import FakeReplicate
from tests.fakes.s3 import MotoS3, unique_bucket
from tests.support import eventually, ready_user, running_worker

REFERENCE_MODEL = "bfl/flux-1.1-pro"
EDIT_MODEL = "bfl/flux-kontext-pro"
SCENE = "reading a book in a sunny cafe"


@pytest.fixture
def moto() -> Iterator[MotoS3]:
    """moto's S3 server for one test (its port is kept when it is stopped and started again)."""
    with MotoS3() as server:
        yield server


@pytest.fixture
async def replicate() -> AsyncIterator[tuple[FakeReplicate, ReplicateImageProvider]]:
    """The fake Replicate API and the real provider polling it fast."""
    async with FakeReplicate() as fake:
        assert isinstance(fake, FakeReplicate)
        provider = ReplicateImageProvider(
            fake.token,
            base_url=fake.url,
            reference_model=REFERENCE_MODEL,
            edit_model=EDIT_MODEL,
            poll_interval=0.01,
            timeout=5,
        )
        try:
            yield fake, provider
        finally:
            await provider.aclose()


class LoseS3WhileGenerating:
    """The fake-backed provider, with the bucket going down while it generates (after the reference was read)."""

    def __init__(self, inner: ReplicateImageProvider, moto: MotoS3) -> None:
        self.inner, self.moto, self.name = inner, moto, inner.name
        self.armed = False

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        if self.armed:
            self.armed = False
            await asyncio.to_thread(self.moto.stop)
        return await self.inner.generate(request)


@dataclass
class Scene:
    """A subscribed user in intimate mode on the web chat, whose avatar's reference portrait is in the bucket."""

    services: Services
    user_id: int
    avatar_id: int
    ref: ChatRef

    async def request(self, key: str) -> int:
        """Ask for a chat photo as the engine does after `send_photo`, and queue its job."""
        photo_id = await self.services.photos.request_photo(
            user_id=self.user_id, avatar_id=self.avatar_id, kind="photo", scene=SCENE, source_key=key, ref=self.ref
        )
        await self.services.photos.dispatch(photo_id)
        return photo_id


async def approved_reference(services: Services, chat_id: str) -> Scene:
    """Make the reference portrait through the running worker (S3 up) and approve it."""
    user = await ready_user(chat_id, mode=Mode.INTIMATE)
    avatar = await Avatar.get(user_id=user.id)
    ref = ChatRef("web", chat_id)
    reference_id = await services.photos.request_photo(
        user_id=user.id, avatar_id=avatar.id, kind="reference", scene=None, source_key="ref", ref=ref
    )
    await services.photos.dispatch(reference_id)
    await eventually(lambda: Photo.exists(id=reference_id, status=PhotoStatus.READY), what="the reference")
    avatar.reference_photo_id = reference_id
    await avatar.save()
    await subscribe(user.id, photos=5)
    return Scene(services, user.id, avatar.id, ref)


async def events(photo_id: int) -> list[str]:
    return [str(a.event) for a in await PhotoAudit.filter(photo_id=photo_id).order_by("id")]


async def used(user_id: int) -> int:
    return sum(row.used for row in await QuotaUsage.filter(user_id=user_id, kind=QuotaKind.PHOTO))


def settings_for(make_settings: Any, moto: MotoS3, bucket: str, backoff: float) -> Any:
    return make_settings(**moto.settings(bucket), photo_backoff_seconds=backoff, photo_max_attempts=3)


async def test_s3_down_retries_then_dead_letters_refunds_and_tells_once(
    db: str,
    redis: ArqRedis,
    make_settings: Any,
    moto: MotoS3,
    replicate: tuple[FakeReplicate, ReplicateImageProvider],
) -> None:
    """S3 unreachable for every attempt: 3 attempts, one dead letter, the photo failed, the unit refunded, the
    user told exactly once (sent), nothing new in the bucket."""
    bucket = unique_bucket()
    await moto.create_bucket(bucket)
    settings = settings_for(make_settings, moto, bucket, backoff=0.05)
    services = build_services(settings, redis, entitlements=BillingEntitlements())
    _, provider = replicate
    async with running_worker(settings, redis, services, provider=provider):
        scene = await approved_reference(services, "s3-down")
        before = await moto.keys(bucket)
        moto.stop()
        photo_id = await scene.request("chat:1")
        await eventually(lambda: Photo.exists(id=photo_id, status=PhotoStatus.FAILED), timeout=60, what="failed")

        async def told() -> bool:
            return await Message.exists(
                user_id=scene.user_id, text=photo_failed_line(), status=MessageStatus.SENT, direction=Direction.OUTBOUND
            )

        await eventually(told, what="the failure notice sent")
    moto.start()
    photo = await Photo.get(id=photo_id)
    assert photo.attempts == 3 and "unreachable" in (photo.error or "")
    assert await events(photo_id) == ["requested", "retry", "retry", "failed"]
    letters = await DeadLetter.filter(payload__contains={"photo_id": photo_id})
    assert len(letters) == 1 and letters[0].attempts == 3
    assert await used(scene.user_id) == 0
    assert (await QuotaCharge.get(key=photo_key(photo_id))).refunded_at is not None
    notices = await Message.filter(user_id=scene.user_id, direction=Direction.OUTBOUND, text=photo_failed_line())
    assert len(notices) == 1
    assert await moto.keys(bucket) == before  # the reference's two objects only


async def test_s3_back_during_retries_stores_and_shows_the_photo_once(
    db: str,
    redis: ArqRedis,
    make_settings: Any,
    moto: MotoS3,
    replicate: tuple[FakeReplicate, ReplicateImageProvider],
) -> None:
    """S3 down for the first attempt and back before the next: the photo is ready, one object, one notice."""
    bucket = unique_bucket()
    await moto.create_bucket(bucket)
    settings = settings_for(make_settings, moto, bucket, backoff=1.0)
    services = build_services(settings, redis, entitlements=BillingEntitlements())
    fake, provider = replicate
    async with running_worker(settings, redis, services, provider=provider):
        scene = await approved_reference(services, "s3-back")
        before = await moto.keys(bucket)
        moto.stop()
        photo_id = await scene.request("chat:1")

        async def retried() -> bool:
            return "retry" in await events(photo_id)

        await eventually(retried, timeout=30, what="a first failed attempt")
        moto.start()
        await eventually(lambda: Photo.exists(id=photo_id, status=PhotoStatus.READY), timeout=30, what="ready")

        async def shown() -> bool:
            rows = await Message.filter(user_id=scene.user_id, direction=Direction.OUTBOUND, status=MessageStatus.SENT)
            return any((m.payload or {}).get("photo_id") == photo_id for m in rows)

        await eventually(shown, what="the photo shown in chat")
    photo = await Photo.get(id=photo_id)
    assert photo.storage_key is not None and photo.attempts == 2
    added = sorted(set(await moto.keys(bucket)) - set(before))
    assert added == [f"photos/{photo.storage_key}"]
    outbound = await Message.filter(user_id=scene.user_id, direction=Direction.OUTBOUND)
    assert sum((m.payload or {}).get("photo_id") == photo_id for m in outbound) == 1
    assert not any(m.text == photo_failed_line() for m in outbound)
    assert not await DeadLetter.exists()
    assert await used(scene.user_id) == 1
    assert len(fake.requests_to(f"/v1/models/{EDIT_MODEL}/predictions", "POST")) == 1


async def test_s3_lost_before_storing_is_retried_then_dead_lettered(
    db: str,
    redis: ArqRedis,
    make_settings: Any,
    moto: MotoS3,
    replicate: tuple[FakeReplicate, ReplicateImageProvider],
) -> None:
    """S3 going down after the image was generated: storing fails and is retried (not lost, not half-stored);
    still down at the last attempt: dead-lettered, refunded, told once."""
    bucket = unique_bucket()
    await moto.create_bucket(bucket)
    settings = settings_for(make_settings, moto, bucket, backoff=0.05)
    services = build_services(settings, redis, entitlements=BillingEntitlements())
    fake, inner = replicate
    provider = LoseS3WhileGenerating(inner, moto)
    async with running_worker(settings, redis, services, provider=provider):
        scene = await approved_reference(services, "s3-lost")
        before = await moto.keys(bucket)
        provider.armed = True
        photo_id = await scene.request("chat:1")
        await eventually(lambda: Photo.exists(id=photo_id, status=PhotoStatus.FAILED), timeout=60, what="failed")
    moto.start()
    first_retry = await PhotoAudit.filter(photo_id=photo_id, event="retry").order_by("id").first()
    assert first_retry is not None and "could not store the photo" in (first_retry.error or "")
    assert await events(photo_id) == ["requested", "generating", "retry", "retry", "failed"]
    assert len(fake.requests_to(f"/v1/models/{EDIT_MODEL}/predictions", "POST")) == 1  # later attempts: no reference
    assert await DeadLetter.filter(payload__contains={"photo_id": photo_id}).count() == 1
    assert await used(scene.user_id) == 0
    notices = await Message.filter(user_id=scene.user_id, direction=Direction.OUTBOUND, text=photo_failed_line())
    assert len(notices) == 1
    assert await moto.keys(bucket) == before
