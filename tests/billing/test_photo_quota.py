"""The photo quota end to end: charged when a photo's job starts (through the pipeline's hook, wired from the
billing entitlements), refunded when a photo ends blocked or failed, and the engine's checks before a photo is
recorded (no `send_photo` tool without photos left, a per-user request rate)."""

from __future__ import annotations

import asyncio
from typing import Any

from arq.connections import ArqRedis

from ava_bot.wiring import Services, build_services
from billing.entitlements import BillingEntitlements
from billing.models import QuotaCharge, QuotaKind, QuotaUsage
from core.messages import ChatRef
from core.models import Avatar, DeadLetter, Direction, Message, Mode, SafetyRefusal
from core.ports import QuotaVerdict
from core.quota import photo_key
from imaging.jobs import replay_dead_letter
from imaging.models import Photo, PhotoStatus
from imaging.pipeline import PhotoPipeline
from tests.conftest import TEST_REDIS_URL
from tests.core.test_setup_flow import Chat, texts
from tests.fakes.entitlements import subscribe
from tests.fakes.openai import FakeOpenAI
from tests.imaging import conftest as imaging_fixtures
from tests.imaging.pipeline_env import SCENE, Env, _approve, _avatar, _request
from tests.support import eventually, ready_user, running_worker

WEB_CHAT = "q1"
#: A scene the screening refuses (an age under the floor).
UNDERAGE_SCENE = "she is 17 years old, at the beach"
# The photo pipeline's test environment (fake Replicate behind the real client, store, recorded hooks).
credentials = imaging_fixtures.credentials
env = imaging_fixtures.env


async def used(user_id: int) -> int:
    return sum(row.used for row in await QuotaUsage.filter(user_id=user_id, kind=QuotaKind.PHOTO))


# -- 50 concurrent photo jobs, the real worker and wiring -----------------------------------------------------


async def test_fifty_concurrent_photo_jobs_against_a_quota_of_ten_make_exactly_ten(
    env: Env, redis: ArqRedis, make_settings: Any
) -> None:
    """50 queued photos of one user whose plan allows 10, run at once by the real worker: exactly 10 are made,
    40 end failed (no dead letter) and the user is told for each that the photos of this period are used up."""
    settings = make_settings(photo_backoff_seconds=0.05)
    services = build_services(settings, redis, entitlements=BillingEntitlements())
    user = await ready_user(WEB_CHAT, mode=Mode.INTIMATE)
    avatar = await Avatar.get(user_id=user.id)
    ref = ChatRef("web", WEB_CHAT)
    async with running_worker(settings, redis, services, provider=env.provider, max_jobs=60):
        reference_id = await services.photos.request_photo(
            user_id=user.id, avatar_id=avatar.id, kind="reference", scene=None, source_key="ref", ref=ref
        )
        await services.photos.dispatch(reference_id)
        await eventually(lambda: Photo.exists(id=reference_id, status=PhotoStatus.READY), what="the reference")
        await _approve(avatar, reference_id)
        sub = await subscribe(user.id, photos=10)

        ids = [
            await services.photos.request_photo(
                user_id=user.id, avatar_id=avatar.id, kind="photo", scene=SCENE, source_key=f"chat:{n}", ref=ref
            )
            for n in range(50)
        ]
        for photo_id in ids:
            await services.photos.dispatch(photo_id)

        async def all_finished() -> bool:
            return not await Photo.filter(id__in=ids, status__in=(PhotoStatus.QUEUED, PhotoStatus.GENERATING)).exists()

        await eventually(all_finished, timeout=60, what="every photo finished")

    photos = await Photo.filter(id__in=ids)
    assert sum(p.status == PhotoStatus.READY for p in photos) == 10
    refused = [p for p in photos if p.status == PhotoStatus.FAILED]
    assert len(refused) == 40 and all((p.error or "").startswith("quota") for p in refused)
    assert env.creates("black-forest-labs/flux-kontext-pro") == 10  # refused photos never reached the provider
    assert await used(user.id) == 10
    assert await QuotaCharge.filter(user_id=user.id, refunded_at__isnull=True).count() == 10
    assert not await DeadLetter.exists()
    notices = await Message.filter(user_id=user.id, direction=Direction.OUTBOUND, text__isnull=False)
    told = [m.text or "" for m in notices if "photos of this period" in (m.text or "")]
    assert len(told) == 40
    assert sub.current_period_end is not None and f"{sub.current_period_end:%Y-%m-%d}" in told[0]
    shown = await Message.filter(user_id=user.id, direction=Direction.OUTBOUND)
    assert sum((m.payload or {}).get("type") == "photo" for m in shown) == 10  # the made photos, shown


# -- refunds, through the pipeline's hooks ------------------------------------------------------------------------


