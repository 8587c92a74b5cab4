"""`BillingEntitlements` on the real database: who may chat, charges, refunds, periods; and the paywall it puts
before `/avatar` and before `POST /chat/messages` (402, nothing stored)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from arq.connections import ArqRedis

from ava_bot.wiring import build_entitlements, build_services
from billing.entitlements import BillingEntitlements
from billing.models import Plan, QuotaCharge, QuotaKind, QuotaUsage, Subscription, SubscriptionStatus
from core.messages import ChatRef, InboundMessage
from core.models import Avatar, Direction, Message, SetupStep, User
from tests.billing.conftest import AppFactory
from tests.fakes.entitlements import subscribe
from tests.portal.conftest import page_token, sign_up
from tests.support import ready_user, statements

NOON = datetime(2031, 3, 10, 12, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: datetime = NOON) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def used(user_id: int, kind: QuotaKind) -> int:
    return sum(row.used for row in await QuotaUsage.filter(user_id=user_id, kind=kind))


async def test_may_chat_follows_the_status_and_the_period(db: str) -> None:
    """Active, trialing and granted subscriptions entitle until their period ends; other statuses never do."""
    clock = Clock()
    gate = BillingEntitlements(clock=clock)
    user = await User.create()
    assert not await gate.may_chat(user.id)  # never subscribed
    await subscribe(user.id, start=NOON - timedelta(days=1), days=30)
    assert await gate.may_chat(user.id)
    for status, entitled in [
        (SubscriptionStatus.TRIALING, True),
        (SubscriptionStatus.GRANTED, True),
        (SubscriptionStatus.PAST_DUE, False),
        (SubscriptionStatus.CANCELED, False),
        (SubscriptionStatus.INCOMPLETE, False),
    ]:
        await Subscription.filter(user_id=user.id).update(status=status, source="grant")
        assert await gate.may_chat(user.id) is entitled, status
    clock.now = NOON + timedelta(days=30)  # the grant's period is over
    await Subscription.filter(user_id=user.id).update(status=SubscriptionStatus.GRANTED)
    assert not await gate.may_chat(user.id)
    assert await gate.remaining(user.id, "photo") == 0


async def test_charging_the_same_key_twice_consumes_once(db: str) -> None:
    """A charge is idempotent on its key: a retried turn or photo job consumes one unit and answers the same."""
    gate = BillingEntitlements(clock=Clock())
    user = await User.create()
    await subscribe(user.id, messages=5, start=NOON)
    first = await gate.charge(user.id, "message", "msg:1")
    again = await gate.charge(user.id, "message", "msg:1")
    assert first.allowed and again.allowed
    assert await used(user.id, QuotaKind.MESSAGE) == 1
    assert await QuotaCharge.filter(key="msg:1").count() == 1
    assert await gate.remaining(user.id, "message") == 4


async def test_unsubscribed_charge_is_refused_for_want_of_a_subscription(db: str) -> None:
    """Without an entitling subscription nothing is consumed and the reason is "subscription"."""
    gate = BillingEntitlements(clock=Clock())
    user = await User.create()
    verdict = await gate.charge(user.id, "photo", "photo:1")
    assert not verdict.allowed and verdict.reason == "subscription"
    assert not await QuotaCharge.exists()


async def test_a_zero_quota_means_none(db: str) -> None:
    """A plan with 0 regenerations per day refuses every regeneration (0 is "none", not "unlimited")."""
    gate = BillingEntitlements(clock=Clock())
    user = await User.create()
    await subscribe(user.id, regenerations=0, start=NOON)
    verdict = await gate.charge(user.id, "regeneration", "regen:1")
    assert (verdict.allowed, verdict.reason, verdict.limit) == (False, "quota", 0)
    assert await gate.remaining(user.id, "regeneration") == 0


async def test_a_refund_gives_the_unit_back_once(db: str) -> None:
    """Refunding a key frees its unit once; a second refund, or one of an unknown key, changes nothing."""
    gate = BillingEntitlements(clock=Clock())
    user = await User.create()
    await subscribe(user.id, photos=2, start=NOON)
    assert (await gate.charge(user.id, "photo", "photo:1")).allowed
    assert (await gate.charge(user.id, "photo", "photo:2")).allowed
    assert not (await gate.charge(user.id, "photo", "photo:3")).allowed
    assert await gate.refund("photo:1") is True
    assert await gate.refund("photo:1") is False
    assert await gate.refund("photo:unknown") is False
    assert await used(user.id, QuotaKind.PHOTO) == 1
    assert (await gate.charge(user.id, "photo", "photo:3")).allowed  # the refunded unit is usable again
    assert not (await gate.charge(user.id, "photo", "photo:4")).allowed


async def test_a_charge_is_one_write_and_a_refused_one_leaves_nothing(db: str) -> None:
    """On PostgreSQL a new key's charge is the plan's read and ONE statement writing the charge row and the unit
    together, rolled back as a whole when no unit is left: a refused charge leaves neither behind."""
    gate = BillingEntitlements(clock=Clock())
    user = await User.create()
    await subscribe(user.id, photos=1, start=NOON)
    with statements() as records:
        assert (await gate.charge(user.id, "photo", "photo:1")).allowed
    sql = [" ".join(str(r.args[0] if r.args else r.getMessage()).split()) for r in records]
    assert len(sql) == 2 and "ava_take_unit" in sql[1], sql
    verdict = await gate.charge(user.id, "photo", "photo:2")
    assert (verdict.allowed, verdict.reason, verdict.limit) == (False, "quota", 1)
    assert not await QuotaCharge.exists(key="photo:2")
    assert await used(user.id, QuotaKind.PHOTO) == 1 and await gate.remaining(user.id, "photo") == 0


async def test_a_refunded_key_charged_again_consumes_again(db: str) -> None:
    """A replayed photo (its key refunded when it failed) consumes a unit again when its job restarts."""
    gate = BillingEntitlements(clock=Clock())
    user = await User.create()
    await subscribe(user.id, photos=1, start=NOON)
    assert (await gate.charge(user.id, "photo", "photo:7")).allowed
    assert await gate.refund("photo:7")
    assert (await gate.charge(user.id, "photo", "photo:7")).allowed
    assert await used(user.id, QuotaKind.PHOTO) == 1
    assert not (await gate.charge(user.id, "photo", "photo:8")).allowed


async def test_daily_quotas_renew_at_utc_midnight(db: str) -> None:
    """Messages per day are counted per UTC date: refused at 23:59 with the next midnight, allowed at 00:00."""
    clock = Clock(datetime(2031, 3, 10, 23, 59, tzinfo=UTC))
    gate = BillingEntitlements(clock=clock)
    user = await User.create()
    await subscribe(user.id, messages=2, start=NOON - timedelta(days=5))
    assert (await gate.charge(user.id, "message", "msg:1")).allowed
    assert (await gate.charge(user.id, "message", "msg:2")).allowed
    refused = await gate.charge(user.id, "message", "msg:3")
    assert (refused.allowed, refused.reason, refused.limit) == (False, "quota", 2)
    assert refused.renews_at == datetime(2031, 3, 11, tzinfo=UTC)
    assert await gate.renews_at(user.id, "message") == datetime(2031, 3, 11, tzinfo=UTC)
    clock.now = datetime(2031, 3, 11, 0, 0, tzinfo=UTC)
    assert await gate.remaining(user.id, "message") == 2
    assert (await gate.charge(user.id, "message", "msg:3")).allowed


async def test_photos_are_counted_per_billing_period(db: str) -> None:
    """The photo quota renews with the billing period (a renewal moves the period start), not daily."""
    clock = Clock()
    gate = BillingEntitlements(clock=clock)
    user = await User.create()
    sub = await subscribe(user.id, photos=1, start=NOON, days=30)
    assert (await gate.charge(user.id, "photo", "photo:1")).allowed
    clock.now = NOON + timedelta(days=3)  # days later, same period: still used up
    refused = await gate.charge(user.id, "photo", "photo:2")
    assert not refused.allowed and refused.renews_at == sub.current_period_end
    await Subscription.filter(id=sub.id).update(
        current_period_start=NOON + timedelta(days=30), current_period_end=NOON + timedelta(days=60)
    )
    clock.now = NOON + timedelta(days=31)
    assert await gate.remaining(user.id, "photo") == 1
    assert (await gate.charge(user.id, "photo", "photo:2")).allowed


async def test_a_subscription_without_a_plan_gets_the_default_plans_quotas(db: str) -> None:
    """A Stripe price the plans file does not name falls back to the default plan's quotas."""
    gate = BillingEntitlements(clock=Clock())
    user = await User.create()
    await Plan.create(code="base", name="Base", messages_per_day=3, is_default=True)
    await Subscription.create(
        user=user, status=SubscriptionStatus.ACTIVE, current_period_start=NOON, current_period_end=NOON + timedelta(30)
    )
    assert await gate.remaining(user.id, "message") == 3


