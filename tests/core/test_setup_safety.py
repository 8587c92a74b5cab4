"""Every text that can reach an image prompt is checked on its own where it enters: setup answers, the /avatar
edit (the portal's web chat included) and the scene of `send_photo`; refusals are audited and never loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis

from ava_bot.wiring import Services, build_services
from core.engine import ACCEPT, REF_KEEP
from core.models import Avatar, Direction, Message, MessageStatus, Mode, SafetyRefusal, SetupStep, User
from core.persona import photo_blocked_line
from core.setup import BACK, CHANGE_PREFIX, CHOICES_ONLY_PROMPT, CONFIRM, REFUSED_ANSWER
from imaging.models import Photo
from imaging.moderation import OpenAIModeration
from tests.core.test_setup_flow import Chat, Gate, texts
from tests.fakes.moderation import FakeModerations
from tests.fakes.openai import FakeOpenAI


@pytest.fixture
async def moderations() -> AsyncIterator[FakeModerations]:
    async with FakeModerations() as fake:
        yield fake


@pytest.fixture
def settings(make_settings: Any, fake_llm: FakeOpenAI) -> Any:
    return make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url)


@pytest.fixture
def services(db: str, redis: ArqRedis, settings: Any) -> Services:
    return build_services(settings, redis, entitlements=Gate(open_=True))


async def at_step(chat: Chat, step: SetupStep) -> None:
    """Answer the setup questions up to `step`."""
    await chat.send("/start")
    await chat.send(choice=ACCEPT)
    answers = {
        SetupStep.GENDER: "woman",
        SetupStep.AGE: "27",
        SetupStep.NATIONALITY: "Italian",
        SetupStep.APPEARANCE: "long dark hair, green eyes",
        SetupStep.NAME: "Mia",
    }
    for current, answer in answers.items():
        if current == step:
            return
        await chat.send(answer)


async def refusals(user_id: int) -> list[SafetyRefusal]:
    return await SafetyRefusal.filter(user_ref=f"user:{user_id}").order_by("id")


@pytest.mark.parametrize(
    ("step", "answer"),
    [
        (SetupStep.GENDER, "teen girl"),
        (SetupStep.GENDER, "young girl"),
        (SetupStep.NATIONALITY, "Japanese schoolgirl"),
        (SetupStep.APPEARANCE, "very young girl with a baby face"),
        (SetupStep.APPEARANCE, "looks 15, petite"),
        (SetupStep.NAME, "Lolita"),
        (SetupStep.PERSONALITY, "acts like a teen"),
        (SetupStep.PERSONALITY, "shy schoolgirl"),
    ],
)
async def test_a_minor_implying_answer_is_refused_where_it_enters_and_audited(
    services: Services, step: SetupStep, answer: str
) -> None:
    """Each free-text field is checked alone: a minor-implying answer gets what to change, and is audited."""
    chat = Chat(services)
    await at_step(chat, step)
    replies = await chat.send(answer)
    assert REFUSED_ANSWER[step] in texts(replies)
    user = await chat.user()
    assert user.setup_step == step and user.setup_refusals == 1
    (row,) = await refusals(chat.user_id)
    assert (row.field, row.layer, row.channel, row.text) == (step.value, "rules", "web", answer)
    assert row.code and row.photo_id is None


async def test_three_refusals_leave_choices_only_and_the_flow_moves_on(services: Services) -> None:
    """After 3 refused answers the question offers its safe presets only; junk re-shows them; a preset goes on."""
    chat = Chat(services)
    await at_step(chat, SetupStep.GENDER)
    for attempt in ("teen girl", "young girl", "little girl"):
        replies = await chat.send(attempt)
    assert len(replies) == 1 and replies[-1]["text"].endswith(CHOICES_ONLY_PROMPT)  # why and the presets: one bubble
    assert REFUSED_ANSWER[SetupStep.GENDER] in replies[-1]["text"]
    assert [c["label"] for c in replies[-1]["choices"]] == ["Woman", "Man", "Non-binary"]
    again = await chat.send("schoolgirl")  # free text is no longer taken: the presets again, no loop
    assert again[-1]["text"].endswith(CHOICES_ONLY_PROMPT) and (await chat.user()).setup_step == SetupStep.GENDER
    await chat.send(choice="woman")
    user = await chat.user()
    assert (user.setup_step, user.draft_gender, user.setup_refusals) == (SetupStep.AGE, "woman", 0)
    assert len(await refusals(chat.user_id)) == 3  # the junk after the presets is not a new safety refusal


async def test_ages_refused_three_times_offer_adult_ages_only(services: Services) -> None:
    """Invalid ages (19, 'seventeen', '-30') also end in adult presets instead of a loop."""
    chat = Chat(services)
    await at_step(chat, SetupStep.AGE)
    for attempt in ("19", "seventeen", "-30"):
        replies = await chat.send(attempt)
    assert replies[-1]["text"].endswith(CHOICES_ONLY_PROMPT)
    ages = [c["label"] for c in replies[-1]["choices"] if not c["data"].endswith("." + BACK)]
    assert ages and all(int(age) >= 20 for age in ages)
    await chat.send("25")
    assert (await chat.user()).draft_age == 25


async def test_avatar_edit_refuses_a_minor_implying_appearance(services: Services) -> None:
    """The /avatar edit (also the portal's web chat) checks the new answer the same way."""
    chat = Chat(services)
    await at_step(chat, SetupStep.PERSONALITY)
    await chat.send("playful")
    await chat.send(choice=CONFIRM)
    await chat.photo_done()
    await chat.send(choice=REF_KEEP)
    await chat.send("/avatar")
    await chat.send(choice=CHANGE_PREFIX + "appearance")
    replies = await chat.send("schoolgirl uniform, pigtails")
    assert REFUSED_ANSWER[SetupStep.APPEARANCE] in texts(replies)
    assert (await chat.user()).setup_step == SetupStep.APPEARANCE
    assert [r.field for r in await refusals(chat.user_id)] == ["appearance"]


async def test_moderation_layer_refuses_what_the_rules_allow(
    db: str, redis: ArqRedis, settings: Any, moderations: FakeModerations
) -> None:
    """Both layers must allow: the model refusing a field the rules pass refuses it, audited with its layer."""
    moderation = OpenAIModeration(base_url=moderations.base_url, api_key="sk-mod", model="omni-moderation-latest")
    services = build_services(settings, redis, entitlements=Gate(open_=True), moderation=moderation)
    chat = Chat(services)
    await at_step(chat, SetupStep.APPEARANCE)
    moderations.refuse()
    replies = await chat.send("small frame, innocent look")
    assert REFUSED_ANSWER[SetupStep.APPEARANCE] in texts(replies)
    (row,) = await refusals(chat.user_id)
    assert (row.layer, row.code) == ("openai-moderation", "sexual/minors")
    assert moderations.checks()[-1]["input"] == "small frame, innocent look"
    await chat.send("long dark hair, green eyes")  # the fake allows by default
    assert (await chat.user()).setup_step == SetupStep.NAME


async def test_moderation_unreachable_never_accepts_a_field_unchecked(
    db: str, redis: ArqRedis, settings: Any, moderations: FakeModerations
) -> None:
    """Fail closed: with the model down the answer is not taken; the turn waits to be retried."""
    moderation = OpenAIModeration(
        base_url=moderations.base_url, api_key="sk-mod", model="omni-moderation-latest", max_retries=0
    )
    services = build_services(settings, redis, entitlements=Gate(open_=True), moderation=moderation)
    chat = Chat(services)
    await at_step(chat, SetupStep.APPEARANCE)
    moderations.fail(503)
    await chat.send("long dark hair, green eyes")
    user = await chat.user()
    assert user.setup_step == SetupStep.APPEARANCE and user.draft_appearance is None
    row = await Message.filter(user_id=chat.user_id, direction=Direction.INBOUND).order_by("-id").first()
    assert row is not None and row.status == MessageStatus.PENDING and "ModerationUnavailable" in (row.error or "")


async def test_send_photo_scene_is_checked_alone_and_refused_before_any_photo(
    services: Services, fake_llm: FakeOpenAI
) -> None:
    """A scene the model asks for is checked on its own: refused in character, audited, no photo recorded."""
    chat = Chat(services)
    await at_step(chat, SetupStep.PERSONALITY)
    await chat.send("playful")
    await chat.send(choice=CONFIRM)
    await chat.photo_done()
    await chat.send(choice=REF_KEEP)
    await User.filter(id=chat.user_id).update(mode=Mode.INTIMATE)
    fake_llm.call_tool("send_photo", {"scene_description": "very young girl with a baby face in bed"}, text="Sure")
    replies = await chat.send("send me one")
    assert [r["text"] for r in replies] == [photo_blocked_line()]
    assert await Photo.filter(user_id=chat.user_id, kind="photo").count() == 0
    (row,) = await refusals(chat.user_id)
    assert (row.field, row.layer, row.text) == ("scene", "rules", "very young girl with a baby face in bed")
    assert await Avatar.filter(user_id=chat.user_id).count() == 1
