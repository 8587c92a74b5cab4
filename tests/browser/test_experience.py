"""The web experience (issue 12) checked by what a user sees, in Chromium, on a phone AND on a desktop.

Every test runs at 390x844 (touch) and at 1280x800 against the full application, with a fake model that answers
fast unless a step needs to watch the wait (2.5 s, as a real model) and a slow image provider (seconds per photo).
Each page visited is checked with axe-core (no serious or critical violation) and saved as a screenshot under
test-artifacts/browser/pages/<phone|desktop>/<page>.png (linked from the README).
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from billing.models import Plan
from core.models import Avatar
from imaging.providers.base import ImageProvider
from tests.browser.a11y import assert_accessible
from tests.browser.accounts import (
    PASSWORD,
    accept_adult_terms,
    open_menu_link,
    passed_adult_check,
    ready_account,
    set_up_by_chat,
    slow_images,
)
from tests.browser.chatpage import (
    ANNOUNCER,
    CHOICE,
    COMPOSER,
    INPUT,
    NEW_MESSAGES,
    PLACEHOLDER,
    TYPING,
    ava_says,
    enabled_choices_outside_latest_set,
    from_ava,
    loaded_images,
    messages,
    newest_in_view,
    press,
    say,
    sign_up,
    small_targets,
)
from tests.browser.conftest import LiveApp, Screen, page_shot
from tests.fakes.images import SlowImageProvider

#: What a real model takes to answer; only the turns that watch the typing indicator wait this long.
REAL_REPLY_SECONDS = 2.5
#: Long enough to see the photo placeholder card and its elapsed time tick.
PHOTO_SECONDS = 5.0


@pytest.fixture
def llm_delay() -> float:
    """Most answers come fast here: a slow one is asked for where the wait itself is checked."""
    return 0.05


@pytest.fixture
def image_provider() -> ImageProvider:
    """Photos take seconds, like a real image model."""
    return SlowImageProvider(delay=PHOTO_SECONDS)


@pytest.mark.timeout(120)
async def test_chat_keeps_the_newest_message_in_view_and_shows_ava_typing(live_app: LiveApp, screen: Screen) -> None:
    """After every turn, a reload and a new sign-in the newest message is fully visible above the message box; a
    2.5 s answer shows "Luna is typing…" until it arrives and the live region reads out only her message; reading
    older messages is not interrupted by a new one, which a "new messages" pill brings into view. Also: a skip
    link to the labelled message box, Enter sends and Shift+Enter breaks the line on a desktop (a send button on a
    phone), 44 px touch targets on a phone, her picture and the time beside her bubbles, no /portal in /help."""
    page = screen.page
    await ready_account(screen, live_app, f"chat-{screen.name}@example.com")
    await page.keyboard.press("Tab")  # the first stop is the skip link, straight to the message box
    skip = page.locator(":focus")
    await expect(skip).to_have_attribute("href", "#message-input")
    await expect(skip).to_be_visible()
    await page.keyboard.press("Enter")
    await expect(page.locator(INPUT)).to_be_focused()
    await expect(page.locator(INPUT)).to_have_accessible_name(re.compile(r"\S"))
    send = page.locator(COMPOSER).get_by_role("button", name=re.compile("send", re.I))
    if screen.is_phone:
        await expect(send).to_be_visible()
    else:  # Enter sends, Shift+Enter breaks the line; no send button
        await expect(send).to_be_hidden()
        await page.locator(INPUT).press("Shift+Enter")
        await page.locator(INPUT).press_sequentially("two")
        await expect(page.locator(INPUT)).to_have_value("\ntwo")
        await page.locator(INPUT).fill("")
    for turn in range(1, 8):
        await say(screen, f"message number {turn}")
        await newest_in_view(page, f"after sending message {turn}")
        await ava_says(page, f"echo: message number {turn}")
        await newest_in_view(page, f"after Ava's answer {turn}")

    await say(screen, "/help")  # the web chat is the portal: it does not offer a sign-in link to itself
    help_text = await ava_says(page, "/mode")
    await expect(help_text).not_to_contain_text("/portal")
    await newest_in_view(page, "after the command list")

    live_app.llm.slow_when("take your time", REAL_REPLY_SECONDS)
    await say(screen, "take your time, Luna")
    typing = page.locator(TYPING)
    await expect(typing).to_be_visible()
    await expect(typing).to_contain_text("Luna is typing")
    await page_shot(screen, "chat-typing", full_page=False)
    announcer = page.locator(ANNOUNCER)  # the live region reads out Ava's new messages, not the user's own
    await expect(announcer).not_to_contain_text("take your time, Luna")
    await ava_says(page, "echo: take your time, Luna")
    await expect(typing).to_be_hidden()
    await expect(announcer).to_contain_text("echo: take your time, Luna")
    await newest_in_view(page, "after the slow answer")
    if screen.is_phone:
        assert await small_targets(page) == [], "touch targets under 44x44 px"

    await page.reload()
    await expect(from_ava(page).last).to_contain_text("echo: take your time, Luna")
    await newest_in_view(page, "after a reload")
    await page_shot(screen, "chat", full_page=False)

    await say(screen, "take your time with this one too")
    await expect(typing).to_be_visible()
    anchor = from_ava(page).first  # the user scrolls back up to read while Ava is typing
    await anchor.scroll_into_view_if_needed()
    await page.mouse.wheel(0, -4000)
    await expect(anchor).to_be_in_viewport()
    before = await anchor.bounding_box()
    await expect(page.locator(NEW_MESSAGES)).to_be_visible(timeout=10_000)
    after = await anchor.bounding_box()
    assert before and after and abs(after["y"] - before["y"]) <= 1, f"the page moved while reading: {before} {after}"
    await page.locator(NEW_MESSAGES).click()
    await expect(from_ava(page).last).to_contain_text("echo: take your time with this one too")
    await newest_in_view(page, "after the new-messages pill")
    await expect(page.locator(NEW_MESSAGES)).to_be_hidden()
    newest = from_ava(page).last  # her bubble has her picture beside it and the time
    await expect(newest.locator(".face, .avatar").first).to_be_visible()
    await expect(newest.locator("time")).to_have_text(re.compile(r"^\d\d:\d\d$"))
    await assert_accessible(page, "chat")

    await screen.context.clear_cookies()  # signing in again opens the chat at the newest message too
    await page.goto(live_app.url + "/signin")
    await page.locator("input[name=email]").fill(f"chat-{screen.name}@example.com")
    await page.locator("input[type=password]").fill(PASSWORD)
    await page.locator("main").get_by_role("button", name=re.compile("sign in", re.I)).click()
    await expect(page).to_have_url(re.compile(r"/chat$"))
    await expect(from_ava(page).last).to_contain_text("echo: take your time with this one too")
    await newest_in_view(page, "after signing in")
    assert screen.problems.errors == []


@pytest.mark.timeout(120)
async def test_photo_placeholder_then_photo_and_navigation_to_every_page(live_app: LiveApp, screen: Screen) -> None:
    """In intimate mode a requested photo shows a "taking a photo…" card with the elapsed time, which the photo
    replaces (fully in view); the photo opens its page; the header menu reaches the gallery, account,
    subscription and chat (back at the newest message), and sign-out asks first; every page passes axe."""
    page = screen.page
    slow_images(live_app).delay = 0.5  # the reference photo: its wait is checked in the setup test
    await set_up_by_chat(screen, live_app, f"photo-{screen.name}@example.com")
    slow_images(live_app).delay = PHOTO_SECONDS
    await page.locator("header button[data-mode=intimate]").click()
    await ava_says(page, "Intimate mode")
    await page.reload()
    await expect(page.locator("header button[data-mode=intimate]")).to_have_attribute("aria-pressed", "true")

    live_app.llm.call_tool("send_photo", {"scene_description": "at a rooftop bar at night"}, text="Say cheese 📸")
    await say(screen, "show me where you are")
    await ava_says(page, "Say cheese 📸")
    card = messages(page).locator(PLACEHOLDER)
    await expect(card).to_be_visible()
    await expect(card).to_contain_text(re.compile("taking a photo", re.I))
    await expect(card).to_contain_text(re.compile(r"\b[1-9]\d* ?s\b"))  # the elapsed time ticks
    await newest_in_view(page, "with the photo placeholder")
    await page_shot(screen, "chat-photo-placeholder", full_page=False)
    photo = from_ava(page).locator("img").last
    await expect(photo).to_be_visible(timeout=PHOTO_SECONDS * 1000 + 15_000)
    await expect(card).to_have_count(0)
    await loaded_images(page, messages(page))
    await newest_in_view(page, "after the photo loaded")
    await page_shot(screen, "chat-photo", full_page=False)
    assert len(slow_images(live_app).requests) == 2  # the reference, then this photo

    slow_images(live_app).delay = 1.5
    slow_images(live_app).fail_next(1)  # the first try fails: the card says so while the photo is tried again
    live_app.llm.call_tool("send_photo", {"scene_description": "on the beach at sunset"}, text="One more 📸")
    await say(screen, "one more?")
    await ava_says(page, "One more 📸")
    await expect(card).to_contain_text(re.compile("still trying", re.I))
    await newest_in_view(page, "while the photo is retried")
    await page_shot(screen, "chat-photo-retrying", full_page=False)
    await expect(card).to_have_count(0, timeout=20_000)
    await expect(from_ava(page).locator("img")).to_have_count(3)
    await loaded_images(page, messages(page))
    await newest_in_view(page, "after the retried photo loaded")
    photo = from_ava(page).locator("img").nth(1)

    await open_menu_link(page, "photos")
    await passed_adult_check(page)
    await expect(page).to_have_url(re.compile(r"/gallery$"))
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    figures = page.locator("main figure")
    await expect(figures).to_have_count(3)  # the two photos and the kept reference
    await expect(figures.first.locator("figcaption")).to_contain_text(re.compile(r"Today, \d\d:\d\d"))
    await loaded_images(page, page.locator("main"))
    if not screen.is_phone:  # the grid uses a desktop's width: the three side by side
        tops = {round((await figures.nth(i).bounding_box() or {"y": -1})["y"]) for i in range(3)}
        assert len(tops) == 1, tops
    await assert_accessible(page, "gallery")
    await page_shot(screen, "gallery")

    await open_menu_link(page, "account")
    await expect(page).to_have_url(re.compile(r"/account$"))
    await expect(page.locator("main")).to_contain_text("Luna")
    await assert_accessible(page, "account")
    await page_shot(screen, "account")

    await open_menu_link(page, "subscription")
    await expect(page).to_have_url(re.compile(r"/subscribe$"))
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await assert_accessible(page, "subscription")
    await page_shot(screen, "subscription-active")

    await open_menu_link(page, "chat")
    await expect(page).to_have_url(re.compile(r"/chat$"))
    await expect(photo).to_be_visible()
    await loaded_images(page, messages(page))
    await newest_in_view(page, "coming back to the chat from the menu")

    await photo.click()  # a chat photo opens its page, whose "Back" returns to the chat
    await passed_adult_check(page)
    await expect(page).to_have_url(re.compile(r"/photos/\d+(/view)?(\?.*)?$"))
    await loaded_images(page, page.locator("main"))
    await expect(page.locator("[data-action=photo-download]")).to_be_visible()
    await expect(page.locator("[data-action=photo-delete]")).to_be_visible()
    await assert_accessible(page, "photo")
    await page_shot(screen, "photo")
    await page.locator("[data-action=photo-back]").click()
    await expect(page).to_have_url(re.compile(r"/chat$"))
    await loaded_images(page, messages(page))
    await newest_in_view(page, "back from the photo page")

    await open_menu_link(page, "signout")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("sign out", re.I))
    await page_shot(screen, "sign-out")
    await page.get_by_role("button", name=re.compile("sign out", re.I)).click()
    await page.goto(live_app.url + "/chat")
    await expect(page).to_have_url(re.compile(r"/signin"))
    assert screen.problems.errors == []


@pytest.mark.timeout(120)
async def test_setup_conversation_bends(live_app: LiveApp, screen: Screen) -> None:
    """Ava greets first; the setup says "Step N of 6"; "twenty-five" and "funny and sweet" are accepted; an age
    under 20 gets one bubble that explains and asks again; "back" changes the previous answer; the summary's
    "Change name" changes it; the reference photo (and a regenerated one) shows a placeholder, then the photo; after
    a reload only the open question's buttons are enabled, the answered ones show the choice; the gallery shows
    only the kept portrait."""
    page = screen.page
    slow_images(live_app).delay = 3.0
    await sign_up(screen, live_app, f"setup-{screen.name}@example.com", PASSWORD)
    await newest_in_view(page, "when the chat opens")
    await page_shot(screen, "chat-first-run", full_page=False)
    await accept_adult_terms(page)
    await ava_says(page, "Step 1 of 6")
    await press(page, "Woman")
    await ava_says(page, "Step 2 of 6")
    before = await from_ava(page).count()
    await say(screen, "nineteen")
    refusal = from_ava(page).nth(before)
    await expect(refusal).to_contain_text("20")
    await expect(refusal).to_contain_text("How old should I be?")
    await expect(from_ava(page)).to_have_count(before + 1)  # one bubble: the reason and the question again
    await say(screen, "twenty-five")
    await ava_says(page, "Step 3 of 6")
    await newest_in_view(page, "at step 3")
    await page_shot(screen, "chat-setup-step", full_page=False)
    await press(page, "← Back")
    age_again = await ava_says(page, "Step 2 of 6")
    await expect(age_again.get_by_role("button", name="Keep: 25")).to_be_enabled()
    await say(screen, "twenty-seven")
    await ava_says(page, "Step 3 of 6")
    await say(screen, "Brazilian")
    await ava_says(page, "Step 4 of 6")
    await say(screen, "curly auburn hair, hazel eyes, freckles, green summer dress")
    await ava_says(page, "Step 5 of 6")
    await say(screen, "Luna")
    await ava_says(page, "Step 6 of 6")

    await page.reload()  # answered sets are shown answered and disabled; only the open question's buttons work
    await newest_in_view(page, "after a reload during setup")
    state = await enabled_choices_outside_latest_set(page)
    assert state["stale"] == [] and state["latestEnabled"], state
    await expect(messages(page).locator(f"{CHOICE}.chosen").filter(has_text="Woman")).to_be_disabled()

    await say(screen, "funny and sweet")
    summary = await ava_says(page, "Shall I take my photo")
    for line in ("Age: 27", "Nationality: Brazilian", "Name: Luna", "Personality: funny and sweet"):
        await expect(summary).to_contain_text(line)
    await newest_in_view(page, "at the summary")
    await page_shot(screen, "chat-setup-summary", full_page=False)
    await press(page, "Change name")
    await ava_says(page, "What's my name?")
    await say(screen, "Mia")
    summary = await ava_says(page, "Shall I take my photo")
    await expect(summary).to_contain_text("Name: Mia")
    await press(page, "Looks good — take my photo")
    await ava_says(page, "Nice to meet you, I'm Mia!")
    card = messages(page).locator(PLACEHOLDER)
    await expect(card).to_be_visible()
    await newest_in_view(page, "with the reference photo placeholder")
    await ava_says(page, "Do you like how I look?")
    await expect(card).to_have_count(0)
    await loaded_images(page, messages(page))
    await newest_in_view(page, "with the reference photo and its buttons")
    await page_shot(screen, "chat-reference", full_page=False)
    await press(page, re.compile("Regenerate"))  # a second portrait: the first is discarded
    await expect(card).to_be_visible()
    await expect(from_ava(page).locator("img")).to_have_count(2, timeout=20_000)
    await expect(card).to_have_count(0)
    await loaded_images(page, messages(page))
    await newest_in_view(page, "with the second reference photo and its buttons")
    await press(page, "Keep ✓")
    await ava_says(page, "Perfect, that's me: Mia")
    await ava_says(page, "you need a subscription")
    await newest_in_view(page, "after keeping the reference")

    await page.reload()
    await loaded_images(page, messages(page))
    await newest_in_view(page, "after a reload at the end of setup")
    state = await enabled_choices_outside_latest_set(page)
    assert state["stale"] == [] and state["latestEnabled"] == [], state
    await page.goto(live_app.url + "/gallery")  # only the kept portrait: the discarded one is not shown
    await passed_adult_check(page)
    await expect(page.locator("main figure")).to_have_count(1)
    await expect(page.locator("main figure")).to_have_attribute("data-kind", "reference")
    await page.goto(live_app.url + "/subscribe")
    await expect(page.get_by_role("heading", level=1)).to_be_visible()
    await assert_accessible(page, "subscribe")
    await page_shot(screen, "subscribe")
    avatar = await Avatar.get(user__email=f"setup-{screen.name}@example.com")
    assert (avatar.name, avatar.age, avatar.personality) == ("Mia", 27, "funny and sweet")
    assert screen.problems.errors == []


@pytest.mark.timeout(60)
async def test_header_mode_switch_shows_the_new_mode(live_app: LiveApp, screen: Screen) -> None:
    """Choosing "Intimate" in the header: Ava confirms in the chat, and the header and the page's theme show the
    new mode without a reload; back to "Secretary" the same way."""
    page = screen.page
    await ready_account(screen, live_app, f"mode-{screen.name}@example.com")
    for mode, confirmation in (("intimate", "Intimate mode"), ("secretary", re.compile("secretary", re.I))):
        await page.locator(f"header button[data-mode={mode}]").click()
        await ava_says(page, confirmation)
        await expect(page.locator(f"header button[data-mode={mode}]")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator("body")).to_have_class(re.compile(rf"\bmode-{mode}\b"))
        await newest_in_view(page, f"after switching to {mode}")
        if mode == "intimate":
            await page_shot(screen, "chat-intimate", full_page=False)
    assert screen.problems.errors == []


@pytest.mark.timeout(60)
async def test_public_pages_say_what_ava_is_and_pass_axe(live_app: LiveApp, screen: Screen) -> None:
    """The home page says what Ava is, shows the 18+ notice and the configured price, and links the terms and the
    privacy notice; it, sign-in, sign-up, terms, privacy and a styled not-found page (with a way back) have an <h1>,
    a favicon, and pass axe; each is saved as a screenshot."""
    page = screen.page
    plan = await Plan.get(is_default=True)
    await page.goto(live_app.url + "/")
    main = page.locator("main")
    await expect(main).to_contain_text("AI companion")
    await expect(main).to_contain_text("18")
    assert plan.price_label, "the default plan has a price label"
    await expect(main).to_contain_text(str(plan.price_label))
    for path in ("/terms", "/privacy"):
        await expect(page.locator(f"a[href='{path}']").first).to_be_visible()
    favicon = await page.locator("link[rel=icon]").get_attribute("href")
    assert favicon, "the page names a favicon"
    answer = await page.request.get(live_app.url + favicon)
    assert answer.ok and answer.headers["content-type"].startswith("image/"), answer.headers
    for name, path in (
        ("home", "/"),
        ("signin", "/signin"),
        ("signup", "/signup"),
        ("terms", "/terms"),
        ("privacy", "/privacy"),
    ):
        await page.goto(live_app.url + path)
        await expect(page.get_by_role("heading", level=1)).to_have_count(1)
        await assert_accessible(page, name)
        await page_shot(screen, name)
    answer = await page.goto(live_app.url + "/no-such-page")
    assert answer is not None and answer.status == 404
    await expect(page.get_by_role("heading", level=1)).to_have_count(1)
    await expect(main.get_by_role("link", name=re.compile("home|back|chat", re.I)).first).to_be_visible()
    await assert_accessible(page, "not-found")
    await page_shot(screen, "not-found")
    assert screen.problems.errors == []
