"""The setup conversation bends instead of breaking: typed answers understood, one bubble per invalid answer,
step numbers, "back", a summary with "change …" before the reference photo, on the web and chat platforms.

Real turn runner, PostgreSQL and Redis; Telegram- and WhatsApp-shaped platforms are recording channels with
the real platforms' capabilities, rendered by the core renderer.
"""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from hypothesis import given, settings
from hypothesis import strategies as st

from ava_bot.wiring import Services, build_channels, build_services
from channels.telegram.parse import TELEGRAM_CAPABILITIES
from channels.whatsapp.parse import WHATSAPP_CAPABILITIES
from core.answers import parse_age
from core.engine import ACCEPT, PASSED_LINE, REF_KEEP
from core.errors import ValidationFailed
from core.messages import ChoicesReply
from core.models import Avatar, Mode, SafetyRefusal, SetupStep, User
from core.persona import build_system_prompt
from core.render import ButtonsPart, ListPart, TextPart
from core.setup import BACK, CHANGE_PREFIX, CONFIRM, CONFIRM_LABEL, QUESTION_STEPS
from imaging.models import Photo
from tests.core.test_setup_flow import Chat, Gate, texts
from tests.fakes.channel import FAKE_CAPABILITIES, RecordingChannel
from tests.fakes.openai import FakeOpenAI
from tests.support import ready_user

ANSWERS = {
    SetupStep.GENDER: "woman",
    SetupStep.AGE: "27",
    SetupStep.NATIONALITY: "Italian",
    SetupStep.APPEARANCE: "long dark hair, green eyes",
    SetupStep.NAME: "Mia",
    SetupStep.PERSONALITY: "playful",
}
CHANGE_LABELS = ["Change gender", "Change age", "Change nationality", "Change looks", "Change name"]
SUMMARY_LABELS = [CONFIRM_LABEL, *CHANGE_LABELS, "Change personality"]


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def platforms() -> dict[str, RecordingChannel]:
    return {
        "telegram": RecordingChannel(name="telegram", capabilities=TELEGRAM_CAPABILITIES),
        "whatsapp": RecordingChannel(name="whatsapp", capabilities=WHATSAPP_CAPABILITIES),
        "fake": RecordingChannel(name="fake", capabilities=FAKE_CAPABILITIES),
    }


@pytest.fixture
def app_settings(make_settings: Any, fake_llm: FakeOpenAI) -> Any:
    return make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url)


@pytest.fixture
def services(
    db: str, redis: ArqRedis, app_settings: Any, gate: Gate, platforms: dict[str, RecordingChannel]
) -> Services:
    channels = [*build_channels(app_settings, redis), *platforms.values()]
    return build_services(app_settings, redis, entitlements=gate, channels=channels)


async def started(services: Services, chat_id: str = "b1", *, channel: str = "web") -> Chat:
    """A user who confirmed 18+ and is asked the first question."""
    chat = Chat(services, chat_id, channel=channel)
    await chat.send("/start")
    await chat.send(choice=ACCEPT)
    return chat


async def answer_until(chat: Chat, step: SetupStep | None = None) -> list[dict[str, Any]]:
    """Answer the questions in order up to `step` (None: all of them); the last replies."""
    replies: list[dict[str, Any]] = []
    for current, answer in ANSWERS.items():
        if current == step:
            break
        replies = await chat.send(answer)
    return replies


def labels(reply: dict[str, Any]) -> list[str]:
    return [c["label"] for c in reply.get("choices", [])]


async def no_avatar_yet(chat: Chat) -> bool:
    return not await Avatar.exists(user_id=chat.user_id) and not await Photo.exists(user_id=chat.user_id)


# -- typed answers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "age"),
    [
        ("twenty-five", 25),
        ("twenty five", 25),
        ("Twenty-Five years old", 25),
        ("I'm 25", 25),
        ("25 years", 25),
        ("a 31-year-old", 31),
        ("\u0662\u0665", 25),  # Arabic-Indic digits
    ],
)
async def test_ages_typed_in_words_or_wrapped_are_understood(services: Services, typed: str, age: int) -> None:
    """Ages in words, with "I'm" / "years (old)", or in another script's digits are read as that age."""
    chat = await started(services)
    await answer_until(chat, SetupStep.AGE)
    replies = await chat.send(typed)
    user = await chat.user()
    assert (user.draft_age, user.setup_step) == (age, SetupStep.NATIONALITY)
    assert replies[-1]["text"].startswith("Step 3 of 6")


