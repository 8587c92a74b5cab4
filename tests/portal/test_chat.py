"""The chat page: recent web messages in both directions, rendered safely, choice sets answered or passed from the
stored rows, Ava's greeting on an empty chat, links in text, photo boxes and the page's accessibility hooks.
Posting and streaming are the web channel's routes (tests/channels/test_web.py); what the script does in a
browser is tests/browser."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.http import make_error_middleware, portal_error_page
from core.inbox import Inbox
from core.messages import Choice, ChoicesReply, LinkReply, PhotoReady, TextReply
from core.models import Direction, Message, MessageStatus, Mode, User
from portal.chat import message_event, setup_chat, welcome_id
from portal.chat_view import ChoiceState, choice_states, linkify, message_time
from portal.links import PortalLinks
from tests.fakes.queue import RecordingQueue
from tests.portal.conftest import (
    BASE_URL,
    SECRET,
    Portal,
    install_portal,
    post_chat,
    sign_up,
    signed_in,
    store_reply,
)

CLIENT_ID = "c0ffee00c0ffee00"


@pytest.fixture
async def greeting_portal(db: str, redis: ArqRedis) -> AsyncIterator[Portal]:
    """The portal with the chat page's inbox wired (as `ava_bot.app` wires it), so an empty chat greets."""
    queue = RecordingQueue()
    links = PortalLinks(SECRET, BASE_URL)
    inbox = Inbox(queue)
    app = web.Application(middlewares=[make_error_middleware(page=portal_error_page)])
    install_portal(app, links=links, inbox=inbox, redis=redis)
    setup_chat(app, inbox=lambda: inbox)
    client: TestClient = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Portal(client=client, queue=queue, links=links)
    finally:
        await client.close()


async def chat_html(portal: Portal) -> str:
    """The chat page's HTML."""
    response = await portal.client.get("/chat")
    assert response.status == 200
    return await response.text()


def buttons(html: str) -> list[tuple[str, bool, bool]]:
    """(choice data, disabled, marked as chosen) of every choice button on the page, in order."""
    found = []
    for tag in re.findall(r"<button [^>]*data-choice=[^>]*>", html):
        data = re.search(r'data-choice="([^"]*)"', tag)
        assert data is not None
        found.append((data.group(1), " disabled" in tag, 'class="chosen"' in tag))
    return found


async def inbound(user_id: int, *, text: str | None = None, choice: str | None = None) -> Message:
    """Store a processed inbound web message as the inbox and turn runner leave it."""
    return await Message.create(
        user_id=user_id,
        direction=Direction.INBOUND,
        channel="web",
        chat_id=str(user_id),
        text=text,
        choice=choice,
        status=MessageStatus.DONE,
    )


# -- history ------------------------------------------------------------------------------------------------------


async def test_chat_page_renders_history(portal: Portal) -> None:
    """The page shows both directions: text, choice buttons, link buttons, inline photos, escaped text."""
    user_id, token = await signed_in(portal)
    await store_reply(user_id, ChoicesReply("Pick one", (Choice("Female", "gender:female"),)))
    await post_chat(portal, token, choice="gender:female", client_id=CLIENT_ID)
    await store_reply(user_id, LinkReply("Subscribe here", "Subscribe", "http://portal.test/subscribe"))
    await store_reply(user_id, PhotoReady(7, "http://portal.test/photos/7?t=abc", "At the beach"))
    await store_reply(user_id, TextReply("<script>alert(1)</script>"))
    other = await User.create()
    await store_reply(other.id, TextReply("someone else's secret"))
    html = await chat_html(portal)
    assert re.search(r'<button type="submit" name="choice" value="gender:female" data-choice="gender:female"', html)
    assert '<div class="msg in" data-id=' in html and "Female</p>" in html  # the pressed choice shows its label
    assert 'href="http://portal.test/subscribe"' in html
    assert '<img src="/photos/7" alt="At the beach"' in html  # the session route: no expiring token in the page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "someone else" not in html


async def test_chat_page_drops_unsafe_link_targets(portal: Portal) -> None:
    """A stored link whose target is not http(s) or site-relative is shown as plain text, never as a link."""
    user_id, _ = await signed_in(portal)
    await store_reply(user_id, LinkReply("Click me", "Open", "javascript:alert(1)"))
    html = await chat_html(portal)
    assert "javascript:" not in html and "Click me</p>" in html


