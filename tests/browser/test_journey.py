"""The whole user journey in a real browser (Debian's Chromium, phone-sized), against the full application.

Every step waits on what the page shows (Playwright's auto-retrying expectations), never on a fixed sleep,
and leaves a screenshot in test-artifacts/browser/.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import BrowserContext, Locator, Page, expect

from billing.models import Plan
from core.models import Avatar, SetupStep, User
from tests.browser.chatpage import COMPOSER, FROM_AVA, FROM_USER, INPUT, MESSAGES, TYPING
from tests.browser.conftest import LiveApp, PageProblems, Shots

EMAIL = "journey@example.com"
#: Strong by any reasonable measure (zxcvbn scores it 4): sign-up must accept it.
PASSWORD = "violet-harbour-lantern-1947"


def chat_log(page: Page) -> Locator:
    """The chat's message list."""
    return page.locator(MESSAGES)


async def say(page: Page, text: str) -> None:
    """Type `text` in the message box and press Send (a phone); it shows at once as the user's bubble."""
    await page.locator(INPUT).fill(text)
    await page.locator(COMPOSER).get_by_role("button", name="Send").click()
    await expect(chat_log(page).locator(FROM_USER).last).to_contain_text(text)


async def press(page: Page, label: str) -> None:
    """Press the (still enabled) chat button labelled `label`."""
    button = chat_log(page).get_by_role("button", name=label, exact=True, disabled=False)
    await expect(button).to_have_count(1)
    await button.click()
    await expect(chat_log(page).get_by_role("button", name=label, exact=True, disabled=False)).to_have_count(0)


async def ava_says(page: Page, text: str | re.Pattern[str]) -> Locator:
    """Wait until one of Ava's messages shows `text`; that message."""
    message = chat_log(page).locator(FROM_AVA).filter(has_text=text).last
    await expect(message).to_be_visible()
    return message


async def loaded_image(page: Page, image: Locator) -> None:
    """Wait until `image` is on screen and its picture has been downloaded and decoded."""
    await image.scroll_into_view_if_needed()
    handle = await image.element_handle()
    await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=handle)


async def sign_up(page: Page, app: LiveApp, shot: Shots) -> None:
    """From the home page, create an account with a strong password; it lands on the chat."""
    await page.goto(app.url + "/")
    await shot(page, "home")
    await page.get_by_role("link", name=re.compile(r"create an account|sign up", re.I)).first.click()
    await page.locator("input[name=email]").fill(EMAIL)
    passwords = page.locator("input[type=password]")  # a confirmation field, if any, gets the same password
    for index in range(await passwords.count()):
        await passwords.nth(index).fill(PASSWORD)
    await shot(page, "sign-up")
    await page.get_by_role("button", name=re.compile(r"create account|sign up", re.I)).click()
    await expect(page).to_have_url(re.compile(r"/chat$"))


async def set_up_ava(page: Page, shot: Shots) -> None:
    """Confirm 18+ (Ava asks first), answer the avatar questions (buttons and typing), confirm the summary, see the
    reference photo inline, keep it."""
    await ava_says(page, "18 or older")
    await shot(page, "adult-confirmation")
    await press(page, "I'm 18+ and accept")
    await ava_says(page, "should I be a woman, a man")
    await press(page, "Woman")
    await ava_says(page, "How old should I be?")
    await say(page, "24")
    await ava_says(page, "What nationality")
    await say(page, "Brazilian")
    await ava_says(page, "Describe how I look")
    await say(page, "curly auburn hair, hazel eyes, freckles, green summer dress")
    await ava_says(page, "What's my name?")
    await say(page, "Luna")
    await ava_says(page, "what's my personality?")
    await shot(page, "setup-questions")
    await press(page, "Adventurous")
    await ava_says(page, "Shall I take my photo")
    await press(page, "Looks good — take my photo")
    await ava_says(page, "Nice to meet you, I'm Luna!")

    reference = chat_log(page).locator(f"{FROM_AVA} figure img")
    await expect(reference).to_have_count(1)
    await loaded_image(page, reference)
    await ava_says(page, "Do you like how I look?")
    await shot(page, "reference-photo")
    await press(page, "Keep ✓")
    await ava_says(page, "Perfect, that's me: Luna")
    paywall = await ava_says(page, "you need a subscription")
    await expect(paywall.get_by_role("link", name="Subscribe")).to_be_visible()
    await shot(page, "reference-kept-paywall")


