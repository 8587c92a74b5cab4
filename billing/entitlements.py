"""`BillingEntitlements`: the core's `Entitlements` port on the billing models, in every environment.

A user may chat while their subscription entitles them (`billing.subscriptions.is_entitled`: active, trialing,
or granted by an admin or the development activation, and the period not over). Their plan's quotas (photos
per billing period, reference regenerations and messages per UTC day) are consumed through `billing.quotas`:
atomically, and idempotently on each charge's key. There is no allow-all gate: development users subscribe
through the subscribe page's development activation or `ava-bot grant`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from billing.models import Plan, QuotaKind, Subscription
from billing.quotas import consume, give_back, is_charged, plan_limit, quota_period, used_units
from billing.subscriptions import is_entitled
from core.ports import QuotaKind as QuotaKindName
from core.ports import QuotaVerdict

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """One quota of a user in its current period (for `ava-bot users show` and the account page)."""

    kind: str
    used: int
    limit: int
    period_key: str
    renews_at: datetime | None


class BillingEntitlements:
    """Subscriptions and quotas from the database (implements `core.ports.Entitlements`)."""

    def __init__(self, *, clock: Callable[[], datetime] = _utcnow) -> None:
        """`clock` gives the current UTC time (tests move it)."""
        self._clock = clock

    async def may_chat(self, user_id: int) -> bool:
        """True while the user's subscription entitles them."""
        return is_entitled(await Subscription.get_or_none(user_id=user_id), self._clock())

    async def charge(self, user_id: int, kind: QuotaKindName, key: str) -> QuotaVerdict:
        """Consume one unit of `kind` under `key` (idempotent and atomic, see `billing.quotas`)."""
        now = self._clock()
        found = await self._entitled_plan(user_id, now)
        if found is None:
            if await is_charged(key):  # charged while entitled: the same key answers the same
                return QuotaVerdict(True)
            return QuotaVerdict(False, "subscription")
        subscription, plan = found
        limit = plan_limit(plan, kind)
        period = quota_period(subscription, kind, now)
        if limit > 0 and await consume(user_id, kind, key, period, limit):
            return QuotaVerdict(True, limit=limit, renews_at=period.renews_at)
        if limit <= 0 and await is_charged(key):
            return QuotaVerdict(True, limit=limit, renews_at=period.renews_at)
        logger.info("%s quota of user %s used up (%s per period)", kind, user_id, limit)
        return QuotaVerdict(False, "quota", limit=limit, renews_at=period.renews_at)

    async def refund(self, key: str) -> bool:
        """Give back the unit charged under `key`, once."""
        return await give_back(key, self._clock())

    async def remaining(self, user_id: int, kind: QuotaKindName) -> int | None:
        """Units of `kind` left in the current period; 0 when not entitled."""
        now = self._clock()
        found = await self._entitled_plan(user_id, now)
        if found is None:
            return 0
        subscription, plan = found
        limit = plan_limit(plan, kind)
        used = await used_units(user_id, kind, quota_period(subscription, kind, now).key)
        return max(0, limit - used)

    async def renews_at(self, user_id: int, kind: QuotaKindName) -> datetime | None:
        """When the current period of `kind` ends for the user (None: not entitled, or an open-ended period)."""
        now = self._clock()
        found = await self._entitled_plan(user_id, now)
        return quota_period(found[0], kind, now).renews_at if found is not None else None

    async def usage(self, user_id: int) -> list[QuotaStatus]:
        """Every quota of the user's plan in its current period (empty when the user has no plan)."""
        now = self._clock()
        subscription = await Subscription.filter(user_id=user_id).select_related("plan").first()
        plan = await _plan_of(subscription) if subscription is not None else None
        if subscription is None or plan is None:
            return []
        statuses = []
        for kind in QuotaKind:
            period = quota_period(subscription, kind, now)
            used = await used_units(user_id, kind, period.key)
            statuses.append(QuotaStatus(kind.value, used, plan_limit(plan, kind), period.key, period.renews_at))
        return statuses

    async def _entitled_plan(self, user_id: int, now: datetime) -> tuple[Subscription, Plan] | None:
        # The subscription with its plan in one query (every chat turn asks).
        subscription = await Subscription.filter(user_id=user_id).select_related("plan").first()
        if subscription is None or not is_entitled(subscription, now):
            return None
        plan = await _plan_of(subscription)
        if plan is None:
            logger.warning(
                "subscription %s of user %s has no plan and no default plan exists", subscription.id, user_id
            )
            return None
        return subscription, plan


async def _plan_of(subscription: Subscription) -> Plan | None:
    """The subscription's plan, else the default plan (a Stripe price the plans file does not name)."""
    if subscription.plan_id is not None:
        related = subscription.plan  # the Plan when read with `select_related("plan")`, else a query
        plan = related if isinstance(related, Plan) else await Plan.get_or_none(id=subscription.plan_id)
        if plan is not None:
            return plan
    return await Plan.filter(is_default=True).order_by("sort_order", "id").first()