async def test_messages_carry_direction_and_a_human_time(portal: Portal) -> None:
    """Each message is marked with its direction and shows its time: "21:04" today, "Yesterday, 21:04" before."""
    user_id, _ = await signed_in(portal)
    old = await store_reply(user_id, TextReply("from yesterday"))
    yesterday = datetime.now(UTC) - timedelta(days=1)
    await Message.filter(id=old.id).update(created_at=yesterday)
    await inbound(user_id, text="and today")
    html = await chat_html(portal)
    assert re.search(r'data-direction="out"[^>]*>.*?from yesterday', html, re.S)
    assert re.search(r'data-direction="in"[^>]*>.*?and today', html, re.S)
    stamp = f"Yesterday, {yesterday.hour:02d}:{yesterday.minute:02d}"
    assert re.search(rf'<time class="sent-at" datetime="[0-9T:-]+Z">{stamp}</time>', html)
    assert re.search(r'<time class="sent-at" datetime="[0-9T:-]+Z">\d\d:\d\d</time>', html)


def test_message_time_is_short_today_and_relative_before() -> None:
    """Today's messages show only the clock; older ones say yesterday, the day, or the year."""
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert message_time(datetime(2026, 11, 20, 9, 5, tzinfo=UTC), now) == "09:05"
    assert message_time(datetime(2026, 11, 19, 21, 4, tzinfo=UTC), now) == "Yesterday, 21:04"
    assert message_time(datetime(2026, 11, 3, 21, 4, tzinfo=UTC), now) == "3 Nov, 21:04"
    assert message_time(datetime(2025, 11, 3, 21, 4, tzinfo=UTC), now) == "3 Nov 2025"


# -- choice sets ---------------------------------------------------------------------------------------------------


async def test_answered_and_passed_choice_sets_stay_disabled_after_reload(portal: Portal) -> None:
    """From the stored rows alone: an answered set is disabled with the pressed button marked, an unanswered older
    set is passed (disabled, nothing marked), and only the newest set of the current round is enabled."""
    user_id, _ = await signed_in(portal)
    await store_reply(user_id, ChoicesReply("Gender?", (Choice("Woman", "1.g:woman"), Choice("Man", "1.g:man"))))
    await inbound(user_id, choice="1.g:woman")
    await store_reply(user_id, ChoicesReply("Age?", (Choice("25", "2.age:25"), Choice("30", "2.age:30"))))
    await inbound(user_id, text="twenty-five")  # typed instead of pressed: the set has passed
    await store_reply(user_id, TextReply("Twenty-five it is."))
    await store_reply(user_id, ChoicesReply("Name?", (Choice("Luna", "3.name:luna"),)))
    await User.filter(id=user_id).update(question_round=3)
    for _ in range(2):  # a reload renders the same
        html = await chat_html(portal)
        assert buttons(html) == [
            ("1.g:woman", True, True),
            ("1.g:man", True, False),
            ("2.age:25", True, False),
            ("2.age:30", True, False),
            ("3.name:luna", False, False),
        ]
        assert '<span class="visually-hidden"> (your answer)</span>' in html
        assert html.count('data-state="open"') == 1


async def test_newest_set_of_a_past_round_is_disabled(portal: Portal) -> None:
    """The newest set is disabled once its round has passed (answered elsewhere) or the user wrote after it."""
    user_id, _ = await signed_in(portal)
    await store_reply(user_id, ChoicesReply("Keep?", (Choice("Keep", "4.keep"),)))
    await User.filter(id=user_id).update(question_round=5)
    assert buttons(await chat_html(portal)) == [("4.keep", True, False)]
    await User.filter(id=user_id).update(question_round=4)
    assert buttons(await chat_html(portal)) == [("4.keep", False, False)]
    await inbound(user_id, text="hmm, not sure")
    assert buttons(await chat_html(portal)) == [("4.keep", True, False)]


def test_a_press_answers_the_newest_set_that_offered_it() -> None:
    """Repeated button data (older rows without rounds) mark only the newest earlier set offering it."""
    rows = [
        Message(id=1, direction=Direction.OUTBOUND, payload={"type": "choices", "choices": [{"data": "yes"}]}),
        Message(id=2, direction=Direction.OUTBOUND, payload={"type": "choices", "choices": [{"data": "yes"}]}),
        Message(id=3, direction=Direction.INBOUND, choice="yes"),
    ]
    assert choice_states(rows, 0) == {1: ChoiceState("passed"), 2: ChoiceState("answered", "yes")}


