"""The web channel: `WebChannel` (pokes and activity on Redis pub/sub), posting chat messages through the
inbox, and the live event stream. Routes are tested wired to the portal, as `ava_bot.app` wires them."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from channels.web import WEB_CAPABILITIES, WebChannel, activity_of, events_channel, web_ref
from channels.web_events import redis_db
from core.errors import DeliveryError
from core.inbox import Inbox
from core.messages import ChatRef, PhotoReady, TextReply, reply_to_payload
from core.models import Direction, Message, MessageStatus, User
from core.ports import Channel, Delivery
from portal.links import PortalLinks
from tests.portal.conftest import (
    BASE_URL,
    SECRET,
    Portal,
    RecordingQueue,
    install_portal,
    page_token,
    post_chat,
    serve_portal,
    sign_up,
    signed_in,
    store_reply,
)

CLIENT_ID = "c0ffee00c0ffee00"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def portal(db: str, redis: ArqRedis) -> AsyncIterator[Portal]:
    """The portal with the web chat routes, served on a local port."""
    async with serve_portal(redis) as harness:
        yield harness


async def next_event(response: ClientResponse, timeout: float = 5.0) -> dict[str, str]:
    """Read the next SSE event that carries data (skipping comments and the retry hint)."""
    fields: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout)).decode().rstrip("\n")
        if line == "":
            if "data" in fields:
                return fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


# --- WebChannel -------------------------------------------------------------------------------------------


def test_web_ref_uses_the_user_id_as_chat_id() -> None:
    """A web user's chat is addressed by their user id."""
    assert web_ref(42) == ChatRef("web", "42")
    assert events_channel("42") == "ava:web:0:42"
    assert events_channel("42", 7) == "ava:web:7:42"


def test_implements_the_channel_port(redis: ArqRedis) -> None:
    """WebChannel satisfies `core.ports.Channel`, is named "web" and shows everything inline."""
    channel = WebChannel(redis)
    assert isinstance(channel, Channel)
    assert channel.name == "web"
    assert channel.capabilities is WEB_CAPABILITIES
    assert WEB_CAPABILITIES.inline_images and WEB_CAPABILITIES.accepts_url_button("http://localhost:8000/x")


async def test_send_publishes_a_poke_on_the_users_channel(redis: ArqRedis) -> None:
    """send() publishes to ava:web:{db}:{chat_id}, which open chat streams listen on, and has no platform id."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(events_channel("42", redis_db(redis)))
    try:
        assert await WebChannel(redis).send(web_ref(42), TextReply("hello")) == Delivery(None)
        message = None
        async with asyncio.timeout(5):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert message["channel"] == events_channel("42", redis_db(redis)).encode()
        assert activity_of(message["data"]) is None
    finally:
        await pubsub.aclose()


async def test_show_activity_publishes_the_kind(redis: ArqRedis) -> None:
    """show_activity() publishes {"activity": kind} on the user's channel."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(events_channel("42", redis_db(redis)))
    try:
        await WebChannel(redis).show_activity(web_ref(42), "upload_photo")
        message = None
        async with asyncio.timeout(5):
            while message is None:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        assert json.loads(message["data"]) == {"activity": "upload_photo"}
        assert activity_of(message["data"]) == "upload_photo"
    finally:
        await pubsub.aclose()


def test_activity_of_ignores_anything_else() -> None:
    """Only a JSON object naming a known activity kind is an activity."""
    assert activity_of(b'{"activity":"typing"}') == "typing"
    for data in (b"1", "1", b"{", b'{"activity":"dancing"}', b"[]", None, 1):
        assert activity_of(data) is None


async def test_send_refuses_other_channels(redis: ArqRedis) -> None:
    """A reply addressed to another channel is a programming error, not a silent no-op."""
    with pytest.raises(ValueError, match="telegram"):
        await WebChannel(redis).send(ChatRef("telegram", "1"), TextReply("hi"))


async def test_send_raises_a_transient_delivery_error_when_redis_is_down() -> None:
    """An unreachable Redis surfaces as a DeliveryError that is worth retrying."""
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    try:
        with pytest.raises(DeliveryError) as caught:
            await WebChannel(dead).send(web_ref(1), TextReply("hi"))
        assert caught.value.permanent is False
    finally:
        await dead.aclose()


