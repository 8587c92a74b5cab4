"""`BillingService`: the portal's `Billing` port (plans, checkout, subscription, payment settings, cancelling).

Plans are read from the `Plan` table (synced from the plans file at every start). Checkout creates a Stripe
Checkout Session in subscription mode with the user's id on the session and on the subscription, reusing the
user's Stripe customer when Ava knows it; it refuses while the user's Stripe subscription is not over (a
failed renewal Stripe keeps retrying would otherwise be billed next to the new one): such a user fixes the
payment in Stripe's Customer Portal (`manage_url`). Stripe calls never run inside a database transaction.
Without Stripe (development only) `activate_development` grants a plan for one period instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing.errors import (
    BillingUnavailable,
    CheckoutAlreadyPaid,
    CheckoutConflict,
    DevelopmentOnly,
    NoStripeCustomer,
    NoSubscription,
    SubscriptionStillOpen,
    UnknownPlan,
)
from billing.models import OpenCheckout, Plan, Subscription, SubscriptionStatus
from billing.plans import PlanConfig, SyncResult, sync_plans
from billing.subscriptions import (
    ENDED_STATUSES,
    FETCH_STAMP_MARGIN,
    PAYMENT_DUE_STATUSES,
    add_interval,
    is_entitled,
    is_open_in_stripe,
    parse_subscription,
)
from core.errors import ConfigError
from core.models import User

if TYPE_CHECKING:  # the Stripe library is loaded only by a process that builds a `StripeApi` (not the worker)
    from billing.stripe_api import CheckoutSession, StripeApi

logger = logging.getLogger(__name__)

#: Checkouts of one user and plan with the same parameters within this many seconds share one Stripe
#: idempotency key, so a double click (or a retried request) makes one Checkout Session.
CHECKOUT_IDEMPOTENCY_WINDOW = 300
#: The user's open Checkout Session is offered again for the same checkout while it has at least this long left to
#: be paid; with less, it is expired and a new one made.
CHECKOUT_REUSE_MIN_LEFT = timedelta(minutes=15)

PhotosLeft = Callable[[int], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class PlanView:
    """A plan as the portal shows it (satisfies `portal.ports.PlanView`)."""

    code: str
    name: str
    price_label: str | None
    interval: str
    photos_per_period: int
    regenerations_per_day: int
    messages_per_day: int
    is_default: bool


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A user's subscription as the portal shows it (satisfies `portal.ports.SubscriptionView`)."""

    plan: PlanView | None
    status: str
    entitled: bool
    current_period_end: datetime | None
    cancel_at_period_end: bool
    source: str
    photos_left: int | None
    #: A payment failed (past_due, unpaid, incomplete): chatting is paused until the payment method is updated.
    payment_failed: bool = False
    #: A Stripe subscription that is not over: Stripe may still charge it, so no second checkout.
    open_in_stripe: bool = False


def plan_view(plan: Plan) -> PlanView:
    """A plan as the portal shows it."""
    return PlanView(
        code=plan.code,
        name=plan.name,
        price_label=plan.price_label,
        interval=plan.interval,
        photos_per_period=plan.photos_per_period,
        regenerations_per_day=plan.regenerations_per_day,
        messages_per_day=plan.messages_per_day,
        is_default=plan.is_default,
    )


