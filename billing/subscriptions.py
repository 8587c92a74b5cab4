"""A user's subscription state: "is this user entitled", and applying a Stripe subscription object to the row.

Stripe events arrive in any order and more than once, so the state always comes from a whole subscription
object, stamped with when it was true: an event's `created` for the object inside the event, or the time of
a fresh `subscriptions.retrieve`. `apply_stripe_subscription` (run inside the caller's transaction, the user
row locked) writes a newer object and ignores an older one; it returns the `Change` so the caller can tell
the user what happened.
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from billing.models import ENTITLED_STATUSES, Plan, Subscription, SubscriptionStatus
from core.models import User

logger = logging.getLogger(__name__)

#: A Stripe subscription stays entitled this long past its period end while the renewal's webhook is on its
#: way (Stripe moves the period at renewal; a failed payment turns the status past_due, which ends it at once).
RENEWAL_GRACE = timedelta(hours=24)
#: Statuses in which a renewal payment failed: the user is behind the paywall until it is paid.
PAYMENT_FAILED_STATUSES = frozenset({SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID})
#: Statuses in which a payment failed (a renewal, or the first one) and Stripe waits for a working payment method.
PAYMENT_DUE_STATUSES = PAYMENT_FAILED_STATUSES | {SubscriptionStatus.INCOMPLETE}
#: Statuses of a Stripe subscription that is over for good (nothing to cancel; a new checkout may start).
ENDED_STATUSES = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.INCOMPLETE_EXPIRED})
#: A subscription fetched from Stripe counts as this many seconds newer than our clock: the signature check
#: (tolerance 300 s) bounds how far our clock and Stripe's disagree, so no older event can outrank a fetch.
FETCH_STAMP_MARGIN = 300


def is_entitled(sub: Subscription | None, now: datetime) -> bool:
    """Whether `sub` lets its user chat at `now`: active, trialing or granted, and the period not over."""
    if sub is None or sub.status not in ENTITLED_STATUSES:
        return False
    end = sub.current_period_end
    if end is None:
        return sub.status != SubscriptionStatus.GRANTED  # a grant has an end; Stripe ends its own by an event
    if sub.source == "stripe":
        end += RENEWAL_GRACE
    return now < end


def is_open_in_stripe(sub: Subscription) -> bool:
    """Whether `sub` is a Stripe subscription Stripe has not ended: it may still charge, retry or resume, so a
    second checkout would bill the user twice."""
    return sub.source == "stripe" and bool(sub.stripe_subscription_id) and sub.status not in ENDED_STATUSES


def add_interval(start: datetime, interval: str, count: int = 1) -> datetime:
    """`start` plus `count` billing intervals (day, week, month, year); months keep the day where it exists."""
    if interval == "day":
        return start + timedelta(days=count)
    if interval == "week":
        return start + timedelta(weeks=count)
    months = count * (12 if interval == "year" else 1)
    if interval not in {"month", "year"}:
        raise ValueError(f"unknown interval {interval!r}")
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


@dataclass(frozen=True, slots=True)
class StripeSubscription:
    """What Ava reads from a Stripe subscription object."""

    id: str
    customer: str | None
    status: SubscriptionStatus
    #: The `user_id` Ava put into the subscription's metadata at checkout.
    user_id: int | None
    price_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    cancel_at_period_end: bool


def parse_subscription(obj: Mapping[str, Any]) -> StripeSubscription:
    """Read a subscription object (the current API keeps the period on its items; older ones on the object)."""
    items = obj.get("items", {}).get("data") or [{}]
    first: Mapping[str, Any] = items[0] if isinstance(items[0], Mapping) else {}
    price = first.get("price")
    price_id = price.get("id") if isinstance(price, Mapping) else price
    try:
        status = SubscriptionStatus(str(obj.get("status")))
    except ValueError:
        status = SubscriptionStatus.INCOMPLETE  # a status Ava does not know never entitles
    cancel_at = obj.get("cancel_at")
    return StripeSubscription(
        id=str(obj["id"]),
        customer=_id_of(obj.get("customer")),
        status=status,
        user_id=metadata_user_id(obj),
        price_id=price_id if isinstance(price_id, str) else None,
        period_start=_time(first.get("current_period_start", obj.get("current_period_start"))),
        period_end=_time(first.get("current_period_end", obj.get("current_period_end"))),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")) or cancel_at is not None,
    )


def metadata_user_id(obj: Mapping[str, Any]) -> int | None:
    """The `user_id` in an object's metadata, when it is a plain positive integer."""
    metadata = obj.get("metadata")
    raw = metadata.get("user_id") if isinstance(metadata, Mapping) else None
    return parse_user_id(raw)