def quota_pipeline(env: Env, gate: BillingEntitlements, *, slow_charge: float = 0.0) -> PhotoPipeline:
    """A pipeline of the test environment charging and refunding photos as `ava_bot.wiring` wires it; each charge
    takes `slow_charge` s more (a busy database: the screening ends first)."""

    async def charge(photo: Photo) -> QuotaVerdict:
        await asyncio.sleep(slow_charge)
        return await gate.charge(photo.user_id, "photo", photo_key(photo.id))

    async def refund(photo: Photo) -> bool:
        return await gate.refund(photo_key(photo.id))

    return env.pipeline(charge=charge, refund=refund)


async def ready_avatar(env: Env) -> Avatar:
    """An avatar with an approved reference made by the pipeline (references are never charged)."""
    avatar = await _avatar()
    reference_id = await _request(env, avatar, kind="reference", key="ref")
    await env.work()
    await _approve(avatar, reference_id)
    return avatar


async def test_a_blocked_photo_refunds_its_unit(env: Env) -> None:
    """A photo blocked by prompt safety gives its unit back; the next photo can use it."""
    gate = BillingEntitlements()
    pipeline = quota_pipeline(env, gate)
    avatar = await ready_avatar(env)
    user_id: int = avatar.user_id  # type: ignore[attr-defined]
    await subscribe(user_id, photos=1)
    blocked_id = await _request(env, avatar, scene=UNDERAGE_SCENE, key="chat:1")
    await env.work(pipeline)
    assert (await Photo.get(id=blocked_id)).status == PhotoStatus.BLOCKED
    charge = await QuotaCharge.get(key=photo_key(blocked_id))
    assert charge.refunded_at is not None and await used(user_id) == 0
    good_id = await _request(env, avatar, key="chat:2")
    await env.work(pipeline)
    assert (await Photo.get(id=good_id)).status == PhotoStatus.READY
    assert await used(user_id) == 1


async def run_with_slow_charge(env: Env, avatar: Avatar, *, photos: int, scene: str = SCENE) -> tuple[int, int]:
    """The avatar's user subscribed with `photos` per period asks one photo of `scene`, made by a pipeline whose
    charge takes 0.2 s more (the screening ends first); (user id, photo id)."""
    user_id: int = avatar.user_id  # type: ignore[attr-defined]
    await subscribe(user_id, photos=photos)
    photo_id = await _request(env, avatar, scene=scene, key="chat:1")
    await env.work(quota_pipeline(env, BillingEntitlements(), slow_charge=0.2))
    return user_id, photo_id


async def test_a_photo_blocked_before_its_slow_charge_ended_is_refunded_after_it(env: Env) -> None:
    """The charge runs while the prompt is screened. When the screening refuses first, the refund waits for the
    charge: the unit ends given back, not consumed by a charge that landed after its refund."""
    user_id, blocked_id = await run_with_slow_charge(env, await ready_avatar(env), photos=3, scene=UNDERAGE_SCENE)
    assert (await Photo.get(id=blocked_id)).status == PhotoStatus.BLOCKED
    assert (await QuotaCharge.get(key=photo_key(blocked_id))).refunded_at is not None
    assert await used(user_id) == 0


async def test_a_photo_failing_before_its_slow_charge_ended_is_refunded_after_it(env: Env) -> None:
    """A failure while the charge still runs (here: the avatar has no approved reference to condition on) waits for
    the charge too: failed, dead-lettered, and its unit given back."""
    user_id, photo_id = await run_with_slow_charge(env, await _avatar(), photos=3)  # no reference photo
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED and "reference" in (photo.error or "")
    assert (await QuotaCharge.get(key=photo_key(photo_id))).refunded_at is not None
    assert await used(user_id) == 0 and await DeadLetter.all().count() == 1


async def test_a_refused_charge_comes_before_what_the_screening_found(env: Env) -> None:
    """No unit left: the photo is refused for the quota (and the user told when photos renew) even though its scene
    is one the screening refuses, as when the charge ran before the screening: no block, no refusal strike."""
    _, photo_id = await run_with_slow_charge(env, await ready_avatar(env), photos=0, scene=UNDERAGE_SCENE)
    photo = await Photo.get(id=photo_id)
    assert photo.status == PhotoStatus.FAILED and (photo.error or "").startswith("quota")
    assert env.hooks.finished[-1].status == "failed" and env.hooks.finished[-1].reason == "quota"
    assert not await SafetyRefusal.exists(photo_id=photo_id)
    assert not await QuotaCharge.exists(key=photo_key(photo_id)) and not await DeadLetter.exists()


