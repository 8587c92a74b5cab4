"""No secret in the log at DEBUG: real flows run with the app's own `setup_logging` at LOG_LEVEL=DEBUG, and what it
writes is searched for every secret those flows handled. The scanner of the whole suite (tests/logscan.py) is
shown to catch planted secrets, by itself and as a plugin failing a test."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from ava_bot.db import normalise_db_url
from ava_bot.keys import SERVICES
from ava_bot.observability import setup_logging
from ava_bot.settings import Settings
from core.models import Direction, Message, User
from tests.billing.conftest import BASE_URL, MONTHLY, checkout, plans_toml, post_event, session_id_of
from tests.fakes.openai import FakeOpenAI
from tests.fakes.stripe import API_KEY, PRICE_ID, WEBHOOK_SECRET, FakeStripe, event_body
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.logscan import register_secret, scan
from tests.portal.conftest import page_token, sign_up
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "leak.check@example.org"
PASSWORD = "quiet-otter-galaxy-7319"
TELEGRAM_SECRET = "tg-webhook-secret-for-the-log-test"
CHAT_TEXT = "please keep this between us: I am moving to Lisbon"
DB_PASSWORD = "Db-Passw0rd-never-logged"
SECRET_KEY = "k" * 8 + "Qx7-log-test-secret-key-0123456789abcdef"


@pytest.fixture
def debug_log() -> Iterator[Callable[[Settings], io.StringIO]]:
    """`setup_logging(settings)` at DEBUG writing into a buffer; the test harness's handlers are kept alongside."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level

    def install(settings: Settings) -> io.StringIO:
        buffer = io.StringIO()
        setup_logging(settings)
        root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
        root.handlers.extend(saved_handlers)  # the suite's own scanner keeps watching too
        return buffer

    yield install
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeTelegram, FakeStripe]]:
    """The LLM, Telegram Bot API and Stripe fakes."""
    async with FakeOpenAI() as llm, FakeTelegram() as telegram, FakeStripe() as stripe:
        yield llm, telegram, stripe


def _update(text: str) -> dict[str, Any]:
    chat = {"id": 5550001, "type": "private", "first_name": "Sam"}
    person = {"id": 5550001, "is_bot": False, "first_name": "Sam"}
    return {
        "update_id": 9001,
        "message": {"message_id": 1, "date": 1764400000, "chat": chat, "from": person, "text": text},
    }