@pytest.mark.parametrize("typed", ["nineteen", "19", "19.9", "2e1", "-30", "seventeen years old", "20-25", "abc"])
async def test_ages_under_20_or_odd_are_asked_again_in_one_bubble(services: Services, typed: str) -> None:
    """Under 20 (any spelling), decimals, exponents, signs, ranges and nonsense: one bubble that explains and
    asks again, the age stays unset, and nothing is created."""
    chat = await started(services)
    await answer_until(chat, SetupStep.AGE)
    replies = await chat.send(typed)
    assert len(replies) == 1
    (bubble,) = replies
    assert bubble["text"].startswith("Step 2 of 6 · ") and bubble["text"].endswith("How old should I be?")
    if typed in ("nineteen", "19", "seventeen years old"):
        assert "at least 20: that's a firm rule" in bubble["text"]
    assert labels(bubble) == ["← Back"]  # the same choices as the question
    user = await chat.user()
    assert (user.setup_step, user.draft_age) == (SetupStep.AGE, None)
    assert await no_avatar_yet(chat)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40) | st.from_regex(r"[-+]?[0-9\u0660-\u0669]{1,4}([.,e][0-9]{1,3})?", fullmatch=True))
def test_any_typed_age_is_an_adult_age_or_asked_again(typed: str) -> None:
    """Whatever is typed, the age read is 20-99 or the answer is refused with a reason; it never crashes."""
    try:
        age = parse_age(typed)
    except ValidationFailed as refused:
        assert refused.public_message
    else:
        assert 20 <= age <= 99


@pytest.mark.parametrize("number", range(20))
def test_no_age_under_20_passes_in_digits_or_words(number: int) -> None:
    """Every age under 20, as digits, words or with "years old", is refused with the firm rule."""
    words = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    spelled = [*words.split(), "seventeen", "eighteen", "nineteen"][number]
    for typed in (str(number), spelled, f"{spelled.capitalize()} years old", f"I'm {number}"):
        with pytest.raises(ValidationFailed, match="at least 20"):
            parse_age(typed)


async def test_gender_and_nationality_typed_instead_of_pressed(services: Services) -> None:
    """ "A Woman." and "female" are the woman preset; "an Italian" is Italian."""
    for index, typed in enumerate(("A Woman.", "female")):
        chat = await started(services, f"g{index}")
        await chat.send(typed)
        await chat.send("30")
        await chat.send("an Italian")
        user = await chat.user()
        assert (user.draft_gender, user.draft_nationality, user.setup_step) == (
            "woman",
            "Italian",
            SetupStep.APPEARANCE,
        )


async def test_free_text_personality_is_kept_and_reaches_the_persona_prompt(
    services: Services, gate: Gate, fake_llm: FakeOpenAI
) -> None:
    """ "funny and sweet" is a fine personality: shown in the summary, stored, and told to the model."""
    chat = await started(services)
    await answer_until(chat, SetupStep.PERSONALITY)
    shown = await chat.send("funny and sweet")
    assert "• Personality: funny and sweet" in shown[-1]["text"]
    await chat.send(choice=CONFIRM)
    await chat.photo_done()
    await chat.send(choice=REF_KEEP)
    assert (await Avatar.get(user_id=chat.user_id)).personality == "funny and sweet"
    gate.open = True
    await chat.send("hi Mia")
    system = fake_llm.completions()[-1]["messages"][0]
    assert system["role"] == "system" and "funny and sweet" in system["content"]


def test_persona_prompt_states_a_preset_with_its_style_and_own_words_as_given() -> None:
    """A preset personality brings its style; the user's own words are stated as theirs, in every mode."""
    avatar = Avatar(name="Mia", gender="woman", age=27, nationality="Italian", appearance="dark hair")
    avatar.personality = "shy"
    assert "Your personality is shy: gentle" in build_system_prompt(avatar, Mode.SECRETARY)
    avatar.personality = "funny and sweet"
    for mode in Mode:
        prompt = build_system_prompt(avatar, mode)
        assert "Your personality, in the user's words: funny and sweet." in prompt and "27-year-old" in prompt


