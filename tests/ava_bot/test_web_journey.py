"""The whole web journey through the real app, worker, photo pipeline, PostgreSQL, Redis and openai client."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from arq.connections import ArqRedis

from ava_bot.app import create_app
from core.engine import ACCEPT, REF_AGAIN, REF_KEEP
from core.models import Avatar, Direction, Message, MessageStatus, SetupStep, User
from core.setup import CONFIRM
from imaging.models import Photo, PhotoStatus
from imaging.providers.placeholder import PlaceholderImageProvider
from tests.core.test_setup_flow import Gate
from tests.fakes.openai import FakeOpenAI
from tests.portal.conftest import page_token, sign_up
from tests.support import eventually, stamped_button


class Browser:
    """A signed-in web user posting to /chat/messages and reading Ava's replies."""

    def __init__(self, client: TestClient, token: str, user_id: int) -> None:
        self.client, self.token, self.user_id = client, token, user_id
        self.seen = 0

    async def post(self, text: str | None = None, choice: str | None = None, *, status: int = 202) -> dict[str, Any]:
        body: dict[str, Any] = {"client_id": uuid.uuid4().hex}
        body |= {"text": text} if text is not None else {"choice": await self.button(choice or "")}
        response = await self.client.post("/chat/messages", json=body, headers={"X-CSRF-Token": self.token})
        assert response.status == status, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer

    async def button(self, data: str) -> str:
        """What pressing the button `data` on the page sends: the latest offered button's stamped data."""
        pressed = await stamped_button(data, user_id=self.user_id)
        assert pressed is not None, f"no button {data!r} on the page"
        return pressed

    async def replies(self, count: int) -> list[dict[str, Any]]:
        """Wait until `count` new replies were sent, return their payloads."""

        async def arrived() -> bool:
            rows = await Message.filter(user_id=self.user_id, direction=Direction.OUTBOUND, status=MessageStatus.SENT)
            return len(rows) >= self.seen + count

        await eventually(arrived, timeout=20, what=f"{count} replies")
        rows = await Message.filter(user_id=self.user_id, direction=Direction.OUTBOUND).order_by("id")
        new = rows[self.seen : self.seen + count]
        self.seen += count
        return [r.payload for r in new if r.payload is not None]


