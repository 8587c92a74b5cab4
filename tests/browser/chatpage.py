"""What a user sees of the portal, as Playwright locators and checks shared by the browser tests.

The selectors are the ones the templates publish for tests and scripts (`#messages`, `#composer`,
`.msg[data-direction]`, `[data-role=typing]`, ...). "In view" means what a person sees: a message's content
(its bubble less the bubble's padding) inside the window, below the fixed header, above the message box, and inside
every scrolling container.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Locator, Page, expect

from tests.browser.conftest import LiveApp, Screen

MESSAGES = "#messages"
COMPOSER = "#composer"
INPUT = "#message-input"
#: A chat message (a bubble or a card), but not the typing line or the "new messages" pill.
MESSAGE = ".msg:not([data-role=typing]):not([data-role=new-messages])"
FROM_AVA = ".msg[data-direction=out]"
FROM_USER = ".msg[data-direction=in]"
TYPING = "[data-role=typing]"
PLACEHOLDER = "[data-role=photo-placeholder]"
NEW_MESSAGES = "[data-role=new-messages]"
CHOICE = "button[data-choice]"
ANNOUNCER = "#announcer"
#: What a finger must hit on a phone: the header, the choices, the pill and the message box's controls.
TOUCH_TARGETS = (
    "header a, header button, header summary, #messages button, #messages a.button, [data-role=new-messages],"
    " #composer button, #composer textarea"
)

_GEOMETRY = """
([list, message, composer]) => {
  const all = Array.from(document.querySelectorAll(list + " " + message)).filter((e) => e.getClientRects().length);
  const last = all[all.length - 1];
  if (!last) return { ok: false, why: "no message on the page" };
  const box = last.getBoundingClientRect();
  let top = 0, bottom = window.innerHeight;
  for (let a = last.parentElement; a && a !== document.body && a !== document.documentElement; a = a.parentElement) {
    if (/(auto|scroll|hidden|clip)/.test(getComputedStyle(a).overflowY)) {
      const r = a.getBoundingClientRect();
      top = Math.max(top, r.top);
      bottom = Math.min(bottom, r.bottom);
    }
  }
  const header = document.querySelector("body > header, header[role=banner], header");
  if (header && header.getClientRects().length) top = Math.max(top, header.getBoundingClientRect().bottom);
  const form = document.querySelector(composer);
  if (form && form.getClientRects().length) bottom = Math.min(bottom, form.getBoundingClientRect().top);
  // Padding is not content: a bubble whose padding alone is under the header or the box hides nothing.
  const bubble = last.querySelector(".bubble") || last;
  const inner = bubble.getBoundingClientRect();
  const style = getComputedStyle(bubble);
  const padTop = parseFloat(style.paddingTop) || 0, padBottom = parseFloat(style.paddingBottom) || 0;
  const ok = inner.height > 0 && inner.top + padTop >= top - 1 && inner.bottom - padBottom <= bottom + 1
    && box.bottom <= bottom + padBottom + 1;
  return { ok, top: box.top, bottom: box.bottom, visibleTop: top, visibleBottom: bottom,
           text: (last.innerText || "").slice(0, 80) };
}
"""


def messages(page: Page) -> Locator:
    """The chat's message list."""
    return page.locator(MESSAGES)


def from_ava(page: Page) -> Locator:
    """Ava's messages, oldest first."""
    return messages(page).locator(FROM_AVA)


async def newest_geometry(page: Page) -> dict[str, Any]:
    """Where the newest message is, and the part of the window where it is seen."""
    result: dict[str, Any] = await page.evaluate(_GEOMETRY, [MESSAGES, MESSAGE, COMPOSER])
    return result


async def newest_in_view(page: Page, when: str, *, timeout: float = 5_000) -> None:
    """The newest message is fully seen (within `timeout` ms, smooth scrolling allowed); `when` names the moment."""
    try:
        await page.wait_for_function(
            f"(args) => ({_GEOMETRY})(args).ok", arg=[MESSAGES, MESSAGE, COMPOSER], timeout=timeout
        )
    except PlaywrightError:
        raise AssertionError(
            f"{when}: the newest message is not fully in view: {await newest_geometry(page)}"
        ) from None


