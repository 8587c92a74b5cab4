"""WhatsApp end to end: signed webhooks into the real app and worker, replies through real pywa to the fake Graph
API — setup with buttons and a list message, the reference as a CTA URL, keep, chat, a photo link; never an image.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from core.models import Direction, Message, Mode, User
from imaging.providers.placeholder import PlaceholderImageProvider
from tests.core.test_setup_flow import Gate
from tests.fakes.openai import FakeOpenAI
from tests.fakes.whatsapp import PHONE_ID, FakeGraph, SentMessage, sign
from tests.support import eventually

APP_SECRET = "whatsapp-app-secret-for-tests"
VERIFY = "verify-me"
USER = "16505551234"


def update(message: dict[str, Any]) -> bytes:
    """A Cloud API webhook body carrying one message from USER."""
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_ID},
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": USER, "user_id": "US.1349120865530274"}],
        "messages": [{"from": USER, "id": f"wamid.{uuid.uuid4().hex}", "timestamp": "1749416450", **message}],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1022", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(body).encode()


def text(body: str) -> bytes:
    return update({"type": "text", "text": {"body": body}})


def pressed(data: str, title: str, kind: str = "button_reply") -> bytes:
    return update({"type": "interactive", "interactive": {"type": kind, kind: {"id": data, "title": title}}})


class Phone:
    """The user's phone: posts signed webhooks, reads what the fake Graph received."""

    def __init__(self, client: TestClient, graph: FakeGraph) -> None:
        self.client, self.graph = client, graph
        self.seen = 0

    async def post(self, body: bytes) -> int:
        response = await self.client.post(
            "/webhooks/whatsapp",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)},
        )
        return response.status

    async def say(self, body: bytes) -> None:
        assert await self.post(body) == 200

    async def received(self, count: int) -> list[SentMessage]:
        """Wait for `count` more messages from Ava."""

        async def arrived() -> bool:
            return len(self.graph.sent) >= self.seen + count

        await eventually(arrived, timeout=20, what=f"{count} WhatsApp messages")
        new = self.graph.sent[self.seen : self.seen + count]
        self.seen += count
        return new


def button_id(message: SentMessage, title_start: str) -> str:
    """The id of the reply button (or list row) whose title starts with `title_start`."""
    action = message.content["action"]
    options = [b["reply"] for b in action.get("buttons", [])] or [
        r for s in action.get("sections", []) for r in s["rows"]
    ]
    return next(str(o["id"]) for o in options if str(o["title"]).startswith(title_start))


@pytest.fixture
async def fakes() -> Any:
    async with FakeOpenAI() as llm, FakeGraph() as graph:
        yield llm, graph