async def subscribe(page: Page, app: LiveApp, shot: Shots, plan: Plan) -> None:
    """From the paywall line: the subscribe page, Stripe Checkout (fake), pay, back on the success page."""
    await chat_log(page).get_by_role("link", name="Subscribe").last.click()  # a one-time sign-in link
    await expect(page).to_have_url(re.compile(r"/subscribe$"))
    await expect(page.get_by_role("heading", name=plan.name)).to_be_visible()
    await expect(page.get_by_text(str(plan.price_label))).to_be_visible()
    await shot(page, "subscribe")
    await page.get_by_role("button", name="Subscribe", exact=True).click()
    await expect(page).to_have_url(re.compile(re.escape(app.stripe.url) + r"/c/pay/cs_test_\w+$"))
    await expect(page.get_by_role("heading", name="Fake Stripe Checkout")).to_be_visible()
    await shot(page, "stripe-checkout")
    await page.get_by_role("button", name="Pay").click()
    await expect(page).to_have_url(re.compile(r"/billing/success\?session_id=cs_test_\w+$"))
    await expect(page.locator("#status")).to_contain_text(plan.name)
    await expect(page.locator("#status")).to_contain_text("is active")
    await shot(page, "subscribed")
    await page.get_by_role("link", name="Go to the chat").click()
    await expect(page).to_have_url(re.compile(r"/chat$"))
    await ava_says(page, f"{plan.name} subscription is active")


async def chat_and_get_a_photo(page: Page, app: LiveApp, shot: Shots) -> None:
    """Chat (Ava is seen typing), switch to intimate mode, ask for a photo: it appears in the chat."""
    app.llm.slow_when("what are you up to", 1.5)  # long enough to see the typing line
    await say(page, "what are you up to, Luna?")
    await expect(page.locator(TYPING)).to_have_text("Luna is typing…")
    await shot(page, "ava-typing")
    await ava_says(page, "echo: what are you up to, Luna?")
    await expect(page.locator(TYPING)).to_be_hidden()
    await say(page, "/mode intimate")
    await ava_says(page, "Intimate mode")
    app.llm.call_tool("send_photo", {"scene_description": "at a rooftop bar at night"}, text="Say cheese 📸")
    await say(page, "show me where you are")
    await ava_says(page, "Say cheese 📸")
    photo = chat_log(page).locator(f"{FROM_AVA} figure").filter(has_text="Just for you").locator("img")
    await expect(photo).to_have_count(1)
    await loaded_image(page, photo)
    await shot(page, "photo-in-chat")
    offered = [tool["function"]["name"] for tool in app.llm.completions()[-1].get("tools", [])]
    assert "send_photo" in offered  # intimate mode offers the model the photo tool


async def browse_photos(page: Page, shot: Shots) -> None:
    """/photos gives a gallery link; the 18+ interstitial first, then the gallery (newest first), the photo page."""
    await say(page, "/photos")
    gallery_link = (await ava_says(page, "in your gallery")).get_by_role("link", name="Open gallery")
    await gallery_link.click()
    await expect(page).to_have_url(re.compile(r"/adult\?next=(%2F|/)gallery$"))
    await expect(page.get_by_role("heading", name="Adults only")).to_be_visible()
    await shot(page, "adults-only")
    await page.get_by_role("button", name="I am 18 or older").click()
    await expect(page).to_have_url(re.compile(r"/gallery$"))
    figures = page.locator(".grid figure")
    await expect(figures).to_have_count(2)  # the photo and the reference portrait
    await expect(figures.first.locator("figcaption")).to_contain_text("At a rooftop bar at night")  # her scene
    await expect(figures.nth(1)).to_have_attribute("data-kind", "reference")
    await expect(figures.nth(1).locator("figcaption")).to_contain_text("My portrait")
    for index in range(2):
        await loaded_image(page, figures.nth(index).locator("img"))
    await shot(page, "gallery")
    await figures.first.get_by_role("link").click()
    await expect(page).to_have_url(re.compile(r"/photos/\d+/view$"))
    await expect(page.locator("figure.photo figcaption")).to_contain_text("At a rooftop bar at night")
    await loaded_image(page, page.locator("figure.photo img"))
    await expect(page.get_by_role("link", name="Download")).to_be_visible()
    await shot(page, "photo-page")


