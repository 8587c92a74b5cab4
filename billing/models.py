"""Billing models: plans (loaded from the plans file), each user's subscription state, processed Stripe
events, and quota usage.

Quotas are counted per user, kind and period in `QuotaUsage` and consumed with one conditional UPDATE
(`used < limit`), so concurrent requests never overspend. Each consumption is a `QuotaCharge` with a unique
key (e.g. `photo:<id>`): charging the same key twice consumes once, and a refund gives the unit back once.

Model docstrings become table comments, and Tortoise splits SQLite DDL on semicolons: keep them out.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from core.models import User


class SubscriptionStatus(StrEnum):
    """Stripe's subscription statuses, plus `granted` (an admin grant or a development activation)."""

    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"
    GRANTED = "granted"


#: Statuses that entitle the user to chat while the period has not ended.
ENTITLED_STATUSES = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING, SubscriptionStatus.GRANTED})


class QuotaKind(StrEnum):
    """What a quota counts."""

    PHOTO = "photo"
    REGENERATION = "regeneration"
    MESSAGE = "message"


class Plan(Model):
    """A subscription tier, synced from the plans file (never edited by hand). Amounts live in Stripe."""

    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    #: The Stripe price id (from the environment), None when this deployment has no Stripe.
    stripe_price_id = fields.CharField(max_length=255, null=True)
    #: Billing interval, as Stripe names it (day, week, month or year).
    interval = fields.CharField(max_length=16, default="month")
    #: Shown on the subscribe page, e.g. 9.99 EUR per month (display only, Stripe charges the price).
    price_label = fields.CharField(max_length=64, null=True)
    photos_per_period = fields.IntField(default=0)
    regenerations_per_day = fields.IntField(default=0)
    messages_per_day = fields.IntField(default=0)
    automatic_tax = fields.BooleanField(default=False)
    allow_promotion_codes = fields.BooleanField(default=False)
    #: The plan the subscribe page offers first.
    is_default = fields.BooleanField(default=False)
    #: False once the plan left the plans file (existing subscribers keep it).
    active = fields.BooleanField(default=True)
    sort_order = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "plans"


class Subscription(Model):
    """The current subscription state of a user (one row per user), taken from Stripe or from a grant."""

    id = fields.BigIntField(primary_key=True)
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "ava.User", related_name="subscription", on_delete=fields.CASCADE
    )
    plan: fields.ForeignKeyNullableRelation[Plan] = fields.ForeignKeyField(
        "ava.Plan", related_name="subscriptions", null=True, on_delete=fields.SET_NULL
    )
    status = fields.CharEnumField(SubscriptionStatus, max_length=32, description="Stripe status or granted")
    #: stripe, grant or development.
    source = fields.CharField(max_length=16, default="stripe")
    stripe_customer_id = fields.CharField(max_length=255, null=True, db_index=True)
    stripe_subscription_id = fields.CharField(max_length=255, null=True, unique=True)
    current_period_start = fields.DatetimeField(null=True)
    current_period_end = fields.DatetimeField(null=True)
    cancel_at_period_end = fields.BooleanField(default=False)
    #: The Stripe created time of the newest event applied (older events never overwrite newer state).
    stripe_event_at = fields.BigIntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    user_id: int
    plan_id: int | None

    class Meta:
        table = "subscriptions"


class OpenCheckout(Model):
    """The user's newest Stripe Checkout Session that may still be paid, at most one per user.

    Two tabs or two plans never bill twice: an older session is expired at Stripe before a new one is made."""

    id = fields.BigIntField(primary_key=True)
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "ava.User", related_name="open_checkout", on_delete=fields.CASCADE
    )
    session_id = fields.CharField(max_length=255, unique=True)
    #: The plan and parameters it was made with: the same checkout asked for again gets this session.
    fingerprint = fields.CharField(max_length=128)
    url = fields.TextField()
    #: When Stripe stops taking payments for it.
    expires_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)

    user_id: int

    class Meta:
        table = "open_checkouts"


class BillingEvent(Model):
    """A Stripe webhook event that was received: unique on its id, so a redelivery has no second effect."""

    id = fields.BigIntField(primary_key=True)
    event_id = fields.CharField(max_length=255, unique=True)
    type = fields.CharField(max_length=128)
    created = fields.BigIntField(default=0)
    received_at = fields.DatetimeField(auto_now_add=True)
    processed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "billing_events"


class QuotaUsage(Model):
    """Units of a quota used by a user in one period (a billing period or a UTC day)."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ava.User", related_name="quota_usage", on_delete=fields.CASCADE
    )
    kind = fields.CharEnumField(QuotaKind, max_length=16, description="photo, regeneration or message")
    #: The period the units belong to (the billing period start, or the UTC date).
    period_key = fields.CharField(max_length=64)
    used = fields.IntField(default=0)

    user_id: int

    class Meta:
        table = "quota_usage"
        unique_together = (("user", "kind", "period_key"),)


class QuotaCharge(Model):
    """One unit consumed under a unique key (photo:<id>, regen:<message id>), refundable once."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "ava.User", related_name="quota_charges", on_delete=fields.CASCADE
    )
    key = fields.CharField(max_length=128, unique=True)
    kind = fields.CharEnumField(QuotaKind, max_length=16, description="photo, regeneration or message")
    period_key = fields.CharField(max_length=64)
    refunded_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    user_id: int

    class Meta:
        table = "quota_charges"
