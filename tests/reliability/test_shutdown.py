"""Graceful shutdown of the real processes on SIGTERM (what compose and every orchestrator send):

* a worker lets the turn it is running finish within SHUTDOWN_GRACE_SECONDS, takes no new job, and exits 0;
* a turn longer than the grace is cancelled and left pending, and the next worker answers it, exactly once;
* a web process finishes the request it is serving (a Stripe webhook waiting on Stripe) before it exits 0.
"""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from billing.models import BillingEvent, Subscription, SubscriptionStatus
from tests.fakes.stripe import event_body, invoice_object
from tests.reliability.conftest import Fakes
from tests.reliability.drive import TelegramChat, all_answered, entitled_user, inbound, post_stripe
from tests.reliability.faults import (
    FAST_RECOVERY,
    assert_each_reply_sent_once,
    assert_inbound_done_once,
    llm_busy,
    telegram_texts,
)
from tests.reliability.processes import AvaStack
from tests.support import eventually, ready_user

CHAT = 4600


@pytest.mark.timeout(90)
async def test_worker_finishes_its_running_turn_on_sigterm(ava_stack: AvaStack, fakes: Fakes) -> None:
    """SIGTERM during a 3 s turn: the reply is stored and sent once, the worker exits 0 before the grace ends."""
    ava_stack.env.update(FAST_RECOVERY, SHUTDOWN_GRACE_SECONDS="15")
    user = await entitled_user(str(CHAT))
    (web,), (worker,) = await ava_stack.start(webs=1, workers=1)
    chat = TelegramChat(web.url, fakes.telegram_webhook_secret, CHAT)
    fakes.llm.say("worth the wait", delay=3)
    assert await chat.say("take your time") == 200
    await llm_busy(fakes.llm)
    assert await worker.stop(timeout=14) == 0  # returns once the turn is done, well inside the grace period
    await assert_inbound_done_once(user.id, 1)
    assert "Traceback" not in worker.output

    await ava_stack.start_worker()  # the reply may still wait for delivery: the next worker sends it
    await eventually(lambda: all_answered(user.id, 1), timeout=20, what="the reply delivered")
    rows = await assert_each_reply_sent_once(user.id, fakes.telegram, CHAT)
    assert [r.text for r in rows] == ["worth the wait"]
    assert len(fakes.llm.completions()) == 1  # never run twice
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()


@pytest.mark.timeout(90)
async def test_turn_longer_than_the_grace_is_left_for_the_next_worker(ava_stack: AvaStack, fakes: Fakes) -> None:
    """A turn still at the LLM when the grace ends is cancelled, stays pending, and the next worker answers it once."""
    ava_stack.env.update(FAST_RECOVERY, SHUTDOWN_GRACE_SECONDS="1")
    user = await entitled_user(str(CHAT))
    (web,), (worker,) = await ava_stack.start(webs=1, workers=1)
    chat = TelegramChat(web.url, fakes.telegram_webhook_secret, CHAT)
    fakes.llm.say("the answer nobody waits for", delay=6)
    assert await chat.say("a long question") == 200
    await llm_busy(fakes.llm)
    assert await worker.stop(timeout=10) == 0
    assert [m.status for m in await inbound(user.id)] == ["pending"]  # not lost, not half-done

    await ava_stack.start_worker()
    await eventually(lambda: all_answered(user.id, 1), timeout=30, what="the turn finished by the next worker")
    await assert_inbound_done_once(user.id, 1)
    assert telegram_texts(fakes.telegram, CHAT) == ["echo: a long question"]
    await assert_each_reply_sent_once(user.id, fakes.telegram, CHAT)
    await ava_stack.stop_all()
    ava_stack.assert_no_secrets()


@pytest.mark.timeout(90)
async def test_web_finishes_the_request_in_flight_on_sigterm(ava_stack: AvaStack, fakes: Fakes) -> None:
    """SIGTERM while a Stripe webhook waits on Stripe: it is answered 200 and applied once, then the web exits 0."""
    ava_stack.env.update(FAST_RECOVERY, SHUTDOWN_GRACE_SECONDS="15")
    payer = await ready_user("payer", channel="web")
    sub = fakes.stripe.add_subscription(user_id=payer.id)
    body = event_body("invoice.paid", invoice_object(sub, billing_reason="subscription_create"))
    web = await ava_stack.start_web()
    fakes.stripe.delay = 3.0  # the webhook fetches the subscription from Stripe: the request stays in flight
    delivery = asyncio.create_task(post_stripe(web.url, body, fakes.stripe_webhook_secret))

    async def at_stripe() -> bool:
        return bool(fakes.stripe.calls)

    await eventually(at_stripe, timeout=10, what="the webhook calling Stripe")
    web.signal(signal.SIGTERM)
    assert await delivery == 200
    assert await web.wait_exit(14) == 0
    assert await BillingEvent.filter(event_id=json.loads(body)["id"]).count() == 1
    assert (await Subscription.get(user_id=payer.id)).status == SubscriptionStatus.ACTIVE
    assert "Traceback" not in web.output
    ava_stack.assert_no_secrets()
