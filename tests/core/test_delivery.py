"""Ordered delivery through a channel adapter, fair scheduling, activity, pools: real worker, PostgreSQL, Redis.

The platform is `tests.fakes.channel.RecordingChannel` (a `core.ports.Channel`); the LLM is the fake OpenAI
server spoken to by the real openai client.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from tortoise.transactions import in_transaction

from ava_bot.db import close_db, init_db
from ava_bot.queueing import slot_key
from ava_bot.wiring import Services, build_services
from core.delivery import UNREACHABLE_CHAT, store_replies
from core.errors import DeliveryError
from core.messages import ChatRef, ChoicesReply, InboundMessage, PhotoReady, TextReply
from core.models import (
    Avatar,
    ChannelIdentity,
    DeadLetter,
    Direction,
    Message,
    MessageStatus,
    Mode,
    SetupStep,
    User,
)
from core.outcome import Outcome
from core.render import TextPart
from imaging.models import Photo, PhotoStatus
from tests.fakes.channel import RecordingChannel
from tests.fakes.entitlements import allow_all
from tests.fakes.openai import FakeOpenAI
from tests.support import eventually, running_worker, statements
from tests.support import ready_user as support_ready_user

FAKE = "fake"


@pytest.fixture
def channel() -> RecordingChannel:
    return RecordingChannel()


@pytest.fixture
def settings(make_settings: Any, fake_llm: FakeOpenAI) -> Any:
    return make_settings(
        llm_api_key="sk-test",
        llm_base_url=fake_llm.base_url,
        llm_timeout_seconds=10,
        turn_backoff_seconds=0.05,
        delivery_backoff_seconds=0.05,
        delivery_max_attempts=4,
        activity_interval_seconds=0.1,
        image_provider="placeholder",
        photo_backoff_seconds=0.05,
        inbound_per_user_per_minute=100,  # bursts of 30 here test fairness, not the inbound limit
    )


@pytest.fixture
def services(db: str, redis: ArqRedis, settings: Any, channel: RecordingChannel) -> Services:
    return build_services(settings, redis, entitlements=allow_all(), channels=[channel])


async def ready_user(chat_id: str, *, mode: Mode = Mode.SECRETARY) -> User:
    """A user who finished onboarding and setup, on the fake channel."""
    return await support_ready_user(chat_id, channel=FAKE, mode=mode)


def say(chat_id: str, message_id: str, text: str | None = None, choice: str | None = None) -> InboundMessage:
    return InboundMessage(ref=ChatRef(FAKE, chat_id), message_id=message_id, text=text, choice=choice)


async def sent_count(channel: RecordingChannel, n: int, chat_id: str | None = None) -> bool:
    return len(channel.texts(chat_id)) >= n


async def test_transient_error_with_retry_after_keeps_order_and_sends_each_once(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """Flood control on the 2nd reply: it waits retry_after, the 3rd waits behind it, each is sent once."""
    user = await ready_user("t1")
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(say("t1", "a", "one"))
        await eventually(lambda: sent_count(channel, 1), what="the first reply")
        channel.fail("t1", DeliveryError("Too Many Requests: retry after 0.4", retry_after=0.4))
        await services.inbox.receive(say("t1", "b", "two"))
        await services.inbox.receive(say("t1", "c", "three"))
        await eventually(lambda: sent_count(channel, 3), what="all replies")
    assert channel.texts() == ["echo: one", "echo: two", "echo: three"]
    refused_at = channel.attempts[1][1]
    second, third = channel.sent[1], channel.sent[2]
    assert second.at - refused_at >= 0.4  # retry_after honoured
    assert third.at >= second.at  # never overtakes the waiting reply
    rows = await Message.filter(user=user, direction=Direction.OUTBOUND).order_by("id")
    assert [r.status for r in rows] == [MessageStatus.SENT] * 3
    assert [r.attempts for r in rows] == [0, 1, 0]
    assert all(r.platform_message_id for r in rows)


async def test_permanent_error_fails_the_row_marks_unreachable_and_never_wedges_the_user(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """A blocked chat: the reply fails, the identity is unreachable, the next message is still processed."""
    user = await ready_user("p1")
    channel.fail("p1", DeliveryError("Forbidden: bot was blocked by the user", permanent=True))
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(say("p1", "a", "hello"))

        async def failed() -> bool:
            return await Message.exists(user=user, direction=Direction.OUTBOUND, status=MessageStatus.FAILED)

        await eventually(failed, what="the refused reply failed")
        identity = await ChannelIdentity.get(user=user)
        assert identity.unreachable_at is not None and "blocked" in (identity.unreachable_reason or "")
        # The user unblocks and writes again: reachable again, answered.
        await services.inbox.receive(say("p1", "b", "I'm back"))
        await eventually(lambda: sent_count(channel, 1), what="the next reply")
    assert channel.texts() == ["echo: I'm back"]
    assert (await ChannelIdentity.get(user=user)).unreachable_at is None
    first = await Message.filter(user=user, direction=Direction.OUTBOUND).order_by("id").first()
    assert first is not None and first.status == MessageStatus.FAILED and "blocked" in (first.error or "")
    inbound = await Message.filter(user=user, direction=Direction.INBOUND).order_by("id")
    assert [m.status for m in inbound] == [MessageStatus.DONE, MessageStatus.DONE]


async def test_replies_to_an_unreachable_chat_fail_without_a_send_and_others_go_on(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """While a chat is unreachable its pending replies fail at once (no send) and delivery goes on."""
    user = await ready_user("u1")
    await ChannelIdentity.filter(user=user).update(unreachable_at=datetime.now(UTC), unreachable_reason="blocked")
    await Message.create(
        user=user,
        direction=Direction.OUTBOUND,
        channel=FAKE,
        chat_id="u1",
        text="late",
        payload={"type": "text", "text": "late"},
        status=MessageStatus.PENDING,
    )
    assert await services.runner.drain(user.id, whole=True) is None
    assert channel.attempts == []
    row = await Message.get(user=user, direction=Direction.OUTBOUND)
    assert row.status == MessageStatus.FAILED and "unreachable" in (row.error or "")


async def test_the_drains_look_says_which_chats_are_reachable_and_only_the_others_are_looked_up(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """One look at the pending rows also says, per reply, whether its chat is reachable: a reply to a reachable chat
    is sent without another look-up, one to a chat marked unreachable fails without a send (its look-up confirms)."""
    user = await ready_user("r1")
    await ChannelIdentity.create(user=user, channel=FAKE, external_user_id="r1-old", unreachable_at=datetime.now(UTC))
    for chat_id, text in (("r1-old", "late"), ("r1", "hello")):
        await Message.create(
            user=user,
            direction=Direction.OUTBOUND,
            channel=FAKE,
            chat_id=chat_id,
            text=text,
            payload={"type": "text", "text": text},
            status=MessageStatus.PENDING,
        )
    with statements() as records:
        assert await services.runner.drain(user.id, whole=True) is None
    assert channel.texts() == ["hello"]
    late = await Message.get(user=user, chat_id="r1-old")
    assert late.status == MessageStatus.FAILED and "unreachable" in (late.error or "")
    sql = [str(r.args[0] if r.args else r.getMessage()) for r in records]
    lookups = [q for q in sql if q.startswith(UNREACHABLE_CHAT)]
    assert len(lookups) == 1  # the unreachable chat's only: the reachable one's reply went on the look's word


async def test_transient_failures_run_out_into_a_dead_letter_and_the_next_reply_is_sent(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """A reply failing every attempt ends failed and dead-lettered; the user's next reply is delivered."""
    user = await ready_user("d1")
    channel.fail("d1", *(DeliveryError("Bad Gateway") for _ in range(4)))
    async with running_worker(services.settings, redis, services):
        await services.inbox.receive(say("d1", "a", "first"))
        await services.inbox.receive(say("d1", "b", "second"))
        await eventually(lambda: sent_count(channel, 1), what="the second reply")
    assert channel.texts() == ["echo: second"]
    letter = await DeadLetter.get(job="deliver_reply")
    failed = await Message.get(id=letter.payload["message_id"])
    assert failed.status == MessageStatus.FAILED and failed.text == "echo: first" and failed.attempts == 4
    assert letter.attempts == 4 and "Bad Gateway" in letter.error
    assert await Message.filter(user=user, direction=Direction.INBOUND, status=MessageStatus.DONE).count() == 2