def checkout_params(
    *, user_id: int, plan: Plan, customer_id: str | None, email: str | None, success_url: str, cancel_url: str
) -> dict[str, Any]:
    """The Checkout Session parameters (subscription mode) for `user_id` buying `plan`."""
    metadata = {"user_id": str(user_id), "plan": plan.code}
    params: dict[str, Any] = {
        "mode": "subscription",
        "line_items": [{"price": plan.stripe_price_id, "quantity": 1}],
        "client_reference_id": str(user_id),
        "metadata": metadata,
        "subscription_data": {"metadata": dict(metadata)},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer_id:
        params["customer"] = customer_id
        if plan.automatic_tax:  # Stripe computes tax from the address Checkout collects onto the existing customer
            params["customer_update"] = {"address": "auto"}
    elif email:
        params["customer_email"] = email
    if plan.automatic_tax:
        params["automatic_tax"] = {"enabled": True}
    if plan.allow_promotion_codes:
        params["allow_promotion_codes"] = True
    return params


def checkout_idempotency_key(
    user_id: int, plan_code: str, params: Mapping[str, Any], now: float, *, replacing: str | None = None
) -> str:
    """Stable for the same user, plan and parameters within `CHECKOUT_IDEMPOTENCY_WINDOW` seconds; a checkout that
    replaces session `replacing` gets a key of its own (Stripe would otherwise answer that expired session again)."""
    key = f"ava-checkout-{user_id}-{checkout_fingerprint(plan_code, params)}-{int(now // CHECKOUT_IDEMPOTENCY_WINDOW)}"
    return f"{key}-after-{replacing}" if replacing else key


def checkout_fingerprint(plan_code: str, params: Mapping[str, Any]) -> str:
    """The plan and a digest of the session's parameters: equal for the same checkout asked for again."""
    return f"{plan_code}-{hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]}"


class BillingService:
    """Implements `portal.ports.Billing` (and `cancel_immediately` for account erasure)."""

    def __init__(
        self,
        *,
        plans: Sequence[PlanConfig],
        stripe_api: StripeApi | None,
        production: bool = False,
        photos_left: PhotosLeft | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if production and stripe_api is None:
            raise ConfigError("production billing needs Stripe (STRIPE_SECRET_KEY)")
        self._configs = list(plans)
        self._stripe = stripe_api
        self._photos_left = photos_left
        self._clock = clock

    @property
    def development(self) -> bool:
        """True without Stripe (development): the subscribe page offers the development activation."""
        return self._stripe is None

    @property
    def stripe_api(self) -> StripeApi | None:
        """The Stripe client (the webhook fetches subscriptions through it); None in development."""
        return self._stripe

    @property
    def plan_configs(self) -> list[PlanConfig]:
        """The plans loaded from the plans file."""
        return list(self._configs)

    async def sync_plans(self) -> SyncResult:
        """Write the loaded plans to the `Plan` table (at start, and by `ava-bot plans sync`)."""
        return await sync_plans(self._configs)

    async def plans(self) -> list[PlanView]:
        """The active plans, default first."""
        rows = await Plan.filter(active=True).order_by("-is_default", "sort_order", "id")
        return [plan_view(row) for row in rows]

    async def subscription(self, user_id: int) -> SubscriptionView | None:
        """The user's subscription, or None when they never had one."""
        row = await Subscription.get_or_none(user_id=user_id)
        if row is None:
            return None
        plan = await Plan.get_or_none(id=row.plan_id) if row.plan_id is not None else None
        entitled = is_entitled(row, self._now())
        photos_left = await self._photos_left(user_id) if self._photos_left is not None and entitled else None
        return SubscriptionView(
            plan=plan_view(plan) if plan is not None else None,
            status=str(row.status),
            entitled=entitled,
            current_period_end=row.current_period_end,
            cancel_at_period_end=row.cancel_at_period_end,
            source=row.source,
            photos_left=photos_left,
            payment_failed=row.source == "stripe" and row.status in PAYMENT_DUE_STATUSES,
            open_in_stripe=is_open_in_stripe(row),
        )

    async def checkout_url(self, user_id: int, plan_code: str, *, success_url: str, cancel_url: str) -> str:
        """The URL of the user's Checkout Session for `plan_code`; `SubscriptionStillOpen` while the user's Stripe
        subscription is not over.

        At most one session per user can be paid at a time (two tabs, or a second plan chosen, must not bill twice):
        the same checkout asked for again gets the session it got before while that has time left; any other first
        expires the previous one at Stripe (`CheckoutAlreadyPaid` when it was paid and its subscription is not
        recorded yet), then makes a new one. No Stripe call runs with a transaction open."""
        if self._stripe is None:
            raise BillingUnavailable("checkout without Stripe (development: use the development activation)")
        plan = await _active_plan(plan_code)
        if not plan.stripe_price_id:
            raise UnknownPlan(f"plan {plan_code} has no Stripe price id")
        user = await User.get_or_none(id=user_id)
        if user is None:
            raise UnknownPlan(f"checkout for missing user {user_id}")
        row = await Subscription.get_or_none(user_id=user_id)
        if row is not None and is_open_in_stripe(row):
            raise SubscriptionStillOpen(f"user {user_id} has Stripe subscription {row.id} in status {row.status}")
        params = checkout_params(
            user_id=user_id,
            plan=plan,
            customer_id=row.stripe_customer_id if row is not None else None,
            email=user.email,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        fingerprint = checkout_fingerprint(plan.code, params)
        now = self._now()
        held = await OpenCheckout.get_or_none(user_id=user_id)
        replacing: str | None = None
        if held is not None:
            if held.expires_at > now:
                if held.fingerprint == fingerprint and held.expires_at - now >= CHECKOUT_REUSE_MIN_LEFT:
                    logger.info("checkout session %s of user %s offered again", held.session_id, user_id)
                    return held.url
                await self._withdraw(held)
                # It cannot be paid any more: never offer it again, even if making the next one fails below. The
                # row stays (until replaced) so that the next key names it: Stripe would replay an older session.
                await OpenCheckout.filter(id=held.id, session_id=held.session_id).update(expires_at=now)
            replacing = held.session_id
        key = checkout_idempotency_key(user_id, plan.code, params, self._clock(), replacing=replacing)
        session = await self._stripe.create_checkout_session(params, idempotency_key=key)
        if await _hold(user_id, replacing, session, fingerprint) != session.id:
            # Another checkout of this user stored its session meanwhile (two plans at the same moment): ours goes.
            await self._stripe.expire_checkout_session(session.id)
            raise CheckoutConflict(f"user {user_id} started two checkouts at once; session {session.id} withdrawn")
        logger.info("checkout session %s created for user %s (plan %s)", session.id, user_id, plan.code)
        return session.url

    async def _withdraw(self, held: OpenCheckout) -> None:
        """Expire the user's previous session at Stripe, unless it was paid (`CheckoutAlreadyPaid`)."""
        assert self._stripe is not None
        status = await self._stripe.expire_checkout_session(held.session_id)
        if status == "complete":
            raise CheckoutAlreadyPaid(f"checkout session {held.session_id} of user {held.user_id} is paid")
        logger.info("checkout session %s of user %s withdrawn (%s)", held.session_id, held.user_id, status)

    async def manage_url(self, user_id: int, return_url: str) -> str:
        """A Stripe Customer Portal session's URL (payment method, invoices); `NoSubscription` (`NoStripeCustomer`)
        when Stripe does not know the user, `BillingUnavailable` without Stripe."""
        if self._stripe is None:
            raise BillingUnavailable("payment settings without Stripe (development)")
        row = await Subscription.get_or_none(user_id=user_id)
        if row is None or not row.stripe_customer_id:
            raise NoStripeCustomer(f"user {user_id} has no Stripe customer")
        url = await self._stripe.create_portal_session(row.stripe_customer_id, return_url)
        logger.info("customer portal session created for user %s", user_id)
        return url

    async def activate_development(self, user_id: int, plan_code: str) -> None:
        """DEVELOPMENT ONLY: give the user `plan_code` for one interval, without payment."""
        if not self.development:
            raise DevelopmentOnly("development activation asked for with Stripe configured")
        plan = await _active_plan(plan_code)
        now = self._now()
        values: dict[str, Any] = {
            "status": SubscriptionStatus.GRANTED,
            "source": "development",
            "plan_id": plan.id,
            "current_period_start": now,
            "current_period_end": add_interval(now, plan.interval),
            "cancel_at_period_end": False,
        }
        async with in_transaction():
            row = await Subscription.filter(user_id=user_id).select_for_update().first()
            if row is None:
                await Subscription.create(user_id=user_id, **values)
            else:
                await Subscription.filter(id=row.id).update(**values)
        logger.warning("development activation: user %s has plan %s without payment", user_id, plan.code)

    async def cancel_at_period_end(self, user_id: int) -> None:
        """End the subscription when its period ends (Stripe first, then the stored flag)."""
        row = await Subscription.get_or_none(user_id=user_id)
        if row is None or not is_entitled(row, self._now()):
            raise NoSubscription(f"user {user_id} has no running subscription")
        flag = True
        if row.source == "stripe" and row.stripe_subscription_id:
            if self._stripe is None:
                raise BillingUnavailable("a Stripe subscription cannot be changed without Stripe")
            updated = parse_subscription(await self._stripe.cancel_at_period_end(row.stripe_subscription_id))
            flag = updated.cancel_at_period_end
        await Subscription.filter(id=row.id).update(cancel_at_period_end=flag)

    async def cancel_immediately(self, user_id: int) -> None:
        """Cancel the user's Stripe subscription at once, and expire their open Checkout Session (account erasure: a
        payment after it would reach no account); a no-op without them. Safe to repeat."""
        held = await OpenCheckout.get_or_none(user_id=user_id)
        if held is not None and self._stripe is not None and held.expires_at > self._now():
            status = await self._stripe.expire_checkout_session(held.session_id)
            logger.info("open checkout session of user %s on erasure: %s", user_id, status)
            await OpenCheckout.filter(id=held.id).delete()
        row = await Subscription.get_or_none(user_id=user_id)
        if row is None or not row.stripe_subscription_id or row.status in ENDED_STATUSES:
            return
        if self._stripe is None:
            logger.warning("user %s has Stripe subscription %s but Stripe is not configured", user_id, row.id)
            return
        await self._stripe.cancel_now(row.stripe_subscription_id)
        # Stamped ahead like a fetch, so an older event still on its way cannot bring the subscription back.
        stamp = max(row.stripe_event_at, int(self._clock()) + FETCH_STAMP_MARGIN)
        await Subscription.filter(id=row.id).update(
            status=SubscriptionStatus.CANCELED, cancel_at_period_end=False, stripe_event_at=stamp
        )
        logger.info("subscription of user %s canceled at once", user_id)

    async def aclose(self) -> None:
        """Close the Stripe client's HTTP session."""
        if self._stripe is not None:
            await self._stripe.aclose()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)


async def _hold(user_id: int, replacing: str | None, session: CheckoutSession, fingerprint: str) -> str:
    """Record `session` as the user's open one in place of session `replacing` (None: the user had none); the id of
    the session the user holds afterwards: another one when a concurrent checkout stored its own first, "" when it
    is gone again (its payment was recorded meanwhile)."""
    values: dict[str, Any] = {
        "session_id": session.id,
        "fingerprint": fingerprint,
        "url": session.url,
        "expires_at": datetime.fromtimestamp(session.expires_at, UTC),
    }
    if replacing is None:
        try:
            await OpenCheckout.create(user_id=user_id, **values)
            return session.id
        except IntegrityError:  # a concurrent checkout stored one first (or the same one: Stripe replayed it)
            pass
    elif await OpenCheckout.filter(user_id=user_id, session_id=replacing).update(**values):
        return session.id
    current = await OpenCheckout.get_or_none(user_id=user_id)
    return current.session_id if current is not None else ""


async def _active_plan(code: str) -> Plan:
    plan = await Plan.get_or_none(code=code, active=True)
    if plan is None:
        raise UnknownPlan(f"no active plan {code!r}")
    return plan