def test_development_gets_the_billing_entitlements(make_settings: Any) -> None:
    """There is no allow-all gate any more: development wires the billing entitlements too."""
    assert isinstance(build_entitlements(make_settings()), BillingEntitlements)


# -- the paywall before /avatar -------------------------------------------------------------------------------


async def say(services: Any, chat_id: str, text: str, count: list[int]) -> list[dict[str, Any]]:
    """Send `text` from web chat `chat_id` through the real inbox and turn runner; the replies' payloads."""
    count[0] += 1
    last = await Message.filter(direction=Direction.OUTBOUND).order_by("-id").first()
    msg = InboundMessage(ChatRef("web", chat_id), f"{chat_id}:{count[0]}", text)
    stored = await services.inbox.receive(msg)
    await services.runner.drain(stored.user_id, whole=True)
    rows = await Message.filter(direction=Direction.OUTBOUND, id__gt=last.id if last else 0).order_by("id")
    return [r.payload for r in rows if r.payload is not None]


async def test_avatar_edit_needs_a_subscription(db: str, redis: ArqRedis, make_settings: Any) -> None:
    """`/avatar` (a new look costs a new reference photo) answers unsubscribed users with the paywall link."""
    services = build_services(make_settings(), redis)
    user = await ready_user("7")
    count = [0]
    replies = await say(services, "7", "/avatar", count)
    assert [r["type"] for r in replies] == ["link"] and "subscription" in replies[0]["text"]
    fresh = await User.get(id=user.id)
    assert fresh.setup_step == SetupStep.DONE and not fresh.editing_avatar
    await subscribe(user.id)
    replies = await say(services, "7", "/avatar", count)
    assert "new look" in replies[0]["text"]
    assert (await User.get(id=user.id)).editing_avatar