async def test_personality_too_long_or_unsafe_is_asked_again(services: Services) -> None:
    """A personality over 32 characters, or one suggesting a minor, gets one bubble asking again (the latter
    audited); the presets stay offered."""
    chat = await started(services)
    (question,) = await answer_until(chat, SetupStep.PERSONALITY)
    assert labels(question) == ["Playful", "Dominant", "Shy", "Caring", "Intellectual", "Adventurous", "← Back"]
    long = await chat.send("warm, witty and endlessly curious about the stars")
    assert len(long) == 1 and "up to 32 characters" in long[0]["text"] and labels(long[0]) == labels(question)
    unsafe = await chat.send("like a little girl")
    assert len(unsafe) == 1 and "without anything about kids" in unsafe[0]["text"]
    assert [r.field for r in await SafetyRefusal.filter(user_ref=f"user:{chat.user_id}")] == ["personality"]
    assert (await chat.user()).setup_step == SetupStep.PERSONALITY and await no_avatar_yet(chat)


# -- step numbers and back ---------------------------------------------------------------------------------------


async def test_every_question_says_its_step(services: Services) -> None:
    """Each of the six questions starts with "Step n of 6"; "← Back" is offered on all but the first."""
    chat = await started(services)
    first = (await chat._since(0))[-1]
    asked = [first]
    for answer in list(ANSWERS.values())[:-1]:
        asked.append((await chat.send(answer))[-1])
    for number, reply in enumerate(asked, 1):
        assert reply["text"].startswith(f"Step {number} of 6 · ")
        assert ("← Back" in labels(reply)) == (number > 1)


@pytest.mark.parametrize("step", QUESTION_STEPS[1:])
async def test_back_from_every_step_offers_the_previous_answer_and_replaces_it(
    services: Services, step: SetupStep
) -> None:
    """From each question "← Back" returns to the one before with its answer as the default; a new answer
    there replaces it and the flow goes on to the next question again."""
    chat = await started(services)
    await answer_until(chat, step)
    previous = QUESTION_STEPS[QUESTION_STEPS.index(step) - 1]
    replies = await chat.send(choice=BACK)
    assert len(replies) == 1 and (await chat.user()).setup_step == previous
    assert replies[0]["text"].startswith(f"Step {QUESTION_STEPS.index(previous) + 1} of 6")
    keep = labels(replies[0])[0]
    assert keep.startswith("Keep: ") and ANSWERS[previous][:20] in keep
    new_answers = {
        SetupStep.GENDER: "non-binary",
        SetupStep.AGE: "thirty",
        SetupStep.NATIONALITY: "Korean",
        SetupStep.APPEARANCE: "short silver hair",
        SetupStep.NAME: "Luna",
    }
    await chat.send(new_answers[previous])
    user = await chat.user()
    stored = {SetupStep.AGE: 30}.get(previous, new_answers[previous])
    assert getattr(user, f"draft_{previous.value}") == stored and user.setup_step == step


async def test_back_typed_and_at_the_first_question(services: Services) -> None:
    """Typed "back" works like the button; at the first question it says so in one bubble and asks again."""
    chat = await started(services)
    first = await chat.send("back")
    assert len(first) == 1 and "This is the first question." in first[0]["text"]
    assert (await chat.user()).setup_step == SetupStep.GENDER
    await chat.send("woman")
    await chat.send("27")
    again = await chat.send("Go back")
    assert (await chat.user()).setup_step == SetupStep.AGE and labels(again[-1])[0] == "Keep: 27"
    await chat.send(choice="keep")
    assert (await chat.user()).setup_step == SetupStep.NATIONALITY


# -- summary ------------------------------------------------------------------------------------------------------


async def test_summary_lists_every_answer_and_nothing_is_made_before_confirming(services: Services) -> None:
    """After the last question: every answer, "Looks good — take my photo" and one "Change …" per answer; no
    avatar or photo exists until it is confirmed."""
    chat = await started(services)
    replies = await answer_until(chat)
    (summary,) = replies
    for line in ("• Gender: woman", "• Age: 27", "• Nationality: Italian", "• Looks: long dark hair, green eyes"):
        assert line in summary["text"]
    assert "• Name: Mia" in summary["text"] and "• Personality: playful" in summary["text"]
    assert labels(summary) == SUMMARY_LABELS
    assert (await chat.user()).setup_step == SetupStep.SUMMARY and await no_avatar_yet(chat)
    nudged = await chat.send("hmm")
    assert len(nudged) == 1 and "Tell me what to change" in nudged[0]["text"] and labels(nudged[0]) == SUMMARY_LABELS
    assert await no_avatar_yet(chat)
    made = await chat.send(choice=CONFIRM)
    assert "Nice to meet you, I'm Mia!" in texts(made)
    avatar = await Avatar.get(user_id=chat.user_id)
    assert (avatar.age, avatar.personality) == (27, "playful")
    assert await Photo.filter(user_id=chat.user_id, kind="reference").count() == 1


