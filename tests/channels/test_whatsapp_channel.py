"""`WhatsAppChannel`: real pywa_async against the fake Graph API (`tests.fakes.whatsapp`), reached through
`build_whatsapp`'s base-URL redirect; rendering, PLAT-03 (never an image), error mapping and the typing indicator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from channels.errors import WindowClosed
from channels.whatsapp import (
    WHATSAPP_CAPABILITIES,
    WhatsAppChannel,
    build_whatsapp,
    graph_session,
)
from channels.whatsapp.client import redirect_url
from core.errors import DeliveryError
from core.inbox import Inbox
from core.messages import ChatRef, Choice, ChoicesReply, InboundMessage, LinkReply, PhotoReady, TextReply
from core.models import SetupStep
from core.ports import Channel
from core.setup import question
from tests.fakes.queue import RecordingQueue
from tests.fakes.whatsapp import PHONE_ID, FakeGraph

REF = ChatRef("whatsapp", "16505551234")
PORTAL = "https://portal.example.com"


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    """The fake Graph API."""
    async with FakeGraph() as fake:
        yield fake


@pytest.fixture
async def channel(graph: FakeGraph) -> AsyncIterator[WhatsAppChannel]:
    """A channel whose real pywa client talks to the fake through the base-URL redirect."""
    session = graph_session(graph.url)
    wa = build_whatsapp(
        phone_id=PHONE_ID,
        token="test-token",
        app_secret="s3cret",
        verify_token="vt",
        base_url=graph.url,
        session=session,
    )
    try:
        yield WhatsAppChannel(wa)
    finally:
        await session.aclose()


def test_implements_the_channel_port(channel: WhatsAppChannel) -> None:
    """WhatsAppChannel satisfies `core.ports.Channel` and never shows photos inline."""
    assert isinstance(channel, Channel)
    assert channel.name == "whatsapp"
    assert channel.capabilities is WHATSAPP_CAPABILITIES
    assert not channel.capabilities.inline_images


def test_redirect_keeps_the_path_and_query() -> None:
    """Graph URLs move onto the base URL (its path prefix too) with path and query kept."""
    url = httpx.URL("https://graph.facebook.com/v26.0/123/messages?x=1")
    assert str(redirect_url(url, "http://127.0.0.1:9/graph/")) == "http://127.0.0.1:9/graph/v26.0/123/messages?x=1"


def test_build_refuses_missing_secrets() -> None:
    """Without an app secret updates would go unsigned: building the client refuses."""
    with pytest.raises(ValueError, match="app secret"):
        build_whatsapp(phone_id=PHONE_ID, token="t", app_secret="", verify_token="vt")


async def test_text(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """A text reply is one text message to the chat's number; the wamid comes back."""
    delivery = await channel.send(REF, TextReply("Hi there"))
    [sent] = graph.sent
    assert (sent.kind, sent.to, sent.phone_id, sent.body) == ("text", "16505551234", PHONE_ID, "Hi there")
    assert delivery.platform_message_id == sent.wamid
    assert graph.requests[0].path.endswith(f"/{PHONE_ID}/messages")
    assert graph.requests[0].headers["Authorization"] == "Bearer test-token"