def parse_user_id(raw: object) -> int | None:
    """A user id from Stripe text (metadata, client_reference_id); None unless a plain positive integer."""
    if isinstance(raw, str) and raw.isdigit() and len(raw) < 19:
        return int(raw) or None
    return None


def _id_of(value: object) -> str | None:
    """An object id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _time(value: object) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) and not isinstance(value, bool) else None


async def find_user(sub: StripeSubscription, hint: int | None = None) -> int | None:
    """Whose subscription this is: the metadata's user, else `hint`, else the user known by subscription or customer."""
    for candidate in (sub.user_id, hint):
        if candidate is not None and await User.exists(id=candidate):
            return candidate
    row = await Subscription.get_or_none(stripe_subscription_id=sub.id)
    if row is None and sub.customer is not None:
        row = await Subscription.filter(stripe_customer_id=sub.customer).order_by("-id").first()
    return row.user_id if row is not None else None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The part of a subscription row that notices compare."""

    status: SubscriptionStatus | None
    entitled: bool


@dataclass(frozen=True, slots=True)
class Change:
    """A subscription row before and after a Stripe object was applied (equal when it was not written)."""

    user_id: int
    before: Snapshot
    after: Snapshot
    plan: Plan | None
    written: bool


async def apply_stripe_subscription(
    sub: StripeSubscription, *, user_id: int, stamp: int, fetched: bool, now: datetime
) -> Change | None:
    """Write `sub` (true at `stamp`) to the user's row, unless the row holds newer state; run in a transaction.

    A fetched object is as new as its fetch and wins a tie; an event's object must be strictly newer (events
    of one second are otherwise unordered). An older subscription that is not entitled never replaces another
    subscription the user is entitled by. None when the user is gone.
    """
    if await User.filter(id=user_id).select_for_update().first() is None:
        return None  # the account was erased: a late event has nothing to update
    row = await Subscription.filter(user_id=user_id).select_for_update().first()
    before = Snapshot(row.status if row else None, is_entitled(row, now))
    plan = await Plan.filter(stripe_price_id=sub.price_id).order_by("-active", "id").first() if sub.price_id else None
    entitled_after = is_entitled(_as_row(sub), now)
    if row is not None:
        unchanged = Change(user_id, before, before, await _plan_of(row), written=False)
        if stamp < row.stripe_event_at or (not fetched and stamp == row.stripe_event_at):
            logger.info("subscription %s of user %s: older state ignored", sub.id, user_id)
            return unchanged
        if row.stripe_subscription_id != sub.id and before.entitled and not entitled_after:
            logger.info("subscription %s of user %s ended, another one entitles them: kept", sub.id, user_id)
            return unchanged
    values: dict[str, Any] = {
        "status": sub.status,
        "source": "stripe",
        "stripe_subscription_id": sub.id,
        "current_period_start": sub.period_start,
        "current_period_end": sub.period_end,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "stripe_event_at": stamp,
    }
    if sub.customer is not None:
        values["stripe_customer_id"] = sub.customer
    if plan is not None:
        values["plan_id"] = plan.id
    if row is None:
        row = await Subscription.create(user_id=user_id, **values)
    else:
        await Subscription.filter(id=row.id).update(**values)
    plan = plan or await _plan_of(row)
    return Change(user_id, before, Snapshot(sub.status, entitled_after), plan, written=True)


async def _plan_of(row: Subscription) -> Plan | None:
    return await Plan.get_or_none(id=row.plan_id) if row.plan_id is not None else None


def _as_row(sub: StripeSubscription) -> Subscription:
    """An unsaved row holding `sub`, for `is_entitled`."""
    return Subscription(status=sub.status, source="stripe", current_period_end=sub.period_end)