async def test_real_flows_at_debug_log_no_secret(
    db: str,
    redis: ArqRedis,
    make_settings: Any,
    tmp_path: Path,
    fakes: tuple[FakeOpenAI, FakeTelegram, FakeStripe],
    debug_log: Callable[[Settings], io.StringIO],
) -> None:
    """Sign-up and sign-in with a password, a magic link, photo links (good and tampered), a Telegram update with
    the webhook secret and a bot reply, a Stripe checkout and signed webhook — all at DEBUG — log none of the
    secrets involved, and the user's words never at INFO or above."""
    llm, telegram, stripe = fakes
    plans = tmp_path / "plans.toml"
    plans.write_text(plans_toml(MONTHLY), encoding="utf-8")
    base, _, name = normalise_db_url(db).rpartition("/")
    settings = make_settings(
        log_level="DEBUG",
        secret_key=SECRET_KEY,
        database_url=f"{base.replace('postgres@', f'postgres:{DB_PASSWORD}@')}/{name}",  # trust auth ignores it
        llm_api_key="sk-log-test-llm-key",
        llm_base_url=llm.base_url,
        public_base_url=BASE_URL,
        telegram_bot_token=TOKEN,
        telegram_webhook_secret=TELEGRAM_SECRET,
        telegram_api_base_url=telegram.url,
        stripe_secret_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe.url,
        stripe_price_id=PRICE_ID,
        plans_file=plans,
    )
    for secret in (PASSWORD, EMAIL, DB_PASSWORD):
        register_secret(secret)
    log = debug_log(settings)
    app = await create_app(settings, redis=redis, own_database=False, run_worker=True)
    async with TestClient(TestServer(app)) as client:
        user_id = await sign_up(client, EMAIL, PASSWORD)
        response = await checkout(client)
        stripe_session = stripe.complete_checkout(session_id_of(response.headers["Location"]))[0]
        assert (await post_event(client, event_body("checkout.session.completed", stripe_session))).status == 200
        await client.post("/signout", data={"csrf_token": await page_token(client, "/chat")})
        form = {"email": EMAIL, "password": PASSWORD, "csrf_token": await page_token(client, "/signin")}
        assert (await client.post("/signin", data=form, allow_redirects=False)).status == 303
        await client.post("/signout", data={"csrf_token": await page_token(client, "/chat")})

        links = app[SERVICES].links
        epoch = (await User.get(id=user_id)).auth_epoch
        magic = links.signed_sign_in_url(user_id, epoch).removeprefix(BASE_URL)
        photo = links.signed_photo_url(user_id, 12345, epoch).removeprefix(BASE_URL)
        tokens = [magic.rsplit("/", 1)[1], photo.split("?t=", 1)[1]]
        assert (await client.get(magic[:-3] + "xyz", allow_redirects=False)).status == 403  # tampered
        assert (await client.get(magic, allow_redirects=False)).status == 303
        for url in (photo, photo[:-2] + "zz"):  # genuine (no such photo) and tampered: refused, never a 500
            assert (await client.get(url, allow_redirects=False)).status < 500
        session_ids = [c.value for c in client.session.cookie_jar]

        headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        assert (await client.post("/webhooks/telegram", json=_update(CHAT_TEXT), headers=headers)).status == 200

        async def answered() -> bool:
            return await Message.filter(direction=Direction.OUTBOUND, user_id__not=user_id).exists()

        async def bot_sent() -> bool:
            return bool(telegram.calls_to("sendMessage"))

        await eventually(answered, timeout=60, what="a reply to the Telegram user")
        await eventually(bot_sent, timeout=60, what="the bot's sendMessage")

    logging.getLogger("ava_bot.check").debug("the handler writes DEBUG")
    password_hash = (await User.get(id=user_id)).password_hash
    text = log.getvalue()
    assert "DEBUG   ava_bot.check: the handler writes DEBUG" in text and "INFO    ava_bot" in text
    secrets = [PASSWORD, password_hash or "-", EMAIL, DB_PASSWORD, SECRET_KEY, TOKEN, TELEGRAM_SECRET, API_KEY]
    secrets += [WEBHOOK_SECRET, "sk-log-test-llm-key", *tokens, *session_ids]
    for secret in secrets:
        assert secret not in text, f"{secret[:4]}… logged"
    for token in tokens:  # not even a piece of a link's signature (a refusal must not quote the token)
        assert token.rsplit(".", 1)[1][:12] not in text, "a link signature was logged"
    assert scan(text, []) is None, scan(text, [])
    info_and_above = [line for line in text.splitlines() if " DEBUG " not in line]
    assert not [line for line in info_and_above if "Lisbon" in line]  # the user's words stay out of INFO+