@pytest.mark.parametrize("step", QUESTION_STEPS)
async def test_change_asks_that_question_and_comes_back_to_the_summary(services: Services, step: SetupStep) -> None:
    """ "Change X" asks X again (its answer as the default, "← Back" to return); the new answer shows in the
    summary; the others are untouched."""
    chat = await started(services)
    await answer_until(chat)
    asked = await chat.send(choice=CHANGE_PREFIX + step.value)
    assert (await chat.user()).setup_step == step
    assert labels(asked[-1])[0].startswith("Keep: ") and labels(asked[-1])[-1] == "← Back"
    new = {
        SetupStep.GENDER: ("man", "• Gender: man"),
        SetupStep.AGE: ("forty-two", "• Age: 42"),
        SetupStep.NATIONALITY: ("Brazilian", "• Nationality: Brazilian"),
        SetupStep.APPEARANCE: ("red curls, freckles", "• Looks: red curls, freckles"),
        SetupStep.NAME: ("Sofia", "• Name: Sofia"),
        SetupStep.PERSONALITY: ("calm and witty", "• Personality: calm and witty"),
    }[step]
    summary = await chat.send(new[0])
    assert new[1] in summary[-1]["text"] and labels(summary[-1]) == SUMMARY_LABELS
    assert (await chat.user()).setup_step == SetupStep.SUMMARY and await no_avatar_yet(chat)


async def test_change_typed_and_back_return_to_the_summary(services: Services) -> None:
    """ "change my name" works typed; "← Back" from a change returns to the summary with nothing changed."""
    chat = await started(services)
    await answer_until(chat)
    await chat.send("change my name")
    assert (await chat.user()).setup_step == SetupStep.NAME
    back = await chat.send(choice=BACK)
    assert labels(back[-1]) == SUMMARY_LABELS and "• Name: Mia" in back[-1]["text"]
    await chat.send("Change age")
    refused = await chat.send("nineteen")
    assert len(refused) == 1 and "at least 20" in refused[0]["text"]
    assert (await chat.user()).draft_age == 27  # the earlier answer stays until a valid one replaces it


async def test_confirming_checks_every_answer_again(services: Services, gate: Gate) -> None:
    """An edit whose kept value the rules now refuse (an older avatar named "Lolita") is not made: the summary's
    confirmation asks that question again, audited, and creates nothing."""
    gate.open = True
    user = await ready_user("old1")
    await Avatar.filter(user_id=user.id).update(name="Lolita")
    chat = Chat(services, "old1")
    started_edit = await chat.send("/avatar")
    assert "new look" in started_edit[-1]["text"] and "• Name: Lolita" in started_edit[-1]["text"]
    refused = await chat.send(choice=CONFIRM)
    assert len(refused) == 1 and "another name" in refused[0]["text"]
    assert (await chat.user()).setup_step == SetupStep.NAME
    assert await Avatar.filter(user_id=user.id).count() == 1 and not await Photo.exists(user_id=user.id)
    assert [r.field for r in await SafetyRefusal.filter(user_ref=f"user:{user.id}")] == ["name"]
    await chat.send("Mia")
    made = await chat.send(choice=CONFIRM)
    assert "I'm Mia" in texts(made) and await Avatar.filter(user_id=user.id).count() == 2


async def test_passed_summary_and_back_buttons_are_refused(services: Services) -> None:
    """Once the photo is requested, the summary's "Change age" and an old "← Back" have passed."""
    chat = await started(services)
    await answer_until(chat, SetupStep.NATIONALITY)
    old_back = await chat.button(BACK)
    await answer_until_rest(chat)
    old_change = await chat.button(CHANGE_PREFIX + "age")
    await chat.send(choice=CONFIRM)
    for stale in (old_change, old_back):
        replies = await chat.send(choice=stale)
        assert [r["text"] for r in replies] == [PASSED_LINE]
    user = await chat.user()
    assert user.setup_step == SetupStep.REFERENCE_PENDING and user.draft_age == 27