async def test_whatsapp_journey_with_buttons_list_links_and_never_an_image(
    db: str, redis: ArqRedis, make_settings: Any, fakes: tuple[FakeOpenAI, FakeGraph]
) -> None:
    """First message to a photo link on WhatsApp; redeliveries do nothing; no image message is ever sent."""
    llm, graph = fakes
    settings = make_settings(
        llm_api_key="sk-test",
        llm_base_url=llm.base_url,
        public_base_url="https://ava.example",
        whatsapp_enabled=True,
        whatsapp_phone_id=PHONE_ID,
        whatsapp_token="wa-token",
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY,
        whatsapp_api_base_url=graph.url,
        photo_backoff_seconds=0.05,
    )
    gate = Gate(open_=False)  # not subscribed yet: the paywall link comes after the setup
    app = await create_app(
        settings,
        redis=redis,
        own_database=False,
        run_worker=True,
        entitlements=gate,
        image_provider=PlaceholderImageProvider(),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        phone = Phone(client, graph)
        challenge = await client.get(
            "/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "42"}
        )
        assert challenge.status == 200 and await challenge.text() == "42"
        await phone.say(text("hi"))
        (confirm,) = await phone.received(1)
        assert confirm.kind == "button" and "18 or older" in confirm.body
        first = text("hello again")
        statuses = await asyncio.gather(*(phone.post(first) for _ in range(3)))  # one update, delivered 3 times
        assert statuses == [200, 200, 200]
        (again,) = await phone.received(1)  # answered once
        await phone.say(pressed(button_id(again, "I'm 18+"), "I'm 18+ and accept"))
        _thanks, gender = await phone.received(2)
        assert gender.kind == "button"
        await phone.say(pressed(button_id(gender, "Woman"), "Woman"))
        for answer in ("27", "Italian", "long dark hair, green eyes, freckles", "Mia"):
            await phone.received(1)
            await phone.say(text(answer))
        (personality,) = await phone.received(1)
        assert personality.kind == "list"  # 6 choices and "← Back": more than WhatsApp's 3 buttons
        rows = [r for s in personality.content["action"]["sections"] for r in s["rows"]]
        assert len(rows) == 7 and all(len(r["title"]) <= 24 for r in rows)
        await phone.say(pressed(button_id(personality, "Playful"), "Playful", kind="list_reply"))
        (summary,) = await phone.received(1)
        assert summary.kind == "list"  # "Looks good — take my photo" and one "Change …" per answer
        await phone.say(pressed(button_id(summary, "Looks good"), "Looks good", kind="list_reply"))
        _, reference, review = await phone.received(3)
        assert reference.kind == "cta_url" and "/photos/" in reference.content["action"]["parameters"]["url"]
        await phone.say(pressed(button_id(review, "Keep"), "Keep ✓"))
        _saved, paywall = await phone.received(2)
        paywall_url = paywall.content["action"]["parameters"]["url"]  # a one-time sign-in link opening /subscribe
        assert paywall.kind == "cta_url" and paywall_url.startswith("https://ava.example/portal/sign-in/")
        gate.open = True  # subscribed
        await User.filter(id=(await Message.filter(direction=Direction.INBOUND).first()).user_id).update(  # type: ignore[union-attr]
            mode=Mode.INTIMATE
        )
        llm.call_tool("send_photo", {"scene_description": "at a rooftop bar at night"}, text="One moment 📸")
        # The 24-hour window closes before the photo is ready: Graph refuses its link with 131047.
        graph.fail_next(131047, "(#131047) Re-engagement message", skip=1)
        await phone.say(text("show me where you are"))
        (line,) = await phone.received(1)
        assert line.body == "One moment 📸"

        async def photo_held() -> bool:
            return await Message.exists(
                direction=Direction.OUTBOUND, status="held", payload__contains={"type": "photo"}
            )

        await eventually(photo_held, what="the photo link held while the window is closed")
        await phone.say(text("I'm back"))
        photo, answer = await phone.received(2)  # the held photo link arrives first, with the next message
        assert photo.kind == "cta_url" and "/photos/" in photo.content["action"]["parameters"]["url"]
        assert answer.body == "echo: I'm back"
        assert "image" not in graph.kinds()  # PLAT-03: never an inline image on WhatsApp
        bad = text("forged")
        forged = await client.post(
            "/webhooks/whatsapp",
            data=bad,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=00"},
        )
        assert forged.status in (401, 403)
        assert not await Message.exists(text="forged")
    finally:
        await client.close()


async def test_closed_window_photo_link_arrives_with_the_next_message_and_media_gets_a_polite_line(
    db: str, redis: ArqRedis, make_settings: Any, fakes: tuple[FakeOpenAI, FakeGraph]
) -> None:
    """Graph refusing a send with 131047 holds it; the user's next message brings it; a photo sent to Ava gets a
    polite "text only" line and nothing is stored."""
    llm, graph = fakes
    settings = make_settings(
        llm_api_key="sk-test",
        llm_base_url=llm.base_url,
        whatsapp_enabled=True,
        whatsapp_phone_id=PHONE_ID,
        whatsapp_token="wa-token",
        whatsapp_app_secret=APP_SECRET,
        whatsapp_verify_token=VERIFY,
        whatsapp_api_base_url=graph.url,
    )
    app = await create_app(settings, redis=redis, own_database=False, run_worker=True, entitlements=Gate(open_=True))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        phone = Phone(client, graph)
        graph.fail_next(131047, "(#131047) Re-engagement message", details="More than 24 hours have passed")
        await phone.say(text("hello?"))

        async def held() -> bool:
            return await Message.exists(direction=Direction.OUTBOUND, status="held")

        await eventually(held, what="the refused reply held")
        assert graph.sent == []
        await phone.say(text("are you there?"))
        first, second = await phone.received(2)
        assert "18 or older" in first.body and "18 or older" in second.body  # the held one first, then the answer
        before = await Message.filter(direction=Direction.INBOUND).count()
        await phone.say(update({"type": "image", "image": {"id": "123", "mime_type": "image/jpeg"}}))
        (polite,) = await phone.received(1)
        assert "only read text" in polite.body
        assert await Message.filter(direction=Direction.INBOUND).count() == before
    finally:
        await client.close()
