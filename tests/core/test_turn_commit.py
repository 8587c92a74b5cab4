"""A chat turn's commit on PostgreSQL: ONE statement (no BEGIN / COMMIT round trips) that charges the message's
quota unit, flips the message to done, saves the user and stores the reply, all or nothing. When a part cannot
take place (the user changed, the message was done by another run, the unit is gone) the statement rolls back as a
whole and the turn is committed the slow way, which answers as it always did. Real billing entitlements, real
PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from arq.connections import ArqRedis
from tortoise.expressions import F

from ava_bot.queueing import slot_key
from ava_bot.wiring import Services, build_services
from billing.entitlements import BillingEntitlements
from billing.models import QuotaCharge, QuotaKind, QuotaUsage
from core.delivery import store_replies
from core.messages import ChatRef, InboundMessage, TextReply
from core.models import ChannelIdentity, Direction, Message, MessageStatus, User
from core.outcome import Outcome
from tests.core.test_setup_flow import Chat, texts
from tests.fakes.entitlements import subscribe
from tests.fakes.openai import FakeOpenAI
from tests.support import eventually, ready_user, statements


@pytest.fixture
def services(db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI) -> Services:
    settings = make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url, inbound_per_user_per_minute=1000)
    return build_services(settings, redis, entitlements=BillingEntitlements())


def _sql_of(records: list[logging.LogRecord]) -> list[str]:
    return [" ".join(str(r.args[0] if r.args else r.getMessage()).split()) for r in records]


async def _units(user_id: int) -> tuple[int, int]:
    """(units used, charge rows) of the user's message quota."""
    used = sum(row.used for row in await QuotaUsage.filter(user_id=user_id, kind=QuotaKind.MESSAGE))
    return used, await QuotaCharge.filter(user_id=user_id, kind=QuotaKind.MESSAGE).count()


async def _while_the_model_answers(services: Services, fake_llm: FakeOpenAI, chat_id: str, text: str) -> Any:
    """Send `text` with a slow model; return the running turn once the model is answering."""
    fake_llm.slow_when(text, 0.5)
    turn = asyncio.create_task(Chat(services, chat_id).send(text))

    async def answering() -> bool:
        return fake_llm.in_flight > 0

    await eventually(answering, what="the model answering")
    return turn


async def test_a_chat_turn_commits_in_one_statement_with_its_unit(services: Services, fake_llm: FakeOpenAI) -> None:
    """After the model's answer the turn writes once: one statement charges the unit, flips the message, saves the
    user and stores the reply (the slow way charges in a statement of its own, inside a transaction)."""
    user = await ready_user("o1")
    await subscribe(user.id, messages=5)
    with statements() as records:
        assert texts(await Chat(services, "o1").send("hello")) == "echo: hello"
    sql = _sql_of(records)
    commits = [s for s in sql if "ava_take_unit" in s]
    assert len(commits) == 1, sql
    assert "UPDATE messages SET status" in commits[0] and "UPDATE users SET" in commits[0]
    assert "INSERT INTO messages" in commits[0] and "ava_require" in commits[0]
    assert await _units(user.id) == (1, 1)
    message = await Message.get(user_id=user.id, direction=Direction.INBOUND)
    assert message.status == MessageStatus.DONE
    assert (await User.get(id=user.id)).version == user.version + 1
    # The commit also reads whether the chat is reachable: the reply's delivery does not look it up again.
    assert "channel_identities" in commits[0]
    assert not [s for s in sql if s.startswith("SELECT 1 AS unreachable")], sql


async def test_a_chat_marked_unreachable_during_the_turn_gets_no_send(services: Services, fake_llm: FakeOpenAI) -> None:
    """The platform refused the chat while the model answered (the user blocked the bot): the commit sees it, and
    the reply fails at once without a send, as a reply to an unreachable chat always does."""
    user = await ready_user("o6")
    await subscribe(user.id, messages=5)
    turn = await _while_the_model_answers(services, fake_llm, "o6", "hello")
    await ChannelIdentity.filter(user_id=user.id).update(unreachable_at=datetime.now(UTC), unreachable_reason="blocked")
    await turn
    reply = await Message.get(user_id=user.id, direction=Direction.OUTBOUND)
    assert reply.status == MessageStatus.FAILED and "unreachable" in (reply.error or "")
    assert (await Message.get(user_id=user.id, direction=Direction.INBOUND)).status == MessageStatus.DONE


