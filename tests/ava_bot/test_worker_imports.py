"""What a worker process loads: only the libraries of the services it is configured with (memory, issue 14).

In one fresh interpreter, what `ava-bot worker` runs before it takes jobs (the CLI's imports, the plans check, the
services and the photo pipeline, built by the real wiring) runs first with Telegram alone configured, then with
every service configured; the modules loaded after each are compared (one interpreter: imports are slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import stripe as fake_stripe
from tests.fakes import whatsapp as fake_whatsapp

ROOT = Path(__file__).resolve().parents[2]

#: Run in the subprocess: each argument holds one start's settings as JSON; prints one JSON report per start
#: (the modules loaded so far, the channels built, the photo store's class).
WORKER_START = """
import asyncio, json, sys

from arq.connections import ArqRedis

import ava_bot.cli  # everything `ava-bot worker` imports
from ava_bot.settings import Settings
from ava_bot.wiring import build_plans, build_services, open_photo_pipeline


async def start(values: str) -> None:
    settings = Settings(_env_file=None, **json.loads(values))
    build_plans(settings)
    redis = ArqRedis(host="127.0.0.1", port=1)  # never connected: building the services makes no call
    services = build_services(settings, redis)
    async with open_photo_pipeline(settings, services) as pipeline:
        store = type(pipeline._store).__name__
    print(json.dumps({"modules": sorted(sys.modules), "channels": sorted(services.channels), "store": store}))


for values in sys.argv[1:]:
    asyncio.run(start(values))
"""

#: Loaded by the web app or `ava-bot dev` only: a worker never needs them.
NEVER_IN_A_WORKER = ("stripe", "fakeredis", "ava_bot.app", "aiohttp_jinja2", "jinja2")

TELEGRAM = {"telegram_bot_token": "123:bench", "telegram_api_base_url": "http://127.0.0.1:1"}
EVERY_SERVICE = TELEGRAM | {
    "whatsapp_enabled": "true",
    "whatsapp_phone_id": fake_whatsapp.PHONE_ID,
    "whatsapp_token": "wa-token",
    "whatsapp_app_secret": "wa-app-secret",
    "whatsapp_verify_token": "wa-verify-token",
    "whatsapp_api_base_url": "http://127.0.0.1:1",
    "stripe_secret_key": fake_stripe.API_KEY,
    "stripe_webhook_secret": fake_stripe.WEBHOOK_SECRET,
    "stripe_price_id": fake_stripe.PRICE_ID,
    "s3_bucket": "ava-photos",
    "s3_endpoint_url": "http://127.0.0.1:1",
    "s3_access_key_id": "AKIAFAKE",
    "s3_secret_access_key": "fake-secret",
}


@pytest.fixture(scope="module")
def starts(tmp_path_factory: pytest.TempPathFactory, dev_certs: Any) -> list[dict[str, Any]]:
    """The reports of a worker start with Telegram alone, then (same interpreter) one with every service."""
    tmp_path = tmp_path_factory.mktemp("worker-imports")
    base = {
        "ava_env": "development",
        "redis_url": "redis://127.0.0.1:1/0",
        "media_dir": str(tmp_path / "media"),
        "secret_key_file": str(tmp_path / "secret_key"),
        "plans_file": str(ROOT / "plans.toml"),
        "c2pa_cert_chain": str(dev_certs.chain),
        "c2pa_private_key": str(dev_certs.signer_key),
        "image_provider": "placeholder",
        "moderation_disabled": "true",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "WHATSAPP_", "S3_", "TELEGRAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", WORKER_START, json.dumps(base | TELEGRAM), json.dumps(base | EVERY_SERVICE)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def loaded(report: dict[str, Any], package: str) -> bool:
    """Whether `package` (or any module in it) was loaded."""
    return any(name == package or name.startswith(f"{package}.") for name in report["modules"])


def test_worker_without_whatsapp_or_s3_loads_neither(starts: list[dict[str, Any]]) -> None:
    """A worker with Telegram but neither WhatsApp nor S3 configured loads neither pywa nor botocore, and no
    library the web app or `dev` alone needs (Stripe, fakeredis, the portal's templates)."""
    report = starts[0]
    assert report["channels"] == ["telegram", "web"]
    assert report["store"] == "LocalPhotoStore"
    for package in ("pywa", "pywa_async", "botocore", "aiobotocore", *NEVER_IN_A_WORKER):
        assert not loaded(report, package), package
    assert loaded(report, "telegram") and loaded(report, "openai")


def test_worker_with_every_service_loads_what_it_uses(starts: list[dict[str, Any]]) -> None:
    """With WhatsApp, S3 and Stripe configured the worker loads pywa and botocore (it sends through WhatsApp and
    stores in the bucket), but still not Stripe: it only syncs the plans, it never calls Stripe."""
    report = starts[1]
    assert report["channels"] == ["telegram", "web", "whatsapp"]
    assert report["store"] == "S3PhotoStore"
    assert loaded(report, "pywa_async") and loaded(report, "aiobotocore")
    for package in NEVER_IN_A_WORKER:
        assert not loaded(report, package), package