async def test_a_photo_failed_for_good_refunds_and_a_replay_charges_again(env: Env) -> None:
    """Three provider failures: failed, dead-lettered, unit refunded once; its replay consumes a unit again."""
    gate = BillingEntitlements()
    pipeline = quota_pipeline(env, gate)
    avatar = await ready_avatar(env)
    user_id: int = avatar.user_id  # type: ignore[attr-defined]
    await subscribe(user_id, photos=5)
    env.fake.fail_next(3, status=503)
    photo_id = await _request(env, avatar, key="chat:1")
    await env.work(pipeline)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.FAILED
    assert await used(user_id) == 0 and await DeadLetter.all().count() == 1
    assert [e.status for e in env.hooks.finished][-1] == "failed" and env.hooks.finished[-1].reason is None
    await replay_dead_letter(env.redis, (await DeadLetter.get()).id)
    await env.work(pipeline)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.READY
    assert await used(user_id) == 1


async def test_a_photo_past_the_quota_fails_without_a_dead_letter_and_says_when_it_renews(env: Env) -> None:
    """Refused at job start: failed, never generated, no dead letter, nothing refunded, the event says quota."""
    gate = BillingEntitlements()
    pipeline = quota_pipeline(env, gate)
    avatar = await ready_avatar(env)
    user_id: int = avatar.user_id  # type: ignore[attr-defined]
    sub = await subscribe(user_id, photos=1)
    first = await _request(env, avatar, key="chat:1")
    second = await _request(env, avatar, key="chat:2")
    await env.work(pipeline)
    statuses = {(await Photo.get(id=first)).status, (await Photo.get(id=second)).status}
    assert statuses == {PhotoStatus.READY, PhotoStatus.FAILED}
    refused = await Photo.get(status=PhotoStatus.FAILED)
    assert (refused.error or "").startswith("quota") and refused.storage_key is None
    assert not await DeadLetter.exists()
    event = env.hooks.finished[-1] if env.hooks.finished[-1].status == "failed" else env.hooks.finished[-2]
    assert (event.reason, event.limit, event.renews_at) == ("quota", 1, sub.current_period_end)
    assert await used(user_id) == 1
    assert not await QuotaCharge.exists(key=photo_key(refused.id))


async def test_an_unsubscribed_users_photo_is_refused_at_job_start(env: Env) -> None:
    """A photo whose user's subscription ended before its job started is not made (reason "subscription")."""
    pipeline = quota_pipeline(env, BillingEntitlements())
    avatar = await ready_avatar(env)
    photo_id = await _request(env, avatar, key="chat:1")
    await env.work(pipeline)
    assert (await Photo.get(id=photo_id)).status == PhotoStatus.FAILED
    assert env.hooks.finished[-1].reason == "subscription"


# -- before a photo is recorded: the engine ------------------------------------------------------------------------


def engine_services(redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI, **settings: Any) -> Services:
    values = {"llm_api_key": "sk-test", "llm_base_url": fake_llm.base_url, "inbound_per_user_per_minute": 1000}
    return build_services(make_settings(**values, **settings), redis, entitlements=BillingEntitlements())


async def test_no_photo_left_means_no_tool_and_a_line_when_the_model_asks_anyway(
    db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI
) -> None:
    """With the period's photos used up the model is not offered `send_photo`; if it calls it anyway Ava says
    when photos renew, and no photo is recorded."""
    services = engine_services(redis, make_settings, fake_llm)
    user = await ready_user("p1", mode=Mode.INTIMATE)
    sub = await subscribe(user.id, photos=1)
    chat = Chat(services, "p1")
    await chat.send("hello")
    assert [t["function"]["name"] for t in fake_llm.completions()[-1]["tools"]] == ["send_photo"]
    assert (await BillingEntitlements().charge(user.id, "photo", "photo:elsewhere")).allowed
    fake_llm.call_tool("send_photo", {"scene_description": SCENE}, text="Here's one 📸")
    line = texts(await chat.send("send me a photo"))
    assert "tools" not in fake_llm.completions()[-1]
    assert "photos of this period" in line and f"{sub.current_period_end:%Y-%m-%d}" in line
    assert "Here's one" not in line
    assert not await Photo.exists(user_id=user.id)


async def test_photo_requests_past_the_hourly_rate_get_a_line_and_no_photo(
    db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI
) -> None:
    """With one photo request an hour, the second `send_photo` is answered with a line and records nothing."""
    services = engine_services(
        redis, make_settings, fake_llm, photo_requests_per_user_per_hour=1, redis_url=TEST_REDIS_URL
    )
    user = await ready_user("p2", mode=Mode.INTIMATE)
    await subscribe(user.id, photos=10)
    chat = Chat(services, "p2")
    fake_llm.call_tool("send_photo", {"scene_description": SCENE}, text="Say cheese 📸")
    assert texts(await chat.send("a photo please")) == "Say cheese 📸"
    assert await Photo.filter(user_id=user.id).count() == 1
    fake_llm.call_tool("send_photo", {"scene_description": "on a balcony at sunset"}, text="Another one 📸")
    line = texts(await chat.send("another one"))
    assert "a lot of photos in a short time" in line
    assert await Photo.filter(user_id=user.id).count() == 1
