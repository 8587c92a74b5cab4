"""Test doubles of `core.ports.Entitlements` for tests about other things than billing.

`Gate` is opened and closed by the test (`gate.open = True`) and has no quotas: every charge of an open gate is
allowed, and a key is consumed once. Tests about subscriptions and quotas use the real
`billing.entitlements.BillingEntitlements` on the test database instead, with `subscribe` giving a user a plan.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from billing.models import Plan, Subscription, SubscriptionStatus
from core.ports import QuotaKind, QuotaVerdict


class Gate:
    """Entitlements a test opens and closes, with unlimited quotas (a Protocol implementation, no base class)."""

    def __init__(self, open_: bool = False) -> None:
        self.open = open_
        #: Keys charged and not refunded, with their kind.
        self.charged: dict[str, QuotaKind] = {}
        self.refunded: list[str] = []

    async def may_chat(self, user_id: int) -> bool:
        """Whether the test opened the gate."""
        return self.open

    async def charge(self, user_id: int, kind: QuotaKind, key: str) -> QuotaVerdict:
        """Allowed while open (unlimited); a closed gate refuses for want of a subscription."""
        if key in self.charged:
            return QuotaVerdict(True)
        if not self.open:
            return QuotaVerdict(False, "subscription")
        self.charged[key] = kind
        return QuotaVerdict(True)

    async def check(self, user_id: int, kind: QuotaKind, key: str) -> QuotaVerdict:
        """`charge`'s answer, consuming nothing."""
        if key in self.charged or self.open:
            return QuotaVerdict(True)
        return QuotaVerdict(False, "subscription")

    async def charge_checked(self, user_id: int, kind: QuotaKind, key: str, verdict: QuotaVerdict) -> bool:
        """Consume the key (once); unlimited, so never refused."""
        self.charged.setdefault(key, kind)
        return True

    def charge_expression(
        self, user_id: int, kind: QuotaKind, key: str, verdict: QuotaVerdict
    ) -> tuple[str, list[Any]] | None:
        """None: the gate keeps its charges in memory, so turns commit in a transaction and charge through
        `charge_checked` (the one-statement commit is tested with the real `BillingEntitlements`)."""
        return None

    async def refund(self, key: str) -> bool:
        """Forget the charge of `key`, once."""
        if self.charged.pop(key, None) is None:
            return False
        self.refunded.append(key)
        return True

    async def remaining(self, user_id: int, kind: QuotaKind) -> int | None:
        """Unlimited (None) while open, nothing when closed."""
        return None if self.open else 0

    async def renews_at(self, user_id: int, kind: QuotaKind) -> datetime | None:
        """No periods: nothing renews."""
        return None


def allow_all() -> Gate:
    """An open gate: every user may chat, quotas unlimited (what tests of other features need)."""
    return Gate(open_=True)


async def subscribe(
    user_id: int,
    *,
    photos: int = 10,
    regenerations: int = 3,
    messages: int = 100,
    code: str = "test",
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    start: datetime | None = None,
    days: int = 30,
) -> Subscription:
    """Give `user_id` a plan with these quotas (the plan `code` is created or updated) from `start` for `days`."""
    plan, _ = await Plan.get_or_create(code=code, defaults={"name": f"Test {code}"})
    await Plan.filter(id=plan.id).update(
        photos_per_period=photos, regenerations_per_day=regenerations, messages_per_day=messages
    )
    begin = start or datetime.now(UTC)
    sub, _ = await Subscription.update_or_create(
        user_id=user_id,
        defaults={
            "plan_id": plan.id,
            "status": status,
            "source": "grant" if status == SubscriptionStatus.GRANTED else "stripe",
            "current_period_start": begin,
            "current_period_end": begin + timedelta(days=days),
        },
    )
    return sub
