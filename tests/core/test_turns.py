"""Ordered, exactly-once turns through the real worker, real PostgreSQL/Redis and the real openai client."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from ava_bot.jobs import sweep_turns
from ava_bot.wiring import Services, build_services
from core.messages import ChatRef, InboundMessage
from core.models import (
    Avatar,
    DeadLetter,
    Direction,
    Message,
    MessageStatus,
    Mode,
    User,
)
from core.persona import turn_failed_line
from core.ports import PhotoEvent
from tests.fakes.entitlements import allow_all
from tests.fakes.openai import FakeOpenAI
from tests.support import eventually, ready_user, running_worker


@pytest.fixture
def services(db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI) -> Services:
    settings = make_settings(
        llm_api_key="sk-test", llm_base_url=fake_llm.base_url, llm_timeout_seconds=10, turn_backoff_seconds=0.05
    )
    return build_services(settings, redis, entitlements=allow_all())


def inbound(chat_id: str, message_id: str, text: str) -> InboundMessage:
    return InboundMessage(ref=ChatRef("web", chat_id), message_id=message_id, text=text)


async def replies_of(user: User) -> list[Message]:
    return await Message.filter(user=user, direction=Direction.OUTBOUND).order_by("id")


async def test_twenty_concurrent_messages_answered_in_order_once_each(
    services: Services, redis: ArqRedis, fake_llm: FakeOpenAI
) -> None:
    """20 messages posted at once by one user are each answered exactly once, in arrival order."""
    user = await ready_user("u1")
    async with running_worker(services.settings, redis, services):
        await asyncio.gather(*(services.inbox.receive(inbound("u1", f"m{i}", f"msg-{i}")) for i in range(20)))

        async def all_sent() -> bool:
            rows = await replies_of(user)
            return len(rows) >= 20 and all(r.status == MessageStatus.SENT for r in rows)

        await eventually(all_sent, what="20 replies")
    arrived = await Message.filter(user=user, direction=Direction.INBOUND).order_by("id")
    assert all(m.status == MessageStatus.DONE for m in arrived)
    answers = [r.text for r in await replies_of(user)]
    assert answers == [f"echo: {m.text}" for m in arrived]
    # Each LLM call saw exactly the earlier exchanges, in order: turns never overlapped.
    for index, body in enumerate(fake_llm.completions()):
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        assert users == [m.text for m in arrived[: index + 1]]


async def test_two_users_do_not_block_each_other(services: Services, redis: ArqRedis, fake_llm: FakeOpenAI) -> None:
    """A slow turn of one user does not delay another user's turn."""
    slow, quick = await ready_user("slow"), await ready_user("quick")
    fake_llm.slow_when("take your time", 2.0)
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(inbound("slow", "s1", "take your time"))
        await asyncio.sleep(0.2)
        await services.inbox.receive(inbound("quick", "q1", "hi"))

        async def quick_answered() -> bool:
            return bool(await replies_of(quick))

        await eventually(quick_answered, timeout=1.5, what="the quick user's reply while the slow one waits")
        assert await replies_of(slow) == []
        await eventually(lambda: _has_reply(slow), what="the slow reply")


async def _has_reply(user: User) -> bool:
    return bool(await replies_of(user))


async def test_redelivered_message_does_nothing(services: Services, redis: ArqRedis) -> None:
    """The same platform message delivered twice is stored, processed and answered once."""
    user = await ready_user("dup")
    async with running_worker(services.settings, redis, services):
        first = await services.inbox.receive(inbound("dup", "same-id", "hello"))
        await eventually(lambda: _has_reply(user), what="the reply")
        second = await services.inbox.receive(inbound("dup", "same-id", "hello"))
        await asyncio.sleep(0.3)
    assert first.created and not second.created and first.message_id == second.message_id
    assert await Message.filter(user=user, direction=Direction.INBOUND).count() == 1
    assert len(await replies_of(user)) == 1


async def test_history_after_send_photo_replays_as_a_valid_request(
    services: Services, redis: ArqRedis, fake_llm: FakeOpenAI
) -> None:
    """After a send_photo call, the next request's history is plain text and accepted by the strict fake."""
    user = await ready_user("ph", mode=Mode.INTIMATE)
    fake_llm.call_tool("send_photo", {"scene_description": "in a red dress by the window"}, text="Hold on 📸")
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(inbound("ph", "p1", "send me a photo"))
        await eventually(lambda: _has_reply(user), what="the photo line")
        await services.inbox.receive(inbound("ph", "p2", "you look lovely"))

        async def two_calls() -> bool:
            return len(fake_llm.completions()) == 2 and len(await replies_of(user)) >= 2

        await eventually(two_calls, what="the second turn")
    first, second = fake_llm.completions()
    assert first["tools"][0]["function"]["name"] == "send_photo"
    replayed = second["messages"]
    assert all(set(m) == {"role", "content"} for m in replayed)
    assert [m["content"] for m in replayed if m["role"] == "assistant"] == ["Hold on 📸"]
    replies = await replies_of(user)
    # No internal note ever reaches the user (or the model, which would learn to write it).
    assert replies[0].text == "Hold on 📸" and replies[0].payload == {"type": "text", "text": "Hold on 📸"}
    assert not any("[sent a photo" in (r.text or "") for r in replies)


