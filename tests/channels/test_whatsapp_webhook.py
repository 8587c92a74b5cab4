"""The WhatsApp webhook routes on a real aiohttp server: the verification challenge, signature checks on the raw
body (signed for real), storing through the real `Inbox` on PostgreSQL, statuses, and answers to bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import ConnectionError as RedisConnectionError

from channels.whatsapp import WhatsAppChannel, build_whatsapp, graph_session, setup_whatsapp_webhook
from core.inbox import Inbox
from core.messages import ChatRef
from core.models import Direction, Message
from tests.fakes.queue import RecordingQueue
from tests.fakes.whatsapp import PHONE_ID, FakeGraph, sign

PAYLOADS = Path(__file__).parent.parent / "payloads" / "whatsapp"
APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
PATH = "/webhooks/whatsapp"


def body_of(name: str) -> bytes:
    """A recorded webhook body, byte for byte."""
    return (PAYLOADS / f"{name}.json").read_bytes()


@dataclass
class FlakyQueue(RecordingQueue):
    """A turn queue whose Redis is down while `down` is set."""

    down: bool = False

    async def schedule(self, user_id: int) -> bool:
        """Fail like redis-py when down, else record."""
        if self.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return await super().schedule(user_id)


@dataclass
class Hook:
    """The running webhook and what the tests inspect."""

    client: TestClient
    queue: FlakyQueue
    graph: FakeGraph
    channel: WhatsAppChannel
    statuses: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def post(
        self, body: bytes, *, secret: str | None = APP_SECRET, signature: str | None = None
    ) -> ClientResponse:
        """POST `body`, signed with `secret` (or with the given `signature` header; None secret: unsigned)."""
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-Hub-Signature-256"] = signature
        elif secret is not None:
            headers["X-Hub-Signature-256"] = sign(body, secret)
        return await self.client.post(PATH, data=body, headers=headers)


@pytest.fixture
async def hook(db: str) -> AsyncIterator[Hook]:
    """The webhook wired like the composition root wires it, on a local port, with the fake Graph API."""
    async with FakeGraph() as graph:
        session = graph_session(graph.url)
        wa = build_whatsapp(
            phone_id=PHONE_ID,
            token="test-token",
            app_secret=APP_SECRET,
            verify_token=VERIFY_TOKEN,
            base_url=graph.url,
            session=session,
        )
        queue = FlakyQueue()
        channel = WhatsAppChannel(wa)
        statuses: list[tuple[str, str, str | None]] = []

        async def on_status(wamid: str, status: str, error_code: str | None) -> None:
            statuses.append((wamid, status, error_code))

        app = web.Application()
        setup_whatsapp_webhook(
            app, wa=lambda: wa, verify_token=VERIFY_TOKEN, inbox=Inbox(queue), on_status=on_status, channel=channel
        )
        async with TestClient(TestServer(app)) as client:
            yield Hook(client, queue, graph, channel, statuses)
        await session.aclose()


async def inbound_count() -> int:
    """Stored inbound messages."""
    return await Message.filter(direction=Direction.INBOUND).count()


# --- GET: verification challenge -------------------------------------------------------------------------


async def test_challenge_with_the_right_token(hook: Hook) -> None:
    """Meta's subscription check with our verify token gets the challenge back."""
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = await hook.client.get(PATH, params=query)
    assert response.status == 200
    assert await response.text() == "1158201444"


@pytest.mark.parametrize(
    "query",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {},
    ],
)
async def test_challenge_refused(hook: Hook, query: dict[str, str]) -> None:
    """A wrong or absent verify token, or another mode, is refused with 403 and no challenge."""
    response = await hook.client.get(PATH, params=query)
    assert response.status == 403
    assert "1" not in await response.text()


