"""The subscribe, success and cancel pages, and the development activation (only without Stripe)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient

from ava_bot.keys import SERVICES
from billing.models import Subscription
from tests.billing.conftest import AppFactory
from tests.fakes.stripe import FakeStripe
from tests.portal.conftest import csrf_of, page_token, sign_up

DEV_LABEL = "Development mode: activate without payment"


async def dev_app(app_for: AppFactory, plans_file: Path) -> TestClient:
    """The app in development without Stripe keys."""
    return await app_for(plans_file=plans_file)


async def test_subscribe_page_sends_signed_out_visitors_to_sign_in(app_for: AppFactory, plans_file: Path) -> None:
    """Signed out, /subscribe redirects to sign-in, which comes back to /subscribe."""
    client = await dev_app(app_for, plans_file)
    response = await client.get("/subscribe", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/signin?next=/subscribe")


async def test_development_subscribe_page_offers_a_labelled_activation(app_for: AppFactory, plans_file: Path) -> None:
    """Without Stripe the page shows the plan, its price label and quotas, and a clearly labelled activation form."""
    client = await dev_app(app_for, plans_file)
    await sign_up(client)
    response = await client.get("/subscribe")
    page = await response.text()
    assert response.status == 200
    for shown in ("Ava Monthly", "9.99 EUR / month", "60 photos per month", "5 new portraits", "500 messages"):
        assert shown in page
    assert DEV_LABEL in page
    assert 'action="/billing/dev-activate"' in page
    assert f'name="csrf_token" value="{csrf_of(page)}"' in page
    assert 'action="/billing/checkout"' not in page


async def test_development_activation_grants_the_plan_for_one_period(app_for: AppFactory, plans_file: Path) -> None:
    """The development activation makes the user entitled for one month, labelled as a development grant."""
    client = await dev_app(app_for, plans_file)
    user_id = await sign_up(client)
    assert not await client.app[SERVICES].entitlements.may_chat(user_id)
    token = await page_token(client, "/subscribe")
    response = await client.post(
        "/billing/dev-activate", data={"csrf_token": token, "plan": "monthly"}, allow_redirects=False
    )
    assert (response.status, response.headers["Location"]) == (303, "/billing/success")
    row = await Subscription.get(user_id=user_id)
    assert (row.status, row.source) == ("granted", "development")
    assert row.current_period_end is not None and row.current_period_start is not None
    assert timedelta(days=28) <= row.current_period_end - row.current_period_start <= timedelta(days=31)
    assert row.current_period_end > datetime.now(UTC)
    assert await client.app[SERVICES].entitlements.may_chat(user_id)
    assert "is active" in await (await client.get("/billing/success")).text()


async def test_development_activation_needs_the_csrf_token(app_for: AppFactory, plans_file: Path) -> None:
    """Without the form's CSRF token the activation is refused and nothing is stored."""
    client = await dev_app(app_for, plans_file)
    user_id = await sign_up(client)
    response = await client.post("/billing/dev-activate", data={"plan": "monthly"}, allow_redirects=False)
    assert response.status == 403
    assert not await Subscription.exists(user_id=user_id)


async def test_checkout_does_not_exist_without_stripe(app_for: AppFactory, plans_file: Path) -> None:
    """In development without Stripe there is no checkout (404), only the development activation."""
    client = await dev_app(app_for, plans_file)
    await sign_up(client)
    token = await page_token(client, "/subscribe")
    response = await client.post("/billing/checkout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 404


async def test_development_activation_is_404_with_stripe_configured(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Once Stripe is configured the activation route does not exist and the page offers checkout instead."""
    user_id = await sign_up(stripe_app)
    page = await (await stripe_app.get("/subscribe")).text()
    assert DEV_LABEL not in page
    assert 'action="/billing/checkout"' in page and ">Subscribe</button>" in page
    response = await stripe_app.post(
        "/billing/dev-activate", data={"csrf_token": csrf_of(page), "plan": "monthly"}, allow_redirects=False
    )
    assert response.status == 404
    assert not await Subscription.exists(user_id=user_id)


async def test_success_page_shows_activation_in_progress_and_never_activates(
    stripe_app: TestClient, fake_stripe: FakeStripe
) -> None:
    """Back from Checkout before the webhook: the page says it is being activated; the visit activates nothing."""
    user_id = await sign_up(stripe_app)
    response = await stripe_app.get("/billing/success?session_id=cs_test_forged")
    page = await response.text()
    assert response.status == 200
    assert "activating your subscription" in page
    assert not await Subscription.exists(user_id=user_id)
    assert fake_stripe.calls == []


async def test_cancel_page_says_nothing_was_charged(stripe_app: TestClient) -> None:
    """Back from Checkout without paying: nothing charged, a way back to the plans."""
    page = await (await stripe_app.get("/billing/cancel")).text()
    assert "Nothing was charged" in page
    assert 'href="/subscribe"' in page