async def test_typing_is_shown_and_repeated_during_a_slow_llm_call(
    services: Services, redis: ArqRedis, channel: RecordingChannel, fake_llm: FakeOpenAI
) -> None:
    """While the model thinks (1 s) the chat shows typing, repeated, and it stops once the reply is made."""
    await ready_user("ty")
    fake_llm.slow_when("think hard", 1.0)
    async with running_worker(services.settings, redis, services):
        started = asyncio.get_running_loop().time()
        await services.inbox.receive(say("ty", "a", "think hard please"))
        await eventually(lambda: sent_count(channel, 1), what="the reply")
        await asyncio.sleep(0.3)
    typing = [at for chat, kind, at in channel.activities if chat == "ty" and kind == "typing"]
    assert len(typing) >= 4, typing
    assert typing[0] - started < 0.5  # shown at once
    assert all(at <= channel.sent[0].at for at in typing)  # not after the reply


async def test_one_users_burst_does_not_stall_another_user(
    services: Services, redis: ArqRedis, channel: RecordingChannel, fake_llm: FakeOpenAI
) -> None:
    """User A sends 30 messages, then B one; with one job slot and a slow model B is answered before A's 10th."""
    await ready_user("A")
    await ready_user("B")
    fake_llm.slow_when("msg", 0.05)
    for i in range(30):
        await services.inbox.receive(say("A", f"a{i}", f"msg a{i}"))
    await services.inbox.receive(say("B", "b0", "msg b0"))
    async with running_worker(services.settings, redis, services, max_jobs=1):
        await eventually(lambda: sent_count(channel, 31), timeout=60, what="every reply")
    order = [item.chat_id for item in channel.sent]
    b_position = order.index("B")
    a_before_b = order[:b_position].count("A")
    assert a_before_b < 9, order
    assert channel.texts("A") == [f"echo: msg a{i}" for i in range(30)]  # A's own order holds


