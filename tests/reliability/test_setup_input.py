# ruff: noqa: RUF001  (deliberately holds Arabic-Indic digits and right-to-left text)
"""Bad input in the avatar setup, through the real inbox, turn runner and engine (PostgreSQL and Redis real).

Ages written oddly (the list of issue 13), broken UTF-8 (lone surrogates, as `surrogateescape` decoding leaves
them, and NUL), huge texts, emoji and right-to-left text at every question. Each message gets a clear answer,
the age floor of 20 holds for every spelling, nothing broken is stored, and no turn fails (no dead letter).
"""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.wiring import Services, build_services
from core.engine import ACCEPT
from core.inbox import storable
from core.models import Avatar, DeadLetter, Direction, Message, MessageStatus, SetupStep, User
from core.setup import CONFIRM
from tests.core.test_setup_flow import Chat, Gate
from tests.fakes.openai import FakeOpenAI

#: (typed, the age taken or None when asked again) — the spellings issue 13 names, and a few neighbours.
AGES = [
    ("19.9", None),
    ("twenty", 20),
    ("-30", None),
    ("2e1", None),
    ("٢٥", 25),
    ("twenty-five", 25),
    ("1e3", None),
    ("0x19", None),
    (" 25 ", 25),
    ("19", None),
    ("nineteen", None),
    ("١٩", None),
    ("20.0", None),
    ("25.", 25),
    ("100", None),
    ("٢٥ 🎂", 25),
]
ORDER = [SetupStep.GENDER, SetupStep.AGE, SetupStep.NATIONALITY, SetupStep.APPEARANCE, SetupStep.NAME]
GOOD = {
    SetupStep.GENDER: "woman",
    SetupStep.AGE: "27",
    SetupStep.NATIONALITY: "Italian",
    SetupStep.APPEARANCE: "long dark hair, green eyes",
    SetupStep.NAME: "Mia",
    SetupStep.PERSONALITY: "playful",
}
#: Texts that must never crash a step: emoji, right-to-left (with bidi controls), broken UTF-8, NUL, huge.
ODD_TEXTS = [
    "🌸✨💃🏽",
    "ليلى",
    "مصرية من القاهرة",
    "שיער כהה ארוך \u202eעיניים ירוקות\u202c",
    "Zoë 👩🏽\u200d🦱",
    "\udc80\udcff broken bytes",
    "a\x00b",
    "\ufeff\u200b",
    "x" * 100_000,
    "😀" * 50_000,
]


@pytest.fixture
def services(db: str, redis: ArqRedis, make_settings: Any, fake_llm: FakeOpenAI) -> Services:
    settings = make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url)
    return build_services(settings, redis, entitlements=Gate())


async def at_step(services: Services, chat_id: str, step: SetupStep) -> Chat:
    """A user who confirmed 18+ and answered every question before `step`."""
    chat = Chat(services, chat_id, channel="telegram")
    await chat.send("/start")
    await chat.send(choice=ACCEPT)
    for current, answer in GOOD.items():
        if current == step:
            break
        await chat.send(answer)
    assert (await chat.user()).setup_step == step
    return chat


async def nothing_failed() -> None:
    """No turn failed for good and every inbound message was handled."""
    assert await DeadLetter.all().count() == 0
    statuses = {m.status for m in await Message.filter(direction=Direction.INBOUND)}
    assert statuses <= {MessageStatus.DONE}, statuses


@pytest.mark.parametrize(("typed", "age"), AGES)
async def test_every_spelling_of_an_age_is_taken_whole_and_adult_or_asked_again(
    services: Services, typed: str, age: int | None
) -> None:
    """A whole age of 20 or more in digits of any script or words is taken; under 20, decimals, exponents, hex,
    signs and out-of-range numbers get one bubble that says why and asks again; no avatar is made."""
    chat = await at_step(services, "age", SetupStep.AGE)
    replies = await chat.send(typed)
    user = await chat.user()
    if age is None:
        assert len(replies) == 1 and replies[0]["text"].endswith("How old should I be?"), replies
        assert (user.setup_step, user.draft_age) == (SetupStep.AGE, None)
    else:
        assert (user.setup_step, user.draft_age) == (SetupStep.NATIONALITY, age)
    assert not await Avatar.exists(user_id=chat.user_id)
    await nothing_failed()


@pytest.mark.parametrize("step", [*ORDER, SetupStep.PERSONALITY])
async def test_odd_texts_at_every_question_are_answered_and_store_nothing_broken(
    services: Services, step: SetupStep
) -> None:
    """Emoji, right-to-left text, broken UTF-8, NUL and 100,000-character texts at each question: always a
    reply, what is kept is storable text within its column, the age stays adult, no turn fails."""
    chat = await at_step(services, step.value, step)
    for text in ODD_TEXTS:
        # Back at the question (an accepted answer moved on): as if the user had pressed "back" to it.
        await User.filter(id=chat.user_id).update(setup_step=step)
        replies = await chat.send(text)
        assert replies and all(r.get("text") for r in replies), (step, text[:20])
        user = await chat.user()
        for value in (user.draft_gender, user.draft_nationality, user.draft_appearance, user.draft_name):
            assert value is None or (storable(value) and len(value) <= 2000), (step, text[:20], value[:40])
        assert user.draft_age is None or user.draft_age >= 20
        if user.setup_step == step:  # refused: one bubble saying why, the question again
            assert len(replies) == 1, (step, text[:20], replies)
    await nothing_failed()


async def test_a_setup_in_emoji_and_right_to_left_text_ends_with_that_avatar(services: Services) -> None:
    """Answers in Arabic, Hebrew and emoji are kept exactly as typed, shown in the summary and stored."""
    chat = await at_step(services, "rtl", SetupStep.GENDER)
    answers = ["امرأة", "٢٧", "مصرية", "שיער כהה ארוך, עיניים ירוקות 🌿", "ليلى 🌸", "playful"]
    for answer in answers:
        replies = await chat.send(answer)
    summary = replies[-1]["text"]
    assert "ليلى 🌸" in summary and "مصرية" in summary
    await chat.send(choice=CONFIRM)
    avatar = await Avatar.get(user_id=chat.user_id)
    assert (avatar.name, avatar.age, avatar.nationality) == ("ليلى 🌸", 27, "مصرية")
    assert avatar.appearance == "שיער כהה ארוך, עיניים ירוקות 🌿"
    await nothing_failed()


async def test_a_huge_text_is_cut_at_the_inbox_and_answered_clearly(services: Services) -> None:
    """A 100,000-character appearance is stored as at most 4,000 characters and refused with its length."""
    chat = await at_step(services, "huge", SetupStep.APPEARANCE)
    replies = await chat.send("long dark hair " * 7000)
    stored = await Message.filter(direction=Direction.INBOUND, chat_id="huge").order_by("-id").first()
    assert stored is not None and len(stored.text or "") == 4000
    user = await chat.user()
    assert (user.setup_step, user.draft_appearance) == (SetupStep.APPEARANCE, None)
    assert "keep it under 2000" in replies[0]["text"]
    assert await User.filter(id=chat.user_id).count() == 1
    await nothing_failed()
