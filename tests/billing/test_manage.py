"""Stripe's Customer Portal (`POST /billing/manage`) and no second subscription while one is open: a user whose
renewal payment failed updates the card instead of starting a checkout that would bill twice (the real `stripe`
client against the fake Stripe, real PostgreSQL and Redis)."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ava_bot.wiring import build_billing
from billing.errors import BillingUnavailable, NoSubscription, StripeUnavailable, SubscriptionStillOpen
from billing.models import Subscription
from tests.billing.conftest import BASE_URL, AppFactory, checkout, post_event, session_id_of, stripe_settings
from tests.fakes.stripe import FakeStripe, event_body
from tests.portal.conftest import page_token, sign_up
from tests.support import ready_user

SESSIONS = "/v1/checkout/sessions"
PORTAL = "/v1/billing_portal/sessions"
MANAGE_BUTTON = "Manage payment and invoices"
FAILED_WARNING = "Your last payment failed"


async def subscribe(client: TestClient, fake: FakeStripe) -> tuple[int, dict[str, Any], str]:
    """Sign up, pay through the fake Checkout and deliver the webhook: user id, subscription, Stripe customer."""
    user_id = await sign_up(client, "mara@example.com")
    session, sub = fake.complete_checkout(session_id_of((await checkout(client)).headers["Location"]))
    assert (await post_event(client, event_body("checkout.session.completed", session))).status == 200
    return user_id, sub, session["customer"]


async def change_status(client: TestClient, fake: FakeStripe, sub: dict[str, Any], status: str) -> None:
    """Stripe moves the subscription to `status` and tells Ava by webhook."""
    changed = fake.set_status(sub["id"], status)
    event = "customer.subscription.deleted" if status == "canceled" else "customer.subscription.updated"
    assert (await post_event(client, event_body(event, changed))).status == 200


async def press_manage(client: TestClient, **headers: str) -> Any:
    """Press "Manage payment and invoices" on the account page (CSRF token from the page)."""
    token = await page_token(client, "/account")
    return await client.post("/billing/manage", data={"csrf_token": token}, headers=headers, allow_redirects=False)


def forms_posting_to(page: str, action: str) -> list[str]:
    """The forms of `page` whose action is `action`."""
    return re.findall(rf'<form method="post" action="{re.escape(action)}">.*?</form>', page, re.S)


async def test_manage_opens_the_customer_portal_for_the_users_customer(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """The route asks Stripe for a portal session of the user's customer, returning to /account, and redirects."""
    _, _, customer = await subscribe(stripe_app, fake_stripe)
    response = await press_manage(stripe_app)
    assert response.status == 303
    [call] = fake_stripe.calls_to("POST", PORTAL)
    assert call.params == {"customer": customer, "return_url": f"{BASE_URL}/account"}
    [portal_session] = fake_stripe.portal_sessions.values()
    assert response.headers["Location"] == portal_session["url"]
    assert response.headers["Location"].startswith(f"{fake_stripe.url}/p/session/bps_")


