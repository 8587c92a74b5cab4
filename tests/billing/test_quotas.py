"""Quotas under concurrency (one conditional UPDATE per unit: never overspent), and the daily caps the engine
applies: messages per day before the model runs, reference regenerations per day in setup and `/avatar`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.wiring import Services, build_services
from billing.entitlements import BillingEntitlements
from billing.models import QuotaCharge, QuotaKind, QuotaUsage
from core.engine import REF_AGAIN, REF_KEEP
from core.models import Direction, Message, SetupStep
from core.setup import CONFIRM
from imaging.models import Photo
from tests.core.test_setup_flow import Chat, complete_questions, texts
from tests.fakes.entitlements import subscribe
from tests.fakes.openai import FakeOpenAI
from tests.support import eventually, ready_user


class Clock:
    """A clock the test moves (starts now)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI, clock: Clock) -> Services:
    """The real engine and turn runner on the billing entitlements, with a movable clock."""
    settings = make_settings(
        llm_api_key="sk-test",
        llm_base_url=fake_llm.base_url,
        inbound_per_user_per_minute=1000,
        turn_backoff_seconds=0.01,
    )
    return build_services(settings, redis, entitlements=BillingEntitlements(clock=clock))


async def used(user_id: int, kind: QuotaKind) -> int:
    return sum(row.used for row in await QuotaUsage.filter(user_id=user_id, kind=kind))


# -- concurrency -----------------------------------------------------------------------------------------------


async def test_fifty_concurrent_charges_against_ten_consume_exactly_ten(db: str) -> None:
    """50 charges at once for a quota of 10: exactly 10 are allowed, the counter and the charges say 10."""
    gate = BillingEntitlements()
    user = await ready_user("c1")
    await subscribe(user.id, photos=10)
    verdicts = await asyncio.gather(*(gate.charge(user.id, "photo", f"photo:{n}") for n in range(50)))
    assert sum(v.allowed for v in verdicts) == 10
    assert {v.reason for v in verdicts if not v.allowed} == {"quota"}
    assert await used(user.id, QuotaKind.PHOTO) == 10
    assert await QuotaCharge.filter(user_id=user.id).count() == 10
    assert await gate.remaining(user.id, "photo") == 0


async def test_fifty_concurrent_charges_of_one_key_consume_one_unit(db: str) -> None:
    """The same key charged 50 times at once (an overlapping retry storm) consumes one unit, all allowed."""
    gate = BillingEntitlements()
    user = await ready_user("c2")
    await subscribe(user.id, photos=10)
    verdicts = await asyncio.gather(*(gate.charge(user.id, "photo", "photo:same") for _ in range(50)))
    assert all(v.allowed for v in verdicts)
    assert await used(user.id, QuotaKind.PHOTO) == 1
    assert await QuotaCharge.filter(key="photo:same").count() == 1


async def test_concurrent_refunds_of_one_key_give_back_one_unit(db: str) -> None:
    """Overlapping refunds of one charge (two runs finishing a photo) give back exactly one unit."""
    gate = BillingEntitlements()
    user = await ready_user("c3")
    await subscribe(user.id, photos=10)
    for n in range(3):
        assert (await gate.charge(user.id, "photo", f"photo:{n}")).allowed
    results = await asyncio.gather(*(gate.refund("photo:1") for _ in range(20)))
    assert results.count(True) == 1
    assert await used(user.id, QuotaKind.PHOTO) == 2


# -- messages per day -------------------------------------------------------------------------------------------


async def test_messages_past_the_daily_cap_get_one_line_and_no_model_call(
    services: Services, fake_llm: FakeOpenAI, clock: Clock
) -> None:
    """With 2 messages a day the third is answered with when they renew (midnight UTC), without the model;
    the next day the model answers again."""
    user = await ready_user("m1")
    await subscribe(user.id, messages=2, start=clock.now - timedelta(days=1))
    chat = Chat(services, "m1")
    for text in ("one", "two"):
        assert texts(await chat.send(text)) == f"echo: {text}"
    refused = texts(await chat.send("three"))
    assert "You've used all 2 messages of today" in refused and "00:00 UTC" in refused
    assert "midnight UTC" in refused
    assert len(fake_llm.completions()) == 2
    assert await used(user.id, QuotaKind.MESSAGE) == 2
    clock.now += timedelta(days=1)
    assert texts(await chat.send("four")) == "echo: four"
    assert len(fake_llm.completions()) == 3


async def test_a_retried_turn_charges_its_message_once(services: Services, fake_llm: FakeOpenAI) -> None:
    """The model fails once and the turn is retried: the message is charged once."""
    user = await ready_user("m2")
    await subscribe(user.id, messages=5)
    fake_llm.fail(500)
    fake_llm.fail(500)
    fake_llm.fail(500)  # the client's own retries included: the first attempt of the turn fails
    chat = Chat(services, "m2")
    assert texts(await chat.send("hello")) == ""  # the first attempt failed: retried after a backoff
    await asyncio.sleep(0.05)
    await services.runner.drain(user.id, whole=True)
    assert (await chat.user()).version > 0
    assert len(fake_llm.completions()) == 4  # three failed requests (one turn attempt), then the retry
    assert await Message.exists(user_id=user.id, direction=Direction.OUTBOUND, text="echo: hello")
    assert await used(user.id, QuotaKind.MESSAGE) == 1
    assert await QuotaCharge.filter(user_id=user.id, kind=QuotaKind.MESSAGE).count() == 1