# -- Ava greets first ------------------------------------------------------------------------------------------------


async def test_empty_chat_asks_ava_to_greet_once(greeting_portal: Portal) -> None:
    """A new user's empty chat stores one `/start` through the inbox (idempotent id), schedules the turn, shows Ava
    typing, and never shows the `/start` as the user's message; later loads store nothing more."""
    user_id = await sign_up(greeting_portal.client)
    html = await chat_html(greeting_portal)
    rows = await Message.filter(user_id=user_id)
    assert [(r.direction, r.text, r.external_message_id, r.status) for r in rows] == [
        (Direction.INBOUND, "/start", welcome_id(user_id), MessageStatus.PENDING)
    ]
    assert greeting_portal.queue.calls == [user_id]
    assert "Say hi" not in html and "/start" not in html
    assert re.search(r'<div class="typing" id="activity" data-role="typing">', html)  # shown, not hidden
    assert f'data-after="{rows[0].id}"' in html
    await store_reply(user_id, TextReply("Hi, I'm Ava ✨"))
    html = await chat_html(greeting_portal)
    assert await Message.filter(user_id=user_id, direction=Direction.INBOUND).count() == 1
    assert "Hi, I&#39;m Ava ✨" in html and "/start" not in html
    assert re.search(r'<div class="typing" id="activity" data-role="typing" hidden>', html)


async def test_greeting_with_the_queue_down_still_shows_the_chat(greeting_portal: Portal) -> None:
    """When the turn cannot be scheduled the page still opens; the stored `/start` waits for the sweeper."""
    user_id = await sign_up(greeting_portal.client)
    greeting_portal.queue.broken = True
    html = await chat_html(greeting_portal)
    assert '<form id="composer"' in html
    assert await Message.filter(user_id=user_id, external_message_id=welcome_id(user_id)).count() == 1


async def test_chat_with_history_is_not_greeted_again(greeting_portal: Portal) -> None:
    """A user who already has web messages gets no new `/start`."""
    user_id = await sign_up(greeting_portal.client)
    await store_reply(user_id, TextReply("Earlier words"))
    await chat_html(greeting_portal)
    assert not await Message.exists(user_id=user_id, direction=Direction.INBOUND)
    assert greeting_portal.queue.calls == []


# -- links and photos --------------------------------------------------------------------------------------------------


def test_linkify_links_urls_and_portal_pages_only() -> None:
    """http(s) URLs and portal pages become links (trailing punctuation left out); commands, other schemes and
    paths inside words stay text."""
    assert linkify("accept the terms (/terms).") == [
        {"text": "accept the terms ("},
        {"text": "/terms", "href": "/terms"},
        {"text": ")."},
    ]
    assert linkify("see https://example.com/a?b=1&c=2, ok") == [
        {"text": "see "},
        {"text": "https://example.com/a?b=1&c=2", "href": "https://example.com/a?b=1&c=2"},
        {"text": ", ok"},
    ]
    for text in ("Type /help for commands", "javascript:alert(1)", "and/or /photos", "http:// nothing", "ftp://x.y"):
        assert linkify(text) == [{"text": text}]
    assert linkify("") == [{"text": ""}]
    assert linkify("your photo: /photos/12/view") == [
        {"text": "your photo: "},
        {"text": "/photos/12/view", "href": "/photos/12/view"},
    ]


async def test_links_in_messages_are_escaped_and_safe(portal: Portal) -> None:
    """A URL in text is a link with rel="noopener noreferrer"; everything around it, and any quote trick in it,
    stays escaped text."""
    user_id, _ = await signed_in(portal)
    await store_reply(user_id, TextReply('Read <b>this</b>: https://example.com/x"onmouseover="alert(1) and /terms'))
    html = await chat_html(portal)
    assert '<a href="https://example.com/x" rel="noopener noreferrer">https://example.com/x</a>' in html
    assert '<a href="/terms" rel="noopener noreferrer">/terms</a>' in html
    assert "Read &lt;b&gt;this&lt;/b&gt;: " in html and "&#34;onmouseover=&#34;alert(1) and " in html
    assert "<b>" not in html and 'onmouseover="' not in html


