"""Every webhook kind delivered three times CONCURRENTLY, end to end through the real app and its worker.

Telegram, WhatsApp and Stripe all redeliver (a slow answer, a lost 200, a retry schedule). Three identical,
correctly signed requests sent at once (`asyncio.gather`) must leave one inbound row or one billing event, run
one turn (one LLM call) and send one reply (one Bot API / Graph API message, one billing notice delivered).
The worker runs in the app's process (`create_app(run_worker=True)`), on real PostgreSQL and Redis.

Related, narrower tests: storage only, with a recording queue (tests/channels/test_telegram_webhook.py
`test_text_update_is_stored_once_when_delivered_three_times_at_once`, tests/channels/test_whatsapp_webhook.py
`test_concurrent_redeliveries_store_once`); the Stripe event applied once without delivery
(tests/billing/test_webhook.py `test_the_same_event_delivered_concurrently_has_one_effect`); and first messages
redelivered inside the journeys (tests/ava_bot/test_telegram_journey.py, test_whatsapp_journey.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.queueing import slot_key
from billing.models import BillingEvent, Subscription
from core.models import Direction, Message, MessageStatus
from tests.billing.conftest import checkout, session_id_of
from tests.fakes.stripe import event_body
from tests.reliability.bad_app import Stack, serve_stack
from tests.reliability.fuzz_strategies import PAYLOADS
from tests.support import eventually, ready_user


@pytest.fixture
async def stack(db: str, redis: ArqRedis, make_settings: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    """The whole application with its worker, every channel and Stripe on fakes, the gate open."""
    async with serve_stack(make_settings, redis, tmp_path, run_worker=True) as running:
        running.gate.open = True
        yield running


def recorded(channel: str, name: str) -> bytes:
    """A recorded webhook body."""
    return (PAYLOADS / channel / f"{name}.json").read_bytes()


async def settled(redis: ArqRedis, user_id: int) -> None:
    """Wait until the user's work is done: no pending row of theirs and no drain holding their slot."""

    async def idle() -> bool:
        pending = await Message.exists(user_id=user_id, status=MessageStatus.PENDING)
        return not pending and not await redis.exists(slot_key(user_id))

    await eventually(idle, timeout=20, what=f"user {user_id}'s turns and deliveries to finish")


async def test_a_telegram_update_delivered_three_times_at_once_is_one_turn_and_one_reply(
    stack: Stack, redis: ArqRedis
) -> None:
    """Three concurrent deliveries of one update: all 200, one inbound row, one LLM call, one message sent."""
    user = await ready_user("6103344817", channel="telegram")
    body = recorded("telegram", "private_text")
    answers = await asyncio.gather(*(stack.telegram_update(body) for _ in range(3)))
    assert [a.status for a in answers] == [200, 200, 200]
    await eventually(lambda: _sent_telegram(stack, 1), what="Ava's answer on Telegram")
    await settled(redis, user.id)
    [row] = await Message.filter(direction=Direction.INBOUND, user_id=user.id)
    assert (row.external_message_id, row.status) == ("message:6103344817:57", MessageStatus.DONE)
    assert len(stack.llm.completions()) == 1
    [sent] = stack.telegram.calls_to("sendMessage")
    assert sent.params["text"] == "echo: Hi Ava, how was your day?"
    assert await Message.filter(direction=Direction.OUTBOUND, user_id=user.id, status=MessageStatus.SENT).count() == 1


async def test_a_whatsapp_message_delivered_three_times_at_once_is_one_turn_and_one_reply(
    stack: Stack, redis: ArqRedis
) -> None:
    """Three concurrent deliveries of one signed body: all 200, one inbound row, one LLM call, one message sent."""
    user = await ready_user("16505551234", channel="whatsapp")
    body = recorded("whatsapp", "text")
    answers = await asyncio.gather(*(stack.whatsapp_update(body) for _ in range(3)))
    assert [a.status for a in answers] == [200, 200, 200]

    async def answered() -> bool:
        return any(m.kind == "text" for m in stack.graph.sent)

    await eventually(answered, what="Ava's answer on WhatsApp")
    await settled(redis, user.id)
    [row] = await Message.filter(direction=Direction.INBOUND, user_id=user.id)
    assert row.status == MessageStatus.DONE and row.text == "Does it come in another color?"
    assert len(stack.llm.completions()) == 1
    assert [m.kind for m in stack.graph.sent] == ["text"]
    assert await Message.filter(direction=Direction.OUTBOUND, user_id=user.id, status=MessageStatus.SENT).count() == 1


async def test_a_stripe_event_delivered_three_times_at_once_is_applied_once_and_told_once(
    stack: Stack, redis: ArqRedis
) -> None:
    """Three concurrent deliveries of one signed event: one billing event, an active subscription, and one notice
    delivered to the user's chat by the worker."""
    user_id = await stack.sign_up("payer@example.com")
    response = await checkout(stack.client)
    _, sub = stack.stripe.complete_checkout(session_id_of(response.headers["Location"]))
    body = event_body("customer.subscription.created", sub)
    answers = await asyncio.gather(*(stack.stripe_event(body) for _ in range(3)))
    assert [a.status for a in answers] == [200, 200, 200]
    assert sorted([(await a.json()).get("duplicate", False) for a in answers]) == [False, True, True]

    async def told() -> bool:
        return await Message.exists(user_id=user_id, external_message_id__startswith="billing:", status="sent")

    await eventually(told, what="the subscription notice delivered")
    await settled(redis, user_id)
    assert await BillingEvent.filter(event_id=json.loads(body)["id"]).count() == 1
    assert (await Subscription.get(user_id=user_id)).status == "active"
    notices = await Message.filter(user_id=user_id, external_message_id__startswith="billing:")
    assert [(n.status, "subscription is active" in (n.text or "")) for n in notices] == [(MessageStatus.SENT, True)]


async def _sent_telegram(stack: Stack, count: int) -> bool:
    return len(stack.telegram.calls_to("sendMessage")) >= count
