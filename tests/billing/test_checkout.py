"""Checkout: `POST /billing/checkout` creates a Stripe Checkout Session (the real `stripe` client against the
fake Stripe) with the right parameters, and sends the browser there."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ava_bot.wiring import build_billing, build_plans
from billing.models import BillingEvent, OpenCheckout, Subscription
from billing.service import BillingService
from billing.stripe_api import StripeApi
from tests.billing.conftest import (
    BASE_URL,
    MONTHLY,
    AppFactory,
    checkout,
    plans_toml,
    post_event,
    session_id_of,
    stripe_settings,
)
from tests.fakes.stripe import API_KEY, PRICE_ID, FakeStripe, SessionNotPayable, event_body
from tests.portal.conftest import page_token, sign_up
from tests.support import ready_user

SESSIONS = "/v1/checkout/sessions"


async def test_checkout_creates_a_subscription_session_and_redirects_there(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Subscription mode, the default plan's price, the user's id and email, our URLs, the plan's options."""
    user_id = await sign_up(stripe_app, "mara@example.com")
    response = await checkout(stripe_app)
    assert response.status == 303
    [call] = fake_stripe.calls_to("POST", SESSIONS)
    session_id = session_id_of(response.headers["Location"])
    assert response.headers["Location"] == f"{fake_stripe.url}/c/pay/{session_id}"
    params = call.params
    assert params["mode"] == "subscription"
    assert params["line_items"] == [{"price": PRICE_ID, "quantity": "1"}]
    assert params["client_reference_id"] == str(user_id)
    assert params["metadata"]["user_id"] == str(user_id)
    assert params["subscription_data"]["metadata"]["user_id"] == str(user_id)
    assert params["customer_email"] == "mara@example.com"
    assert "customer" not in params
    assert params["success_url"] == f"{BASE_URL}/billing/success?session_id={{CHECKOUT_SESSION_ID}}"
    assert params["cancel_url"] == f"{BASE_URL}/billing/cancel"
    assert params["allow_promotion_codes"] == "true"
    assert "automatic_tax" not in params
    assert call.idempotency_key is not None and call.idempotency_key.startswith(f"ava-checkout-{user_id}-monthly-")
    assert await Subscription.filter(user_id=user_id).count() == 0  # nothing is stored before Stripe says so


