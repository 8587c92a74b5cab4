"""The Stripe webhook: signed events, applied once, in any order, with the user told in chat."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from ava_bot.keys import SERVICES
from billing.models import BillingEvent, Subscription
from billing.subscriptions import RENEWAL_GRACE, add_interval, is_entitled
from tests.billing.conftest import BASE_URL, checkout, notices, post_event, session_id_of
from tests.fakes.stripe import FakeStripe, event_body, invoice_object, new_id, payload, sign
from tests.portal.conftest import sign_up


async def subscribed(client: TestClient, fake: FakeStripe) -> tuple[int, dict[str, Any]]:
    """Sign up and pay through the fake Checkout (no event delivered yet): the user id and the subscription."""
    user_id = await sign_up(client, f"user{new_id('u')}@example.com")
    response = await checkout(client)
    _, sub = fake.complete_checkout(session_id_of(response.headers["Location"]))
    return user_id, sub


async def may_chat(client: TestClient, user_id: int) -> bool:
    """What the wired entitlement gate answers (the engine's paywall)."""
    return await client.app[SERVICES].entitlements.may_chat(user_id)


async def test_checkout_completed_activates_the_subscription_and_tells_the_user(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """checkout.session.completed links user, customer and subscription (fetched from Stripe): entitled, told once."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    assert not await may_chat(stripe_app, user_id)
    session = fake_stripe.sessions[next(iter(fake_stripe.sessions))]
    response = await post_event(stripe_app, event_body("checkout.session.completed", session))
    assert response.status == 200
    row = await Subscription.get(user_id=user_id)
    assert (row.status, row.source, row.stripe_subscription_id, row.stripe_customer_id) == (
        "active",
        "stripe",
        sub["id"],
        sub["customer"],
    )
    assert row.current_period_end == datetime.fromtimestamp(sub["items"]["data"][0]["current_period_end"], UTC)
    assert await may_chat(stripe_app, user_id)
    assert fake_stripe.calls_to("GET", f"/v1/subscriptions/{sub['id']}")  # the state came from Stripe
    [notice] = await notices(user_id)
    assert "subscription is active" in (notice.text or "")

    # The subscription's own "created" event follows: same state, no second notice.
    assert (await post_event(stripe_app, event_body("customer.subscription.created", sub))).status == 200
    assert len(await notices(user_id)) == 1


async def test_the_same_event_three_times_has_one_effect(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """An event delivered three times in a row is recorded once and tells the user once."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    body = event_body("customer.subscription.created", sub)
    answers = [await post_event(stripe_app, body) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 200]
    assert [(await a.json()).get("duplicate", False) for a in answers] == [False, True, True]
    assert await BillingEvent.filter(event_id=json.loads(body)["id"]).count() == 1
    assert len(await notices(user_id)) == 1
    assert (await Subscription.get(user_id=user_id)).status == "active"


async def test_the_same_event_delivered_concurrently_has_one_effect(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Three concurrent deliveries of one event (each fetching from Stripe) commit one event and one notice."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    body = event_body("invoice.paid", invoice_object(sub, billing_reason="subscription_create"))
    fake_stripe.delay = 0.3  # all three have fetched before any of them commits
    answers = await asyncio.gather(*(post_event(stripe_app, body) for _ in range(3)))
    assert sorted(a.status for a in answers) == [200, 200, 200]
    assert len(fake_stripe.calls_to("GET", f"/v1/subscriptions/{sub['id']}")) == 3
    assert sorted([(await a.json()).get("duplicate", False) for a in answers]) == [False, True, True]
    assert await BillingEvent.filter(event_id=json.loads(body)["id"]).count() == 1
    assert len(await notices(user_id)) == 1
    assert (await Subscription.get(user_id=user_id)).status == "active"


async def test_deleted_before_created_ends_canceled(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """Out of order: the deletion arrives first, the older creation after it; the final state is canceled."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    now = int(time.time())
    created = event_body("customer.subscription.created", sub, created=now - 60)
    deleted = event_body("customer.subscription.deleted", fake_stripe.set_status(sub["id"], "canceled"), created=now)
    assert (await post_event(stripe_app, deleted)).status == 200
    assert (await post_event(stripe_app, created)).status == 200
    row = await Subscription.get(user_id=user_id)
    assert row.status == "canceled"
    assert not await may_chat(stripe_app, user_id)
    assert fake_stripe.calls_to("GET", f"/v1/subscriptions/{sub['id']}")  # the stale event was checked with Stripe


async def test_an_older_update_never_overwrites_a_newer_one(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """Two updates of the same second in reverse order: the state is fetched, so Stripe's current one wins."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    now = int(time.time())
    active = event_body("customer.subscription.updated", sub, created=now)
    past_due = fake_stripe.set_status(sub["id"], "past_due")
    assert (
        await post_event(stripe_app, event_body("customer.subscription.updated", past_due, created=now))
    ).status == 200
    assert (await post_event(stripe_app, active)).status == 200
    assert (await Subscription.get(user_id=user_id)).status == "past_due"


async def test_payment_failed_puts_up_the_paywall_and_tells_the_user(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """invoice.payment_failed: the subscription (fetched) is past_due, chatting stops, the user gets a link."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    await post_event(stripe_app, event_body("customer.subscription.created", sub))
    assert await may_chat(stripe_app, user_id)
    fake_stripe.set_status(sub["id"], "past_due")
    response = await post_event(stripe_app, event_body("invoice.payment_failed", invoice_object(sub, paid=False)))
    assert response.status == 200
    row = await Subscription.get(user_id=user_id)
    assert row.status == "past_due"
    assert not is_entitled(row, datetime.now(UTC))
    assert not await may_chat(stripe_app, user_id)
    told = (await notices(user_id))[-1]
    assert "didn't go through" in (told.text or "")
    assert told.payload is not None and told.payload.get("url") == f"{BASE_URL}/account"


async def test_renewal_moves_the_period_and_tells_the_user_photos_renewed(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """invoice.paid for a new cycle: the new period is stored and the user hears their photos renewed."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    await post_event(stripe_app, event_body("customer.subscription.created", sub))
    renewed = fake_stripe.renew(sub["id"])
    assert (await post_event(stripe_app, event_body("invoice.paid", invoice_object(renewed)))).status == 200
    row = await Subscription.get(user_id=user_id)
    assert row.current_period_end == datetime.fromtimestamp(renewed["items"]["data"][0]["current_period_end"], UTC)
    told = (await notices(user_id))[-1]
    assert "photos renewed" in (told.text or "") and "60 photos" in (told.text or "")


async def test_the_end_of_a_subscription_is_told_with_a_subscribe_link(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """customer.subscription.deleted after it was active: canceled, and the user gets a subscribe link."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    await post_event(stripe_app, event_body("customer.subscription.created", sub, created=int(time.time()) - 5))
    ended = fake_stripe.set_status(sub["id"], "canceled")
    assert (await post_event(stripe_app, event_body("customer.subscription.deleted", ended))).status == 200
    assert (await Subscription.get(user_id=user_id)).status == "canceled"
    told = (await notices(user_id))[-1]
    assert "has ended" in (told.text or "")
    assert told.payload is not None and told.payload.get("url") == f"{BASE_URL}/subscribe"


async def test_a_forged_signature_is_refused_and_changes_nothing(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Wrong secret, tampered body, missing or garbled header: 400, nothing stored, Stripe never asked."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    body = event_body("customer.subscription.created", sub)
    calls = len(fake_stripe.calls)
    tampered = body.replace(b'"active"', b'"trialing"')
    forged = [
        ({"Stripe-Signature": sign(body, "whsec_someone_else")}, body),
        ({"Stripe-Signature": sign(body)}, tampered),  # genuine signature, changed body
        ({"Stripe-Signature": "t=1,v1=deadbeef"}, body),
        ({"Stripe-Signature": "garbage"}, body),
        ({}, body),
    ]
    for headers, data in forged:
        response = await stripe_app.post("/billing/webhook", data=data, headers=headers)
        assert response.status == 400, headers
    assert await BillingEvent.all().count() == 0
    assert await Subscription.filter(user_id=user_id).count() == 0
    assert len(fake_stripe.calls) == calls


async def test_a_signed_body_that_is_not_an_event_is_refused(stripe_app: TestClient) -> None:
    """Correctly signed but not JSON, or JSON without an event's fields: 400 and nothing stored."""
    for body in (b"not json", b"[]", b'{"id": "evt_1", "type": "invoice.paid"}'):
        response = await post_event(stripe_app, body)
        assert response.status == 400, body
    assert await BillingEvent.all().count() == 0


async def test_an_old_signature_is_refused(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """A genuine signature older than Stripe's 5-minute tolerance (a replay) is refused."""
    _, sub = await subscribed(stripe_app, fake_stripe)
    body = event_body("customer.subscription.created", sub)
    headers = {"Stripe-Signature": sign(body, timestamp=int(time.time()) - 3600)}
    assert (await stripe_app.post("/billing/webhook", data=body, headers=headers)).status == 400
    assert await BillingEvent.all().count() == 0


async def test_an_unknown_event_type_is_acknowledged_and_ignored(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """An event type Ava does not handle answers 200, is recorded, and changes nothing."""
    customer = {"id": "cus_x", "object": "customer", "email": "x@example.com", "metadata": {}}
    body = event_body("customer.created", customer)
    response = await post_event(stripe_app, body)
    assert response.status == 200 and (await response.json())["ignored"] is True
    assert await BillingEvent.filter(event_id=json.loads(body)["id"], type="customer.created").exists()
    assert await Subscription.all().count() == 0
    assert fake_stripe.calls == []


async def test_stripe_down_answers_500_so_stripe_retries_and_the_retry_applies(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """When the subscription cannot be fetched the event answers 500 and stores nothing; the redelivery works."""
    user_id, sub = await subscribed(stripe_app, fake_stripe)
    body = event_body("invoice.paid", invoice_object(sub, billing_reason="subscription_create"))
    fake_stripe.fail("GET", "/v1/subscriptions/{id}", status=503, times=3)  # the client retries twice
    assert (await post_event(stripe_app, body)).status == 500
    assert await BillingEvent.all().count() == 0
    assert await Subscription.filter(user_id=user_id).count() == 0
    assert (await post_event(stripe_app, body)).status == 200
    assert (await Subscription.get(user_id=user_id)).status == "active"


async def test_an_event_for_nobody_we_know_is_acknowledged(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """A subscription without our user id and with an unknown customer is recorded and ignored."""
    sub = fake_stripe.add_subscription(user_id=None, customer="cus_stranger")
    response = await post_event(stripe_app, event_body("customer.subscription.updated", sub))
    assert response.status == 200
    assert await Subscription.all().count() == 0
    assert await BillingEvent.all().count() == 1


async def test_recorded_payload_shapes_are_read(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """The recorded invoice payload (subscription under parent.subscription_details) leads to its subscription."""
    user_id = await sign_up(stripe_app)
    recorded = payload("invoice_payment_failed")
    sub_id = recorded["data"]["object"]["parent"]["subscription_details"]["subscription"]
    fake_stripe.add_subscription(id=sub_id, user_id=user_id, status="past_due")
    recorded["id"], recorded["created"] = new_id("evt"), int(time.time())
    assert (await post_event(stripe_app, json.dumps(recorded).encode())).status == 200
    assert (await Subscription.get(user_id=user_id)).stripe_subscription_id == sub_id


def test_entitlement_needs_an_entitling_status_and_a_running_period() -> None:
    """Active, trialing and granted entitle until the period ends (Stripe's with a renewal grace); others never."""
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def sub(status: str, end: datetime | None, source: str = "stripe") -> Subscription:
        return Subscription(status=status, source=source, current_period_end=end)

    assert is_entitled(sub("active", now + timedelta(days=3)), now)
    assert is_entitled(sub("trialing", now + timedelta(days=3)), now)
    assert is_entitled(sub("active", now - RENEWAL_GRACE / 2), now)  # the renewal's webhook is on its way
    assert not is_entitled(sub("active", now - RENEWAL_GRACE - timedelta(seconds=1)), now)
    assert is_entitled(sub("granted", now + timedelta(hours=1), "grant"), now)
    assert not is_entitled(sub("granted", now - timedelta(seconds=1), "development"), now)
    assert not is_entitled(sub("granted", None, "grant"), now)
    for status in ("past_due", "unpaid", "canceled", "incomplete", "incomplete_expired", "paused"):
        assert not is_entitled(sub(status, now + timedelta(days=3)), now)
    assert not is_entitled(None, now)


def test_one_interval_later_keeps_the_day_where_the_month_has_it() -> None:
    """A month after 31 January is the last day of February; weeks, days and years add up plainly."""
    start = datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert add_interval(start, "month") == datetime(2027, 2, 28, 10, tzinfo=UTC)
    assert add_interval(start, "year") == datetime(2028, 1, 31, 10, tzinfo=UTC)
    assert add_interval(start, "week") == start + timedelta(days=7)
    assert add_interval(start, "day") == start + timedelta(days=1)
    assert add_interval(datetime(2027, 12, 15, tzinfo=UTC), "month") == datetime(2028, 1, 15, tzinfo=UTC)