async def loaded_images(page: Page, where: Locator) -> None:
    """Wait until every picture in `where` has been downloaded and decoded."""
    handle = await where.element_handle()
    await page.wait_for_function(
        "el => Array.from(el.querySelectorAll('img')).every((i) => i.complete && i.naturalWidth > 0)", arg=handle
    )


async def say(screen: Screen, text: str) -> None:
    """Send `text` as a person would: Enter on a desktop, the send button on a phone; it shows at once."""
    page = screen.page
    box = page.locator(INPUT)
    await box.fill(text)
    if screen.is_phone:
        await page.locator(COMPOSER).get_by_role("button", name=re.compile("send", re.I)).click()
    else:
        await box.press("Enter")
    await expect(messages(page).locator(FROM_USER).last).to_contain_text(text)
    await expect(box).to_have_value("")


async def ava_says(page: Page, text: str | re.Pattern[str]) -> Locator:
    """Wait until one of Ava's messages shows `text`; that message."""
    message = from_ava(page).filter(has_text=text).last
    await expect(message).to_be_visible()
    return message


async def press(page: Page, label: str | re.Pattern[str]) -> None:
    """Press the enabled choice button labelled `label`; afterwards no enabled button has that label."""
    exact = isinstance(label, str)
    button = messages(page).get_by_role("button", name=label, exact=exact, disabled=False)
    await expect(button).to_have_count(1)
    await button.click()
    await expect(messages(page).get_by_role("button", name=label, exact=exact, disabled=False)).to_have_count(0)


async def enabled_choices_outside_latest_set(page: Page) -> dict[str, Any]:
    """The enabled choice buttons that do not belong to the newest choice set, and the newest set's state."""
    result: dict[str, Any] = await page.evaluate(
        """([list, choice]) => {
          const buttons = Array.from(document.querySelectorAll(list + " " + choice));
          const sets = Array.from(new Set(buttons.map((b) => b.closest(".msg"))));
          const latest = sets[sets.length - 1] || null;
          const stale = buttons.filter((b) => !b.disabled && b.closest(".msg") !== latest).map((b) => b.textContent);
          const latestEnabled = latest ? Array.from(latest.querySelectorAll(choice)).filter((b) => !b.disabled)
            .map((b) => b.textContent) : [];
          return { sets: sets.length, stale, latestEnabled };
        }""",
        [MESSAGES, CHOICE],
    )
    return result


async def sign_up(screen: Screen, app: LiveApp, email: str, password: str) -> None:
    """From the home page, create an account; it lands on the chat."""
    page = screen.page
    await page.goto(app.url + "/")
    await page.get_by_role("link", name=re.compile(r"create an account|sign up|get started", re.I)).first.click()
    await page.locator("input[name=email]").fill(email)
    passwords = page.locator("input[type=password]")  # a confirmation field, if any, gets the same password
    for index in range(await passwords.count()):
        await passwords.nth(index).fill(password)
    await page.get_by_role("button", name=re.compile(r"create account|sign up", re.I)).click()
    await expect(page).to_have_url(re.compile(r"/chat$"))


async def small_targets(page: Page, selector: str = TOUCH_TARGETS, minimum: float = 44) -> list[str]:
    """The visible controls matching `selector` smaller than `minimum` CSS pixels either way (WCAG 2.5.5 on phones)."""
    small: list[str] = await page.evaluate(
        """([selector, minimum]) => Array.from(document.querySelectorAll(selector))
          .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== "hidden")
          .map((e) => [e, e.getBoundingClientRect()])
          .filter(([, r]) => r.width < minimum - 0.5 || r.height < minimum - 0.5)
          .map(([e, r]) => `${e.tagName.toLowerCase()} "${(e.textContent || e.getAttribute("aria-label") || "").trim()
            .slice(0, 30)}" ${Math.round(r.width)}x${Math.round(r.height)}`)""",
        [selector, minimum],
    )
    return small