async def test_chat_photo_links_to_its_page_and_reserves_its_box(portal: Portal) -> None:
    """A photo links to its photo page and carries width and height, so its box is reserved before it loads."""
    user_id, _ = await signed_in(portal)
    await store_reply(user_id, PhotoReady(7, "http://portal.test/photos/7?t=abc", "At the beach"))
    html = await chat_html(portal)
    assert re.search(
        r'<a class="photo-link" href="/photos/7/view"><img src="/photos/7" alt="At the beach"\s+'
        r'width="832" height="1248" loading="lazy"',
        html,
    )


def test_message_event_marks_photo_notices_and_streams_choices_open() -> None:
    """The stream's shape: a photo notice row is flagged (it ends the placeholder card), a streamed choices set is
    open, texts come with link segments and an ISO time."""
    at = datetime(2026, 11, 20, 21, 4, tzinfo=UTC)
    notice = Message(
        id=9,
        direction=Direction.OUTBOUND,
        external_message_id="photo:5:0",
        text="That photo didn't work",
        payload={"type": "text", "text": "That photo didn't work, see /terms"},
        created_at=at,
    )
    event = message_event(notice)
    assert event["photo_notice"] is True and event["at"] == "2026-11-20T21:04:00Z"
    assert event["parts"][-1] == {"text": "/terms", "href": "/terms"}
    choices = Message(
        id=10,
        direction=Direction.OUTBOUND,
        payload={"type": "choices", "text": "Pick", "choices": [{"label": "A", "data": "1.a"}]},
        created_at=at,
    )
    assert (message_event(choices)["choice_state"], message_event(choices)["photo_notice"]) == ("open", False)


# -- the page around the messages --------------------------------------------------------------------------------------


async def test_chat_page_accessibility_hooks(portal: Portal) -> None:
    """A heading, a labelled message box with a skip link to it, a live region separate from the history (which is
    not live), the typing line, the new-messages pill, and the script loaded from /static with the CSP nonce."""
    user_id, _ = await signed_in(portal)
    await store_reply(user_id, TextReply("Hello"))
    response = await portal.client.get("/chat")
    html = await response.text()
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"])
    assert nonce is not None
    assert re.search(r"<h1[^>]*>Chat with Ava</h1>", html)
    assert '<a class="skip-link" href="#message-input">' in html
    assert '<label for="message-input" class="visually-hidden">Message to Ava</label>' in html
    assert re.search(r'<textarea id="message-input" name="text"', html) and '<form id="composer"' in html
    assert '<div id="announcer" class="visually-hidden" aria-live="polite" data-role="announcer"></div>' in html
    messages = re.search(r'<section id="messages"[^>]*>', html)
    assert messages is not None and "aria-live" not in messages.group(0) and 'role="log"' not in messages.group(0)
    assert 'data-role="typing" hidden' in html
    assert '<button type="button" class="new-messages" data-role="new-messages" hidden>' in html
    assert re.search(rf'<script src="/static/chat\.js\?v=[0-9a-f]+" nonce="{re.escape(nonce.group(1))}" defer>', html)
    assert "<script nonce" not in html  # no inline script


async def test_chat_script_is_served(portal: Portal) -> None:
    """The chat script is a static file that handles the stream's activity kinds and keeps the newest in view."""
    response = await portal.client.get("/static/chat.js")
    assert response.status == 200 and response.content_type == "text/javascript"
    script = await response.text()
    for hook in ('"typing"', '"upload_photo"', '"photo_retry"', "data-role=new-messages", "photo-placeholder"):
        assert hook in script


async def test_mode_shows_as_a_theme_class(portal: Portal) -> None:
    """The page carries the user's mode as a class on <body>, which the chat's colours follow."""
    user_id, _ = await signed_in(portal)
    assert re.search(r'<body class="mode-secretary page-chat">', await chat_html(portal))
    await User.filter(id=user_id).update(mode=Mode.INTIMATE)
    assert re.search(r'<body class="mode-intimate page-chat">', await chat_html(portal))


async def test_session_of_a_deleted_account_is_ended(portal: Portal) -> None:
    """When the account behind a session is gone, /chat ends the session and sends the browser to sign in."""
    user_id = await sign_up(portal.client)
    await User.filter(id=user_id).delete()
    response = await portal.client.get("/chat", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/signin")
    assert (await portal.client.get("/signin", allow_redirects=False)).status == 200
