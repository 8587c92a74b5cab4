"""Fixtures of the reliability suite: the fake external APIs, the environment of a real process stack, the stack.

`ava_stack` processes run on the session PostgreSQL database (`db`: emptied after each test, after the
processes stopped) and the test Redis database (`redis`: flushed before and after), so the test process can
seed and inspect rows through the ORM while the subprocesses work on the same data. Every secret in the env is
random per test, so `AvaStack.assert_no_secrets` finds any leak of one.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from arq.connections import ArqRedis

from imaging.certs import DevCertificates
from tests.conftest import TEST_REDIS_URL
from tests.fakes.openai import FakeOpenAI
from tests.fakes.replicate import FakeReplicate
from tests.fakes.stripe import PRICE_ID, FakeStripe
from tests.fakes.telegram import FakeTelegram
from tests.fakes.whatsapp import PHONE_ID, FakeGraph
from tests.reliability.processes import AS_DEPLOYED, REPO, AvaStack

#: Where links sent in chat point (Telegram refuses URL buttons to loopback hosts, as the fake checks).
PUBLIC_BASE_URL = "https://ava.example.test"


@dataclass
class Fakes:
    """The fake external APIs of one test, running in the test's event loop on loopback."""

    llm: FakeOpenAI
    replicate: FakeReplicate
    telegram: FakeTelegram
    graph: FakeGraph
    stripe: FakeStripe
    stripe_webhook_secret: str
    whatsapp_app_secret: str
    whatsapp_verify_token: str
    telegram_webhook_secret: str


def with_password(url: str, password: str) -> str:
    """`url` with `password` for its user (PostgreSQL here trusts loopback: the password is only carried)."""
    parts = urlsplit(url)
    netloc = f"{parts.username or ''}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def with_address(url: str, host: str, port: int) -> str:
    """`url` pointed at `host:port` (e.g. a TCP proxy), user and password kept."""
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth + '@' if auth else ''}{host}:{port}"))


#: What an `ava-bot` process imports, the lazily loaded clients of configured services included.
PROCESS_MODULES = "ava_bot.cli, ava_bot.app, channels.whatsapp.client, imaging.s3, billing.stripe_api, replicate"


@pytest.fixture(scope="session", autouse=True)
def deployed_bytecode() -> None:
    """Compile once, before the first process starts, the bytecode processes load as deployed (`AS_DEPLOYED`:
    PYTHONOPTIMIZE=2 reads `.opt-2.pyc` files, which the test run itself never writes), so no process of a test
    spends its start-up timeout compiling ~2,100 modules."""
    subprocess.run(  # our own interpreter, fixed arguments
        [sys.executable, "-c", f"import {PROCESS_MODULES}"],
        env=os.environ | AS_DEPLOYED,
        cwd=REPO,
        check=True,
        timeout=300,
    )


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    """Fake LLM, Replicate, Telegram, WhatsApp Graph and Stripe servers, each with random credentials."""
    bot_token = f"{secrets.randbelow(10**9) + 10**9}:AA{secrets.token_urlsafe(26)}"
    async with (
        FakeOpenAI() as llm,
        FakeReplicate(token=f"r8_{secrets.token_hex(16)}") as replicate,
        FakeTelegram(token=bot_token) as telegram,
        FakeGraph() as graph,
        FakeStripe(api_key=f"sk_test_{secrets.token_hex(16)}") as stripe,
    ):
        yield Fakes(
            llm=llm,
            replicate=replicate,
            telegram=telegram,
            graph=graph,
            stripe=stripe,
            stripe_webhook_secret=f"whsec_{secrets.token_hex(16)}",
            whatsapp_app_secret=secrets.token_hex(16),
            whatsapp_verify_token=secrets.token_urlsafe(16),
            telegram_webhook_secret=secrets.token_urlsafe(24),
        )


def stack_env(
    *, database_url: str, redis_url: str, fakes: Fakes, media_dir: Path, certs: DevCertificates
) -> dict[str, str]:
    """The environment of a development-mode stack on real PostgreSQL and Redis with every API faked."""
    return {
        "AVA_ENV": "development",
        "LOG_LEVEL": "DEBUG",
        "HOST": "127.0.0.1",
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": with_password(database_url, secrets.token_urlsafe(18)),
        "REDIS_URL": redis_url,
        "LLM_BASE_URL": fakes.llm.base_url,
        "LLM_API_KEY": f"sk-{secrets.token_hex(20)}",
        "LLM_TIMEOUT_SECONDS": "10",
        "IMAGE_PROVIDER": "replicate",
        "REPLICATE_API_TOKEN": fakes.replicate.token,
        "REPLICATE_BASE_URL": fakes.replicate.url,
        "TELEGRAM_BOT_TOKEN": fakes.telegram.token,
        "TELEGRAM_WEBHOOK_SECRET": fakes.telegram_webhook_secret,
        "TELEGRAM_API_BASE_URL": fakes.telegram.url,
        "WHATSAPP_ENABLED": "true",
        "WHATSAPP_PHONE_ID": PHONE_ID,
        "WHATSAPP_TOKEN": f"EAAG{secrets.token_hex(20)}",
        "WHATSAPP_APP_SECRET": fakes.whatsapp_app_secret,
        "WHATSAPP_VERIFY_TOKEN": fakes.whatsapp_verify_token,
        "WHATSAPP_API_BASE_URL": fakes.graph.url,
        "STRIPE_SECRET_KEY": fakes.stripe.api_key,
        "STRIPE_WEBHOOK_SECRET": fakes.stripe_webhook_secret,
        "STRIPE_API_BASE": fakes.stripe.url,
        "STRIPE_PRICE_ID": PRICE_ID,
        "PLANS_FILE": str(REPO / "plans.toml"),
        "MEDIA_DIR": str(media_dir),
        "C2PA_CERT_CHAIN": str(certs.chain),
        "C2PA_PRIVATE_KEY": str(certs.signer_key),
        # Short retry gaps and sweeps keep fault tests within seconds; production defaults are longer.
        "TURN_BACKOFF_SECONDS": "0.5",
        "PHOTO_BACKOFF_SECONDS": "0.5",
        "DELIVERY_BACKOFF_SECONDS": "0.5",
    }


@pytest.fixture
def ava_env(db: str, redis: ArqRedis, fakes: Fakes, dev_certs: DevCertificates, tmp_path: Path) -> dict[str, str]:
    """The env of this test's processes: the session database, the test Redis database, the fakes."""
    return stack_env(
        database_url=db, redis_url=TEST_REDIS_URL, fakes=fakes, media_dir=tmp_path / "media", certs=dev_certs
    )


@pytest.fixture
def ava_stack(ava_env: dict[str, str], tmp_path: Path) -> Iterator[AvaStack]:
    """A stack of real processes (none started yet) on `ava_env`; every process is killed at the end."""
    stack = AvaStack(tmp_path / "stack", ava_env)
    try:
        yield stack
    finally:
        stack.kill_all()
