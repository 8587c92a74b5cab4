"""Production billing: it starts with the Stripe settings and a price for every plan, and refuses without."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from ava_bot.errors import MissingSettingsError
from ava_bot.settings import Settings
from ava_bot.wiring import build_billing
from billing.errors import PlansFileInvalid
from billing.models import Plan
from billing.plans import DEFAULT_PLANS_PATH
from core.errors import ConfigError
from tests.billing.conftest import MONTHLY, plans_toml
from tests.conftest import TEST_REDIS_URL
from tests.fakes.stripe import API_KEY, PRICE_ID, WEBHOOK_SECRET, FakeStripe, event_body, sign

PRODUCTION: dict[str, Any] = {
    "ava_env": "production",
    "public_base_url": "https://ava.example.org",
    "secret_key": "kQ3v9ZrT1mXb8LwP2nYd7HsJ4cFa6GtE0uRiKoVyBzNe",
    "database_url": "postgres://ava@db/ava",
    "redis_url": TEST_REDIS_URL,
    "llm_api_key": "sk-test",
    "replicate_api_token": "r8_test",
    "moderation_base_url": "http://127.0.0.1:9/v1",
    "moderation_api_key": "sk-moderation",
}
STRIPE: dict[str, Any] = {
    "stripe_secret_key": API_KEY,
    "stripe_webhook_secret": WEBHOOK_SECRET,
    "stripe_price_id": PRICE_ID,
}
PRO = {"code": "pro", "name": "Ava Pro", "env": "STRIPE_PRICE_ID_PRO", "label": "19.99 EUR / month"}


def production(make_settings: Any, plans_file: Path, **values: Any) -> Settings:
    """Production settings with `plans_file` (override or drop values with `values`; None unsets)."""
    merged = {**PRODUCTION, **STRIPE, "plans_file": plans_file, **values}
    return make_settings(**{k: v for k, v in merged.items() if v is not None})  # type: ignore[no-any-return]


def test_production_settings_require_the_stripe_settings(make_settings: Any, plans_file: Path) -> None:
    """Settings.check names STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET and STRIPE_PRICE_ID when they are missing."""
    settings = production(
        make_settings, plans_file, stripe_secret_key=None, stripe_webhook_secret=None, stripe_price_id=None
    )
    with pytest.raises(MissingSettingsError) as info:
        settings.check()
    assert set(info.value.missing) >= {"STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_PRICE_ID"}


def test_production_billing_is_built_with_stripe(make_settings: Any, plans_file: Path) -> None:
    """With the Stripe settings production billing has Stripe, no development activation, and priced plans."""
    settings = production(make_settings, plans_file)
    settings.check()
    billing = build_billing(settings, environ={})
    assert not billing.development
    assert billing.stripe_api is not None
    assert [(p.code, p.price_id) for p in billing.plan_configs] == [("monthly", PRICE_ID)]


@pytest.mark.parametrize("unset", ["stripe_secret_key", "stripe_webhook_secret", "stripe_price_id"])
def test_production_billing_refuses_a_missing_stripe_setting(make_settings: Any, plans_file: Path, unset: str) -> None:
    """Even when the settings check was skipped, building production billing refuses each missing Stripe setting."""
    settings = production(make_settings, plans_file, **{unset: None})
    with pytest.raises(MissingSettingsError) as info:
        build_billing(settings, environ={})
    assert info.value.missing == [unset.upper()]


def test_production_refuses_a_plan_without_its_price_id(make_settings: Any, plans_file: Path) -> None:
    """Every active plan needs its price variable in production; the error names it."""
    plans_file.write_text(plans_toml(MONTHLY, PRO), encoding="utf-8")
    settings = production(make_settings, plans_file)
    with pytest.raises(MissingSettingsError, match="STRIPE_PRICE_ID_PRO"):
        build_billing(settings, environ={})
    billing = build_billing(settings, environ={"STRIPE_PRICE_ID_PRO": "price_pro"})
    assert [p.price_id for p in billing.plan_configs] == [PRICE_ID, "price_pro"]


def test_production_refuses_a_missing_plans_file(make_settings: Any, tmp_path: Path) -> None:
    """Production never falls back to the repository's plans file: a missing PLANS_FILE stops start-up."""
    missing = tmp_path / "absent.toml"
    with pytest.raises(PlansFileInvalid, match=str(missing)):
        build_billing(production(make_settings, missing), environ={})


def test_development_falls_back_to_the_repository_plans_file(make_settings: Any, tmp_path: Path) -> None:
    """In development a missing PLANS_FILE means the repository's plans.toml, and no Stripe means development."""
    billing = build_billing(make_settings(plans_file=tmp_path / "absent.toml"), environ={})
    assert billing.development
    assert billing.plan_configs and billing.plan_configs[0].code == "monthly"
    assert DEFAULT_PLANS_PATH.exists()


async def test_production_app_starts_with_stripe_and_serves_the_webhook(
    db: str, redis: ArqRedis, make_settings: Any, plans_file: Path, fake_stripe: FakeStripe
) -> None:
    """A production app with Stripe settings starts, syncs the plans, verifies webhooks and has no dev activation."""
    settings = production(make_settings, plans_file, stripe_api_base=fake_stripe.url)
    settings.check()
    client = TestClient(TestServer(await create_app(settings, redis=redis, own_database=False)))
    await client.start_server()
    try:
        assert await Plan.filter(code="monthly", stripe_price_id=PRICE_ID, active=True).exists()
        assert (await client.post("/billing/webhook", data=b"{}")).status == 400
        body = event_body("customer.created", {"id": "cus_1", "object": "customer"})
        signed = await client.post("/billing/webhook", data=body, headers={"Stripe-Signature": sign(body)})
        assert signed.status == 200
        assert (await client.post("/billing/dev-activate", data={})).status == 404
    finally:
        await client.close()


async def test_production_app_refuses_to_start_without_stripe(
    db: str, redis: ArqRedis, make_settings: Any, plans_file: Path
) -> None:
    """Building the production app without the Stripe key stops with a configuration error naming it."""
    settings = production(make_settings, plans_file, stripe_secret_key=None)
    with pytest.raises(ConfigError, match="STRIPE_SECRET_KEY"):
        await create_app(settings, redis=redis, own_database=False)
