"""The whole application (`ava_bot.app.create_app`) with every channel and Stripe configured, for bad-input tests.

Real PostgreSQL and Redis; Telegram, the WhatsApp Graph API, Stripe and the LLM are the local fakes. The helpers
post what the platforms post (signed webhooks) and what a browser posts (forms and chat JSON with the page's CSRF
token), and count what was stored so a test can say "nothing half-stored".
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis
from redis.asyncio import Redis

from ava_bot.app import create_app
from ava_bot.queueing import slot_key
from billing.models import BillingEvent
from core.models import ChannelIdentity, Direction, Message, MessageStatus, User
from imaging.providers.placeholder import PlaceholderImageProvider
from tests.billing.conftest import MONTHLY, plans_toml
from tests.fakes.entitlements import Gate
from tests.fakes.openai import FakeOpenAI
from tests.fakes.stripe import API_KEY, PRICE_ID, WEBHOOK_SECRET, FakeStripe
from tests.fakes.stripe import sign as stripe_sign
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.whatsapp import PHONE_ID, FakeGraph
from tests.fakes.whatsapp import sign as whatsapp_sign
from tests.portal.conftest import PASSWORD, csrf_of

TELEGRAM_SECRET = "telegram-webhook-secret_42"
WHATSAPP_SECRET = "whatsapp-app-secret-for-tests"
WHATSAPP_VERIFY = "verify-me"
BASE_URL = "http://ava.example.test"  # http: the test client keeps no Secure cookies


@dataclass
class Stack:
    """The running application, its fakes and the helpers that post to it."""

    client: TestClient
    llm: FakeOpenAI
    telegram: FakeTelegram
    graph: FakeGraph
    stripe: FakeStripe
    gate: Gate

    async def telegram_update(self, body: bytes) -> ClientResponse:
        """POST a Telegram update body with the right secret-token header."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}
        return await self.client.post("/webhooks/telegram", data=body, headers=headers)

    async def whatsapp_update(self, body: bytes) -> ClientResponse:
        """POST a WhatsApp Cloud API body signed with the app secret."""
        headers = {"X-Hub-Signature-256": whatsapp_sign(body, WHATSAPP_SECRET), "Content-Type": "application/json"}
        return await self.client.post("/webhooks/whatsapp", data=body, headers=headers)

    async def stripe_event(self, body: bytes) -> ClientResponse:
        """POST a Stripe event body signed with the webhook secret."""
        headers = {"Stripe-Signature": stripe_sign(body, WEBHOOK_SECRET), "Content-Type": "application/json"}
        return await self.client.post("/billing/webhook", data=body, headers=headers)

    async def token(self, path: str = "/") -> str:
        """Load a page (starting a session) and return its CSRF token."""
        response = await self.client.get(path)
        assert response.status == 200, (path, response.status)
        return csrf_of(await response.text())

    async def sign_up(self, email: str = "alice@example.com") -> int:
        """Sign up through the form (the client is signed in afterwards) and return the user id."""
        token = await self.token("/signup")
        data = {"email": email, "password": PASSWORD, "csrf_token": token}
        response = await self.client.post("/signup", data=data, allow_redirects=False)
        assert response.status == 303, await response.text()
        return (await User.get(email=email)).id

    def forget_cookies(self) -> None:
        """Act as a browser without any session."""
        self.client.session.cookie_jar.clear()


def stack_settings(
    llm: FakeOpenAI, telegram: FakeTelegram, graph: FakeGraph, stripe: FakeStripe, plans: Path
) -> dict[str, Any]:
    """Settings values of a deployment with every channel and Stripe at the fakes."""
    return {
        "llm_api_key": "sk-test",
        "llm_base_url": llm.base_url,
        "public_base_url": BASE_URL,
        "telegram_bot_token": TOKEN,
        "telegram_webhook_secret": TELEGRAM_SECRET,
        "telegram_api_base_url": telegram.url,
        "whatsapp_enabled": True,
        "whatsapp_phone_id": PHONE_ID,
        "whatsapp_token": "wa-token",
        "whatsapp_app_secret": WHATSAPP_SECRET,
        "whatsapp_verify_token": WHATSAPP_VERIFY,
        "whatsapp_api_base_url": graph.url,
        "stripe_secret_key": API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": stripe.url,
        "stripe_price_id": PRICE_ID,
        "plans_file": plans,
        "photo_backoff_seconds": 0.05,
        "delivery_backoff_seconds": 0.05,
    }


@contextlib.asynccontextmanager
async def serve_stack(
    make_settings: Any, redis: ArqRedis, tmp_path: Path, *, run_worker: bool = False, **overrides: Any
) -> AsyncIterator[Stack]:
    """The real application with all channels and Stripe on their fakes, served on a local port."""
    plans = tmp_path / "plans.toml"
    plans.write_text(plans_toml(MONTHLY), encoding="utf-8")
    async with FakeOpenAI() as llm, FakeTelegram() as telegram, FakeGraph() as graph, FakeStripe() as stripe:
        settings = make_settings(**(stack_settings(llm, telegram, graph, stripe, plans) | overrides))
        gate = Gate()
        app = await create_app(
            settings,
            redis=redis,
            own_database=False,
            run_worker=run_worker,
            entitlements=gate,
            image_provider=PlaceholderImageProvider(),
        )
        client = TestClient(TestServer(app))
        await client.start_server()
        try:
            yield Stack(client, llm, telegram, graph, stripe, gate)
        finally:
            await client.close()


async def last_message_id() -> int:
    """The newest message row's id (0 when none)."""
    last = await Message.all().order_by("-id").first()
    return last.id if last is not None else 0


async def half_records(redis: Redis | None = None, *, since: int = 0) -> list[str]:
    """What is stored half: users without a way in, inbound rows of nobody or (with `redis`, no worker running)
    pending rows newer than `since` without their drain scheduled, billing events without an id."""
    found: list[str] = []
    for user in await User.all():
        has_identity = await ChannelIdentity.exists(user_id=user.id)
        if not has_identity and not (user.email and user.password_hash):
            found.append(f"user {user.id} has neither a channel identity nor email and password")
        if user.email and not user.password_hash:
            found.append(f"user {user.id} has an email without a password")
    for row in await Message.filter(direction=Direction.INBOUND):
        if row.user_id is None:
            found.append(f"inbound {row.id} belongs to nobody")
        if row.status not in {MessageStatus.PENDING, MessageStatus.DONE, MessageStatus.FAILED, MessageStatus.LIMITED}:
            found.append(f"inbound {row.id} is {row.status}")
        pending = row.status == MessageStatus.PENDING and row.id > since
        if redis is not None and pending and not await redis.exists(slot_key(row.user_id)):
            found.append(f"inbound {row.id} is pending without a drain scheduled")
    for event in await BillingEvent.all():
        if not event.event_id:
            found.append(f"billing event {event.id} has no event id")
    return found
