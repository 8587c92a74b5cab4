"""Quota counting: a plan's allowance per period, consumed one unit at a time, atomically and idempotently.

Units are counted per user, kind and period in `QuotaUsage` (photos per billing period, keyed by the period's
start; regenerations and messages per UTC day, keyed by the date). A unit is consumed by ONE conditional
UPDATE (`used < limit`) in a short transaction that also inserts the unit's `QuotaCharge` row (unique key), so
concurrent charges never overspend (PostgreSQL re-checks the condition on the row a concurrent UPDATE just
committed) and charging the same key twice consumes once. A refund marks the charge refunded once and gives
the unit back. A key charged again after its refund consumes again (a replayed photo is a new attempt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from billing.models import Plan, QuotaCharge, QuotaKind, QuotaUsage, Subscription

#: Attempts of a charge that lost a race on its key (another charge of the same key was committing).
_RACE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class Period:
    """The period a quota's units belong to: its key in `QuotaUsage`, and when the next one starts."""

    key: str
    renews_at: datetime | None


class _OverQuota(Exception):
    """Rolls the charge's transaction back when no unit was left."""


def plan_limit(plan: Plan, kind: QuotaKind | str) -> int:
    """The plan's allowance of `kind` per period (0 means none)."""
    match QuotaKind(kind):
        case QuotaKind.PHOTO:
            return max(0, plan.photos_per_period)
        case QuotaKind.REGENERATION:
            return max(0, plan.regenerations_per_day)
        case QuotaKind.MESSAGE:
            return max(0, plan.messages_per_day)


def next_utc_midnight(now: datetime) -> datetime:
    """The start of the UTC day after `now` (when daily quotas renew)."""
    today = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(0, 0), tzinfo=UTC)


def quota_period(subscription: Subscription | None, kind: QuotaKind | str, now: datetime) -> Period:
    """Photos count per billing period (or grant), regenerations and messages per UTC day (a daily period needs no
    subscription)."""
    if QuotaKind(kind) == QuotaKind.PHOTO:
        assert subscription is not None, "a photo period is the subscription's"
        start = subscription.current_period_start or subscription.created_at
        return Period(f"period:{start.astimezone(UTC).isoformat()}", subscription.current_period_end)
    return Period(f"day:{now.astimezone(UTC).date().isoformat()}", next_utc_midnight(now))


async def is_charged(key: str) -> bool:
    """Whether a unit is consumed under `key` now (charged and not refunded)."""
    return await QuotaCharge.exists(key=key, refunded_at__isnull=True)


async def _ensure_usage_row(user_id: int, kind: QuotaKind, period_key: str) -> None:
    """Create the period's counter if it is missing (a concurrent creator may win: that is fine)."""
    if await QuotaUsage.exists(user_id=user_id, kind=kind, period_key=period_key):
        return
    try:
        async with in_transaction():  # a savepoint when nested: a lost race rolls back only this insert
            await QuotaUsage.create(user_id=user_id, kind=kind, period_key=period_key, used=0)
    except IntegrityError:
        pass


async def _take_unit(user_id: int, kind: QuotaKind, period_key: str, limit: int) -> None:
    """The one conditional UPDATE: one more unit used, unless the limit is reached (then roll back)."""
    taken = await QuotaUsage.filter(user_id=user_id, kind=kind, period_key=period_key, used__lt=limit).update(
        used=F("used") + 1
    )
    if not taken:
        raise _OverQuota


async def consume(user_id: int, kind: QuotaKind | str, key: str, period: Period, limit: int) -> bool:
    """Consume one unit of `kind` under `key` in `period`; False when `limit` units are used already.

    Idempotent on `key`: a key already charged (and not refunded) answers True and consumes nothing.
    """
    kind = QuotaKind(kind)
    # The usual charge (a new key) is one transaction: insert the charge (its unique key refuses a second one) and
    # take the unit; the period's first charge creates its counter in between (a concurrent creator's row is
    # waited for and kept). A key charged before is looked at only when the insert refuses it.
    try:
        async with in_transaction():
            await QuotaCharge.create(user_id=user_id, key=key, kind=kind, period_key=period.key)
            try:
                await _take_unit(user_id, kind, period.key, limit)
            except _OverQuota:  # no unit left, or no counter yet
                await QuotaUsage.bulk_create(
                    [QuotaUsage(user_id=user_id, kind=kind, period_key=period.key, used=0)], ignore_conflicts=True
                )
                await _take_unit(user_id, kind, period.key, limit)
        return True
    except _OverQuota:
        return False
    except IntegrityError:  # the key was charged before (maybe refunded since)
        return await _consume_again(user_id, kind, key, period, limit)


async def _consume_again(user_id: int, kind: QuotaKind, key: str, period: Period, limit: int) -> bool:
    """`consume` of a key charged before: answered by its charge, or charged again after its refund."""
    for _ in range(_RACE_RETRIES):
        existing = await QuotaCharge.get_or_none(key=key)
        if existing is not None and existing.refunded_at is None:
            return True
        await _ensure_usage_row(user_id, kind, period.key)
        try:
            async with in_transaction():
                if existing is None:
                    await QuotaCharge.create(user_id=user_id, key=key, kind=kind, period_key=period.key)
                elif not await QuotaCharge.filter(id=existing.id, refunded_at__isnull=False).update(
                    refunded_at=None, period_key=period.key
                ):
                    continue  # a concurrent charge of this key consumed it again first: look again
                await _take_unit(user_id, kind, period.key, limit)
        except _OverQuota:
            return False
        except IntegrityError:  # a concurrent charge of the same key committed first: look again
            continue
        return True
    return await is_charged(key)


async def give_back(key: str, now: datetime) -> bool:
    """Refund the unit charged under `key`, once; False when nothing is charged under it."""
    async with in_transaction():  # a savepoint inside a caller's transaction (the photo's terminal transition)
        charge = await QuotaCharge.get_or_none(key=key, refunded_at__isnull=True)
        if charge is None:
            return False
        if not await QuotaCharge.filter(id=charge.id, refunded_at__isnull=True).update(refunded_at=now):
            return False  # a concurrent refund won
        await QuotaUsage.filter(
            user_id=charge.user_id, kind=charge.kind, period_key=charge.period_key, used__gt=0
        ).update(used=F("used") - 1)
    return True


async def used_units(user_id: int, kind: QuotaKind | str, period_key: str) -> int:
    """Units of `kind` the user used in the period `period_key`."""
    row = await QuotaUsage.get_or_none(user_id=user_id, kind=QuotaKind(kind), period_key=period_key)
    return row.used if row is not None else 0