async def account_and_delete(page: Page, shot: Shots, plan: Plan) -> None:
    """The account page shows Ava and the plan (one photo used); delete my data, confirmed, signs out."""
    await page.locator("[data-action=photo-back]").click()
    await expect(page).to_have_url(re.compile(r"/gallery$"))
    await page.locator("header #menu > summary").click()  # the header menu
    await page.locator("header").get_by_role("link", name="Account").click()
    await expect(page).to_have_url(re.compile(r"/account$"))
    await expect(page.locator("#avatar")).to_contain_text("Luna")
    await loaded_image(page, page.locator("#avatar img"))
    card = page.locator("#plan")
    await expect(card).to_contain_text(plan.name)
    await expect(card).to_contain_text("active")
    await expect(card).to_contain_text(re.compile(r"Renews\s*Renews on \d{4}-\d{2}-\d{2}"))
    await expect(card).to_contain_text(re.compile(rf"Photos left\s*{plan.photos_per_period - 1}\b"))  # one taken
    await shot(page, "account")
    await page.get_by_role("link", name="Delete my data").click()
    await expect(page).to_have_url(re.compile(r"/account/delete$"))
    await page.get_by_label(re.compile("to confirm")).fill("DELETE")
    await shot(page, "delete-my-data")
    await page.get_by_role("button", name="Delete my data").click()
    await expect(page).to_have_url(re.compile(r"/account/deleted$"))
    await expect(page.get_by_role("heading", name="Your data is deleted")).to_be_visible()
    await shot(page, "deleted")


@pytest.mark.timeout(300)
async def test_browser_journey_from_sign_up_to_delete_my_data(
    live_app: LiveApp, phone: tuple[BrowserContext, Page], problems: PageProblems, shot: Shots
) -> None:
    """On a phone-sized Chromium: sign up, set up Ava, subscribe through Stripe Checkout, chat, get a photo, see it
    in the gallery and on its page, see the account, delete my data: the account, its photos and Stripe
    subscription are gone and the browser is signed out."""
    _, page = phone
    await sign_up(page, live_app, shot)
    await set_up_ava(page, shot)
    user = await User.get(email=EMAIL)
    avatar = await Avatar.get(user_id=user.id)
    assert user.setup_step == SetupStep.DONE
    assert (avatar.name, avatar.age, avatar.nationality) == ("Luna", 24, "Brazilian")
    assert avatar.approved_at is not None and avatar.reference_photo_id is not None

    plan = await Plan.get(is_default=True)  # synced from plans.toml when the app started
    await subscribe(page, live_app, shot, plan)
    deliveries = [(d.event_type, d.status) for d in live_app.checkout.deliveries]
    assert deliveries == [("checkout.session.completed", 200), ("customer.subscription.created", 200)]
    (session,) = live_app.stripe.calls_to("POST", "/v1/checkout/sessions")
    assert session.params["client_reference_id"] == str(user.id) and session.idempotency_key
    (subscription_id,) = live_app.stripe.subscriptions

    await chat_and_get_a_photo(page, live_app, shot)
    await browse_photos(page, shot)
    photo_page = page.url
    await account_and_delete(page, shot, plan)

    assert await User.get_or_none(id=user.id) is None
    assert live_app.stripe.subscriptions[subscription_id]["status"] == "canceled"
    media = live_app.settings.media_dir
    assert [p for p in media.rglob("*") if p.is_file()] == []  # the photo files are gone too
    for where in (live_app.url + "/chat", photo_page):  # signed out; the old photo page is no one's
        await page.goto(where)
        await expect(page).to_have_url(re.compile(r"/signin"))
    await shot(page, "signed-out")
    assert problems.errors == []