def test_migrate_at_debug_logs_no_database_password(db: str) -> None:
    """`ava-bot migrate` with LOG_LEVEL=DEBUG and a DSN with a password logs neither the password nor the DSN."""
    base, _, name = normalise_db_url(db).rpartition("/")
    env = {k: v for k, v in os.environ.items() if k not in {"AVA_ENV", "REDIS_URL"}}
    env |= {"DATABASE_URL": f"{base.replace('postgres@', f'postgres:{DB_PASSWORD}@')}/{name}", "LOG_LEVEL": "DEBUG"}
    done = subprocess.run(
        [sys.executable, "-m", "ava_bot.cli", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert " DEBUG " in done.stderr  # the run did log at DEBUG
    assert DB_PASSWORD not in done.stderr and DB_PASSWORD[:8] not in done.stderr
    assert scan(done.stderr, []) is None, scan(done.stderr, [])


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        ("$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "password hash"),
        ("postgres://ava:hunter2hunter2@db:5432/ava", "DSN password"),
        ("Authorization: Bearer abcdefgh12345678", "bearer token"),
        (f"GET https://api.telegram.org/bot{TOKEN}/getMe", "configured secret"),
        ("9988776655:AAHfakeButRealShapedBotToken_abcdefghij", "Telegram bot token"),
        ("key sk_live_51ABCDEFGHijklmnop", "Stripe key"),
        ("whsec_abcdefghijklmnop", "Stripe key"),
        ("/portal/sign-in/eyJ1IjoxLCJlIjowfQ.aBcDeF.0123456789abcdefghijklmnopq", "signed token"),
        ("session Zx9Qm2Lp7Rt4Vw1Ky8Nb3Hc6Jd5Fg0Sa_Ue-Io2PqWe", "session or CSRF id"),
        ("sent to someone@example.com", "e-mail address"),
        ("refused: Signature b'ep4s44hnSscPBhCfBU9lIDqDxyz' does not match", "link signature"),
        ("form password=letmein123", "password field"),
    ],
)
def test_the_scanner_catches_each_kind_of_secret(planted: str, kind: str) -> None:
    """A log line carrying each kind of secret is caught and its secret masked in the report."""
    hit = scan(f"prefix {planted} suffix", [TOKEN])
    assert hit is not None and kind in hit[0]
    assert f"[{kind}]" in hit[1] and "prefix" in hit[1] and "suffix" in hit[1]


@pytest.mark.parametrize(
    "harmless",
    [
        "tests/reliability/test_log_secrets.py::test_the_scanner_catches_each_kind_of_secret_in_a_line",
        "postgres://postgres@127.0.0.1:5432/ava_test_0123abcd",
        "release ava-bot@0.1.0, password=*** redacted, Bearer ***",
        "SELECT 1 FROM users WHERE id=$1: [42]",
        "job 0123456789abcdef0123456789abcdef:run_turn ok",
        "0.03s → drain:799559180474:d673f91df20f46019337e8c74a3fec9d:run_turn(799559180474, 'd673f91d')",
    ],
)
def test_the_scanner_ignores_look_alikes(harmless: str) -> None:
    """Test names, password-less DSNs, masked values, SQL and job ids are not reported."""
    assert scan(harmless, [TOKEN]) is None


def test_the_plugin_fails_a_test_that_logs_a_secret_and_masks_it(tmp_path: Path) -> None:
    """A test logging a planted secret fails, with the test, the logger and the masked record in the report."""
    test_file = tmp_path / "test_planted.py"
    test_file.write_text(
        textwrap.dedent(
            """
            import logging

            def test_logs_a_hash():
                logging.getLogger("planted.logger").debug("user row %s", "$argon2id$v=19$m=65536$c2FsdA$aGFzaA")

            def test_logs_nothing_secret():
                logging.getLogger("planted.logger").debug("user 42 signed in")
            """
        ),
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.logscan", str(test_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "1 failed, 1 passed" in out, out
    assert "test_planted.py::test_logs_a_hash" in out and "'planted.logger'" in out and "[password hash]" in out
    assert "aGFzaA" not in out  # the secret itself never reaches the report


def test_production_json_lines_mask_secrets_in_messages_and_exceptions(
    make_settings: Any, debug_log: Callable[[Settings], io.StringIO]
) -> None:
    """The last line of defence: in production (JSON lines) a record whose message and exception carry a configured
    secret, an e-mail address, a DSN password and a link token is written with all of them masked."""
    settings = make_settings(ava_env="production", log_level="DEBUG", telegram_bot_token=TOKEN)
    log = debug_log(settings)
    planted = logging.getLogger("ava_bot.redaction_check")
    try:
        raise ConnectionError(f"postgres://ava:{DB_PASSWORD}@db:5432/ava refused for {EMAIL}")
    except ConnectionError:
        planted.exception("call to https://api.telegram.org/bot%s/getMe failed; link /portal/sign-in/abc.def", TOKEN)
    line = log.getvalue().strip().splitlines()[-1]
    assert '"levelname": "ERROR"' in line and "ConnectionError" in line and "ava_bot.redaction_check" in line
    for secret in (TOKEN, DB_PASSWORD, EMAIL, "abc.def"):
        assert secret not in line, secret
    assert "postgres://ava:***@db" in line and "***@example.org" in line


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("httpx", logging.WARNING),
        ("httpx2", logging.WARNING),  # the openai client's httpx fork: one line per LLM request
        ("botocore", logging.WARNING),  # S3 request headers (the access key id)
        ("aiobotocore", logging.WARNING),
        ("tortoise.db_client", logging.INFO),  # SQL parameters
        ("stripe", logging.INFO),
        ("telegram.Bot", logging.INFO),
    ],
)
def test_loggers_that_print_secrets_are_held_above_debug(
    make_settings: Any, debug_log: Callable[[Settings], io.StringIO], name: str, level: int
) -> None:
    """At LOG_LEVEL=DEBUG the root logs DEBUG, but each logger known to print URLs, headers, SQL parameters or API
    bodies stays at its held level: its DEBUG lines are never written."""
    log = debug_log(make_settings(log_level="DEBUG"))
    held = logging.getLogger(name)
    assert logging.getLogger().level == logging.DEBUG and held.getEffectiveLevel() == level
    held.debug("request headers: Authorization: AWS4-HMAC-SHA256 Credential=held-logger-check")
    assert "held-logger-check" not in log.getvalue()