async def test_web_journey_from_sign_up_to_a_requested_photo(
    db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI
) -> None:
    """Sign up, confirm 18+, set up (age 19 and 'abc' refused), reference, regenerate, keep, paywall, chat, photo."""
    settings = make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url, photo_backoff_seconds=0.05)
    gate = Gate(open_=False)
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
        user_id = await sign_up(client, "journey@example.com")
        me = Browser(client, await page_token(client, "/chat"), user_id)

        (confirm,) = await me.replies(1)  # Ava greets first: opening the empty chat asked for her greeting
        assert "18 or older" in confirm["text"]
        await me.post(choice=ACCEPT)
        assert "woman, a man" in (await me.replies(2))[1]["text"]
        await me.post(choice="woman")
        await me.replies(1)
        await me.post("19")
        refused = await me.replies(1)  # one bubble: why, and the question again
        assert "at least 20" in refused[0]["text"]
        await me.post("abc")
        assert "whole number" in (await me.replies(1))[0]["text"]
        for answer in ("24", "Brazilian", "curly auburn hair, hazel eyes, freckles", "Luna", "adventurous"):
            await me.post(answer)
            await me.replies(1)
        await me.post(choice=CONFIRM)  # the summary's "Looks good — take my photo"
        await me.replies(1)

        reference = await me.replies(2)  # the placeholder provider made a real, signed JPEG
        assert reference[0]["type"] == "photo" and reference[0]["kind"] == "reference"
        image = await client.get(f"/photos/{reference[0]['photo_id']}")
        assert image.status == 200 and image.headers["Content-Type"] == "image/jpeg"
        assert image.headers["Cache-Control"] == "private, no-store"

        await me.post(choice=REF_AGAIN)
        await me.replies(1)
        again = await me.replies(2)
        assert again[0]["photo_id"] != reference[0]["photo_id"]
        await me.post(choice=REF_KEEP)
        kept = await me.replies(2)
        assert kept[1]["type"] == "link" and "subscription" in kept[1]["text"]

        refused = await me.post("hi Luna", status=402)  # the paywall: 402, and the message is not stored
        assert refused["reason"] == "subscription" and refused["subscribe_url"] == "/subscribe"
        assert not await Message.exists(user_id=user_id, text="hi Luna")
        gate.open = True  # subscribed
        await me.post("/mode intimate")
        await me.replies(1)
        fake_llm.call_tool("send_photo", {"scene_description": "at a rooftop bar at night"}, text="Say cheese 📸")
        await me.post("show me where you are")
        line, photo = await me.replies(2)
        assert line["text"] == "Say cheese 📸"
        assert photo["type"] == "photo" and photo["kind"] == "photo"
        made = await Photo.get(id=photo["photo_id"])
        assert made.status == PhotoStatus.READY and made.scene == "at a rooftop bar at night"

        gated = await client.get("/gallery", allow_redirects=False)
        assert gated.headers["Location"].startswith("/adult?next=")  # the 18+ interstitial, once per session
        adult = await page_token(client, gated.headers["Location"])
        gallery = await client.post("/adult", data={"csrf_token": adult, "next": "/gallery"})
        assert gallery.status == 200 and f"/photos/{photo['photo_id']}" in await gallery.text()

        events = await client.get("/chat/events", headers={"Last-Event-ID": "0"})
        chunk = b""
        while b"data:" not in chunk:  # skip the `retry:` hint
            chunk = await asyncio.wait_for(events.content.readuntil(b"\n\n"), 5)
        assert json.loads(chunk.split(b"data:", 1)[1])["direction"] == "out"
        events.close()
    finally:
        await client.close()


async def test_web_chat_stream_shows_typing_while_ava_answers(
    db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI
) -> None:
    """The live stream carries typing events while the model thinks, before the reply's row arrives."""
    settings = make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url, activity_interval_seconds=0.2)
    app = await create_app(settings, redis=redis, own_database=False, run_worker=True, entitlements=Gate(open_=True))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        user_id = await sign_up(client, "typing@example.com")
        now = datetime.now(UTC)
        await User.filter(id=user_id).update(adult_confirmed_at=now, terms_accepted_at=now, setup_step=SetupStep.DONE)
        await Avatar.create(
            user_id=user_id,
            name="Mia",
            gender="woman",
            age=27,
            nationality="Italian",
            appearance="dark hair",
            personality="playful",
            approved_at=now,
        )
        fake_llm.slow_when("hello", 1.0)
        me = Browser(client, await page_token(client, "/chat"), user_id)
        await me.replies(1)  # the greeting the empty chat asked for: the stream starts after it
        greeting = await Message.filter(user_id=user_id, direction=Direction.OUTBOUND).order_by("-id").first()
        assert greeting is not None
        events = await client.get("/chat/events", headers={"Last-Event-ID": str(greeting.id)})
        await asyncio.wait_for(events.content.readuntil(b"\n\n"), 5)  # the `retry:` hint: the stream is open
        await asyncio.sleep(0.2)  # subscribed
        await me.post("hello")
        seen: list[bytes] = []
        while not any(b"data:" in chunk and b"event:" not in chunk for chunk in seen):
            seen.append(await asyncio.wait_for(events.content.readuntil(b"\n\n"), 10))
        events.close()
    finally:
        await client.close()
    kinds = [json.loads(c.split(b"data:", 1)[1]).get("kind") for c in seen if c.startswith(b"event: activity")]
    assert len(kinds) >= 3 and set(kinds) == {"typing"}, seen  # repeated while the model thinks
    first_row = next(i for i, c in enumerate(seen) if b"event:" not in c and b"data:" in c)
    assert any(c.startswith(b"event: activity") for c in seen[:first_row])