async def test_show_activity_ignores_redis_errors() -> None:
    """Activity is best effort: an unreachable Redis raises nothing."""
    dead = ArqRedis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    try:
        await WebChannel(dead).show_activity(web_ref(1), "typing")
    finally:
        await dead.aclose()


# --- POST /chat/messages ----------------------------------------------------------------------------------


async def test_unauthenticated_post_is_401(portal: Portal) -> None:
    """Posting a message without a session answers 401 and stores nothing."""
    token = await page_token(portal.client, "/")
    response = await post_chat(portal, token, text="hi", client_id=CLIENT_ID)
    assert response.status == 401
    assert await Message.all().count() == 0


async def test_post_stores_one_pending_row_and_enqueues_once(portal: Portal) -> None:
    """A typed message becomes one pending inbound web row and one enqueued turn; the answer is 202."""
    user_id, token = await signed_in(portal)
    response = await post_chat(portal, token, text="  hello Ava  ", client_id=CLIENT_ID)
    assert response.status == 202
    body = await response.json()
    row = await Message.get()
    assert body == {"message_id": row.id, "duplicate": False}
    assert (row.user_id, row.direction, row.channel, row.chat_id) == (user_id, Direction.INBOUND, "web", str(user_id))
    assert (row.text, row.choice, row.status) == ("hello Ava", None, MessageStatus.PENDING)
    assert portal.queue.calls == [user_id]


async def test_same_client_id_is_stored_and_enqueued_once(portal: Portal) -> None:
    """Posting the same client_id twice stores one row, enqueues once, and reports the duplicate."""
    user_id, token = await signed_in(portal)
    first = await post_chat(portal, token, text="hello", client_id=CLIENT_ID)
    second = await post_chat(portal, token, text="hello", client_id=CLIENT_ID)
    first_body = await first.json()
    assert first_body["duplicate"] is False
    assert await second.json() == {"message_id": first_body["message_id"], "duplicate": True}
    assert await Message.all().count() == 1
    assert portal.queue.calls == [user_id]


async def test_client_ids_are_scoped_per_user(portal: Portal) -> None:
    """Two users using the same client_id each get their own message."""
    _, token = await signed_in(portal)
    await post_chat(portal, token, text="from alice", client_id=CLIENT_ID)
    portal.forget_cookies()
    await sign_up(portal.client, email="bob@example.com")
    token = await page_token(portal.client, "/chat")
    response = await post_chat(portal, token, text="from bob", client_id=CLIENT_ID)
    assert (await response.json())["duplicate"] is False
    assert await Message.all().count() == 2


async def test_pressed_choice_is_stored_as_choice(portal: Portal) -> None:
    """A pressed button is stored as the message's choice, without text."""
    _, token = await signed_in(portal)
    response = await post_chat(portal, token, choice="gender:female", client_id=CLIENT_ID)
    assert response.status == 202
    row = await Message.get()
    assert (row.text, row.choice) == (None, "gender:female")


async def test_empty_message_is_400(portal: Portal) -> None:
    """Neither text nor choice (or only spaces) answers 400 with a clear error and stores nothing."""
    _, token = await signed_in(portal)
    response = await post_chat(portal, token, text="   ", client_id=CLIENT_ID)
    assert response.status == 400
    assert (await response.json())["error"] == "Write a message or press a button."
    assert await Message.all().count() == 0 and portal.queue.calls == []


async def test_too_long_text_is_400(portal: Portal) -> None:
    """Text over 4000 characters answers 400 and stores nothing."""
    _, token = await signed_in(portal)
    response = await post_chat(portal, token, text="x" * 4001, client_id=CLIENT_ID)
    assert response.status == 400
    assert "4000" in (await response.json())["error"]
    assert await Message.all().count() == 0


async def test_missing_client_id_is_400(portal: Portal) -> None:
    """A message without a usable client_id is refused (it is the idempotency key)."""
    _, token = await signed_in(portal)
    response = await post_chat(portal, token, text="hi")
    assert response.status == 400
    assert await Message.all().count() == 0


async def test_invalid_json_body_is_400(portal: Portal) -> None:
    """A body that is not a JSON object answers 400 with a JSON error."""
    _, token = await signed_in(portal)
    for body in ("{not json", "[1, 2]"):
        response = await portal.client.post(
            "/chat/messages", data=body, headers={"X-CSRF-Token": token, "Content-Type": "application/json"}
        )
        assert response.status == 400
        assert "error" in await response.json()
    assert await Message.all().count() == 0


