"""Browser tests: the FULL application (`ava-bot dev`'s web + in-process worker) on a real local port, driven by
Debian's Chromium through Playwright, against the test PostgreSQL and Redis and local fake external services.

Chromium is the Debian package (/usr/bin/chromium, installed by scripts/browser.sh; AVA_CHROMIUM overrides the
path); Playwright's own browser downloads are never used. The browser resolves no host but loopback.
Screenshots go to test-artifacts/browser/<test name>/ (gitignored); the folder is printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from arq.connections import ArqRedis
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright, expect
from playwright.async_api import Error as PlaywrightError
from tortoise import connections

from ava_bot.app import create_app
from ava_bot.settings import Settings
from imaging.providers.base import ImageProvider
from tests.browser.checkout import HostedCheckout
from tests.fakes.openai import FakeOpenAI
from tests.fakes.stripe import API_KEY, PRICE_ID, WEBHOOK_SECRET, FakeStripe

CHROMIUM = os.environ.get("AVA_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
#: A phone (iPhone 12-15 CSS size): the portal must work on one.
PHONE: ViewportSize = {"width": 390, "height": 844}
#: A laptop.
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
#: Every model answer takes this long, so the page shows Ava typing like it would with a real model.
LLM_DELAY_SECONDS = 0.8

#: Assertions wait this long for the page (ms): a loaded machine (the whole suite at once) may need more than 5 s.
EXPECT_TIMEOUT_MS = 10_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)

_SAVED = pytest.StashKey[list[Path]]()


@dataclass
class LiveApp:
    """The running application and the fakes behind it."""

    url: str
    settings: Settings
    llm: FakeOpenAI
    stripe: FakeStripe
    checkout: HostedCheckout
    #: The image provider the worker uses, when a test gave one (else the configured placeholder).
    images: ImageProvider | None = None


@dataclass
class Shots:
    """Numbered full-page screenshots of one test, in test-artifacts/browser/<test>/."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    async def __call__(self, page: Page, name: str) -> Path:
        """Save a full-page PNG of `page` as the next numbered step called `name`."""
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def llm_delay() -> float:
    """Seconds every model answer takes (a test module may override this fixture)."""
    return LLM_DELAY_SECONDS


@pytest.fixture
def image_provider() -> ImageProvider | None:
    """The worker's image provider; None: the configured offline placeholder (a module may override this)."""
    return None


@pytest.fixture
async def fake_llm(llm_delay: float) -> AsyncIterator[FakeOpenAI]:
    """A slow-ish fake OpenAI-compatible model (echoes unless a test plans an answer)."""
    fake = FakeOpenAI()
    fake.slow_when("", llm_delay)  # every message contains ""
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    """The fake Stripe API (the real `stripe` client talks to it) with its hosted Checkout page."""
    async with FakeStripe() as fake:
        yield fake


def _listening_socket() -> socket.socket:
    """A socket bound to a free loopback port: the app's public URL must be known before the app is built."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def live_app(
    db: str,
    redis: ArqRedis,
    make_settings: Any,
    fake_llm: FakeOpenAI,
    fake_stripe: FakeStripe,
    image_provider: ImageProvider | None,
) -> AsyncIterator[LiveApp]:
    """The whole application as `ava-bot dev` runs it (web + worker in one process) on 127.0.0.1, a free port,
    with Stripe configured (the fake) and the default plans file."""
    # Redis pub/sub channels are shared by all database numbers of a server: user ids (the web chat's channel
    # names) start at a random offset, so test runs sharing the Redis server never hear each other's chats.
    await connections.get("default").execute_query(
        "SELECT setval(pg_get_serial_sequence('users', 'id'), $1)", [secrets.randbelow(10**12) + 10**6]
    )
    sock = _listening_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    checkout = HostedCheckout(fake_stripe, webhook_url=f"{url}/billing/webhook")
    checkout.install()
    settings = make_settings(
        public_base_url=url,
        secret_key=secrets.token_hex(32),
        llm_api_key="sk-test",
        llm_base_url=fake_llm.base_url,
        image_provider="placeholder",
        photo_backoff_seconds=0.05,
        activity_interval_seconds=0.5,
        stripe_secret_key=API_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=fake_stripe.url,
        stripe_price_id=PRICE_ID,
        plans_file=ROOT / "plans.toml",
    )
    app = await create_app(settings, redis=redis, own_database=False, run_worker=True, image_provider=image_provider)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup_ctx: clients, services and the in-process worker start here
    try:
        await web.SockSite(runner, sock).start()
        yield LiveApp(
            url=url, settings=settings, llm=fake_llm, stripe=fake_stripe, checkout=checkout, images=image_provider
        )
    finally:
        await runner.cleanup()
        sock.close()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, driven by Playwright; it can reach loopback only."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"Chromium is required for the browser tests and is missing at {CHROMIUM}: run scripts/browser.sh")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class PageProblems:
    """What went wrong inside the page: uncaught script errors and Content-Security-Policy violations."""

    errors: list[str] = field(default_factory=list)


_PROBLEMS = pytest.StashKey[PageProblems]()


def watch(page: Page) -> PageProblems:
    """Start collecting `page`'s uncaught script errors and CSP violations."""
    seen = PageProblems()
    page.on("pageerror", lambda error: seen.errors.append(f"uncaught: {error}"))

    def console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            seen.errors.append(f"CSP: {message.text}")

    page.on("console", console)
    return seen