async def test_forty_concurrent_turns_complete_on_a_pool_of_five(
    db: str, redis: ArqRedis, settings: Any, channel: RecordingChannel, fake_llm: FakeOpenAI
) -> None:
    """No connection is held during the LLM call: 40 users' slow turns run at once on 5 connections."""
    await close_db()
    await init_db(f"{db}?maxsize=5")
    try:
        services = build_services(settings, redis, entitlements=allow_all(), channels=[channel])
        for i in range(40):
            await ready_user(f"c{i}")
        fake_llm.slow_when("hello", 0.8)
        async with running_worker(settings, redis, services, max_jobs=40):
            await asyncio.gather(*(services.inbox.receive(say(f"c{i}", f"m{i}", "hello")) for i in range(40)))
            await eventually(lambda: sent_count(channel, 40), timeout=60, what="40 replies")
        assert fake_llm.peak_in_flight > 5  # more model calls in flight than there are connections
        assert await Message.filter(direction=Direction.INBOUND, status=MessageStatus.DONE).count() == 40
    finally:
        await close_db()
        await init_db(db)


async def test_photo_notice_whose_first_two_sends_fail_arrives_exactly_once(
    services: Services, redis: ArqRedis, channel: RecordingChannel, fake_llm: FakeOpenAI
) -> None:
    """The ready notice is an outbound row: two failed sends are retried by delivery, it arrives once."""
    user = await ready_user("ph", mode=Mode.INTIMATE)
    avatar = await Avatar.get(user=user)
    async with running_worker(services.settings, redis, services):
        async with in_transaction():
            reference_id = await services.photos.request_photo(
                user_id=user.id,
                avatar_id=avatar.id,
                kind="reference",
                scene=None,
                source_key="seed",
                ref=ChatRef(FAKE, "ph"),
            )
        await services.photos.dispatch(reference_id)

        async def reference_ready() -> bool:
            return (await Photo.get(id=reference_id)).status == PhotoStatus.READY

        await eventually(reference_ready, what="the reference photo")
        await Avatar.filter(id=avatar.id).update(reference_photo_id=reference_id)
        channel.fail_photo_notices(DeliveryError("Bad Gateway"), DeliveryError("Too Many Requests", retry_after=0.1))
        fake_llm.call_tool("send_photo", {"scene_description": "on a balcony at dusk"}, text="One moment 📸")
        await services.inbox.receive(say("ph", "a", "send me a photo"))

        async def notice_sent() -> bool:
            return any(isinstance(s.reply, PhotoReady) for s in channel.sent)

        await eventually(notice_sent, what="the photo notice")
        await asyncio.sleep(0.5)  # a duplicate would arrive now
    notices = [s for s in channel.sent if isinstance(s.reply, PhotoReady)]
    assert len(notices) == 1 and notices[0].chat_id == "ph"
    photo = await Photo.get(user=user, kind="photo")
    assert notices[0].reply.photo_id == photo.id and photo.status == PhotoStatus.READY
    row = await Message.get(user=user, external_message_id=f"photo:{photo.id}:0")
    assert row.status == MessageStatus.SENT and row.attempts == 2
    uploading = [kind for chat, kind, _ in channel.activities if chat == "ph" and kind == "upload_photo"]
    assert uploading, "the chat showed 'uploading a photo' while it was made"


