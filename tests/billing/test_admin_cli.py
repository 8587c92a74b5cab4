"""`ava-bot grant` and `ava-bot users show`, run as the real command (a subprocess) on the test database."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from billing.entitlements import BillingEntitlements
from billing.models import Plan, Subscription, SubscriptionStatus
from core.models import Avatar, ChannelIdentity, Direction, LinkCode, Message, User
from imaging.models import Photo, PhotoKindChoice, PhotoStatus
from tests.fakes.entitlements import subscribe

ROOT = Path(__file__).resolve().parents[2]
PASSWORD_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2VjcmV0c2FsdA$SECRETHASHVALUEdonotprint"
CODE_HASH = "c0dehash" * 8


async def ava_bot(database_url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """Run `ava-bot ARGS` against `database_url`; its exit code, stdout and stderr."""
    env = {k: v for k, v in os.environ.items() if k not in {"AVA_ENV", "DATABASE_URL", "REDIS_URL"}}
    env |= {"DATABASE_URL": database_url, "PYTHONPATH": str(ROOT), "MEDIA_DIR": str(tmp_path / "media")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ava_bot.cli",
        *args,
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def monthly() -> Plan:
    return await Plan.create(
        code="monthly", name="Ava Monthly", photos_per_period=60, regenerations_per_day=5, messages_per_day=500
    )


async def test_grant_by_email_entitles_the_user(db: str, tmp_path: Path) -> None:
    """`ava-bot grant EMAIL --plan monthly --days 30` gives a granted subscription for 30 days: the user may chat."""
    await monthly()
    user = await User.create(email="tester@example.com")
    assert not await BillingEntitlements().may_chat(user.id)
    code, out, err = await ava_bot(db, tmp_path, "grant", "Tester@Example.com", "--plan", "monthly", "--days", "30")
    assert code == 0, err
    assert f"user {user.id}: plan monthly granted until" in out
    sub = await Subscription.get(user_id=user.id)
    assert (sub.status, sub.source, sub.cancel_at_period_end) == (SubscriptionStatus.GRANTED, "grant", False)
    assert sub.current_period_start is not None and sub.current_period_end is not None
    assert sub.current_period_end - sub.current_period_start == timedelta(days=30)
    assert await BillingEntitlements().may_chat(user.id)
    assert await BillingEntitlements().remaining(user.id, "photo") == 60


async def test_grant_extends_a_running_grant(db: str, tmp_path: Path) -> None:
    """A second grant adds its days to the running grant's end and keeps its start (the photo period)."""
    plan = await monthly()
    user = await User.create()
    start = datetime.now(UTC) - timedelta(days=2)
    await Subscription.create(
        user=user,
        plan=plan,
        status=SubscriptionStatus.GRANTED,
        source="grant",
        current_period_start=start,
        current_period_end=start + timedelta(days=10),
    )
    code, _, err = await ava_bot(db, tmp_path, "grant", str(user.id), "--plan", "monthly", "--days", "5")
    assert code == 0, err
    sub = await Subscription.get(user_id=user.id)
    assert sub.current_period_start == start and sub.current_period_end == start + timedelta(days=15)


async def test_grant_refuses_unknown_users_plans_and_bad_days(db: str, tmp_path: Path) -> None:
    """An unknown user or plan, or a non-positive --days, is a clear error with exit code 2 and changes nothing."""
    await monthly()
    user = await User.create(email="someone@example.com")
    code, _, err = await ava_bot(db, tmp_path, "grant", "nobody@example.com", "--plan", "monthly", "--days", "3")
    assert code == 2 and "no user 'nobody@example.com'" in err
    code, _, err = await ava_bot(db, tmp_path, "grant", "99999", "--plan", "monthly", "--days", "3")
    assert code == 2 and "no user '99999'" in err
    code, _, err = await ava_bot(db, tmp_path, "grant", str(user.id), "--plan", "gold", "--days", "3")
    assert code == 2 and "no plan 'gold'" in err and "monthly" in err
    code, _, err = await ava_bot(db, tmp_path, "grant", str(user.id), "--plan", "monthly", "--days", "0")
    assert code == 2 and "--days" in err
    assert not await Subscription.exists()


async def test_grant_never_overwrites_a_running_stripe_subscription(db: str, tmp_path: Path) -> None:
    """A user paying through Stripe keeps their subscription: the grant is refused (exit 2)."""
    user = await User.create()
    sub = await subscribe(user.id)
    await Subscription.filter(id=sub.id).update(stripe_subscription_id="sub_123")
    await monthly()
    code, _, err = await ava_bot(db, tmp_path, "grant", str(user.id), "--plan", "monthly", "--days", "3")
    assert code == 2 and "running Stripe subscription" in err
    assert (await Subscription.get(id=sub.id)).source == "stripe"


async def test_users_show_prints_the_account_and_no_secrets(db: str, tmp_path: Path) -> None:
    """`ava-bot users show` prints id, email, setup, mode, chats, subscription, quota usage and counts, and
    never the password hash or a token."""
    user = await User.create(email="shown@example.com", password_hash=PASSWORD_HASH, mode="intimate")
    await ChannelIdentity.create(user=user, channel="web", external_user_id=str(user.id))
    await ChannelIdentity.create(
        user=user, channel="telegram", external_user_id="4242", unreachable_at=datetime.now(UTC)
    )
    await LinkCode.create(user=user, channel="telegram", code_hash=CODE_HASH, expires_at=datetime.now(UTC))
    for direction in (Direction.INBOUND, Direction.OUTBOUND, Direction.OUTBOUND):
        await Message.create(user=user, direction=direction, channel="web", chat_id=str(user.id), text="hi")
    avatar = await Avatar.create(
        user=user, name="Mia", gender="woman", age=27, nationality="Italian", appearance="dark hair", personality="shy"
    )
    for n, status in enumerate((PhotoStatus.READY, PhotoStatus.READY, PhotoStatus.BLOCKED)):
        await Photo.create(user=user, avatar=avatar, kind=PhotoKindChoice.PHOTO, status=status, source_key=f"k{n}")
    await subscribe(user.id, photos=10, messages=50, code="monthly")
    assert (await BillingEntitlements().charge(user.id, "photo", "photo:1")).allowed

    code, out, err = await ava_bot(db, tmp_path, "users", "show", "shown@example.com")
    assert code == 0, err
    assert f"user {user.id}" in out and "email: shown@example.com" in out
    assert "setup step: onboarding" in out and "mode: intimate" in out
    assert "web: reachable" in out and "telegram: unreachable since" in out
    assert "subscription: monthly, status active (source stripe), entitled" in out
    assert "cancel at period end: no" in out
    assert "photo: 1 of 10 used" in out and "message: 0 of 50 used" in out
    assert "messages: 1 in, 2 out" in out and "photos: 3 (blocked 1, ready 2)" in out
    for secret in (PASSWORD_HASH, "SECRETHASH", "argon2", CODE_HASH):
        assert secret not in out + err
    code, _, err = await ava_bot(db, tmp_path, "users", "show", "ghost@example.com")
    assert code == 2 and "no user" in err


async def test_admin_commands_on_an_unmigrated_database_say_to_migrate(tmp_path: Path) -> None:
    """`ava-bot users show` on a database the migrations never ran on exits 2 with one line saying to migrate."""
    url = f"sqlite://{tmp_path / 'empty.sqlite3'}"
    code, _, err = await ava_bot(url, tmp_path, "users", "show", "1")
    assert code == 2
    assert "run `ava-bot migrate` first" in err
    assert "Traceback" not in err