@dataclass
class Screen:
    """One browser context and page of a given size (`name`: phone or desktop), and what went wrong in it."""

    name: str
    context: BrowserContext
    page: Page
    problems: PageProblems

    @property
    def is_phone(self) -> bool:
        """True on the phone-sized screen (touch, no hover, a send button)."""
        return self.name == "phone"


@contextlib.asynccontextmanager
async def _open_screen(browser: Browser, request: pytest.FixtureRequest, name: str) -> AsyncIterator[Screen]:
    """A fresh context (no cookies) of the named size, traced; on a failed test its last screen (failure.png) and
    the Playwright trace (trace.zip: `playwright show-trace`) are kept with the screenshots."""
    if name == "phone":
        context = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    else:
        context = await browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(20_000)
    await context.tracing.start(screenshots=True, snapshots=True)
    page = await context.new_page()
    for stale in ("failure.png", "trace.zip"):  # left by an earlier failed run of this test
        (_folder(request) / stale).unlink(missing_ok=True)
    try:
        yield Screen(name=name, context=context, page=page, problems=watch(page))
    finally:
        failed = getattr(request.node, "failed_call", False)
        folder = _folder(request)
        if failed:
            folder.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(PlaywrightError):  # a crashed page must not hide the test's own failure
                await page.screenshot(path=str(folder / "failure.png"), full_page=True)
        await context.tracing.stop(path=str(folder / "trace.zip") if failed else None)
        await context.close()


@pytest.fixture
async def phone(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[tuple[BrowserContext, Page]]:
    """A fresh phone-sized browser context and page (see `_open_screen`)."""
    async with _open_screen(browser, request, "phone") as screen:
        request.node.stash[_PROBLEMS] = screen.problems
        yield screen.context, screen.page


@pytest.fixture
def problems(phone: tuple[BrowserContext, Page], request: pytest.FixtureRequest) -> PageProblems:
    """Uncaught page errors and CSP violations of the phone page (a test asserts there are none)."""
    return request.node.stash[_PROBLEMS]


@pytest.fixture(params=["phone", "desktop"])
async def screen(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Screen]:
    """The test runs twice: on a phone (390x844, touch) and on a desktop (1280x800) screen."""
    async with _open_screen(browser, request, request.param) as opened:
        yield opened


def _folder(request: pytest.FixtureRequest) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    return ARTIFACTS / name


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shots:
    """`await shot(page, "step")` saves test-artifacts/browser/<test>/NN-step.png (the folder starts empty)."""
    folder = _folder(request)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    request.config.stash.setdefault(_SAVED, []).append(folder)
    return Shots(folder)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Remember a failed test body, so its fixtures keep the Playwright trace."""
    report = yield
    if call.when == "call" and report.failed:
        item.failed_call = True  # type: ignore[attr-defined]
    return report


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Print where the screenshots (and the trace of a failed test) are."""
    for folder in config.stash.get(_SAVED, []):
        count = len(list(folder.glob("*.png")))
        trace = " + trace.zip" if (folder / "trace.zip").exists() else ""
        terminalreporter.write_line(f"browser screenshots ({count}{trace}): {folder}")


async def page_shot(screen: Screen, name: str, *, full_page: bool = True) -> Path:
    """Save what `screen` shows as test-artifacts/browser/pages/<phone|desktop>/<name>.png (linked from the README);
    `full_page=False` keeps just the window, as the user sees it (the chat, with its fixed header and box)."""
    folder = ARTIFACTS / "pages" / screen.name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    await screen.page.screenshot(path=str(path), full_page=full_page)
    return path
