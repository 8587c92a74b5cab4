"""`POST /billing/webhook`: Stripe events, verified, applied once, in any order.

1. The signature is checked on the raw body FIRST (`stripe.Webhook.construct_event`): a bad or missing
   signature, or a body that is not an event, answers 400 and nothing is stored.
2. An event id seen before answers 200 at once. Types Ava does not handle are recorded and answer 200.
3. Network first: the subscription object comes from the event when it is newer than what the row holds,
   else (stale, or an invoice or checkout event, which carry no subscription state) from Stripe.
4. One short transaction inserts the `BillingEvent` (unique event id: of concurrent deliveries one commits,
   the others find the id taken and answer 200), applies the state to the locked row and stores the notice
   for the user's chat; delivery is scheduled after the commit.

A Stripe failure answers 500 and a database failure 503, with nothing stored, so Stripe delivers the event
again later.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; only its exception classes are used
import stripe
from aiohttp import web
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing.errors import StripeObjectMissing, StripeUnavailable
from billing.models import BillingEvent, OpenCheckout, Subscription, SubscriptionStatus
from billing.stripe_api import StripeApi
from billing.subscriptions import (
    FETCH_STAMP_MARGIN,
    PAYMENT_FAILED_STATUSES,
    Change,
    StripeSubscription,
    apply_stripe_subscription,
    find_user,
    metadata_user_id,
    parse_subscription,
    parse_user_id,
)
from core.inbox import storable
from core.messages import LinkReply, Reply, TextReply
from core.notices import notify_user

logger = logging.getLogger(__name__)

SUBSCRIPTION_EVENTS = frozenset(
    {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"}
)
HANDLED_EVENTS = SUBSCRIPTION_EVENTS | {"checkout.session.completed", "invoice.paid", "invoice.payment_failed"}
MAX_BIGINT = 2**63 - 1

Schedule = Callable[[int], Awaitable[object]]

#: The database is unreachable or went away mid-request (Tortoise's DBConnectionError is an OSError).
DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


class InvalidEvent(Exception):
    """The request is not a genuine Stripe event (signature or body)."""


@dataclass(frozen=True, slots=True)
class Target:
    """The subscription state one event leads to, and whose it is."""

    sub: StripeSubscription
    user_id: int
    stamp: int
    fetched: bool


class StripeWebhook:
    """Handles Stripe's webhook deliveries; `schedule(user_id)` delivers a stored notice."""

    def __init__(
        self,
        *,
        secret: str,
        stripe_api: StripeApi,
        schedule: Schedule,
        public_base_url: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the Stripe webhook secret must not be empty")
        self._secret = secret
        self._stripe = stripe_api
        self._schedule = schedule
        self._base = public_base_url.rstrip("/")
        self._clock = clock

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler of `POST /billing/webhook`."""
        raw = await request.read()
        try:
            event = self.verify(raw, request.headers.get("Stripe-Signature"))
        except InvalidEvent as exc:
            logger.warning("Stripe webhook refused: %s", exc)
            return web.json_response({"error": "invalid Stripe event"}, status=400)
        try:
            return await self._receive(event)
        except DATABASE_DOWN as exc:
            # The event row and its effect commit together, so nothing is half-applied: Stripe delivers it again.
            logger.warning("Stripe event %s not stored, database unavailable: %s", event["id"], type(exc).__name__)
            return web.json_response({"error": "database unavailable, deliver again later"}, status=503)

    async def _receive(self, event: dict[str, Any]) -> web.Response:
        """Record a verified event and apply it, once."""
        event_id, event_type = str(event["id"]), str(event["type"])
        if await BillingEvent.exists(event_id=event_id):
            return web.json_response({"received": True, "duplicate": True})
        if event_type not in HANDLED_EVENTS:
            await _record_ignored(event)
            return web.json_response({"received": True, "ignored": True})
        try:
            target = await self._target(event_type, event["data"]["object"], int(event["created"]))
        except StripeUnavailable:
            return web.json_response({"error": "Stripe unavailable, deliver again later"}, status=500)
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError) as exc:
            # Signed but not shaped as Stripe documents it: nothing stored; Stripe redelivers it (after a fix).
            logger.error("Stripe %s event %s could not be read: %r", event_type, event_id, exc)
            return web.json_response({"error": "event object not understood"}, status=400)
        try:
            notified = await self._apply(event, target)
        except IntegrityError:
            if await BillingEvent.exists(event_id=event_id):  # a concurrent delivery of the same event won
                return web.json_response({"received": True, "duplicate": True})
            raise
        if notified is not None:
            try:
                await self._schedule(notified)
            except Exception:  # the notice is stored; the delivery sweeper sends it later
                logger.warning("delivery of billing notice for user %s not scheduled", notified, exc_info=True)
        return web.json_response({"received": True})

    def verify(self, raw: bytes, header: str | None) -> dict[str, Any]:
        """The event as a dict when `header` is Stripe's valid signature of `raw`, else `InvalidEvent`."""
        try:
            event = stripe.Webhook.construct_event(raw, header, self._secret)
            data: dict[str, Any] = event.to_dict()
        except stripe.SignatureVerificationError:
            raise InvalidEvent("bad or missing signature") from None
        except (ValueError, TypeError, KeyError, AttributeError, ArithmeticError):  # not JSON, not an object, or
            # fields stripe cannot build (a `*_decimal` that is no number raises decimal.InvalidOperation)
            raise InvalidEvent("body is not a Stripe event") from None
        obj = data.get("data", {}).get("object") if isinstance(data.get("data"), Mapping) else None
        if not data.get("id") or not data.get("type") or not isinstance(obj, Mapping):
            raise InvalidEvent("body is not a Stripe event")
        if not isinstance(data.get("created"), int) or not 0 <= data["created"] <= MAX_BIGINT:
            raise InvalidEvent("event without a creation time")
        for name, longest in (("id", 255), ("type", 128)):  # what the BillingEvent columns hold
            value = data[name]
            if not isinstance(value, str) or len(value) > longest or not storable(value):
                raise InvalidEvent(f"event {name} is not a short text")
        return data

    async def _target(self, event_type: str, obj: Mapping[str, Any], created: int) -> Target | None:
        """The subscription state the event leads to (fetched from Stripe when needed); None: nothing to apply."""
        hint: int | None = None
        if event_type in SUBSCRIPTION_EVENTS:
            sub = parse_subscription(obj)
            user_id = await find_user(sub)
            row = await Subscription.get_or_none(user_id=user_id) if user_id is not None else None
            if user_id is not None and (row is None or created > row.stripe_event_at):
                return Target(sub, user_id, created, fetched=False)
            sub_id: str | None = sub.id
        elif event_type == "checkout.session.completed":
            if obj.get("mode") != "subscription":
                return None
            sub_id = _id_of(obj.get("subscription"))
            hint = parse_user_id(obj.get("client_reference_id")) or metadata_user_id(obj)
        else:  # invoice.*: at the current API version the subscription is under parent.subscription_details
            details = (obj.get("parent") or {}).get("subscription_details") or {}
            sub_id = _id_of(details.get("subscription") or obj.get("subscription"))
            hint = metadata_user_id(details)
        if sub_id is None:
            return None
        stamp = int(self._clock()) + FETCH_STAMP_MARGIN
        try:
            fresh = parse_subscription(await self._stripe.retrieve_subscription(sub_id))
        except StripeObjectMissing:
            if event_type != "customer.subscription.deleted":
                logger.warning("%s names subscription %s, which Stripe does not have: ignored", event_type, sub_id)
                return None
            fresh = parse_subscription(obj)  # a deleted subscription is final: the event's object is the truth
        user_id = await find_user(fresh, hint)
        if user_id is None:
            logger.warning("%s for subscription %s: no Ava user found, ignored", event_type, sub_id)
            return None
        return Target(fresh, user_id, stamp, fetched=True)

    async def _apply(self, event: Mapping[str, Any], target: Target | None) -> int | None:
        """Record the event and apply its state in one transaction; the user id when a notice was stored."""
        event_id = str(event["id"])
        now = datetime.fromtimestamp(self._clock(), UTC)
        async with in_transaction():
            await BillingEvent.create(
                event_id=event_id, type=str(event["type"]), created=int(event["created"]), processed_at=now
            )
            if event["type"] == "checkout.session.completed":  # paid: no longer the user's open checkout
                await OpenCheckout.filter(session_id=str(event["data"]["object"].get("id"))).delete()
            if target is None:
                return None
            change = await apply_stripe_subscription(
                target.sub, user_id=target.user_id, stamp=target.stamp, fetched=target.fetched, now=now
            )
            replies = notices_for(str(event["type"]), event["data"]["object"], change, self._base)
            if change is None or not replies:
                return None
            ref = await notify_user(change.user_id, replies, key=f"billing:{event_id}")
            return change.user_id if ref is not None else None


def notices_for(event_type: str, obj: Mapping[str, Any], change: Change | None, base_url: str) -> list[Reply]:
    """What to tell the user about `change`: started, payment failed, ended, or a new period began."""
    if change is None:
        return []
    before, after = change.before, change.after
    if after.entitled and not before.entitled:
        if before.status in PAYMENT_FAILED_STATUSES:
            return [TextReply("Your payment went through, thank you! We can talk again.")]
        name = change.plan.name if change.plan is not None else "Your"
        return [TextReply(f"{name} subscription is active. Welcome! I'm all yours: write me any time.")]
    if after.status in PAYMENT_FAILED_STATUSES and before.status not in PAYMENT_FAILED_STATUSES:
        text = (
            "Your renewal payment didn't go through, so our chats are paused until it's paid. "
            "Please check your payment method; Stripe will try again."
        )
        return [LinkReply(text, "Your account", f"{base_url}/account")]
    if after.status == SubscriptionStatus.CANCELED and before.status not in (None, SubscriptionStatus.CANCELED):
        text = "Your subscription has ended. I'd love to keep talking: you can subscribe again any time."
        return [LinkReply(text, "Subscribe", f"{base_url}/subscribe")]
    if event_type == "invoice.paid" and obj.get("billing_reason") == "subscription_cycle" and after.entitled:
        photos = change.plan.photos_per_period if change.plan is not None else 0
        count = f": {photos} photos for this period" if photos else ""
        return [TextReply(f"Your subscription renewed and your photos renewed too{count}.")]
    return []


async def _record_ignored(event: Mapping[str, Any]) -> None:
    """Keep an event Ava does not handle (once), so a redelivery is answered from the table."""
    with contextlib.suppress(IntegrityError):  # a concurrent delivery recorded it
        await BillingEvent.create(
            event_id=str(event["id"]),
            type=str(event["type"])[:128],
            created=int(event["created"]),
            processed_at=datetime.now(UTC),
        )


def _id_of(value: object) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def setup_stripe_webhook(app: web.Application, webhook: StripeWebhook) -> None:
    """Register `POST /billing/webhook` (no session, no CSRF: Stripe's signature authenticates it)."""
    app.router.add_post("/billing/webhook", webhook.handle)
