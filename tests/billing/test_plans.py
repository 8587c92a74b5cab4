"""Plans as configuration: the plans file is validated with clear errors, synced into the Plan table, and
checked at every start (`ava-bot plans sync`, `serve`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from billing.errors import PlansFileInvalid
from billing.models import Plan
from billing.plans import DEFAULT_PLANS_PATH, load_plans, missing_price_ids, sync_plans
from tests.billing.conftest import MONTHLY, plans_toml

PRO = {"code": "pro", "name": "Ava Pro", "env": "STRIPE_PRICE_ID_PRO", "label": "19.99 EUR / month", "photos": 200}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plans.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_repository_plans_file_has_one_default_monthly_plan_priced_from_the_environment() -> None:
    """The shipped plans.toml is valid: one default monthly plan whose price id is STRIPE_PRICE_ID's value."""
    plans = load_plans(DEFAULT_PLANS_PATH, {"STRIPE_PRICE_ID": "price_123"})
    assert [p.code for p in plans if p.is_default] == [plans[0].code]
    assert plans[0].entry.interval == "month"
    assert plans[0].entry.price_id_env == "STRIPE_PRICE_ID"
    assert plans[0].price_id == "price_123"
    assert plans[0].entry.quotas.photos_per_period > 0


def test_a_plan_without_its_price_variable_has_no_price_id(tmp_path: Path) -> None:
    """An unset (or blank) price variable leaves the plan without a price id, and is reported by name."""
    plans = load_plans(
        write(tmp_path, plans_toml(MONTHLY, PRO)), {"STRIPE_PRICE_ID": "price_1", "STRIPE_PRICE_ID_PRO": " "}
    )
    assert [p.price_id for p in plans] == ["price_1", None]
    assert missing_price_ids(plans) == ["STRIPE_PRICE_ID_PRO"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (plans_toml(MONTHLY).replace("photos_per_period = 60\n", ""), "plans[0].quotas.photos_per_period"),
        (plans_toml(MONTHLY).replace('interval = "month"', 'interval = "fortnight"'), "plans[0].interval"),
        (plans_toml(MONTHLY).replace("photos_per_period = 60", "photos_per_period = -1"), "photos_per_period"),
        (plans_toml(MONTHLY) + 'colour = "red"\n', "plans[0].stripe.colour"),
        (plans_toml(MONTHLY).replace('code = "monthly"', 'code = "Monthly Plan!"'), "plans[0].code"),
        (plans_toml(MONTHLY, {**MONTHLY, "name": "Again"}), "monthly appears more than once"),
        (plans_toml(MONTHLY, {**PRO, "default": True}), "exactly one plan must be default (found monthly, pro)"),
        (plans_toml({**MONTHLY, "default": False}), "exactly one plan must be default (found none)"),
        ("plans = []\n", "plans"),
        ("[[plans]\ncode = 1\n", "is not valid TOML"),
    ],
)
def test_an_invalid_plans_file_is_refused_naming_the_file_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    """Every broken rule gives one error naming the plans file and where in it the problem is."""
    path = write(tmp_path, text)
    with pytest.raises(PlansFileInvalid) as info:
        load_plans(path, {})
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_a_missing_plans_file_is_refused(tmp_path: Path) -> None:
    """A plans file that does not exist is an error naming it."""
    with pytest.raises(PlansFileInvalid, match="not found"):
        load_plans(tmp_path / "nope.toml", {})


async def test_sync_upserts_plans_and_deactivates_removed_ones(db: str, tmp_path: Path) -> None:
    """Syncing writes every plan; a changed plan is updated, a removed one stays but becomes inactive."""
    env = {"STRIPE_PRICE_ID": "price_1", "STRIPE_PRICE_ID_PRO": "price_2"}
    first = await sync_plans(load_plans(write(tmp_path, plans_toml(MONTHLY, PRO)), env))
    assert first.created == ["monthly", "pro"]
    pro = await Plan.get(code="pro")
    assert (pro.stripe_price_id, pro.photos_per_period, pro.price_label, pro.active) == (
        "price_2",
        200,
        "19.99 EUR / month",
        True,
    )

    changed = {**MONTHLY, "photos": 80, "tax": True}
    second = await sync_plans(load_plans(write(tmp_path, plans_toml(changed)), env))
    assert (second.created, second.updated, second.deactivated) == ([], ["monthly"], ["pro"])
    monthly = await Plan.get(code="monthly")
    assert (monthly.photos_per_period, monthly.automatic_tax, monthly.is_default) == (80, True, True)
    assert not (await Plan.get(code="pro")).active  # kept for its subscribers, offered no more

    again = await sync_plans(load_plans(write(tmp_path, plans_toml(changed)), env))
    assert (again.created, again.updated, again.deactivated) == ([], [], [])


def _cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    names = {"DATABASE_URL", "AVA_ENV", "PLANS_FILE", "STRIPE_PRICE_ID", "STRIPE_SECRET_KEY", "REDIS_URL"}
    base = {k: v for k, v in os.environ.items() if k not in names}
    return subprocess.run(
        [sys.executable, "-m", "ava_bot.cli", *args],
        env=base | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_plans_sync_command_writes_the_plans_file(db: str, tmp_path: Path) -> None:
    """`ava-bot plans sync` loads PLANS_FILE with the price ids from the environment into the database."""
    path = write(tmp_path, plans_toml(MONTHLY, PRO))
    done = _cli(["plans", "sync"], tmp_path, DATABASE_URL=db, PLANS_FILE=str(path), STRIPE_PRICE_ID="price_cli")
    assert done.returncode == 0, done.stderr
    assert "monthly: Ava Monthly (default), price_cli" in done.stdout
    assert "STRIPE_PRICE_ID_PRO unset" in done.stdout
    assert "created 2" in done.stdout
    assert await Plan.filter(active=True).order_by("sort_order").values_list("code", "stripe_price_id") == [
        ("monthly", "price_cli"),
        ("pro", None),
    ]


@pytest.mark.parametrize("command", [["plans", "sync"], ["serve"]])
def test_start_with_an_invalid_plans_file_fails_with_one_clear_message(tmp_path: Path, command: list[str]) -> None:
    """`plans sync` and `serve` stop (exit 2) with one line naming the plans file and the bad key."""
    path = write(tmp_path, plans_toml(MONTHLY).replace("messages_per_day = 500\n", ""))
    done = _cli(command, tmp_path, PLANS_FILE=str(path), DATABASE_URL="sqlite://:memory:")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("ava-bot:")]
    assert len(lines) == 1
    assert str(path) in lines[0] and "plans[0].quotas.messages_per_day" in lines[0]