async def test_three_choices_are_reply_buttons(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """Three choices are reply buttons, titles at most 20 characters, data as the button ids."""
    reply = ChoicesReply(
        "Which style?",
        (Choice("Realistic", "style:realistic"), Choice("Anime", "style:anime"), Choice("A" * 40, "style:x")),
    )
    await channel.send(REF, reply)
    [sent] = graph.sent
    assert sent.kind == "button"
    buttons = sent.content["action"]["buttons"]
    assert [b["reply"]["id"] for b in buttons] == ["style:realistic", "style:anime", "style:x"]
    assert all(len(b["reply"]["title"]) <= 20 for b in buttons)
    assert "A" * 40 in sent.body  # the full label the button could not show is in the body


async def test_setup_question_with_seven_long_choices_is_a_list(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """The personality question with a long current value (7 choices) is a list message within Graph's limits."""
    reply = question(SetupStep.PERSONALITY, current="warm, witty and endlessly curious about the stars")
    assert isinstance(reply, ChoicesReply)
    assert len(reply.choices) == 7
    await channel.send(REF, reply)
    [sent] = graph.sent
    assert sent.kind == "list"
    action = sent.content["action"]
    rows = [row for section in action["sections"] for row in section["rows"]]
    assert len(rows) == 7 <= 10
    assert all(len(row["title"]) <= 24 for row in rows)
    assert len(action["button"]) <= 20
    assert [row["id"] for row in rows] == [c.data for c in reply.choices]


async def test_eleven_choices_are_numbered_text(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """More choices than a list holds become a numbered list in a text message."""
    choices = tuple(Choice(f"Option {n}", f"opt:{n}") for n in range(1, 12))
    await channel.send(REF, ChoicesReply("Pick one:", choices))
    [sent] = graph.sent
    assert sent.kind == "text"
    assert "1. Option 1" in sent.body and "11. Option 11" in sent.body


async def test_link_is_a_cta_url_button(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """A link is a CTA URL message with a button text of at most 20 characters."""
    url = f"{PORTAL}/subscribe?u=1&sig=abc"
    await channel.send(REF, LinkReply("Subscribe to keep chatting.", "Subscribe to keep chatting now", url))
    [sent] = graph.sent
    assert sent.kind == "cta_url"
    parameters = sent.content["action"]["parameters"]
    assert parameters["url"] == url
    assert len(parameters["display_text"]) <= 20


async def test_photo_is_a_link_never_an_image(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """PLAT-03: a finished photo goes out as a CTA URL to the signed portal link, never as an image message."""
    url = f"{PORTAL}/photos/7?sig=abc&exp=1"
    await channel.send(REF, PhotoReady(7, url, "Here I am 😘"))
    await channel.send(ChatRef("whatsapp", "16505551234"), PhotoReady(8, "http://localhost:8080/p/8", "Local"))
    assert graph.kinds() == ["cta_url", "text"]
    assert graph.sent[0].content["action"]["parameters"]["url"] == url
    assert "http://localhost:8080/p/8" in graph.sent[1].body  # a URL WhatsApp refuses as a button: a text link
    assert not any(m.type == "image" or "image" in m.content for m in graph.sent)
    assert not any(r.json.get("type") == "image" for r in graph.requests)


async def test_long_text_is_split_with_the_url_intact(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """A 5,000-character text goes out as messages of at most 4096 characters, never cutting the URL."""
    url = f"{PORTAL}/gallery?token=" + "x" * 60
    words = ("lorem ipsum dolor sit amet " * 200).split()
    text = " ".join(words[:600]) + f" {url} " + " ".join(words[600:])
    text = text[:5000]
    assert len(text) == 5000 and url in text
    delivery = await channel.send(REF, TextReply(text))
    assert graph.kinds() == ["text", "text"]
    assert all(len(m.body) <= 4096 for m in graph.sent)
    assert sum(url in m.body for m in graph.sent) == 1
    assert delivery.platform_message_id == graph.sent[-1].wamid


async def test_window_closed(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """131047 (24-hour window closed) is a transient WindowClosed with no timer: only the user can reopen it."""
    graph.fail_next(131047, "Re-engagement message", details="Message failed to send because more than 24 hours")
    with pytest.raises(WindowClosed) as raised:
        await channel.send(REF, TextReply("Hello?"))
    assert isinstance(raised.value, DeliveryError)
    assert raised.value.window_closed is True
    assert not raised.value.permanent and raised.value.retry_after is None


async def test_undeliverable_is_permanent(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """131026 (recipient not on WhatsApp / cannot receive) is permanent."""
    graph.fail_next(131026, "Message Undeliverable.")
    with pytest.raises(DeliveryError) as raised:
        await channel.send(REF, TextReply("Hello?"))
    assert raised.value.permanent
    assert not isinstance(raised.value, WindowClosed)


@pytest.mark.parametrize(
    ("code", "headers", "wait"), [(130429, {}, 2.0), (131056, {}, 10.0), (80007, {"Retry-After": "42"}, 42.0)]
)
async def test_rate_limits_are_transient_with_retry_after(
    channel: WhatsAppChannel, graph: FakeGraph, code: int, headers: dict[str, str], wait: float
) -> None:
    """Rate limits are transient with a retry_after (Graph's Retry-After when given, else a per-code guess)."""
    graph.fail_next(code, "(#130429) Rate limit hit", headers=headers)
    with pytest.raises(DeliveryError) as raised:
        await channel.send(REF, TextReply("Hello?"))
    assert not raised.value.permanent
    assert raised.value.retry_after == wait


@pytest.mark.parametrize("code", [190, 10, 131031, 131000, 131009])
async def test_auth_and_account_errors_are_transient(channel: WhatsAppChannel, graph: FakeGraph, code: int) -> None:
    """Token, permission, account, unknown and parameter errors never mark the user unreachable."""
    graph.fail_next(code, "(#190) Error validating access token", status=401 if code == 190 else 400)
    with pytest.raises(DeliveryError) as raised:
        await channel.send(REF, TextReply("Hello?"))
    assert not raised.value.permanent
    assert not isinstance(raised.value, WindowClosed)


async def test_network_errors_are_transient(graph: FakeGraph) -> None:
    """A Graph API that cannot be reached is a transient error."""
    await graph.stop()  # nothing listens on the port any more
    session = graph_session(graph.url)
    wa = build_whatsapp(
        phone_id=PHONE_ID, token="t", app_secret="s", verify_token="vt", base_url=graph.url, session=session
    )
    try:
        with pytest.raises(DeliveryError) as raised:
            await WhatsAppChannel(wa).send(REF, TextReply("Hello?"))
    finally:
        await session.aclose()
    assert not raised.value.permanent


async def test_partial_send_is_not_repeated(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """When the second part of a long reply fails, the retry sends only that part: nothing goes out twice."""
    reply = TextReply(("word " * 600).strip() + "\n\n" + ("more " * 600).strip())
    graph.fail_next(130429, "(#130429) Rate limit hit", skip=1)
    with pytest.raises(DeliveryError):
        await channel.send(REF, reply)
    assert graph.kinds() == ["text"]
    delivery = await channel.send(REF, reply)  # the core's retry
    assert graph.kinds() == ["text", "text"]
    assert graph.sent[0].body.startswith("word") and graph.sent[1].body.startswith("more")
    assert delivery.platform_message_id == graph.sent[1].wamid
    await channel.send(REF, reply)  # sent in full again later: a new reply that happens to be the same
    assert len(graph.sent) == 4


async def test_typing_uses_the_latest_inbound_message(channel: WhatsAppChannel, graph: FakeGraph) -> None:
    """Typing is shown in answer to the chat's latest inbound wamid; without one it is a no-op; errors are ignored."""
    await channel.show_activity(ChatRef("whatsapp", "unknown-chat"), "upload_photo")
    channel.note_inbound(REF.chat_id, "wamid.A")
    channel.note_inbound(REF.chat_id, "wamid.B")
    await channel.show_activity(REF, "typing")
    await channel.show_activity(REF, "upload_photo")  # WhatsApp has no photo activity
    assert graph.typing == ["wamid.B"]
    await graph.stop()
    await channel.show_activity(REF, "typing")  # unreachable API: swallowed


async def test_typing_falls_back_to_the_stored_inbound_message(
    db: str, channel: WhatsAppChannel, graph: FakeGraph
) -> None:
    """A worker that did not see the webhook finds the latest inbound wamid in the database."""
    await Inbox(RecordingQueue()).receive(InboundMessage(REF, "wamid:wamid.STORED", "hi"))
    await channel.show_activity(REF, "typing")
    await channel.show_activity(ChatRef("whatsapp", "19999999999"), "typing")  # nothing stored: no-op
    assert graph.typing == ["wamid.STORED"]
