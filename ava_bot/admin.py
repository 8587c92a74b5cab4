"""Admin commands: `ava-bot grant USER --plan CODE --days N` and `ava-bot users show USER`.

A grant gives a user a plan without payment (support, testers, development): status `granted`, source
`grant`, for N days from now, or N more days on a grant still running (its photo period keeps its start, so a
grant extension does not refill the photo quota). It never overwrites a running Stripe subscription.

`users show` prints what support needs to know about one user, and never a secret: no password hash, no
session, link or sign-in token, no Stripe customer data beyond ids.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from ava_bot.db import close_db, init_db
from ava_bot.errors import GrantRefused, UnknownUser
from ava_bot.settings import Settings
from billing.entitlements import BillingEntitlements
from billing.errors import UnknownPlan
from billing.models import Plan, Subscription, SubscriptionStatus
from billing.subscriptions import is_entitled
from core.errors import AvaError, ValidationFailed
from core.models import ChannelIdentity, Direction, Message, User
from imaging.models import Photo

#: Longest grant, so a typo (`--days 3000`) does not give years away unnoticed.
MAX_GRANT_DAYS = 3660


async def find_user(ref: str) -> User:
    """The user with id `ref` (digits) or email `ref` (case-insensitive)."""
    ref = ref.strip()
    user = await User.get_or_none(id=int(ref)) if ref.isdigit() else None
    if user is None and "@" in ref:
        user = await User.filter(email__iexact=ref).first()
    if user is None:
        raise UnknownUser(f"no user {ref!r} (give a user id or an email address)")
    return user


async def grant(ref: str, plan_code: str, days: int, *, now: datetime | None = None) -> Subscription:
    """Give user `ref` the plan `plan_code` for `days` days (or extend their running grant by `days`)."""
    if not 1 <= days <= MAX_GRANT_DAYS:
        raise ValidationFailed(f"--days must be between 1 and {MAX_GRANT_DAYS}")
    user = await find_user(ref)
    plan = await Plan.get_or_none(code=plan_code)
    if plan is None:
        codes = ", ".join(p.code for p in await Plan.all().order_by("sort_order", "code")) or "none"
        raise UnknownPlan(f"no plan {plan_code!r} (plans: {codes}; load them with `ava-bot plans sync`)")
    now = now or datetime.now(UTC)
    values: dict[str, Any] = {
        "status": SubscriptionStatus.GRANTED,
        "source": "grant",
        "plan_id": plan.id,
        "cancel_at_period_end": False,
    }
    async with in_transaction():
        row = await Subscription.filter(user_id=user.id).select_for_update().first()
        running = row is not None and is_entitled(row, now)
        if row is not None and running and row.source == "stripe" and row.stripe_subscription_id:
            raise GrantRefused(
                f"user {user.id} has a running Stripe subscription ({row.stripe_subscription_id}); "
                "cancel it first or grant after it ends"
            )
        if row is not None and running and row.current_period_end is not None:
            values["current_period_end"] = row.current_period_end + timedelta(days=days)
        else:
            values |= {"current_period_start": now, "current_period_end": now + timedelta(days=days)}
        if row is None:
            await Subscription.create(user_id=user.id, **values)
        else:
            await Subscription.filter(id=row.id).update(**values)
    return await Subscription.get(user_id=user.id)


def _when(value: datetime | None) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if value is not None else "-"


async def describe_user(ref: str, *, now: datetime | None = None) -> list[str]:
    """The lines `ava-bot users show` prints for user `ref` (no password hash, no tokens)."""
    user = await find_user(ref)
    now = now or datetime.now(UTC)
    lines = [
        f"user {user.id}",
        f"  email: {user.email or '-'}",
        f"  created: {_when(user.created_at)}",
        f"  setup step: {user.setup_step}" + (" (editing the avatar)" if user.editing_avatar else ""),
        f"  mode: {user.mode}",
        "  identities:",
    ]
    identities = await ChannelIdentity.filter(user_id=user.id).order_by("id")
    for identity in identities:
        reachable = (
            "reachable" if identity.unreachable_at is None else f"unreachable since {_when(identity.unreachable_at)}"
        )
        lines.append(f"    {identity.channel}: {reachable}")
    if not identities:
        lines.append("    none")
    lines += await _subscription_lines(user.id, now)
    inbound = await Message.filter(user_id=user.id, direction=Direction.INBOUND).count()
    outbound = await Message.filter(user_id=user.id, direction=Direction.OUTBOUND).count()
    lines.append(f"  messages: {inbound} in, {outbound} out")
    photos = Counter(str(photo.status) for photo in await Photo.filter(user_id=user.id).only("id", "status"))
    by_status = ", ".join(f"{status} {count}" for status, count in sorted(photos.items()))
    lines.append(f"  photos: {sum(photos.values())}" + (f" ({by_status})" if by_status else ""))
    return lines


async def _subscription_lines(user_id: int, now: datetime) -> list[str]:
    sub = await Subscription.get_or_none(user_id=user_id)
    if sub is None:
        return ["  subscription: none"]
    plan = await Plan.get_or_none(id=sub.plan_id) if sub.plan_id is not None else None
    lines = [
        f"  subscription: {plan.code if plan else 'no plan'}, status {sub.status} (source {sub.source}), "
        f"{'entitled' if is_entitled(sub, now) else 'NOT entitled'}",
        f"    period: {_when(sub.current_period_start)} .. {_when(sub.current_period_end)}",
        f"    cancel at period end: {'yes' if sub.cancel_at_period_end else 'no'}",
    ]
    if sub.stripe_subscription_id:
        lines.append(f"    stripe subscription: {sub.stripe_subscription_id}")
    usage = await BillingEntitlements(clock=lambda: now).usage(user_id)
    lines.append("  quota usage (this period / today):")
    for quota in usage:
        lines.append(f"    {quota.kind}: {quota.used} of {quota.limit} used, renews {_when(quota.renews_at)}")
    if not usage:
        lines.append("    no plan")
    return lines


async def run_grant(settings: Settings, args: argparse.Namespace) -> int:
    """`ava-bot grant USER --plan CODE --days N`: 0 when granted, 2 with a message for a bad user or plan."""
    await init_db(settings.effective_database_url)
    try:
        sub = await grant(args.user, args.plan, args.days)
    except AvaError as exc:
        print(f"ava-bot: {exc}", file=sys.stderr)
        return 2
    finally:
        await close_db()
    print(f"user {sub.user_id}: plan {args.plan} granted until {_when(sub.current_period_end)}")
    return 0


async def run_users_show(settings: Settings, args: argparse.Namespace) -> int:
    """`ava-bot users show USER`: 0 and the user's summary, 2 with a message for an unknown user."""
    await init_db(settings.effective_database_url)
    try:
        lines = await describe_user(args.user)
    except AvaError as exc:
        print(f"ava-bot: {exc}", file=sys.stderr)
        return 2
    finally:
        await close_db()
    print("\n".join(lines))
    return 0


def add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `grant` and `users show` on the CLI's sub-commands."""
    granting = commands.add_parser("grant", help="give a user a plan for N days without payment (admin)")
    granting.add_argument("user", help="user id or email")
    granting.add_argument("--plan", required=True, help="plan code (see the plans file)")
    granting.add_argument("--days", type=int, required=True, help="how many days (a running grant is extended)")
    users = commands.add_parser("users", help="look up users (admin)")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    show = users_commands.add_parser("show", help="a user's account, chats, subscription, quotas and counts")
    show.add_argument("user", help="user id or email")