async def test_manage_answers_json_clients_with_the_url(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """With `Accept: application/json` the answer is `{"manage_url": ...}` instead of a redirect."""
    await subscribe(stripe_app, fake_stripe)
    response = await press_manage(stripe_app, Accept="application/json")
    assert response.status == 200
    [portal_session] = fake_stripe.portal_sessions.values()
    assert await response.json() == {"manage_url": portal_session["url"]}


async def test_past_due_checkout_creates_no_session_and_lands_on_the_account_page(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """A failed renewal (past_due): Subscribe makes no Checkout Session (no double billing) and goes to /account."""
    user_id, sub, _ = await subscribe(stripe_app, fake_stripe)
    await change_status(stripe_app, fake_stripe, sub, "past_due")
    sessions_before = len(fake_stripe.calls_to("POST", SESSIONS))

    response = await checkout(stripe_app)
    assert (response.status, response.headers["Location"]) == (303, "/account")
    as_json = await checkout(stripe_app, Accept="application/json")
    assert as_json.status == 409
    body = await as_json.json()
    assert body["redirect"] == "/account" and "past due" in body["error"] and "payment method" in body["error"]
    assert len(fake_stripe.calls_to("POST", SESSIONS)) == sessions_before
    assert len(fake_stripe.sessions) == 1
    assert (await Subscription.get(user_id=user_id)).stripe_subscription_id == sub["id"]


async def test_past_due_pages_warn_and_offer_the_customer_portal(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Subscribe and account pages of a past_due user: the payment-failed warning and a button to /billing/manage,
    and no Subscribe button or link."""
    _, sub, _ = await subscribe(stripe_app, fake_stripe)
    await change_status(stripe_app, fake_stripe, sub, "past_due")

    subscribe_page = html.unescape(await (await stripe_app.get("/subscribe")).text())
    assert "Your last payment failed — update your payment method" in subscribe_page
    assert len(forms_posting_to(subscribe_page, "/billing/manage")) == 1
    assert forms_posting_to(subscribe_page, "/billing/checkout") == []

    account_page = html.unescape(await (await stripe_app.get("/account")).text())
    assert FAILED_WARNING in account_page and "Chatting is paused until you update your payment method" in account_page
    [manage_form] = forms_posting_to(account_page, "/billing/manage")
    assert MANAGE_BUTTON in manage_form
    assert 'href="/subscribe"' not in account_page.split("<main", 1)[1]  # the header menu always links it


async def test_an_active_subscriber_sees_the_manage_button_without_a_warning(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """An active Stripe subscription: the account page offers "Manage payment and invoices", warns of nothing."""
    await subscribe(stripe_app, fake_stripe)
    account_page = html.unescape(await (await stripe_app.get("/account")).text())
    [manage_form] = forms_posting_to(account_page, "/billing/manage")
    assert MANAGE_BUTTON in manage_form
    assert FAILED_WARNING not in account_page


async def test_a_canceled_user_can_subscribe_again_with_the_same_customer(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """After past_due ended in canceled, Subscribe is offered again and creates a new session for the same customer."""
    _, sub, customer = await subscribe(stripe_app, fake_stripe)
    await change_status(stripe_app, fake_stripe, sub, "past_due")
    await change_status(stripe_app, fake_stripe, sub, "canceled")

    page = await (await stripe_app.get("/subscribe")).text()
    assert len(forms_posting_to(page, "/billing/checkout")) == 1
    assert FAILED_WARNING not in html.unescape(page)
    response = await checkout(stripe_app)
    assert response.status == 303
    assert session_id_of(response.headers["Location"]) in fake_stripe.sessions
    assert len(fake_stripe.sessions) == 2
    last = fake_stripe.calls_to("POST", SESSIONS)[-1].params
    assert last["customer"] == customer and "customer_email" not in last


async def test_manage_without_csrf_token_is_refused(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """A form post without the session's CSRF token is 403 and never reaches Stripe."""
    await subscribe(stripe_app, fake_stripe)
    response = await stripe_app.post("/billing/manage", data={}, allow_redirects=False)
    assert response.status == 403
    assert fake_stripe.calls_to("POST", PORTAL) == []


async def test_manage_when_signed_out_goes_to_sign_in(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """Signed out, the route sends the browser to sign in and back to the account page, without calling Stripe."""
    token = await page_token(stripe_app, "/")
    response = await stripe_app.post("/billing/manage", data={"csrf_token": token}, allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/signin?next=/account")
    assert fake_stripe.calls_to("POST", PORTAL) == []


async def test_manage_without_a_stripe_customer_is_refused(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """A user who never checked out has nothing to manage: 409, no call to Stripe, no button on the account page."""
    await sign_up(stripe_app)
    assert MANAGE_BUTTON not in await (await stripe_app.get("/account")).text()
    response = await press_manage(stripe_app, Accept="application/json")
    assert response.status == 409
    assert fake_stripe.calls_to("POST", PORTAL) == []


async def test_a_stripe_failure_on_manage_is_a_502(stripe_app: TestClient, fake_stripe: FakeStripe) -> None:
    """Stripe failing the portal session answers the payment-provider error (502), not a redirect."""
    await subscribe(stripe_app, fake_stripe)
    fake_stripe.fail("POST", PORTAL, status=400)
    response = await press_manage(stripe_app, Accept="application/json")
    assert response.status == 502
    assert fake_stripe.portal_sessions == {}


async def test_manage_is_404_in_development(app_for: AppFactory, plans_file: Path) -> None:
    """Without Stripe (development) the route does not exist and the account page shows no manage button."""
    client = await app_for(plans_file=plans_file)
    await sign_up(client)
    token = await page_token(client, "/subscribe")
    await client.post("/billing/dev-activate", data={"csrf_token": token, "plan": "monthly"}, allow_redirects=False)
    assert MANAGE_BUTTON not in await (await client.get("/account")).text()
    response = await press_manage(client)
    assert response.status == 404


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        ("active", True),
        ("trialing", True),
        ("past_due", True),
        ("unpaid", True),
        ("incomplete", True),
        ("paused", True),
        ("canceled", False),
        ("incomplete_expired", False),
    ],
)
async def test_billing_refuses_checkout_while_the_stripe_subscription_is_not_over(
    db: str, make_settings: Any, fake_stripe: FakeStripe, plans_file: Path, status: str, refused: bool
) -> None:
    """The service itself refuses a checkout for any Stripe status but canceled / incomplete_expired (defence
    behind the route), and says which statuses the pages warn about."""
    billing = build_billing(make_settings(**stripe_settings(fake_stripe, plans_file)), environ={})
    await billing.sync_plans()
    user = await ready_user("1")
    await Subscription.create(user=user, status=status, stripe_subscription_id="sub_old", stripe_customer_id="cus_old")
    urls = {"success_url": f"{BASE_URL}/billing/success", "cancel_url": f"{BASE_URL}/billing/cancel"}
    try:
        view = await billing.subscription(user.id)
        assert view is not None
        assert view.open_in_stripe is refused
        assert view.payment_failed is (status in {"past_due", "unpaid", "incomplete"})
        if refused:
            with pytest.raises(SubscriptionStillOpen):
                await billing.checkout_url(user.id, "monthly", **urls)
            assert fake_stripe.calls == []
        else:
            await billing.checkout_url(user.id, "monthly", **urls)
            [call] = fake_stripe.calls_to("POST", SESSIONS)
            assert call.params["customer"] == "cus_old"
    finally:
        await billing.aclose()


async def test_manage_url_needs_a_stripe_customer_and_stripe(
    db: str, make_settings: Any, fake_stripe: FakeStripe, plans_file: Path
) -> None:
    """`manage_url`: NoSubscription for a user Stripe does not know; a Stripe 404 for the customer is a Stripe error;
    BillingUnavailable without Stripe."""
    development = build_billing(make_settings(plans_file=plans_file), environ={})
    billing = build_billing(make_settings(**stripe_settings(fake_stripe, plans_file)), environ={})
    user, other = await ready_user("1"), await ready_user("2")
    await Subscription.create(user=other, status="canceled", stripe_customer_id="cus_gone_from_stripe")
    try:
        with pytest.raises(BillingUnavailable):
            await development.manage_url(other.id, f"{BASE_URL}/account")
        with pytest.raises(NoSubscription):
            await billing.manage_url(user.id, f"{BASE_URL}/account")
        with pytest.raises(StripeUnavailable):
            await billing.manage_url(other.id, f"{BASE_URL}/account")
    finally:
        await billing.aclose()
    assert [c.params["customer"] for c in fake_stripe.calls_to("POST", PORTAL)] == ["cus_gone_from_stripe"]