async def test_chat_messages_are_refused_by_the_paywall_without_a_subscription(
    db: str, redis: ArqRedis, make_settings: Any
) -> None:
    """Unsubscribed after setup, a chat message gets the paywall line and never reaches the model."""
    services = build_services(make_settings(), redis)
    await ready_user("8")
    replies = await say(services, "8", "hello there", [0])
    assert [r["type"] for r in replies] == ["link"] and "subscription" in replies[0]["text"]
    assert not await QuotaCharge.exists()


# -- POST /chat/messages ------------------------------------------------------------------------------------------


async def post(client: TestClient, token: str, **body: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/chat/messages", json={"client_id": uuid.uuid4().hex, **body}, headers={"X-CSRF-Token": token}
    )
    return response.status, await response.json()


async def finish_setup(user_id: int) -> None:
    now = datetime.now(UTC)
    await User.filter(id=user_id).update(adult_confirmed_at=now, terms_accepted_at=now, setup_step=SetupStep.DONE)
    await Avatar.create(
        user_id=user_id,
        name="Mia",
        gender="woman",
        age=27,
        nationality="Italian",
        appearance="dark hair",
        personality="playful",
        approved_at=now,
    )


async def test_post_chat_messages_answers_402_unpaid_and_stores_nothing(app_for: AppFactory, plans_file: Path) -> None:
    """Setup messages are taken unpaid (202); after setup a text for the model is 402 and not stored, while
    commands and button presses still go through."""
    client = await app_for(plans_file=plans_file)
    user_id = await sign_up(client, "unpaid@example.com")
    token = await page_token(client, "/chat")
    status, _ = await post(client, token, text="hello")
    assert status == 202  # onboarding works unpaid
    await finish_setup(user_id)
    before = await Message.filter(user_id=user_id).count()
    status, body = await post(client, token, text="hi Mia, how are you?")
    assert status == 402
    assert body["reason"] == "subscription" and body["subscribe_url"] == "/subscribe" and body["error"]
    assert await Message.filter(user_id=user_id).count() == before
    assert not await Message.exists(user_id=user_id, text="hi Mia, how are you?")
    assert (await post(client, token, text="/subscribe"))[0] == 202
    assert (await post(client, token, choice="3.mode:intimate"))[0] == 202


async def test_post_chat_messages_answers_402_when_todays_messages_are_used_up(
    app_for: AppFactory, plans_file: Path
) -> None:
    """A subscriber past today's message cap gets 402 with reason "quota" and when the messages renew."""
    client = await app_for(plans_file=plans_file)
    user_id = await sign_up(client, "busy@example.com")
    token = await page_token(client, "/chat")
    await finish_setup(user_id)
    await subscribe(user_id, messages=1)
    status, _ = await post(client, token, text="first message")
    assert status == 202
    assert (await BillingEntitlements().charge(user_id, "message", "msg:elsewhere")).allowed  # e.g. on Telegram
    status, body = await post(client, token, text="second message")
    assert status == 402 and body["reason"] == "quota"
    renews = datetime.fromisoformat(body["renews_at"])
    assert renews > datetime.now(UTC) and (renews.hour, renews.minute) == (0, 0)
    assert "midnight UTC" in body["error"]
    assert not await Message.exists(user_id=user_id, text="second message")