async def test_bracketed_photo_notes_invented_by_the_model_are_removed(
    services: Services, redis: ArqRedis, fake_llm: FakeOpenAI
) -> None:
    """A model imitating "[sent a photo: ...]" never shows that note to the user."""
    user = await ready_user("note")
    fake_llm.say("Here you go 😘\n[sent a photo: me at the beach]")
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(inbound("note", "n1", "another one?"))
        await eventually(lambda: _has_reply(user), what="the reply")
    assert [r.text for r in await replies_of(user)] == ["Here you go 😘"]


async def test_llm_outage_retries_the_turn_which_then_answers(
    services: Services, redis: ArqRedis, fake_llm: FakeOpenAI
) -> None:
    """The LLM still down after its client's retries fails one attempt; the next attempt answers, once."""
    user = await ready_user("err")
    for _ in range(3):  # one attempt: the SDK tries three times
        fake_llm.fail(500)
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(inbound("err", "e1", "remember the blue car"))
        await eventually(lambda: _has_reply(user), what="the answer")
    inbound_row = await Message.get(user=user, direction=Direction.INBOUND)
    assert inbound_row.status == MessageStatus.DONE and inbound_row.attempts == 2
    assert [r.text for r in await replies_of(user)] == ["echo: remember the blue car"]
    assert await DeadLetter.all().count() == 0


async def test_poison_message_is_dead_lettered_user_told_and_next_message_answered(
    services: Services, redis: ArqRedis, fake_llm: FakeOpenAI
) -> None:
    """A message failing 3 attempts is failed and dead-lettered, the user told once, and the next one answered."""
    user = await ready_user("poison")
    for _ in range(9):  # three attempts of three SDK tries each
        fake_llm.fail(500)
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(inbound("poison", "x1", "this one breaks"))
        await services.inbox.receive(inbound("poison", "x2", "and this one works"))
        await eventually(lambda: _count_replies(user, 2), timeout=30, what="the apology and the next answer")
    first, second = await Message.filter(user=user, direction=Direction.INBOUND).order_by("id")
    assert first.status == MessageStatus.FAILED and first.attempts == 3 and "LLMUnavailable" in (first.error or "")
    assert second.status == MessageStatus.DONE
    letter = await DeadLetter.get(job="run_turn")
    assert letter.payload["message_id"] == first.id and letter.attempts == 3 and "LLM error 500" in letter.error
    assert [r.text for r in await replies_of(user)] == [turn_failed_line(), "echo: and this one works"]
    # The failed message is not part of the history the model sees.
    assert [m["content"] for m in fake_llm.completions()[-1]["messages"] if m["role"] == "user"] == [
        "and this one works"
    ]


async def _count_replies(user: User, n: int) -> bool:
    return len(await replies_of(user)) >= n


async def test_sweeper_recovers_messages_when_redis_lost_the_queue(services: Services, redis: ArqRedis) -> None:
    """A pending message whose job vanished (Redis flushed) is re-enqueued by the sweeper and answered."""
    user = await ready_user("lost")
    await services.inbox.receive(inbound("lost", "l1", "are you there?"))
    await redis.flushdb()  # the queued job is gone; the row is still pending in PostgreSQL
    async with running_worker(services.settings, redis, services):
        assert await sweep_turns({"services": services, "turn_stuck_after": timedelta(0)}) == 1
        await eventually(lambda: _has_reply(user), what="the recovered reply")
    assert (await Message.get(user=user, direction=Direction.INBOUND)).status == MessageStatus.DONE


async def test_history_is_bounded_by_count_and_characters(db: str) -> None:
    """History sent to the model keeps only the latest messages within the count and character budgets."""
    from core.chat import load_history

    user = await ready_user("hist")
    for i in range(60):
        direction = Direction.INBOUND if i % 2 == 0 else Direction.OUTBOUND
        await Message.create(
            user=user,
            direction=direction,
            channel="web",
            chat_id="hist",
            text=f"m{i:02d}-" + "x" * 96,
            in_history=True,
            status=MessageStatus.DONE,
        )
    by_count = await load_history(user.id, limit=10, budget=100_000)
    assert [m.content[:3] for m in by_count] == [f"m{i:02d}" for i in range(50, 60)]
    assert by_count[0].role == "user"
    by_chars = await load_history(user.id, limit=40, budget=1_000)
    assert sum(len(m.content) for m in by_chars) <= 1_000 and by_chars[-1].content.startswith("m59")
    assert by_chars[0].role == "user"


