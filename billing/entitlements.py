"""`BillingEntitlements`: the core's `Entitlements` port on the billing models, in every environment.

A user may chat while their subscription entitles them (`billing.subscriptions.is_entitled`: active, trialing,
or granted by an admin or the development activation, and the period not over). Their plan's quotas (photos
per billing period, reference regenerations and messages per UTC day) are consumed through `billing.quotas`:
atomically, and idempotently on each charge's key. There is no allow-all gate: development users subscribe
through the subscribe page's development activation or `ava-bot grant`.

A chat turn asks `check` before the model runs (one statement: the subscription, its plan and the day's usage) and
`charge_checked` inside the transaction that commits the turn (one statement, no transaction of its own), so a
turn's unit is consumed exactly when the turn is done, and a turn that never finishes consumes nothing. Both are
plain SQL: they run on every chat turn.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing.models import Plan, QuotaCharge, QuotaKind, Subscription
from billing.quotas import Period, consume, give_back, is_charged, plan_limit, quota_period, used_units
from billing.subscriptions import is_entitled
from core.inbox import NOT_COMMITTED, _postgres, _sql
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
            return await _without_subscription(key)
        subscription, plan = found
        limit = plan_limit(plan, kind)
        period = quota_period(subscription, kind, now)
        if limit > 0 and await self._consume(user_id, kind, key, period, limit):
            return QuotaVerdict(True, limit=limit, renews_at=period.renews_at)
        if limit <= 0 and await is_charged(key):
            return QuotaVerdict(True, limit=limit, renews_at=period.renews_at)
        logger.info("%s quota of user %s used up (%s per period)", kind, user_id, limit)
        return QuotaVerdict(False, "quota", limit=limit, renews_at=period.renews_at)

    async def check(self, user_id: int, kind: QuotaKindName, key: str) -> QuotaVerdict:
        """Whether one unit of `kind` may be charged under `key` now (consumes nothing; see `charge_checked`)."""
        now = self._clock()
        if QuotaKind(kind) == QuotaKind.PHOTO:  # its period depends on the subscription: two reads
            found = await self._entitled_plan(user_id, now)
            used = None
        else:  # a daily quota: the subscription, its plan and the day's usage in one statement
            found, used = await _subscription_and_usage(user_id, kind, quota_period(None, kind, now).key)
            if found is not None and not is_entitled(found[0], now):
                found = None
        if found is None:
            return await _without_subscription(key)
        subscription, plan = found
        limit = plan_limit(plan, kind)
        period = quota_period(subscription, kind, now)
        if used is None:
            used = await used_units(user_id, kind, period.key)
        if used < limit or await is_charged(key):
            return QuotaVerdict(True, limit=limit, renews_at=period.renews_at, period=period.key)
        logger.info("%s quota of user %s used up (%s per period)", kind, user_id, limit)
        return QuotaVerdict(False, "quota", limit=limit, renews_at=period.renews_at)

    async def charge_checked(self, user_id: int, kind: QuotaKindName, key: str, verdict: QuotaVerdict) -> bool:
        """Consume the unit `check` allowed, inside the caller's transaction: the charge row (its unique key refuses
        a second one), then one more unit used in the period unless its limit is reached (an upsert: the period's
        first unit creates its counter). False when no unit is left: the caller rolls back, charge row included."""
        if verdict.period is None or verdict.limit is None:  # allowed on an earlier charge of this key
            return await is_charged(key)
        kind_value = QuotaKind(kind).value
        values = [user_id, key, kind_value, verdict.period, self._clock(), verdict.limit]
        if _postgres():  # one statement: the unit is taken only when the charge row was inserted
            [row] = await _sql(_TAKE_UNIT_CALL, values)
            if row["outcome"] != _CHARGED_BEFORE:
                return bool(row["outcome"] == _TAKEN)
        elif await _sql(_CHARGE, values[:5]):
            return bool(await _sql(_TAKE_UNIT, [user_id, kind_value, verdict.period, verdict.limit]))
        # Charged before: consumed once already, unless refunded since (then charged again).
        existing = await QuotaCharge.get(key=key)
        if existing.refunded_at is None:
            return True
        await QuotaCharge.filter(id=existing.id).update(refunded_at=None, period_key=verdict.period)
        return bool(await _sql(_TAKE_UNIT, [user_id, kind_value, verdict.period, verdict.limit]))

    def charge_expression(
        self, user_id: int, kind: QuotaKindName, key: str, verdict: QuotaVerdict
    ) -> tuple[str, list[Any]] | None:
        """`charge_checked` as an SQL boolean expression (placeholders `$1`..., with their values) for a caller that
        commits in one statement: true when the unit was taken; the caller rolls its statement back when not. None
        when it cannot be one (SQLite; a verdict allowed by an earlier charge of the key): use `charge_checked`."""
        if verdict.period is None or verdict.limit is None or not _postgres():
            return None
        values = [user_id, key, QuotaKind(kind).value, verdict.period, self._clock(), verdict.limit]
        return f"({_TAKE_UNIT_EXPRESSION}) = '{_TAKEN}'", values

    async def _consume(self, user_id: int, kind: QuotaKindName, key: str, period: Period, limit: int) -> bool:
        """`billing.quotas.consume`; on PostgreSQL a new key's charge is one statement (`ava_take_unit`, rolled back
        as a whole when no unit is left) instead of a transaction of four round trips."""
        if _postgres():
            values = [user_id, key, QuotaKind(kind).value, period.key, self._clock(), limit]
            try:
                [row] = await _sql(_TAKE_UNIT_OR_ROLL_BACK, values)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) == NOT_COMMITTED:  # no unit left: nothing was written
                    return False
                raise
            if row["outcome"] == _TAKEN:
                return True
            # Charged before (a retry, maybe refunded since): answered by its charge row, as `consume` does.
        return await consume(user_id, kind, key, period, limit)

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
        # The subscription with its plan in one plain-SQL statement (every photo's charge asks, and `remaining`).
        subscription, plan, _ = await _read_subscription(user_id)
        if subscription is None or not is_entitled(subscription, now):
            return None
        return await _with_plan(subscription, plan, user_id)


# `charge_checked`: the charge row, then the unit (both refuse rather than overspend or charge a key twice).
_CHARGE = """
INSERT INTO quota_charges (user_id, key, kind, period_key, created_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (key) DO NOTHING
RETURNING id
"""
_TAKE_UNIT = """
INSERT INTO quota_usage (user_id, kind, period_key, used) VALUES ($1, $2, $3, 1)
ON CONFLICT (user_id, kind, period_key) DO UPDATE SET used = quota_usage.used + 1 WHERE quota_usage.used < $4
RETURNING used
"""
# PostgreSQL: both in one call of `ava_take_unit` (migration 0011; SQLite has no functions): 'taken', 'refused' (no
# unit left: the caller rolls back, charge row included) or 'charged before' (nothing written).
_TAKE_UNIT_EXPRESSION = "ava_take_unit($1, $2, $3, $4, $5, $6)"
_TAKE_UNIT_CALL = f"SELECT {_TAKE_UNIT_EXPRESSION} AS outcome"
_TAKEN = "taken"
_CHARGED_BEFORE = "charged before"
# A charge on its own: 'refused' raises (`ava_require`), which rolls the statement back, charge row included.
_TAKE_UNIT_OR_ROLL_BACK = (
    f"WITH taking AS (SELECT {_TAKE_UNIT_EXPRESSION} AS outcome) "  # noqa: S608 (constants)
    "SELECT outcome, ava_require(outcome <> 'refused', 'no unit left') AS ok FROM taking"
)


@functools.cache
def _subscription_query(usage: bool) -> str:
    """The subscription and its plan of a user (columns prefixed `s_`, `p_`), with `usage`: and one period's usage
    (`used`). Built on first use: the column lists come from the models, complete once the ORM is initialised."""
    subscription = ", ".join(f's."{c}" AS "s_{c}"' for c in sorted(Subscription._meta.db_fields))
    plan = ", ".join(f'p."{c}" AS "p_{c}"' for c in sorted(Plan._meta.db_fields))
    used, join = "", ""
    if usage:
        used = ", u.used AS used"
        join = "LEFT JOIN quota_usage u ON u.user_id = s.user_id AND u.kind = $2 AND u.period_key = $3 "
    return (
        f"SELECT {subscription}, {plan}{used} FROM subscriptions s "  # noqa: S608 (names from the models)
        f"LEFT JOIN plans p ON p.id = s.plan_id {join}WHERE s.user_id = $1"
    )


async def _read_subscription(
    user_id: int, kind: QuotaKindName | None = None, period_key: str | None = None
) -> tuple[Subscription | None, Plan | None, int]:
    """The user's subscription (None: none), its own plan (None: none, or removed) and, given `kind` and
    `period_key`, the units of `kind` used in that period (else 0), in one statement."""
    if kind is None or period_key is None:
        rows = await _sql(_subscription_query(False), [user_id])
    else:
        rows = await _sql(_subscription_query(True), [user_id, QuotaKind(kind).value, period_key])
    if not rows:
        return None, None, 0
    row = rows[0]
    subscription = Subscription._init_from_db(**{k[2:]: v for k, v in row.items() if k.startswith("s_")})
    plan = None
    if row["p_id"] is not None:
        plan = Plan._init_from_db(**{k[2:]: v for k, v in row.items() if k.startswith("p_")})
    return subscription, plan, int(row.get("used") or 0)


async def _with_plan(subscription: Subscription, plan: Plan | None, user_id: int) -> tuple[Subscription, Plan] | None:
    """The subscription with its plan, else the default plan (None, logged: no plan at all)."""
    if plan is None:
        plan = await _plan_of(subscription)  # no plan of its own (or a plan removed): the default plan
    if plan is None:
        logger.warning("subscription %s of user %s has no plan and no default plan exists", subscription.id, user_id)
        return None
    return subscription, plan


async def _subscription_and_usage(
    user_id: int, kind: QuotaKindName, period_key: str
) -> tuple[tuple[Subscription, Plan] | None, int]:
    """The user's subscription with its plan (None: no subscription, or no plan at all) and the units of `kind`
    used in `period_key`, in one statement."""
    subscription, plan, used = await _read_subscription(user_id, kind, period_key)
    if subscription is None:
        return None, 0
    return await _with_plan(subscription, plan, user_id), used


async def _plan_of(subscription: Subscription) -> Plan | None:
    """The subscription's plan, else the default plan (a Stripe price the plans file does not name)."""
    if subscription.plan_id is not None:
        related = subscription.plan  # the Plan when read with `select_related("plan")`, else a query
        plan = related if isinstance(related, Plan) else await Plan.get_or_none(id=subscription.plan_id)
        if plan is not None:
            return plan
    return await Plan.filter(is_default=True).order_by("sort_order", "id").first()


async def _without_subscription(key: str) -> QuotaVerdict:
    """The verdict for a user not entitled now: a key charged while they were answers the same, else refused."""
    if await is_charged(key):
        return QuotaVerdict(True)
    return QuotaVerdict(False, "subscription")