async def test_challenge_refused_without_a_configured_token() -> None:
    """With no verify token configured, every challenge is refused (even an empty token)."""
    app = web.Application()
    session = graph_session()
    wa = build_whatsapp(phone_id=PHONE_ID, token="t", app_secret=APP_SECRET, verify_token="vt", session=session)
    setup_whatsapp_webhook(app, wa=wa, verify_token="", inbox=Inbox(RecordingQueue()))
    async with TestClient(TestServer(app)) as client:
        response = await client.get(
            PATH, params={"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
        )
        assert response.status == 403
    await session.aclose()


# --- POST: signatures ------------------------------------------------------------------------------------


async def test_unsigned_update_is_refused(hook: Hook) -> None:
    """An update without a signature is refused with 401 and nothing is stored or scheduled."""
    response = await hook.post(body_of("text"), secret=None)
    assert response.status == 401
    assert await inbound_count() == 0 and hook.queue.calls == []


@pytest.mark.parametrize("signature", ["sha256=" + "0" * 64, "sha256=", "md5=abc", "garbage"])
async def test_bad_signature_is_refused(hook: Hook, signature: str) -> None:
    """A wrong signature is refused with 403 and nothing is stored."""
    response = await hook.post(body_of("text"), signature=signature)
    assert response.status == 403
    assert await inbound_count() == 0 and hook.queue.calls == []


async def test_signed_with_another_secret_or_altered_is_refused(hook: Hook) -> None:
    """A body signed with another secret, or altered after signing, is refused."""
    assert (await hook.post(body_of("text"), secret="not-our-secret")).status == 403
    body = body_of("text")
    altered = body.replace(b"another color", b"another thing")
    assert (await hook.post(altered, signature=sign(body, APP_SECRET))).status == 403
    assert await inbound_count() == 0


async def test_signature_is_checked_before_the_body_is_parsed(hook: Hook) -> None:
    """Malformed JSON without a valid signature is a 403, not a 400: nothing is read before the check."""
    response = await hook.post(b"{not json", signature="sha256=" + "0" * 64)
    assert response.status == 403


# --- POST: messages --------------------------------------------------------------------------------------


async def test_text_message_is_stored_and_scheduled(hook: Hook) -> None:
    """A signed text message is stored once, keyed by its wamid, and the user's turn is scheduled."""
    response = await hook.post(body_of("text"))
    assert response.status == 200
    [row] = await Message.filter(direction=Direction.INBOUND)
    assert (row.channel, row.chat_id, row.text) == ("whatsapp", "16505551234", "Does it come in another color?")
    assert row.external_message_id == "wamid:wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    assert hook.queue.calls == [row.user_id]


async def test_webhook_tells_the_channel_the_wamid_for_typing(hook: Hook) -> None:
    """The channel learns the sender's latest wamid from the webhook and shows typing in answer to it."""
    await hook.post(body_of("text"))
    await hook.channel.show_activity(ChatRef("whatsapp", "16505551234"), "typing")
    assert hook.graph.typing == ["wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="]


async def test_batch_of_two_messages_is_stored(hook: Hook) -> None:
    """A batch with two users' texts (and a reaction, ignored) stores both and schedules both users."""
    response = await hook.post(body_of("batch_two_users"))
    assert response.status == 200
    rows = await Message.filter(direction=Direction.INBOUND).order_by("id")
    assert [(r.chat_id, r.text) for r in rows] == [("16505551234", "first"), ("5215512345678", "hola Ava")]
    assert sorted(hook.queue.calls) == sorted({r.user_id for r in rows})


async def test_concurrent_redeliveries_store_once(hook: Hook) -> None:
    """The same body delivered three times at once is stored once per message, and every delivery gets 200."""
    body = body_of("batch_two_users")
    responses = await asyncio.gather(*(hook.post(body) for _ in range(3)))
    assert [r.status for r in responses] == [200, 200, 200]
    assert await inbound_count() == 2
    assert len(hook.queue.calls) == 2


async def test_poison_message_does_not_lose_the_others(hook: Hook) -> None:
    """A message the database refuses (an id longer than it holds) is acknowledged; the rest of the batch is stored."""
    payload: dict[str, Any] = json.loads(body_of("batch_two_users"))
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = "wamid." + "x" * 200
    response = await hook.post(json.dumps(payload).encode())
    assert response.status == 200
    rows = await Message.filter(direction=Direction.INBOUND)
    assert [r.text for r in rows] == ["hola Ava"]


async def test_a_nul_byte_is_kept_as_a_replacement_character(hook: Hook) -> None:
    """PostgreSQL text cannot hold NUL: the message is stored with U+FFFD in its place, never dropped."""
    payload: dict[str, Any] = json.loads(body_of("batch_two_users"))
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "bad \u0000 byte"
    response = await hook.post(json.dumps(payload).encode())
    assert response.status == 200
    rows = await Message.filter(direction=Direction.INBOUND).order_by("id")
    assert [r.text for r in rows] == ["bad \ufffd byte", "hola Ava"]


async def test_redis_down_answers_503_and_redelivery_recovers(hook: Hook) -> None:
    """When the turn cannot be scheduled the answer is 503 (Meta redelivers); the redelivery schedules it."""
    hook.queue.down = True
    response = await hook.post(body_of("text"))
    assert response.status == 503
    assert await inbound_count() == 1  # stored: the redelivery finds it and only schedules
    hook.queue.down = False
    response = await hook.post(body_of("text"))
    assert response.status == 200
    assert await inbound_count() == 1
    assert len(hook.queue.calls) == 1


async def test_database_down_answers_503() -> None:
    """When the inbox cannot be reached at all the answer is 503, never 500."""

    def no_inbox() -> Inbox:
        raise ConnectionRefusedError("database connection refused")

    session = graph_session()
    wa = build_whatsapp(phone_id=PHONE_ID, token="t", app_secret=APP_SECRET, verify_token="vt", session=session)
    app = web.Application()
    setup_whatsapp_webhook(app, wa=wa, verify_token="vt", inbox=no_inbox)
    async with TestClient(TestServer(app)) as client:
        body = body_of("text")
        response = await client.post(PATH, data=body, headers={"X-Hub-Signature-256": sign(body, APP_SECRET)})
        assert response.status == 503
    await session.aclose()


# --- POST: statuses and bad input ------------------------------------------------------------------------


async def test_statuses_go_to_on_status(hook: Hook) -> None:
    """Status callbacks reach `on_status` as (wamid, status, error code) and store no message."""
    assert (await hook.post(body_of("statuses"))).status == 200
    assert (await hook.post(body_of("status_failed"))).status == 200
    assert hook.statuses[:2] == [
        ("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3NjQ3QjY3RjM5QzE2QkU4QTcA", "delivered", None),
        ("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDMTJFOUI2RjRCODk5MEQ1OTIA", "read", None),
    ]
    assert [(status, code) for _, status, code in hook.statuses[2:]] == [("failed", "131047")]
    assert await inbound_count() == 0


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b""])
async def test_malformed_body_is_400(hook: Hook, body: bytes) -> None:
    """A signed body that is not a JSON object is a 400, never a 500."""
    response = await hook.post(body)
    assert response.status == 400


async def test_unknown_shapes_are_acknowledged(hook: Hook) -> None:
    """A signed JSON object of an unexpected shape (or media we ignore) is acknowledged and stores nothing."""
    for body in (b"{}", b'{"entry": "x"}', b'{"entry": [{"changes": [{"value": 1}]}]}', body_of("image")):
        response = await hook.post(body)
        assert response.status == 200
    assert await inbound_count() == 0
