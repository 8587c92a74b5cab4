"""Plans as configuration: the plans file (TOML) -> validated `PlanConfig`s -> the `Plan` table.

A plan names the ENVIRONMENT VARIABLE holding its Stripe price id (`price_id_env`), never an amount: what a
plan costs lives in Stripe; `price_label` is display text only. `load_plans` is pure (file + a mapping of
environment values); `sync_plans` upserts the rows, and a plan that left the file becomes inactive (never
deleted: its subscribers keep it). A second tier is one more `[[plans]]` table and one more price variable.

    [[plans]]
    code = "monthly"
    name = "Ava Monthly"
    price_id_env = "STRIPE_PRICE_ID"
    price_label = "9.99 EUR / month"
    interval = "month"
    default = true
    [plans.quotas]
    photos_per_period = 100
    ...
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing.errors import PlansFileInvalid
from billing.models import Plan

logger = logging.getLogger(__name__)

#: The repository's plans file: the development fallback when PLANS_FILE does not exist.
DEFAULT_PLANS_PATH = Path(__file__).resolve().parent.parent / "plans.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class PlanQuotas(_Strict):
    """What one subscription period of the plan allows."""

    photos_per_period: int = Field(ge=0)
    regenerations_per_day: int = Field(ge=0)
    messages_per_day: int = Field(ge=0)


class PlanStripeOptions(_Strict):
    """Stripe Checkout options of the plan."""

    automatic_tax: bool = False
    allow_promotion_codes: bool = False


class PlanEntry(_Strict):
    """One `[[plans]]` table as written in the file."""

    code: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=128)
    price_id_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,127}$")
    price_label: str | None = Field(default=None, max_length=64)
    interval: Literal["day", "week", "month", "year"] = "month"
    default: bool = False
    quotas: PlanQuotas
    stripe: PlanStripeOptions = PlanStripeOptions()


class PlansFile(_Strict):
    """The whole file: a list of plans."""

    plans: list[PlanEntry] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class PlanConfig:
    """A validated plan with its Stripe price id resolved from the environment (None when unset)."""

    entry: PlanEntry
    price_id: str | None
    sort_order: int

    @property
    def code(self) -> str:
        """The plan's stable code (the checkout form's `plan` field)."""
        return self.entry.code

    @property
    def is_default(self) -> bool:
        """Whether the subscribe page offers this plan first."""
        return self.entry.default


def load_plans(path: Path, env: Mapping[str, str | None]) -> list[PlanConfig]:
    """Read and validate the plans file; `env` maps each plan's `price_id_env` to its price id.

    Raise `PlansFileInvalid` naming the file and the offending key.
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlansFileInvalid(f"plans file {path} not found (set PLANS_FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlansFileInvalid(f"plans file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlansFileInvalid(f"plans file {path} is not valid TOML: {exc}") from None
    try:
        parsed = PlansFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _key_path(first["loc"])
        raise PlansFileInvalid(f"plans file {path}: {where}: {first['msg']}") from None
    codes = [p.code for p in parsed.plans]
    duplicates = sorted({c for c in codes if codes.count(c) > 1})
    if duplicates:
        raise PlansFileInvalid(f"plans file {path}: plans.code: {', '.join(duplicates)} appears more than once")
    defaults = [p.code for p in parsed.plans if p.default]
    if len(defaults) != 1:
        found = ", ".join(defaults) or "none"
        raise PlansFileInvalid(f"plans file {path}: plans.default: exactly one plan must be default (found {found})")
    return [
        PlanConfig(entry=entry, price_id=_price(env.get(entry.price_id_env)), sort_order=index)
        for index, entry in enumerate(parsed.plans)
    ]


def _price(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


def _key_path(loc: Sequence[int | str]) -> str:
    """`("plans", 1, "quotas", "x")` -> `plans[1].quotas.x`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def missing_price_ids(configs: Sequence[PlanConfig]) -> list[str]:
    """The environment variable names of plans without a Stripe price id (production refuses them)."""
    return sorted({c.entry.price_id_env for c in configs if c.price_id is None})


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What `sync_plans` changed."""

    created: list[str]
    updated: list[str]
    deactivated: list[str]


async def sync_plans(configs: Sequence[PlanConfig]) -> SyncResult:
    """Upsert a `Plan` row per config; plans no longer configured become inactive (never deleted)."""
    try:
        return await _sync(configs)
    except IntegrityError:  # another process (web and worker start together) inserted the same code first
        return await _sync(configs)


async def _sync(configs: Sequence[PlanConfig]) -> SyncResult:
    created: list[str] = []
    updated: list[str] = []
    async with in_transaction():
        for config in configs:
            entry = config.entry
            values: dict[str, Any] = {
                "name": entry.name,
                "stripe_price_id": config.price_id,
                "interval": entry.interval,
                "price_label": entry.price_label,
                "photos_per_period": entry.quotas.photos_per_period,
                "regenerations_per_day": entry.quotas.regenerations_per_day,
                "messages_per_day": entry.quotas.messages_per_day,
                "automatic_tax": entry.stripe.automatic_tax,
                "allow_promotion_codes": entry.stripe.allow_promotion_codes,
                "is_default": entry.default,
                "active": True,
                "sort_order": config.sort_order,
            }
            row = await Plan.filter(code=entry.code).select_for_update().first()
            if row is None:
                await Plan.create(code=entry.code, **values)
                created.append(entry.code)
            elif any(getattr(row, k) != v for k, v in values.items()):
                await Plan.filter(id=row.id).update(**values)
                updated.append(entry.code)
        codes = [c.code for c in configs]
        gone = await Plan.filter(active=True).exclude(code__in=codes).values_list("code", flat=True)
        await Plan.filter(code__in=list(gone)).update(active=False, is_default=False)
    if created or updated or gone:
        logger.info("plans synced: created %s, updated %s, deactivated %s", created, updated, list(gone))
    return SyncResult(created=created, updated=updated, deactivated=[str(c) for c in gone])