async def test_a_numbered_choice_is_accepted_where_the_platform_shows_a_numbered_list(
    services: Services, channel: RecordingChannel
) -> None:
    """6 personalities and "← Back" on a 3-button platform become a numbered list; typing "2" picks the second."""
    now = datetime.now(UTC)
    user = await User.create(
        adult_confirmed_at=now,
        terms_accepted_at=now,
        setup_step=SetupStep.NAME,
        draft_gender="woman",
        draft_age=30,
        draft_nationality="Irish",
        draft_appearance="red curls, freckles",
    )
    await ChannelIdentity.create(user=user, channel=FAKE, external_user_id="n1")
    await services.inbox.receive(say("n1", "a", "Aoife"))
    await services.runner.drain(user.id, whole=True)
    question = channel.sent[-1]
    assert isinstance(question.reply, ChoicesReply) and len(question.reply.choices) == 7
    assert all(isinstance(part, TextPart) for part in question.parts)
    assert "2. Dominant" in question.parts[-1].text  # type: ignore[union-attr]
    await services.inbox.receive(say("n1", "b", "2"))
    await services.runner.drain(user.id, whole=True)
    user = await User.get(id=user.id)
    assert user.draft_personality == "dominant" and user.setup_step == SetupStep.SUMMARY


async def test_sweeper_delivers_a_notice_whose_kick_was_lost(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """A pending reply nobody scheduled (Redis lost the job) is found by the sweeper and delivered once."""
    from datetime import timedelta

    from ava_bot.jobs import sweep_turns

    user = await ready_user("sw")
    await Message.create(
        user=user,
        direction=Direction.OUTBOUND,
        channel=FAKE,
        chat_id="sw",
        external_message_id="photo:99:0",
        text="Just for you",
        payload={"type": "text", "text": "Just for you"},
        status=MessageStatus.PENDING,
    )
    async with running_worker(services.settings, redis, services):
        assert await sweep_turns({"services": services, "turn_stuck_after": timedelta(0)}) == 1
        await eventually(lambda: sent_count(channel, 1), what="the swept reply")
        assert await sweep_turns({"services": services, "turn_stuck_after": timedelta(0)}) == 0
    assert channel.texts() == ["Just for you"]


async def test_photo_notice_goes_to_the_requesting_chat_else_the_last_reachable_one(
    services: Services, channel: RecordingChannel
) -> None:
    """The notice goes where the photo was asked for; if that chat is unreachable, to the last active chat."""
    from core.ports import PhotoEvent

    user = await ready_user("home")
    await ChannelIdentity.create(user=user, channel="web", external_user_id=str(user.id))
    for channel_name, chat in ((FAKE, "home"), ("web", str(user.id))):
        await Message.create(
            user=user,
            direction=Direction.INBOUND,
            channel=channel_name,
            chat_id=chat,
            text="hi",
            status=MessageStatus.DONE,
        )
    avatar = await Avatar.get(user=user)
    for photo_id, unreachable, expected in ((1, False, (FAKE, "home")), (2, True, ("web", str(user.id)))):
        if unreachable:
            await ChannelIdentity.filter(channel=FAKE).update(unreachable_at=datetime.now(UTC))
        event = PhotoEvent(user.id, photo_id, "photo", "ready", avatar.id, ChatRef(FAKE, "home"))
        async with in_transaction():
            await services.runner.record_photo_event(event)
        row = await Message.get(external_message_id=f"photo:{photo_id}:0")
        assert (row.channel, row.chat_id) == expected
        assert row.payload is not None and row.payload["type"] == "photo" and row.payload["photo_id"] == photo_id


async def test_a_closed_window_holds_replies_until_the_user_writes_then_they_arrive_first(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """A send the platform takes only after the user writes again is held, never retried in a loop, never lost."""
    user = await ready_user("w1")
    channel.fail("w1", DeliveryError("Re-engagement message: the 24-hour window is closed", hold=True))
    await services.inbox.receive(say("w1", "a", "good night"))
    assert await services.runner.drain(user.id, whole=True) is None  # nothing left to retry
    held = await Message.get(user=user, direction=Direction.OUTBOUND)
    assert held.status == MessageStatus.HELD and held.attempts == 0 and channel.texts() == []
    assert await services.runner.drain(user.id, whole=True) is None and len(channel.attempts) == 1  # no loop
    await services.inbox.receive(say("w1", "b", "good morning"))
    await services.runner.drain(user.id, whole=True)
    assert channel.texts() == ["echo: good night", "echo: good morning"]
    rows = await Message.filter(user=user, direction=Direction.OUTBOUND).order_by("id")
    assert [r.status for r in rows] == [MessageStatus.SENT, MessageStatus.SENT]


async def test_platform_status_callbacks_update_the_row_and_a_late_window_failure_holds_it(
    services: Services, channel: RecordingChannel
) -> None:
    """delivered/read are kept (never going back); a late failure with a window code is held for the next message."""
    from core.delivery import record_platform_status

    user = await ready_user("s1")
    await services.inbox.receive(say("s1", "a", "hi"))
    await services.runner.drain(user.id, whole=True)
    row = await Message.get(user=user, direction=Direction.OUTBOUND)
    pid = row.platform_message_id
    assert pid is not None
    codes = frozenset({"131047"})
    assert await record_platform_status(FAKE, pid, "read", hold_codes=codes)
    assert await record_platform_status(FAKE, pid, "delivered", hold_codes=codes)  # late, out of order
    assert (await Message.get(id=row.id)).platform_status == "read"
    assert not await record_platform_status(FAKE, "unknown-id", "read", hold_codes=codes)
    assert await record_platform_status(FAKE, pid, "failed", "131047", hold_codes=codes)
    assert (await Message.get(id=row.id)).status == MessageStatus.HELD
    await services.inbox.receive(say("s1", "b", "still there?"))
    await services.runner.drain(user.id, whole=True)
    assert channel.texts() == ["echo: hi", "echo: hi", "echo: still there?"]


async def test_a_reply_outside_the_platform_window_is_held_without_a_send_until_the_user_writes(
    db: str, redis: ArqRedis, settings: Any
) -> None:
    """On a platform with a reply window (WhatsApp: 24 h), a notice after the window is held, not sent and
    refused; the user's next message brings it first."""
    import dataclasses

    from tests.fakes.channel import FAKE_CAPABILITIES

    windowed = RecordingChannel(capabilities=dataclasses.replace(FAKE_CAPABILITIES, reply_window_seconds=1))
    services = build_services(settings, redis, entitlements=allow_all(), channels=[windowed])
    user = await ready_user("win")
    await services.inbox.receive(say("win", "a", "hi"))
    await services.runner.drain(user.id, whole=True)
    assert windowed.texts() == ["echo: hi"]
    await Message.filter(user=user, direction=Direction.INBOUND).update(
        created_at=datetime.now(UTC) - timedelta(seconds=5)
    )  # the user's last message is now older than the window
    await Message.create(
        user=user,
        direction=Direction.OUTBOUND,
        channel=FAKE,
        chat_id="win",
        text="Here I am",
        payload={"type": "text", "text": "Here I am"},
        status=MessageStatus.PENDING,
    )
    await services.runner.drain(user.id, whole=True)
    assert len(windowed.attempts) == 1  # no send attempted outside the window
    assert await Message.exists(user=user, status=MessageStatus.HELD, text="Here I am")
    await services.inbox.receive(say("win", "b", "back"))
    await services.runner.drain(user.id, whole=True)
    assert windowed.texts() == ["echo: hi", "Here I am", "echo: back"]


async def test_a_photo_link_is_signed_again_when_it_finally_leaves(
    services: Services, channel: RecordingChannel
) -> None:
    """A photo notice that waited (held, retried) leaves with a fresh signed link, never the expired one it had."""
    from urllib.parse import parse_qs, urlsplit

    user = await ready_user("old")
    stale = "https://ava.example/photos/5?t=expired-token"
    await Message.create(
        user=user,
        direction=Direction.OUTBOUND,
        channel=FAKE,
        chat_id="old",
        text="Just for you",
        payload={"type": "photo", "photo_id": 5, "url": stale, "text": "Just for you", "kind": "photo"},
        status=MessageStatus.PENDING,
    )
    await services.runner.drain(user.id, whole=True)
    (sent,) = channel.sent
    assert isinstance(sent.reply, PhotoReady) and sent.reply.url != stale
    token = parse_qs(urlsplit(sent.reply.url).query)["t"][0]
    assert services.links.verify_photo(token, 5) == user.id


async def test_a_drain_that_lost_its_slot_sends_nothing_and_the_holder_sends_once(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """Redis lost the user's slot and another drain took it (Redis restarted empty, or a lease ran out) while the
    first drain was still working: the first one stops before sending, the holder sends each reply once."""
    user = await ready_user("lost")
    await store_replies(user.id, ChatRef(FAKE, "lost"), Outcome([TextReply("one"), TextReply("two")]), key="k")
    await redis.set(slot_key(user.id), "the-other-drain")
    assert await services.runner.drain(user.id, token="the-first-drain") is None
    assert channel.texts() == []
    assert await Message.filter(user=user, direction=Direction.OUTBOUND, status=MessageStatus.PENDING).count() == 2
    assert await services.runner.drain(user.id, token="the-other-drain") is None
    assert channel.texts() == ["one", "two"]
    assert await Message.filter(user=user, direction=Direction.OUTBOUND, status=MessageStatus.SENT).count() == 2


async def test_a_photo_job_sends_its_notice_itself_when_no_drain_holds_the_slot(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """After a photo's terminal commit (its notice stored), the photo job runs the user's drain itself when the slot
    is free: the notice is sent at once, no drain job goes through the queue, and the slot is free again."""
    user = await ready_user("here")
    await store_replies(user.id, ChatRef(FAKE, "here"), Outcome([TextReply("your photo")]), key="photo:1")
    await services.runner.drain_here(user.id)
    assert channel.texts() == ["your photo"]
    assert await Message.get(user=user, external_message_id="photo:1:0").values_list("status", flat=True) == "sent"
    assert await redis.get(slot_key(user.id)) is None
    assert await redis.zcard(redis.default_queue_name) == 0  # no drain job was enqueued


async def test_a_photo_job_leaves_its_notice_to_the_drain_holding_the_slot(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """A drain holds the user's slot (a turn is running): the photo job sends nothing and leaves the slot alone; the
    holder sends the notice, once."""
    user = await ready_user("held")
    await store_replies(user.id, ChatRef(FAKE, "held"), Outcome([TextReply("your photo")]), key="photo:2")
    await redis.set(slot_key(user.id), "the-running-drain")
    await services.runner.drain_here(user.id)
    assert channel.texts() == []
    assert await redis.get(slot_key(user.id)) == b"the-running-drain"
    assert await services.runner.drain(user.id, token="the-running-drain") is None
    assert channel.texts() == ["your photo"]


async def test_a_photo_job_whose_notice_send_fails_hands_the_retry_to_a_drain_job(
    services: Services, redis: ArqRedis, channel: RecordingChannel
) -> None:
    """A transient send error in the photo job's own drain is not the photo job's failure: it returns, the notice
    stays pending with its attempt counted, and a continuation drain job holding the slot is queued to retry it,
    which sends it once."""
    user = await ready_user("retry")
    await store_replies(user.id, ChatRef(FAKE, "retry"), Outcome([TextReply("your photo")]), key="photo:3")
    channel.fail("retry", DeliveryError("Bad Gateway"))
    await services.runner.drain_here(user.id)
    row = await Message.get(user=user, external_message_id="photo:3:0")
    assert row.status == MessageStatus.PENDING and row.attempts == 1
    holder = await redis.get(slot_key(user.id))
    assert holder is not None and await redis.zcard(redis.default_queue_name) == 1
    async with running_worker(services.settings, redis, services):
        await eventually(lambda: sent_count(channel, 1, "retry"), what="the retried notice")
        await asyncio.sleep(0.2)  # a duplicate would arrive now
    assert channel.texts("retry") == ["your photo"]