async def test_a_message_that_fails_for_good_consumes_no_unit(
    db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI, clock: Clock
) -> None:
    """The model fails on every attempt: the message is dead-lettered, the user told, and no unit of today's is
    consumed (the unit is charged by the commit of a turn that is done, never by a failing one)."""
    settings = make_settings(
        llm_api_key="sk-test", llm_base_url=fake_llm.base_url, inbound_per_user_per_minute=1000, turn_max_attempts=1
    )
    services = build_services(settings, redis, entitlements=BillingEntitlements(clock=clock))
    user = await ready_user("m3")
    await subscribe(user.id, messages=5)
    for _ in range(3):  # the client's own retries: one turn attempt
        fake_llm.fail(500)
    chat = Chat(services, "m3")
    await chat.send("hello")
    failed = await Message.get(user_id=user.id, direction=Direction.INBOUND, text="hello")
    assert failed.status == "failed"
    assert await used(user.id, QuotaKind.MESSAGE) == 0
    assert not await QuotaCharge.filter(user_id=user.id, kind=QuotaKind.MESSAGE, refunded_at__isnull=True).exists()
    assert texts(await chat.send("again")) == "echo: again"
    assert await used(user.id, QuotaKind.MESSAGE) == 1


async def test_a_unit_gone_during_the_turn_rolls_the_commit_back_and_the_turn_is_recomputed(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """The day's last unit is used up while the model answers: the turn's commit (its reply, the message done, the
    charge) rolls back and the turn, computed again, answers with the used-up line; nothing is overspent."""
    user = await ready_user("m4")
    await subscribe(user.id, messages=1)
    fake_llm.slow_when("hello", 0.5)
    turn = asyncio.create_task(Chat(services, "m4").send("hello"))

    async def answering() -> bool:
        return fake_llm.in_flight > 0

    await eventually(answering, what="the model answering")
    period = (await services.entitlements.check(user.id, "message", "msg:probe")).period
    assert period is not None
    await QuotaUsage.create(user_id=user.id, kind=QuotaKind.MESSAGE, period_key=period, used=1)
    reply = texts(await turn)
    assert "You've used all 1 message of today" in reply
    assert len(fake_llm.completions()) == 1  # the recomputed turn did not call the model again
    assert await used(user.id, QuotaKind.MESSAGE) == 1
    assert not await QuotaCharge.filter(user_id=user.id, kind=QuotaKind.MESSAGE).exists()
    assert not await Message.exists(user_id=user.id, direction=Direction.OUTBOUND, text="echo: hello")


# -- reference regenerations per day ----------------------------------------------------------------------------


async def test_avatar_regenerations_past_the_daily_cap_are_refused(services: Services, clock: Clock) -> None:
    """A subscriber with 2 new looks a day: the edit's reference and one regeneration; the next regeneration and
    a new `/avatar` are refused with a clear line (no photo made) until the next UTC day."""
    chat = Chat(services, "r1")
    await complete_questions(chat)  # the first reference of the initial setup is free
    await subscribe(chat.user_id, regenerations=2, start=clock.now - timedelta(days=1))
    await chat.photo_done()
    await chat.send(choice=REF_KEEP)
    assert await used(chat.user_id, QuotaKind.REGENERATION) == 0

    await chat.send("/avatar")
    await chat.send(choice=CONFIRM)  # the summary of the current look: confirmed as it is
    assert (await chat.user()).setup_step == SetupStep.REFERENCE_PENDING  # the edit's reference: 1 of 2
    await chat.photo_done()
    await chat.send(choice=REF_AGAIN)  # 2 of 2
    assert (await chat.user()).setup_step == SetupStep.REFERENCE_PENDING
    await chat.photo_done()
    photos = await Photo.filter(user_id=chat.user_id).count()
    refused = await chat.send(choice=REF_AGAIN)
    assert "You've used all 2 new photos of my look for today" in texts(refused)
    assert [c["data"].partition(".")[2] for c in refused[-1]["choices"]] == [REF_KEEP]
    assert await Photo.filter(user_id=chat.user_id).count() == photos
    assert (await chat.user()).setup_step == SetupStep.REFERENCE_REVIEW
    assert await used(chat.user_id, QuotaKind.REGENERATION) == 2

    await chat.send(choice=REF_KEEP)
    again = await chat.send("/avatar")
    assert "for today" in texts(again) and not (await chat.user()).editing_avatar
    clock.now += timedelta(days=1)
    assert "new look" in texts(await chat.send("/avatar"))


async def test_a_subscribers_setup_regenerations_count_against_the_daily_cap(services: Services) -> None:
    """In the initial setup a subscriber's regenerations are charged (the first reference is free)."""
    chat = Chat(services, "r2")
    await chat.send("/start")
    await subscribe(chat.user_id, regenerations=1)
    await complete_questions(chat)
    await chat.photo_done()
    await chat.send(choice=REF_AGAIN)
    assert await used(chat.user_id, QuotaKind.REGENERATION) == 1
    await chat.photo_done()
    refused = await chat.send(choice=REF_AGAIN)
    assert "for today" in texts(refused)
    assert (await chat.user()).setup_step == SetupStep.REFERENCE_REVIEW
