"""PostgreSQL unreachable for a while (a TCP proxy the test cuts between the processes and the server): `/ready`
says 503, every webhook kind answers 503 so the platform delivers again (never 200 for an update not stored), and
once the database is back the same processes recover: the redelivered updates are stored and applied once, and
new messages are answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import httpx
import pytest

from billing.models import BillingEvent, Subscription
from core.models import Direction, Message
from tests.fakes.stripe import event_body
from tests.reliability.conftest import Fakes, with_address
from tests.reliability.drive import (
    TelegramChat,
    all_answered,
    entitled_user,
    post_stripe,
    post_whatsapp,
    telegram_update,
    whatsapp_text,
)
from tests.reliability.faults import (
    FAST_RECOVERY,
    TcpProxy,
    assert_each_reply_sent_once,
    assert_inbound_done_once,
)
from tests.reliability.processes import AvaStack
from tests.support import eventually, ready_user

CHAT = 4400
WA_ID = "16505554400"


@pytest.fixture
async def db_proxy(ava_stack: AvaStack) -> AsyncIterator[TcpProxy]:
    """A TCP proxy to the test PostgreSQL server; the stack's DATABASE_URL goes through it."""
    target = urlsplit(ava_stack.env["DATABASE_URL"])
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5432).start()
    ava_stack.env["DATABASE_URL"] = with_address(ava_stack.env["DATABASE_URL"], "127.0.0.1", proxy.port)
    try:
        yield proxy
    finally:
        await proxy.stop()


async def _ready(url: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            return (await client.get(f"{url}/ready")).status_code
        except httpx.TransportError:
            return 0


async def _until_200(deliver: Callable[[], Awaitable[int]], what: str) -> None:
    """Redeliver like a platform does until the webhook acknowledges (200)."""

    async def acknowledged() -> bool:
        return await deliver() == 200

    await eventually(acknowledged, timeout=30, what=f"{what} acknowledged after the outage")


@pytest.mark.timeout(120)
async def test_database_outage_refuses_then_recovers_without_restart(
    ava_stack: AvaStack, fakes: Fakes, db_proxy: TcpProxy
) -> None:
    """Database cut: /ready and all webhooks 503, nothing half-stored; restored: redeliveries applied once."""
    ava_stack.env.update(FAST_RECOVERY)
    telegram_user = await entitled_user(str(CHAT))
    whatsapp_user = await entitled_user(WA_ID, channel="whatsapp")
    payer = await ready_user("stripe-payer", channel="web")
    (web,), (worker,) = await ava_stack.start(webs=1, workers=1)
    pids = (web.pid, worker.pid)
    chat = TelegramChat(web.url, fakes.telegram_webhook_secret, CHAT)
    assert await chat.say("before the outage") == 200
    await eventually(lambda: all_answered(telegram_user.id, 1), timeout=20, what="the first reply")

    db_proxy.cut()

    async def not_ready() -> bool:
        return await _ready(web.url) == 503

    await eventually(not_ready, timeout=15, what="/ready 503")
    update = telegram_update(CHAT, "during the outage")
    wa_body = whatsapp_text(WA_ID, "hello from WhatsApp")
    sub = fakes.stripe.add_subscription(user_id=payer.id)
    stripe_body = event_body("customer.subscription.created", sub)
    statuses = (
        await chat.post(update),
        await post_whatsapp(web.url, wa_body, fakes.whatsapp_app_secret),
        await post_stripe(web.url, stripe_body, fakes.stripe_webhook_secret),
    )
    assert statuses == (503, 503, 503), "a webhook answered something other than 503 with the database down"
    await asyncio.sleep(3)  # the outage lasts a while: the worker's sweeps and drains fail meanwhile
    assert await _ready(web.url) == 503
    assert await Message.filter(direction=Direction.INBOUND).count() == 1  # nothing stored while cut

    db_proxy.restore()
    await _until_200(lambda: chat.post(update), "the Telegram update")
    await _until_200(lambda: post_whatsapp(web.url, wa_body, fakes.whatsapp_app_secret), "the WhatsApp message")
    await _until_200(lambda: post_stripe(web.url, stripe_body, fakes.stripe_webhook_secret), "the Stripe event")
    # Platforms may deliver once more after a slow acknowledgement: no second effect.
    assert await chat.post(update) == 200
    assert await post_whatsapp(web.url, wa_body, fakes.whatsapp_app_secret) == 200
    assert await post_stripe(web.url, stripe_body, fakes.stripe_webhook_secret) == 200
    assert await _ready(web.url) == 200

    assert await chat.say("after the outage") == 200
    await eventually(lambda: all_answered(telegram_user.id, 3), timeout=30, what="Telegram answered")
    await eventually(lambda: all_answered(whatsapp_user.id, 1), timeout=30, what="WhatsApp answered")
    await assert_inbound_done_once(telegram_user.id, 3)
    rows = await assert_each_reply_sent_once(telegram_user.id, fakes.telegram, CHAT)
    assert [r.text for r in rows] == [
        "echo: before the outage",
        "echo: during the outage",
        "echo: after the outage",
    ]
    await assert_inbound_done_once(whatsapp_user.id, 1)
    assert [m.content.get("body") for m in fakes.graph.sent if m.to == WA_ID] == ["echo: hello from WhatsApp"]
    assert await BillingEvent.filter(event_id=_event_id(stripe_body)).count() == 1
    subscription = await Subscription.get(user_id=payer.id)
    assert subscription.stripe_subscription_id == sub["id"]
    assert (web.pid, worker.pid) == pids and web.running and worker.running  # recovered without a restart
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()


def _event_id(body: bytes) -> str:
    return str(json.loads(body)["id"])
