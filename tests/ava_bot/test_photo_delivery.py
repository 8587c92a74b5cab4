"""Photo outcomes reach the user's chat: through the real worker, pipeline, fake Replicate and turn runner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.wiring import build_services
from core.engine import ACCEPT, REF_KEEP
from core.models import DeadLetter, Direction, Message, Mode, User
from core.setup import CONFIRM
from imaging.models import Photo, PhotoStatus
from imaging.providers.replicate import ReplicateImageProvider
from tests.core.test_setup_flow import Chat, Gate
from tests.fakes.openai import FakeOpenAI
from tests.fakes.replicate import FakeReplicate
from tests.support import eventually, running_worker


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeReplicate]]:
    async with FakeOpenAI() as llm, FakeReplicate() as replicate:
        yield llm, replicate


async def test_reference_then_failed_photo_is_told_in_chat(
    db: str, redis: ArqRedis, make_settings: Any, fakes: tuple[FakeOpenAI, FakeReplicate]
) -> None:
    """A ready reference is shown with a signed link; a photo failing 3 times is dead-lettered and the user told."""
    llm, replicate = fakes
    settings = make_settings(llm_api_key="sk-test", llm_base_url=llm.base_url, photo_backoff_seconds=0.05)
    services = build_services(settings, redis, entitlements=Gate(open_=True))
    provider = ReplicateImageProvider(
        replicate.token,
        base_url=replicate.url,
        reference_model="bfl/flux-1.1-pro",
        edit_model="bfl/flux-kontext-pro",
        poll_interval=0.01,
        timeout=5,
    )
    chat = Chat(services, chat_id="77", worker=True)
    async with running_worker(settings, redis, services, provider=provider):
        await chat.send("/start")
        await chat.send(choice=ACCEPT)
        for answer in ("woman", "29", "Greek", "wavy black hair, olive skin", "Eleni", "caring"):
            await chat.send(answer)
        await chat.send(choice=CONFIRM)  # the summary

        async def reference_shown() -> bool:
            return await Message.exists(chat_id="77", direction=Direction.OUTBOUND, payload__contains={"type": "photo"})

        await eventually(reference_shown, what="the reference photo in chat")
        await chat.send(choice=REF_KEEP)
        user = await User.get(id=chat.user_id)
        user.mode = Mode.INTIMATE
        await user.save()

        replicate.fail_next(3, status=500)
        llm.call_tool("send_photo", {"scene_description": "reading in a garden"})
        await chat.send("send me a photo")

        async def told() -> bool:
            return await Message.exists(chat_id="77", direction=Direction.OUTBOUND, text__contains="camera failed")

        await eventually(told, what="the failure notice")
    photo = await Photo.filter(user_id=chat.user_id, kind="photo").get()
    assert photo.status == PhotoStatus.FAILED
    assert await DeadLetter.filter(payload__contains={"photo_id": photo.id}).count() == 1
    notices = await Message.filter(chat_id="77", text__contains="camera failed").count()
    assert notices == 1
