"""Getting a browser test to a signed-in user quickly, and moving around the portal's header menu.

`ready_account` signs up in the browser and finishes the rest in the database (no reference photo: for chat-only
tests); `set_up_by_chat` goes through the whole setup conversation the quick way, as a user who knows what they
want, and keeps the reference photo (photos need one).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.async_api import Page, expect

from ava_bot.admin import grant
from billing.models import Plan
from core.models import Avatar, Mode, SetupStep, User
from tests.browser.chatpage import ava_says, from_ava, press, say, sign_up
from tests.browser.conftest import LiveApp, Screen
from tests.fakes.images import SlowImageProvider

#: Strong by any reasonable measure (zxcvbn scores it 4): sign-up must accept it.
PASSWORD = "violet-harbour-lantern-1947"


def slow_images(app: LiveApp) -> SlowImageProvider:
    """The test's slow image provider."""
    assert isinstance(app.images, SlowImageProvider)
    return app.images


async def ready_account(screen: Screen, app: LiveApp, email: str, *, mode: Mode = Mode.SECRETARY) -> User:
    """Sign up in the browser, then (in the database) finish onboarding and setup and grant the default plan."""
    await sign_up(screen, app, email, PASSWORD)
    now = datetime.now(UTC)
    user = await User.get(email=email)
    await User.filter(id=user.id).update(
        adult_confirmed_at=now, terms_accepted_at=now, setup_step=SetupStep.DONE, mode=mode
    )
    await Avatar.create(
        user_id=user.id,
        name="Luna",
        gender="woman",
        age=25,
        nationality="Brazilian",
        appearance="curly auburn hair, hazel eyes, freckles, green summer dress",
        personality="playful",
        approved_at=now,
    )
    plan = await Plan.get(is_default=True)
    await grant(email, plan.code, 30)
    await screen.page.goto(app.url + "/chat")
    return user


async def accept_adult_terms(page: Page) -> None:
    """Ava greets first (nothing typed) with the 18+ question linking the terms; accept it."""
    greeting = from_ava(page).first
    await expect(greeting).to_contain_text("18 or older")
    await expect(greeting.locator("a[href$='/terms']")).to_be_visible()  # the URL in her message is a link
    await press(page, "I'm 18+ and accept")


async def set_up_by_chat(screen: Screen, app: LiveApp, email: str) -> User:
    """Sign up and set up Luna the quick way (typed answers and buttons), keep her reference photo, get a plan."""
    page = screen.page
    await sign_up(screen, app, email, PASSWORD)
    await accept_adult_terms(page)
    await press(page, "Woman")
    answers = ("25", "Brazilian", "curly auburn hair, hazel eyes, freckles, green summer dress", "Luna")
    for step, answer in enumerate(answers, start=2):
        await ava_says(page, f"Step {step} of 6")
        await say(screen, answer)
    await ava_says(page, "Step 6 of 6")
    await press(page, "Playful")
    await press(page, "Looks good — take my photo")
    await ava_says(page, "Do you like how I look?")
    await press(page, "Keep ✓")
    await ava_says(page, "Perfect, that's me: Luna")
    plan = await Plan.get(is_default=True)
    await grant(email, plan.code, 30)
    await page.reload()  # the header shows her name, picture and the mode switch once she exists
    await expect(page.locator("header .who-name")).to_have_text("Luna")
    return await User.get(email=email)


async def open_menu_link(page: Page, key: str) -> None:
    """Open the header menu (a disclosure on small screens) and follow its `key` entry (`data-nav`)."""
    link = page.locator(f"header [data-nav={key}]").first
    if not await link.is_visible():
        await page.locator("header #menu > summary").click()
    await expect(link).to_be_visible()
    await link.click()


async def passed_adult_check(page: Page) -> None:
    """Confirm 18+ on the interstitial if the portal shows it (it does once per browser session)."""
    if "/adult" in page.url:
        await page.get_by_role("button", name=re.compile("18 or older", re.I)).click()
