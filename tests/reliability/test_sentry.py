"""Sentry events leave without message text or secrets: the real sentry_sdk, initialised by `init_sentry`, sends
to a local fake ingest server (tests/fakes/sentry.py) and the test reads the envelopes it received."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sentry_sdk
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import func

from ava_bot.http import make_error_middleware, portal_error_page
from ava_bot.observability import SentryScrubber, init_sentry
from ava_bot.settings import Settings
from ava_bot.wiring import Resources
from ava_bot.worker import create_worker
from tests.conftest import TEST_REDIS_URL
from tests.fakes.sentry import FakeSentry
from tests.fakes.telegram import TOKEN
from tests.support import eventually

CHAT_TEXT = "my secret crush is Giulia from accounting"
LINK_TOKEN = "eyJ1Ijo3LCJwIjo1LCJlIjowfQ.aBcDeF.0123456789abcdefghijklmnopq"
SESSION_ID = "Zx9Qm2Lp7Rt4Vw1Ky8Nb3Hc6Jd5Fg0Sa_Ue-Io2PqWe"
WEBHOOK_SECRET = "telegram-webhook-secret-for-sentry"


@pytest.fixture
async def sentry(make_settings: Any) -> AsyncIterator[tuple[FakeSentry, Settings]]:
    """The fake ingest server, and the real SDK initialised by `init_sentry` to send there (reset afterwards)."""
    async with FakeSentry() as fake:
        settings = make_settings(sentry_dsn=fake.dsn, telegram_bot_token=TOKEN, telegram_webhook_secret=WEBHOOK_SECRET)
        assert init_sentry(settings)
        try:
            yield fake, settings
        finally:
            await asyncio.to_thread(sentry_sdk.flush, 5)
            sentry_sdk.get_client().close()
            sentry_sdk.get_global_scope().set_client(None)


def _assert_clean(raw: bytes) -> None:
    for secret in (CHAT_TEXT, "Giulia", LINK_TOKEN, SESSION_ID, TOKEN, WEBHOOK_SECRET):
        assert secret.encode() not in raw, secret


async def _received(fake: FakeSentry, kind: str) -> dict[str, Any]:
    async def arrived() -> bool:
        await asyncio.to_thread(sentry_sdk.flush, 1)
        return any(kind in str(e.get("exception")) for e in fake.events)

    await eventually(arrived, what=f"a Sentry event about {kind}")
    return next(e for e in fake.events if kind in str(e.get("exception")))


async def test_a_failing_request_reaches_sentry_without_body_cookies_query_or_secrets(
    sentry: tuple[FakeSentry, Settings],
) -> None:
    """A handler failing with chat text, a link token, a session cookie and the bot token in scope sends an
    event naming the exception and the route, and none of those values."""

    async def chat(request: web.Request) -> web.Response:
        payload = await request.json()
        text = payload["text"]  # a local holding the user's words
        bot_url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"  # a local holding the bot token
        raise LookupError(f"no reply for a message of {len(text)} characters via {len(bot_url)}")

    app = web.Application(middlewares=[make_error_middleware(page=portal_error_page)])
    app.router.add_post("/chat/messages", chat)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(
            f"/chat/messages?t={LINK_TOKEN}",
            json={"text": CHAT_TEXT},
            headers={
                "Cookie": f"AVA_SESSION={SESSION_ID}",
                "Authorization": f"Bearer {LINK_TOKEN}",
                "X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
            },
        )
        assert response.status == 500
    fake, _ = sentry
    event = await _received(fake, "LookupError")
    assert event["exception"]["values"][-1]["type"] == "LookupError"
    assert event["request"]["url"].endswith("/chat/messages")
    _assert_clean(b"".join(fake.raw))


async def test_a_failing_arq_job_reaches_sentry_without_its_arguments(
    sentry: tuple[FakeSentry, Settings], redis: ArqRedis
) -> None:
    """A job of the production worker (`ava_bot.worker.create_worker`) failing with the chat text as its argument
    sends an event naming the task and the exception, without the argument or any local holding it."""
    fake, settings = sentry

    async def run_turn(ctx: dict[str, Any], text: str, link: str) -> None:
        words = text.split()  # locals holding the user's words
        raise RuntimeError(f"turn failed after {len(words)} words")

    await redis.enqueue_job("run_turn", CHAT_TEXT, f"https://ava.test/photos/5?t={LINK_TOKEN}")
    pool = await create_pool(RedisSettings.from_dsn(TEST_REDIS_URL))
    worker = create_worker(
        settings,
        Resources(settings=settings, redis=pool),
        services=None,  # only handed to the jobs' ctx; this job needs none
        pipeline=None,
        in_process=True,
        functions=[func(run_turn, name="run_turn")],
        cron_jobs=[],
        burst=True,
        max_tries=1,
    )
    try:
        await worker.async_run()
    finally:
        await worker.close()
    event = await _received(fake, "RuntimeError")
    assert event["extra"]["arq-job"] == {"task": "run_turn", "retry": 1}
    _assert_clean(b"".join(fake.raw))


@pytest.fixture
def scrubber() -> Iterator[SentryScrubber]:
    """A scrubber knowing the bot token as a configured secret."""
    yield SentryScrubber([TOKEN, WEBHOOK_SECRET])


def test_breadcrumbs_lose_query_strings_bodies_and_secrets(scrubber: SentryScrubber) -> None:
    """An HTTP breadcrumb keeps its host and path, never its query, body or the bot token in the path."""
    crumb = {
        "type": "http",
        "message": f"POST https://api.telegram.org/bot{TOKEN}/sendMessage",
        "data": {"url": f"https://ava.test/photos/5?t={LINK_TOKEN}", "http.query": f"t={LINK_TOKEN}", "body": "x"},
    }
    cleaned = scrubber.before_breadcrumb(crumb, {})
    assert cleaned is not None
    assert cleaned["data"] == {"url": "https://ava.test/photos/5"}
    assert TOKEN not in cleaned["message"] and "sendMessage" in cleaned["message"]


def test_log_message_events_are_redacted(scrubber: SentryScrubber) -> None:
    """An event made from a log record has e-mail addresses, DSN passwords and magic-link tokens masked."""
    event = {
        "logentry": {
            "message": "sign-in for alice@example.com via https://ava.test/portal/sign-in/abc.def.ghi failed; "
            "db postgres://ava:hunter2-db-pass@db:5432/ava"
        }
    }
    message = scrubber.before_send(event, {})["logentry"]["message"]
    assert "alice@" not in message and "abc.def.ghi" not in message and "hunter2-db-pass" not in message
    assert "postgres://ava:***@db:5432/ava" in message