async def answer_until_rest(chat: Chat) -> None:
    for step in QUESTION_STEPS[2:]:
        await chat.send(ANSWERS[step])


# -- platforms ----------------------------------------------------------------------------------------------------


async def test_telegram_shows_the_summary_as_buttons(
    services: Services, platforms: dict[str, RecordingChannel]
) -> None:
    """On Telegram (8 buttons) the summary is one message with 7 buttons; pressing "Looks good" makes the photo."""
    telegram = platforms["telegram"]
    chat = await started(services, "tg1", channel="telegram")
    await answer_until(chat)
    sent = telegram.sent[-1]
    assert isinstance(sent.reply, ChoicesReply) and len(sent.parts) == 1
    (part,) = sent.parts
    assert isinstance(part, ButtonsPart) and [b.label for b in part.buttons] == SUMMARY_LABELS
    assert "• Personality: playful" in part.text
    questions = [s.reply.text for s in telegram.sent if isinstance(s.reply, ChoicesReply)]
    assert [t[:11] for t in questions if t.startswith("Step")] == [f"Step {n} of 6" for n in range(1, 7)]
    await chat.send(choice=CONFIRM)
    assert (await chat.user()).setup_step == SetupStep.REFERENCE_PENDING
    assert await Photo.filter(user_id=chat.user_id, kind="reference").count() == 1


async def test_whatsapp_shows_the_summary_as_a_list_and_a_small_platform_as_numbers(
    services: Services, platforms: dict[str, RecordingChannel]
) -> None:
    """WhatsApp (3 buttons) gets a list message with 7 rows; a platform without lists gets a numbered list, and
    typing "5" changes the age."""
    chat = await started(services, "wa1", channel="whatsapp")
    await answer_until(chat)
    (part,) = platforms["whatsapp"].sent[-1].parts
    assert isinstance(part, ListPart) and len(part.rows) == 7 and all(len(r.title) <= 24 for r in part.rows)

    small = await started(services, "sm1", channel="fake")
    await answer_until(small)
    (numbered,) = platforms["fake"].sent[-1].parts
    assert isinstance(numbered, TextPart) and "1. Looks good — take my photo" in numbered.text
    assert "3. Change age" in numbered.text
    await small.send("3")
    assert (await small.user()).setup_step == SetupStep.AGE


# -- help --------------------------------------------------------------------------------------------------------


async def test_help_on_the_web_does_not_offer_the_portal(services: Services) -> None:
    """/help in the web chat (already the portal) leaves out /portal; on Telegram it is offered."""
    web = await (Chat(services, "h1")).send("/help")
    assert "/avatar" in texts(web) and "/portal" not in texts(web)
    telegram = await Chat(services, "h2", channel="telegram").send("/help")
    assert "/portal" in texts(telegram)
    unknown = await Chat(services, "h3").send("/nope")
    assert "/portal" not in texts(unknown)


async def test_a_users_state_survives_the_summary(services: Services) -> None:
    """/start at the summary shows the summary again (the step is stored)."""
    chat = await started(services)
    await answer_until(chat)
    again = await chat.send("/start")
    assert labels(again[-1]) == SUMMARY_LABELS
    assert (await User.get(id=chat.user_id)).setup_step == SetupStep.SUMMARY


async def test_a_blocked_reference_asks_for_the_looks_again_and_returns_to_the_summary(services: Services) -> None:
    """A reference the prompt safety blocked: one bubble (step 4) asking for new looks; the new answer goes to the
    summary, and only confirming it makes a new avatar version and photo."""
    chat = await started(services)
    await answer_until(chat)
    await chat.send(choice=CONFIRM)
    blocked = await chat.photo_done("blocked")
    assert len(blocked) == 1 and blocked[0]["text"].startswith("Step 4 of 6 · I couldn't take that photo")
    assert (await chat.user()).setup_step == SetupStep.APPEARANCE
    summary = await chat.send("short silver hair, blue eyes")
    assert "• Looks: short silver hair, blue eyes" in summary[-1]["text"] and labels(summary[-1]) == SUMMARY_LABELS
    assert await Avatar.filter(user_id=chat.user_id).count() == 1
    await chat.send("looks good!")
    versions = await Avatar.filter(user_id=chat.user_id).order_by("id")
    assert len(versions) == 2 and versions[-1].appearance == "short silver hair, blue eyes"
    assert await Photo.filter(user_id=chat.user_id, kind="reference").count() == 2