async def test_post_without_csrf_token_is_403(portal: Portal) -> None:
    """A signed-in POST without the CSRF token is refused and stores nothing."""
    await signed_in(portal)
    response = await post_chat(portal, None, text="hi", client_id=CLIENT_ID)
    assert response.status == 403
    assert await Message.all().count() == 0


async def test_cross_site_post_is_403_even_with_a_token(portal: Portal) -> None:
    """A POST the browser marks as cross-site is refused even when it carries the token."""
    _, token = await signed_in(portal)
    response = await portal.client.post(
        "/chat/messages",
        json={"text": "hi", "client_id": CLIENT_ID},
        headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"},
    )
    assert response.status == 403
    assert await Message.all().count() == 0


async def test_plain_form_post_redirects_back_to_the_chat(portal: Portal) -> None:
    """Without script, the chat's HTML form posts and is redirected back to /chat; the message is stored."""
    _, token = await signed_in(portal)
    response = await portal.client.post(
        "/chat/messages", data={"text": "hi", "client_id": CLIENT_ID, "csrf_token": token}, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/chat"
    assert (await Message.get()).text == "hi"


# --- GET /chat/events -------------------------------------------------------------------------------------


async def test_events_require_a_session(portal: Portal) -> None:
    """The event stream answers 401 without a session."""
    response = await portal.client.get("/chat/events")
    assert response.status == 401


async def test_event_stream_delivers_a_reply_after_the_channel_pokes(portal: Portal, redis: ArqRedis) -> None:
    """A reply stored and sent through WebChannel arrives on an open stream as an event with its row id."""
    user_id, _ = await signed_in(portal)
    response = await portal.client.get("/chat/events")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    reply = PhotoReady(photo_id=5, url="http://portal.test/photos/5?t=tok", caption="Here I am", kind="reference")
    row = await store_reply(user_id, reply)
    await WebChannel(redis).send(web_ref(user_id), reply)
    event = await next_event(response)
    assert event["id"] == str(row.id)
    data = json.loads(event["data"])
    assert data == {
        "id": row.id,
        "direction": "out",
        "text": "Here I am",
        "payload": {
            **reply_to_payload(reply),
            "url": "/photos/5",
            "page": "/photos/5/view",
            "width": 832,
            "height": 1248,
        },
        "parts": [{"text": "Here I am"}],
        "at": data["at"],
        "photo_notice": False,
    }
    assert data["at"].endswith("Z")
    response.close()


async def test_show_activity_reaches_an_open_stream(portal: Portal, redis: ArqRedis) -> None:
    """show_activity() arrives as an `activity` event without an id; the next reply still streams after it."""
    user_id, _ = await signed_in(portal)
    response = await portal.client.get("/chat/events")
    await asyncio.sleep(0.2)  # the stream has subscribed
    await WebChannel(redis).show_activity(web_ref(user_id), "typing")
    event = await next_event(response)
    assert event == {"event": "activity", "data": '{"kind":"typing"}'}
    row = await store_reply(user_id, TextReply("hi"))
    await WebChannel(redis).send(web_ref(user_id), TextReply("hi"))
    event = await next_event(response)
    assert event["id"] == str(row.id) and "event" not in event
    response.close()


async def test_photo_retry_activity_reaches_an_open_stream(portal: Portal, redis: ArqRedis) -> None:
    """A photo attempt that will be retried shows as a `photo_retry` activity (the page says "still trying…")."""
    user_id, _ = await signed_in(portal)
    response = await portal.client.get("/chat/events")
    await asyncio.sleep(0.2)  # the stream has subscribed
    await WebChannel(redis).show_activity(web_ref(user_id), "photo_retry")
    # Pub/sub channels span Redis databases: skip hints that parallel test runs publish for the same user id.
    event = await next_event(response)
    while event == {"event": "activity", "data": '{"kind":"typing"}'}:
        event = await next_event(response)
    assert event == {"event": "activity", "data": '{"kind":"photo_retry"}'}
    assert activity_of(b'{"activity":"photo_retry"}') == "photo_retry"
    response.close()


async def test_idle_stream_wakes_only_on_the_poke(portal: Portal, redis: ArqRedis) -> None:
    """Once the stream is idle, a stored row is streamed when the channel pokes (not before the keepalive)."""
    user_id, _ = await signed_in(portal)
    response = await portal.client.get("/chat/events")
    await WebChannel(redis).send(web_ref(user_id), TextReply("warm-up"))
    await asyncio.sleep(0.3)  # the stream has read its backlog and consumed the warm-up poke
    row = await store_reply(user_id, TextReply("later"))
    read = asyncio.ensure_future(next_event(response))
    done, _ = await asyncio.wait({read}, timeout=1.2)
    assert not done, "the row was streamed without a poke"
    await WebChannel(redis).send(web_ref(user_id), TextReply("later"))
    event = await asyncio.wait_for(read, 5)
    assert event["id"] == str(row.id)
    response.close()


async def test_stream_rereads_on_keepalive_when_a_poke_is_lost(db: str, redis: ArqRedis) -> None:
    """Without any poke, a stored row still arrives at the next keepalive (after a `: keepalive` comment)."""
    app = web.Application()
    links = PortalLinks(SECRET, BASE_URL)
    install_portal(app, links=links, inbox=Inbox(RecordingQueue()), redis=redis, keepalive=1)
    async with TestClient(TestServer(app)) as client:
        user_id = await sign_up(client)
        response = await client.get("/chat/events")
        await asyncio.sleep(0.2)
        row = await store_reply(user_id, TextReply("no poke"))
        lines = []
        async with asyncio.timeout(5):
            while not lines or lines[-1] != f"id: {row.id}":
                lines.append((await response.content.readline()).decode().rstrip("\n"))
        assert ": keepalive" in lines
        response.close()


async def test_event_stream_resumes_after_last_event_id(portal: Portal) -> None:
    """On reconnect with Last-Event-ID the stream sends only the rows after that id, skipping inbound ones."""
    user_id, token = await signed_in(portal)
    first = await store_reply(user_id, TextReply("one"))
    await post_chat(portal, token, text="mine", client_id=CLIENT_ID)
    second = await store_reply(user_id, TextReply("two"))
    response = await portal.client.get("/chat/events", headers={"Last-Event-ID": str(first.id)})
    event = await next_event(response)
    assert event["id"] == str(second.id)
    assert json.loads(event["data"])["text"] == "two"
    response.close()


async def test_event_stream_starts_after_the_page(portal: Portal) -> None:
    """`?after=` (the last id on the page) skips what the page already shows."""
    user_id, _ = await signed_in(portal)
    shown = await store_reply(user_id, TextReply("already on the page"))
    new = await store_reply(user_id, TextReply("new"))
    response = await portal.client.get(f"/chat/events?after={shown.id}")
    assert (await next_event(response))["id"] == str(new.id)
    response.close()


async def test_event_stream_is_private(portal: Portal, redis: ArqRedis) -> None:
    """A user's stream never carries another user's replies or activity."""
    user_id, _ = await signed_in(portal)
    other = await User.create()
    response = await portal.client.get("/chat/events")
    await store_reply(other.id, TextReply("not for you"))
    await WebChannel(redis).send(web_ref(other.id), TextReply("not for you"))
    await WebChannel(redis).show_activity(web_ref(other.id), "typing")
    await WebChannel(redis).send(web_ref(user_id), TextReply("poke only"))
    mine = await store_reply(user_id, TextReply("for you"))
    await WebChannel(redis).send(web_ref(user_id), TextReply("for you"))
    event = await next_event(response)
    assert event["id"] == str(mine.id)
    response.close()


async def test_shutdown_ends_open_streams(db: str, redis: ArqRedis) -> None:
    """Application shutdown ends an open event stream within about a second (not at the shutdown timeout)."""
    app = web.Application()
    links = PortalLinks(SECRET, BASE_URL)
    install_portal(app, links=links, inbox=Inbox(RecordingQueue()), redis=redis)
    server = TestServer(app)
    async with TestClient(server) as client:
        await sign_up(client)
        response = await client.get("/chat/events")
        assert response.status == 200
        await asyncio.sleep(0.2)  # the stream is in its wait loop
        async with asyncio.timeout(5):
            await server.close()
            body = await response.read()  # returns: the server finished the response
        assert body == b"retry: 3000\n\n"
