"""The real app (PostgreSQL, Redis, the real `stripe` client) against the fake Stripe, and webhook helpers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from core.models import Direction, Message
from tests.fakes.stripe import API_KEY, PRICE_ID, WEBHOOK_SECRET, FakeStripe, sign
from tests.portal.conftest import page_token

BASE_URL = "http://ava.example.test"  # http: the test client keeps no Secure cookies

AppFactory = Callable[..., Awaitable[TestClient]]


def plans_toml(*plans: dict[str, Any]) -> str:
    """A plans file holding `plans` (each: code, name, env, label, default, photos, tax, promo)."""
    parts = []
    for p in plans:
        parts.append(
            f"""
[[plans]]
code = "{p["code"]}"
name = "{p["name"]}"
price_id_env = "{p.get("env", "STRIPE_PRICE_ID")}"
price_label = "{p.get("label", "9.99 EUR / month")}"
interval = "{p.get("interval", "month")}"
default = {str(p.get("default", False)).lower()}
[plans.quotas]
photos_per_period = {p.get("photos", 60)}
regenerations_per_day = {p.get("regenerations", 5)}
messages_per_day = {p.get("messages", 500)}
[plans.stripe]
automatic_tax = {str(p.get("tax", False)).lower()}
allow_promotion_codes = {str(p.get("promo", True)).lower()}
"""
        )
    return "".join(parts)


MONTHLY = {"code": "monthly", "name": "Ava Monthly", "default": True, "photos": 60}


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API on a local port."""
    async with FakeStripe() as fake:
        yield fake


@pytest.fixture
def plans_file(tmp_path: Path) -> Path:
    """A one-plan plans file (tests may overwrite it before starting the app)."""
    path = tmp_path / "plans.toml"
    path.write_text(plans_toml(MONTHLY), encoding="utf-8")
    return path


@pytest.fixture
async def app_for(db: str, redis: ArqRedis, make_settings: Any) -> AsyncIterator[AppFactory]:
    """Start `create_app` with the given settings on a test server; closed after the test."""
    clients: list[TestClient] = []

    async def start(**settings: Any) -> TestClient:
        client = TestClient(TestServer(await create_app(make_settings(**settings), redis=redis, own_database=False)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def stripe_app(app_for: AppFactory, fake_stripe: FakeStripe, plans_file: Path) -> TestClient:
    """The app with Stripe configured (the fake's address, key, webhook secret and price id)."""
    return await app_for(**stripe_settings(fake_stripe, plans_file))


def stripe_settings(fake: FakeStripe, plans_file: Path) -> dict[str, Any]:
    """Settings values of a deployment with Stripe at `fake`."""
    return {
        "stripe_secret_key": API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": fake.url,
        "stripe_price_id": PRICE_ID,
        "plans_file": plans_file,
        "public_base_url": BASE_URL,
    }


async def post_event(client: TestClient, body: bytes, *, secret: str = WEBHOOK_SECRET) -> ClientResponse:
    """Deliver a webhook body signed with `secret`, as Stripe does."""
    headers = {"Stripe-Signature": sign(body, secret), "Content-Type": "application/json; charset=utf-8"}
    return await client.post("/billing/webhook", data=body, headers=headers)


async def checkout(client: TestClient, *, plan: str | None = None, **headers: str) -> ClientResponse:
    """Press a subscribe button on the subscribe page (CSRF token from the page)."""
    token = await page_token(client, "/subscribe")
    data = {"csrf_token": token} | ({"plan": plan} if plan is not None else {})
    return await client.post("/billing/checkout", data=data, headers=headers, allow_redirects=False)


async def notices(user_id: int) -> list[Message]:
    """Billing notices stored for the user's chat, oldest first."""
    rows = await Message.filter(user_id=user_id, direction=Direction.OUTBOUND).order_by("id")
    return [r for r in rows if (r.external_message_id or "").startswith("billing:")]


def session_id_of(url: str) -> str:
    """The Checkout Session id at the end of a fake Checkout URL."""
    found = re.search(r"/c/pay/(cs_test_\w+)$", url)
    assert found, url
    return found.group(1)
