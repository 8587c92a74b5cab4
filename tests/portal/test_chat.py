"""The chat page: recent web messages in both directions, rendered safely; posting and streaming are the
web channel's routes (tests/channels/test_web.py)."""

from __future__ import annotations

from core.messages import Choice, ChoicesReply, LinkReply, PhotoReady, TextReply
from core.models import User
from tests.portal.conftest import Portal, post_chat, sign_up, signed_in, store_reply

CLIENT_ID = "c0ffee00c0ffee00"


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
    html = await (await portal.client.get("/chat")).text()
    assert '<button type="submit" name="choice" value="gender:female">Female</button>' in html
    assert '<div class="msg in"' in html and ">Female</p>" in html  # the pressed choice shows its label
    assert 'href="http://portal.test/subscribe"' in html
    assert '<img src="/photos/7" alt="At the beach"' in html  # the session route: no expiring token in the page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "someone else" not in html


async def test_chat_page_drops_unsafe_link_targets(portal: Portal) -> None:
    """A stored link whose target is not http(s) or site-relative is shown as plain text, never as a link."""
    user_id, _ = await signed_in(portal)
    await store_reply(user_id, LinkReply("Click me", "Open", "javascript:alert(1)"))
    html = await (await portal.client.get("/chat")).text()
    assert "javascript:" not in html and ">Click me</p>" in html


async def test_chat_page_script_shows_activity(portal: Portal) -> None:
    """The page's nonce'd script handles `activity` events with the typing and photo lines."""
    await signed_in(portal)
    html = await (await portal.client.get("/chat")).text()
    assert '<script nonce="' in html and 'addEventListener("activity"' in html
    assert "Ava is typing…" in html and "Ava is taking a photo…" in html
    assert '<p id="activity" class="muted" role="status" hidden></p>' in html


async def test_session_of_a_deleted_account_is_ended(portal: Portal) -> None:
    """When the account behind a session is gone, /chat ends the session and sends the browser to sign in."""
    user_id = await sign_up(portal.client)
    await User.filter(id=user_id).delete()
    response = await portal.client.get("/chat", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, "/signin")
    assert (await portal.client.get("/signin", allow_redirects=False)).status == 200