async def test_a_user_changed_during_the_turn_is_kept_and_the_turn_computed_again(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """Signed out everywhere while the model answers: the one statement writes nothing (its save finds another
    version), the turn is computed again, and the sign-out stays; one reply, one unit."""
    user = await ready_user("o2")
    await subscribe(user.id, messages=5)
    turn = await _while_the_model_answers(services, fake_llm, "o2", "hello")
    await User.filter(id=user.id).update(auth_epoch=F("auth_epoch") + 1, version=F("version") + 1)
    assert texts(await turn) == "echo: hello"
    assert len(fake_llm.completions()) == 2  # computed again on the new state
    after = await User.get(id=user.id)
    assert after.auth_epoch == user.auth_epoch + 1
    assert await _units(user.id) == (1, 1)
    replies = await Message.filter(user_id=user.id, direction=Direction.OUTBOUND).count()
    assert replies == 1


async def test_a_message_done_by_another_run_meanwhile_gets_nothing_from_this_one(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """Another run finished the message while the model answered: this run's statement rolls back whole, so no
    second reply, no unit and no charge row come from it, and the user is not saved."""
    user = await ready_user("o3")
    await subscribe(user.id, messages=5)
    turn = await _while_the_model_answers(services, fake_llm, "o3", "hello")
    await Message.filter(user_id=user.id, direction=Direction.INBOUND).update(status=MessageStatus.DONE)
    assert texts(await turn) == ""
    assert not await Message.exists(user_id=user.id, direction=Direction.OUTBOUND)
    assert await _units(user.id) == (0, 0)
    assert (await User.get(id=user.id)).version == user.version


async def test_the_last_unit_taken_meanwhile_leaves_no_charge_and_the_turn_says_used_up(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """The day's only unit is used while the model answers: the statement's charge is refused, so its flip, save
    and reply roll back with it (no charge row is left behind), and the turn computed again says so."""
    user = await ready_user("o4")
    await subscribe(user.id, messages=1)
    turn = await _while_the_model_answers(services, fake_llm, "o4", "hello")
    period = (await services.entitlements.check(user.id, "message", "msg:probe")).period
    assert period is not None
    await QuotaUsage.create(user_id=user.id, kind=QuotaKind.MESSAGE, period_key=period, used=1)
    assert "You've used all 1 message of today" in texts(await turn)
    assert await _units(user.id) == (1, 0)
    assert not await Message.exists(user_id=user.id, direction=Direction.OUTBOUND, text="echo: hello")


async def test_a_drain_looks_at_its_rows_once_and_leaves_nothing_stored_meanwhile_behind(
    services: Services, fake_llm: FakeOpenAI, redis: ArqRedis
) -> None:
    """Three messages in one drain: one look at the pending rows, each turn's reply delivered from its commit, in
    order. A photo's notice stored while the first turn ran is not in that look: the drain leaves it, and after
    releasing the slot schedules the next drain for it, which sends it."""
    user = await ready_user("o5")
    await subscribe(user.id, messages=10)
    ref = ChatRef("web", "o5")
    for n in range(3):
        await services.inbox.receive(InboundMessage(ref, f"o5:{n}", f"hello {n}", None))
    holder = await redis.get(slot_key(user.id))
    assert holder is not None  # the inbox scheduled the drain: this test runs its job
    token = holder.decode()
    fake_llm.slow_when("hello 0", 0.3)

    async def notice_meanwhile() -> None:
        async def answering() -> bool:
            return fake_llm.in_flight > 0

        await eventually(answering, what="the model answering")
        await store_replies(user.id, ref, Outcome([TextReply("your photo")]), key="photo:o5")

    with statements() as records:
        noticing = asyncio.create_task(notice_meanwhile())
        assert await services.runner.run_drain_job(user.id, token) == "idle"
        await noticing
    looks = [sql for sql in _sql_of(records) if "FROM messages m WHERE m.user_id" in sql]  # `pending_rows`
    assert len(looks) == 1, looks
    assert await _sent(user.id) == ["echo: hello 0", "echo: hello 1", "echo: hello 2"]
    assert await Message.filter(user_id=user.id, text="your photo", status=MessageStatus.PENDING).exists()
    successor = await redis.get(slot_key(user.id))
    assert successor is not None and successor.decode() != token  # the next drain is scheduled for the notice
    assert await services.runner.drain(user.id, token=successor.decode()) is None
    assert await _sent(user.id) == ["echo: hello 0", "echo: hello 1", "echo: hello 2", "your photo"]


async def _sent(user_id: int) -> list[str]:
    rows = await Message.filter(user_id=user_id, direction=Direction.OUTBOUND, status=MessageStatus.SENT)
    return [row.text or "" for row in sorted(rows, key=lambda row: row.processed_at or row.created_at)]