async def test_a_double_click_makes_one_checkout_session(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """Two presses in a row send the same idempotency key, so Stripe answers the same session twice."""
    await sign_up(stripe_app)
    first = await checkout(stripe_app)
    second = await checkout(stripe_app)
    assert first.headers["Location"] == second.headers["Location"]
    keys = {c.idempotency_key for c in fake_stripe.calls_to("POST", SESSIONS)}
    assert len(keys) == 1
    assert len(fake_stripe.sessions) == 1


async def test_json_clients_get_the_checkout_url(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """With `Accept: application/json` the answer is `{"checkout_url": ...}` instead of a redirect."""
    await sign_up(stripe_app)
    response = await checkout(stripe_app, Accept="application/json")
    assert response.status == 200
    url = (await response.json())["checkout_url"]
    assert session_id_of(url) in fake_stripe.sessions


async def test_the_second_checkout_reuses_the_stripe_customer(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """After a subscription ended, subscribing again uses the customer Stripe made the first time."""
    user_id = await sign_up(stripe_app, "mara@example.com")
    session, sub = fake_stripe.complete_checkout(session_id_of((await checkout(stripe_app)).headers["Location"]))
    assert (await post_event(stripe_app, event_body("checkout.session.completed", session))).status == 200
    ended = fake_stripe.set_status(sub["id"], "canceled")
    assert (await post_event(stripe_app, event_body("customer.subscription.deleted", ended))).status == 200
    assert (await Subscription.get(user_id=user_id)).status == "canceled"

    response = await checkout(stripe_app)
    assert response.status == 303
    last = fake_stripe.calls_to("POST", SESSIONS)[-1].params
    assert last["customer"] == session["customer"]
    assert "customer_email" not in last


async def test_an_entitled_user_goes_to_the_account_page(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """A user who is subscribed already is sent to /account and no session is created."""
    await sign_up(stripe_app)
    session, _ = fake_stripe.complete_checkout(session_id_of((await checkout(stripe_app)).headers["Location"]))
    await post_event(stripe_app, event_body("checkout.session.completed", session))
    calls = len(fake_stripe.calls_to("POST", SESSIONS))
    response = await checkout(stripe_app)
    assert (response.status, response.headers["Location"]) == (303, "/account")
    assert len(fake_stripe.calls_to("POST", SESSIONS)) == calls


async def test_a_stripe_error_shows_an_error_page_and_stores_nothing(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Stripe refusing the session answers a 502 page saying nothing was charged; no row is written."""
    user_id = await sign_up(stripe_app)
    fake_stripe.fail("POST", SESSIONS, status=400)
    response = await checkout(stripe_app, Accept="text/html")
    assert response.status == 502
    assert "Nothing was charged" in await response.text()
    assert await Subscription.filter(user_id=user_id).count() == 0
    assert await BillingEvent.all().count() == 0


async def test_checkout_without_csrf_token_is_refused(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """A form post without the session's CSRF token is 403 and never reaches Stripe."""
    await sign_up(stripe_app)
    response = await stripe_app.post("/billing/checkout", data={"plan": "monthly"}, allow_redirects=False)
    assert response.status == 403
    assert fake_stripe.calls_to("POST", SESSIONS) == []


async def test_checkout_when_signed_out_goes_to_sign_in(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """Signed out, checkout and the subscribe page send the browser to sign in and come back."""
    token = await page_token(stripe_app, "/")
    response = await stripe_app.post("/billing/checkout", data={"csrf_token": token}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/signin?next=/subscribe")
    assert fake_stripe.calls_to("POST", SESSIONS) == []


async def test_an_unknown_plan_is_refused(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """A plan code that is not in the plans file answers 404 without calling Stripe."""
    await sign_up(stripe_app)
    response = await checkout(stripe_app, plan="platinum")
    assert response.status == 404
    assert fake_stripe.calls_to("POST", SESSIONS) == []


async def test_automatic_tax_with_a_known_customer_collects_the_address(
    app_for: AppFactory, fake_stripe: FakeStripe, plans_file: Path
) -> None:
    """A plan with automatic tax asks Stripe for tax, and lets Checkout save the address to a reused customer."""
    plans_file.write_text(plans_toml({**MONTHLY, "tax": True, "promo": False}), encoding="utf-8")
    client = await app_for(**stripe_settings(fake_stripe, plans_file))
    user_id = await sign_up(client)
    await Subscription.create(user_id=user_id, status="canceled", stripe_customer_id="cus_known")
    await checkout(client)
    params = fake_stripe.calls_to("POST", SESSIONS)[-1].params
    assert params["automatic_tax"] == {"enabled": "true"}
    assert params["customer"] == "cus_known"
    assert params["customer_update"] == {"address": "auto"}
    assert "allow_promotion_codes" not in params


async def test_a_second_tier_is_a_configuration_change_only(
    app_for: AppFactory, fake_stripe: FakeStripe, plans_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two [[plans]] tables and a second price variable: both plans are offered, and the second checks out
    with its own price id."""
    pro = {"code": "pro", "name": "Ava Pro", "env": "STRIPE_PRICE_ID_PRO", "label": "19.99 EUR / month", "photos": 200}
    plans_file.write_text(plans_toml(MONTHLY, pro), encoding="utf-8")
    monkeypatch.setenv("STRIPE_PRICE_ID_PRO", "price_1SProEUR1999")
    client = await app_for(**stripe_settings(fake_stripe, plans_file))
    await sign_up(client)

    page = await (await client.get("/subscribe")).text()
    for shown in ("Ava Monthly", "9.99 EUR / month", "60 photos", "Ava Pro", "19.99 EUR / month", "200 photos"):
        assert shown in page
    assert 'name="plan" value="pro"' in page

    response = await checkout(client, plan="pro")
    assert response.status == 303
    params = fake_stripe.calls_to("POST", SESSIONS)[-1].params
    assert params["line_items"] == [{"price": "price_1SProEUR1999", "quantity": "1"}]
    assert params["metadata"]["plan"] == "pro"


async def test_cancel_at_period_end_asks_stripe_then_stores_the_flag(
    db: str, make_settings: Any, fake_stripe: FakeStripe, plans_file: Path
) -> None:
    """Cancelling at period end updates the Stripe subscription first, then the row; the user stays entitled."""
    billing = build_billing(make_settings(**stripe_settings(fake_stripe, plans_file)), environ={})
    await billing.sync_plans()
    user = await ready_user("1")
    sub = fake_stripe.add_subscription(user_id=user.id)
    await Subscription.create(
        user=user,
        status="active",
        stripe_subscription_id=sub["id"],
        current_period_end=datetime.now(UTC) + timedelta(days=20),
    )
    try:
        await billing.cancel_at_period_end(user.id)
    finally:
        await billing.aclose()
    [call] = fake_stripe.calls_to("POST", f"/v1/subscriptions/{sub['id']}")
    assert call.params == {"cancel_at_period_end": "true"}
    view = await billing.subscription(user.id)
    assert view is not None and view.cancel_at_period_end and view.entitled


async def test_cancel_immediately_cancels_in_stripe_once(
    db: str, make_settings: Any, fake_stripe: FakeStripe, plans_file: Path
) -> None:
    """Erasure's cancel: Stripe cancels the subscription at once; calling again, or without one, does nothing."""
    billing = build_billing(make_settings(**stripe_settings(fake_stripe, plans_file)), environ={})
    user, other = await ready_user("1"), await ready_user("2")
    sub = fake_stripe.add_subscription(user_id=user.id)
    await Subscription.create(user=user, status="active", stripe_subscription_id=sub["id"])
    try:
        await billing.cancel_immediately(user.id)
        await billing.cancel_immediately(user.id)
        await billing.cancel_immediately(other.id)
    finally:
        await billing.aclose()
    assert len(fake_stripe.calls_to("DELETE", f"/v1/subscriptions/{sub['id']}")) == 1
    assert fake_stripe.subscriptions[sub["id"]]["status"] == "canceled"
    assert (await Subscription.get(user_id=user.id)).status == "canceled"
    assert len(fake_stripe.calls) == 1


PRO = {"code": "pro", "name": "Ava Pro", "env": "STRIPE_PRICE_ID_PRO", "label": "19.99 EUR / month", "photos": 200}


@pytest.fixture
async def two_plan_app(
    app_for: AppFactory, fake_stripe: FakeStripe, plans_file: Path, monkeypatch: pytest.MonkeyPatch
) -> TestClient:
    """The app with two plans (monthly and pro) on Stripe."""
    plans_file.write_text(plans_toml(MONTHLY, PRO), encoding="utf-8")
    monkeypatch.setenv("STRIPE_PRICE_ID_PRO", "price_1SProEUR1999")
    return await app_for(**stripe_settings(fake_stripe, plans_file))


async def test_two_tabs_with_two_plans_leave_one_checkout_to_pay(
    two_plan_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Found from outside: the subscribe page in two tabs, one plan chosen in each, and both Checkout pages could be
    paid: two subscriptions, billed twice. Now choosing the second expires the first at Stripe: only the second can
    be paid, and paying it makes one subscription."""
    user_id = await sign_up(two_plan_app)
    first = session_id_of((await checkout(two_plan_app, plan="monthly")).headers["Location"])
    second = session_id_of((await checkout(two_plan_app, plan="pro")).headers["Location"])
    assert first != second
    assert fake_stripe.sessions[first]["status"] == "expired"
    assert fake_stripe.sessions[second]["status"] == "open"
    with pytest.raises(SessionNotPayable):
        fake_stripe.complete_checkout(first)
    session, _ = fake_stripe.complete_checkout(second)
    assert (await post_event(two_plan_app, event_body("checkout.session.completed", session))).status == 200
    assert len(fake_stripe.subscriptions) == 1
    row = await Subscription.get(user_id=user_id)
    assert row.status == "active" and row.stripe_subscription_id in fake_stripe.subscriptions
    assert not await OpenCheckout.exists(user_id=user_id)  # paid: no open checkout left to offer


async def test_going_back_to_the_first_plan_gets_a_new_session_not_the_expired_one(
    two_plan_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Monthly, then pro, then monthly again within minutes: the third is a new open session (Stripe's idempotency
    would have answered the expired first one), and it is the only one open."""
    await sign_up(two_plan_app)
    urls = [(await checkout(two_plan_app, plan=plan)).headers["Location"] for plan in ("monthly", "pro", "monthly")]
    ids = [session_id_of(url) for url in urls]
    assert len(set(ids)) == 3
    assert [fake_stripe.sessions[i]["status"] for i in ids] == ["expired", "expired", "open"]


async def test_the_same_checkout_later_offers_the_same_session(
    db: str, make_settings: Any, fake_stripe: FakeStripe, plans_file: Path
) -> None:
    """The subscribe button pressed again after the idempotency window (another tab, ten minutes later): the user
    gets the session they had, still open, and Stripe makes no second one."""
    now = [time.time()]
    settings = make_settings(**stripe_settings(fake_stripe, plans_file))
    stripe_api = StripeApi(API_KEY, api_base=fake_stripe.url)
    billing = BillingService(plans=build_plans(settings, environ={}), stripe_api=stripe_api, clock=lambda: now[0])
    await billing.sync_plans()
    user = await ready_user("1")
    try:
        first = await billing.checkout_url(user.id, "monthly", success_url=BASE_URL, cancel_url=BASE_URL)
        now[0] += 600
        again = await billing.checkout_url(user.id, "monthly", success_url=BASE_URL, cancel_url=BASE_URL)
    finally:
        await billing.aclose()
    assert again == first
    assert len(fake_stripe.calls_to("POST", SESSIONS)) == 1
    assert [s["status"] for s in fake_stripe.sessions.values()] == ["open"]


async def test_a_paid_checkout_not_yet_recorded_refuses_another(
    two_plan_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Paid at Stripe, its event not here yet, another plan chosen: 409 saying the payment went through, and no new
    session; once the event arrives the account shows the subscription and checkout sends there."""
    user_id = await sign_up(two_plan_app)
    paid = session_id_of((await checkout(two_plan_app, plan="monthly")).headers["Location"])
    session, _ = fake_stripe.complete_checkout(paid)
    response = await checkout(two_plan_app, plan="pro", Accept="text/html")
    assert response.status == 409
    assert "payment went through" in await response.text()
    assert len(fake_stripe.calls_to("POST", SESSIONS)) == 1
    assert (await post_event(two_plan_app, event_body("checkout.session.completed", session))).status == 200
    assert (await Subscription.get(user_id=user_id)).status == "active"
    response = await checkout(two_plan_app, plan="pro")
    assert (response.status, response.headers["Location"]) == (303, "/account")


async def test_stripe_failing_to_expire_the_old_session_makes_no_new_one(
    two_plan_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """If Stripe cannot expire the open session, no second one is made (502, nothing charged): two open sessions
    are never left behind."""
    await sign_up(two_plan_app)
    first = session_id_of((await checkout(two_plan_app, plan="monthly")).headers["Location"])
    fake_stripe.fail("POST", "/v1/checkout/sessions/{id}/expire", status=500, times=3)
    response = await checkout(two_plan_app, plan="pro", Accept="text/html")
    assert response.status == 502
    assert "Nothing was charged" in await response.text()
    assert len(fake_stripe.calls_to("POST", SESSIONS)) == 1
    assert fake_stripe.sessions[first]["status"] == "open"


async def test_erasure_expires_the_open_checkout(
    db: str, make_settings: Any, fake_stripe: FakeStripe, plans_file: Path
) -> None:
    """Erasing the account expires the open Checkout Session: a payment in a forgotten tab would reach no account."""
    billing = build_billing(make_settings(**stripe_settings(fake_stripe, plans_file)), environ={})
    await billing.sync_plans()
    user = await ready_user("1")
    try:
        url = await billing.checkout_url(user.id, "monthly", success_url=BASE_URL, cancel_url=BASE_URL)
        await billing.cancel_immediately(user.id)
        await billing.cancel_immediately(user.id)  # again: nothing left to do
    finally:
        await billing.aclose()
    session_id = session_id_of(url)
    assert fake_stripe.sessions[session_id]["status"] == "expired"
    assert len(fake_stripe.calls_to("POST", f"{SESSIONS}/{session_id}/expire")) == 1
    assert not await OpenCheckout.exists(user_id=user.id)


async def test_a_failed_replacement_never_offers_the_expired_session_again(
    two_plan_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Monthly, then pro with Stripe failing to make the new session after the old one was expired (502), then
    monthly again: a new open session, not the expired one."""
    await sign_up(two_plan_app)
    first = session_id_of((await checkout(two_plan_app, plan="monthly")).headers["Location"])
    fake_stripe.fail("POST", SESSIONS, status=500, times=3)
    assert (await checkout(two_plan_app, plan="pro", Accept="text/html")).status == 502
    assert fake_stripe.sessions[first]["status"] == "expired"
    again = session_id_of((await checkout(two_plan_app, plan="monthly")).headers["Location"])
    assert again != first and fake_stripe.sessions[again]["status"] == "open"
    assert [s["status"] for s in fake_stripe.sessions.values()].count("open") == 1