async def test_a_redelivery_of_a_pending_message_schedules_it_again(services: Services, redis: ArqRedis) -> None:
    """When scheduling was lost (Redis hiccup), the platform's redelivery schedules the pending message again."""
    user = await ready_user("again")
    await services.inbox.receive(inbound("again", "r1", "hello?"))
    await redis.flushdb()  # the drain job and its slot are gone; the row is pending in PostgreSQL
    async with running_worker(services.settings, redis, services):
        second = await services.inbox.receive(inbound("again", "r1", "hello?"))
        await eventually(lambda: _has_reply(user), what="the reply")
    assert not second.created
    assert [r.text for r in await replies_of(user)] == ["echo: hello?"]


async def test_every_turn_is_logged_without_the_message_text(
    services: Services, redis: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """The runner logs user id, message id, duration and outcome of each turn, never the text at INFO."""
    user = await ready_user("log")
    caplog.set_level(logging.INFO, logger="core.turns")
    await services.inbox.receive(inbound("log", "l1", "my secret plans for tonight"))
    await services.runner.drain(user.id, whole=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "core.turns"]
    row = await Message.get(user=user, direction=Direction.INBOUND)
    assert any(
        f"user={user.id} message={row.id} attempt=1" in line and "duration_ms=" in line and "outcome=done" in line
        for line in lines
    ), lines
    assert not any("secret plans" in r.getMessage() for r in caplog.records if r.levelno <= logging.INFO)


async def test_a_turn_writes_only_what_it_changed(services: Services, fake_llm: FakeOpenAI) -> None:
    """A sign-out everywhere (auth_epoch) committed while a turn waits for the model survives the turn's commit."""
    user = await ready_user("epoch")
    fake_llm.slow_when("slow one", 0.5)
    await services.inbox.receive(inbound("epoch", "e1", "a slow one"))
    turn = asyncio.create_task(services.runner.drain(user.id, whole=True))
    await eventually(lambda: _in_flight(fake_llm), what="the model call")
    await User.filter(id=user.id).update(auth_epoch=F("auth_epoch") + 1)  # the portal's "sign out everywhere"
    assert await turn is None
    saved = await User.get(id=user.id)
    assert saved.auth_epoch == user.auth_epoch + 1
    assert saved.version == user.version + 1 and saved.question_round == user.question_round + 1
    assert [r.text for r in await replies_of(user)] == ["echo: a slow one"]


async def _in_flight(fake: FakeOpenAI) -> bool:
    return fake.in_flight > 0


async def test_a_photo_notice_written_during_a_turn_makes_the_turn_run_again(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """A photo finishing while a turn waits for the model stores its notice with a new question round and a new
    version, over what others committed before: the turn is computed again on that state; both are sent."""
    user = await ready_user("notice")
    avatar = await Avatar.get(user=user)
    fake_llm.slow_when("slow one", 0.5)
    await services.inbox.receive(inbound("notice", "n1", "a slow one"))
    turn = asyncio.create_task(services.runner.drain(user.id, whole=True))
    await eventually(lambda: _in_flight(fake_llm), what="the model call")
    await User.filter(id=user.id).update(auth_epoch=F("auth_epoch") + 1)  # committed before the notice's lock
    event = PhotoEvent(user.id, 7, "photo", "ready", avatar.id, ChatRef("web", "notice"))
    async with in_transaction():
        await services.runner.record_photo_event(event)
    noticed = await User.get(id=user.id)
    assert noticed.version == user.version + 1 and noticed.question_round == user.question_round + 1
    assert noticed.auth_epoch == user.auth_epoch + 1 and noticed.updated_at > user.updated_at
    assert await turn is None
    assert len(fake_llm.completions()) == 2  # computed again on the new state
    assert await services.runner.drain(user.id, whole=True) is None  # the notice, stored after the drain's look
    rows = await replies_of(user)
    assert [(r.external_message_id, r.status) for r in rows] == [
        ("photo:7:0", MessageStatus.SENT),
        (None, MessageStatus.SENT),
    ]
    assert rows[0].payload is not None and rows[0].payload["photo_id"] == 7 and rows[1].text == "echo: a slow one"
    saved = await User.get(id=user.id)
    assert saved.version == user.version + 2 and saved.question_round == user.question_round + 2


async def test_a_turn_computed_on_stale_state_is_computed_again(services: Services, fake_llm: FakeOpenAI) -> None:
    """A state change committed while a turn waits for the model (a photo event) makes the turn run again on the
    new state; the message is still answered once."""
    user = await ready_user("stale")
    fake_llm.slow_when("slow one", 0.5)
    await services.inbox.receive(inbound("stale", "s1", "a slow one"))
    turn = asyncio.create_task(services.runner.drain(user.id, whole=True))
    await eventually(lambda: _in_flight(fake_llm), what="the model call")
    await User.filter(id=user.id).update(version=F("version") + 1, mode=Mode.INTIMATE)
    assert await turn is None
    saved = await User.get(id=user.id)
    assert saved.mode == Mode.INTIMATE and saved.version == user.version + 2
    assert len(fake_llm.completions()) == 2  # computed again on the new state
    assert [r.text for r in await replies_of(user)] == ["echo: a slow one"]
    row = await Message.get(user=user, direction=Direction.INBOUND)
    assert row.status == MessageStatus.DONE and row.attempts == 1
