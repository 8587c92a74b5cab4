"""Property-based fuzzing of every webhook body through the whole application, correctly signed each time.

Telegram (`/webhooks/telegram`, the secret-token header), WhatsApp (`/webhooks/whatsapp`, signed with the app
secret) and Stripe (`/billing/webhook`, signed with the webhook secret) get their recorded payloads mutated,
arbitrary JSON, raw bytes and deep nesting. The property: never a 5xx, and nothing stored half (an inbound row is
always owned and, while pending, has its drain scheduled; no user without a way in). Deterministic
(`derandomize=True`) and bounded so each runs in seconds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.reliability.bad_app import Stack, half_records, last_message_id, serve_stack
from tests.reliability.fuzz_strategies import PAYLOADS, bodies, load_payloads

FUZZ = settings(
    derandomize=True,
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture
async def stack(db: str, redis: ArqRedis, make_settings: Any, tmp_path: Path) -> AsyncIterator[Stack]:
    """The whole application, every channel and Stripe on fakes (no worker: pending rows keep their drain slot)."""
    async with serve_stack(make_settings, redis, tmp_path, inbound_per_user_per_minute=10_000) as running:
        yield running


async def _check(redis: ArqRedis, since: int, status: int, body: bytes) -> None:
    """Not a 5xx, and nothing half-stored (the drain of each row this body stored is scheduled)."""
    assert status < 500, (status, body[:300])
    assert await half_records(redis, since=since) == [], body[:300]


def _recorded_with(channel: str, name: str, path: tuple[str | int, ...], value: Any) -> bytes:
    """The recorded payload `name` of `channel` with the node at `path` replaced by `value`."""
    body = json.loads((PAYLOADS / channel / f"{name}.json").read_text(encoding="utf-8"))
    node = body
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return json.dumps(body).encode()


@FUZZ
@given(body=bodies(load_payloads("telegram")))
# A NUL (PostgreSQL text cannot hold it) in a text, a button's data and a callback id: each was a 503 forever.
@example(body=_recorded_with("telegram", "private_text", ("message", "text"), "a\u0000b"))
@example(body=_recorded_with("telegram", "private_callback", ("callback_query", "data"), "\ud800\u0000"))
@example(body=_recorded_with("telegram", "private_callback", ("callback_query", "id"), "42\u0000"))
@example(body=_recorded_with("telegram", "private_text", ("message", "message_id"), 2**70))
async def test_telegram_webhook_never_answers_5xx(stack: Stack, redis: ArqRedis, body: bytes) -> None:
    """Any body with the right secret: 2xx or 4xx, and every stored row whole."""
    since = await last_message_id()
    response = await stack.telegram_update(body)
    await _check(redis, since, response.status, body)


@FUZZ
@given(body=bodies(load_payloads("whatsapp")))
# Found by this test: a message type that is a list was unhashable, a 500 after the message was stored.
@example(
    body=_recorded_with(
        "whatsapp", "text", ("entry", 0, "changes", 0, "value", "messages", 0, "type"), {"nested": ["text"]}
    )
)
async def test_whatsapp_webhook_never_answers_5xx(stack: Stack, redis: ArqRedis, body: bytes) -> None:
    """Any correctly signed body: 2xx or 4xx, and every stored row whole."""
    since = await last_message_id()
    response = await stack.whatsapp_update(body)
    await _check(redis, since, response.status, body)


@FUZZ
@given(body=bodies(load_payloads("stripe")))
# Found by this test: a subscription whose items are not a list was a TypeError, a 500 Stripe retried for days.
@example(
    body=_recorded_with("stripe", "customer_subscription_updated", ("data", "object", "items", "data"), -8769676960)
)
@example(body=_recorded_with("stripe", "customer_subscription_updated", ("id",), "evt_\u0000"))
@example(  # found by this test: stripe's event builder raised decimal.InvalidOperation, a 500
    body=_recorded_with(
        "stripe",
        "customer_subscription_updated",
        ("data", "object", "items", "data", 0, "price", "unit_amount_decimal"),
        [{"id": []}, {"text": "x"}],
    )
)
@example(body=_recorded_with("stripe", "invoice_paid", ("created",), 2**64))
@example(body=_recorded_with("stripe", "checkout_session_completed", ("type",), "x" * 300))
async def test_stripe_webhook_never_answers_5xx(stack: Stack, redis: ArqRedis, body: bytes) -> None:
    """Any correctly signed body: 2xx or 4xx (Stripe is up: its fake answers), and no half-applied event."""
    since = await last_message_id()
    response = await stack.stripe_event(body)
    await _check(redis, since, response.status, body)


@settings(FUZZ, max_examples=20)
@given(kind=st.sampled_from(["telegram", "whatsapp", "stripe"]), depth=st.integers(min_value=900, max_value=200_000))
async def test_deep_nesting_is_refused_on_every_webhook(stack: Stack, redis: ArqRedis, kind: str, depth: int) -> None:
    """Deeply nested JSON, signed, answers 4xx on every webhook."""
    body = b"[" * depth + b"]" * depth
    post = {"telegram": stack.telegram_update, "whatsapp": stack.whatsapp_update, "stripe": stack.stripe_event}[kind]
    response = await post(body)
    assert 400 <= response.status < 500, (kind, depth, response.status)
