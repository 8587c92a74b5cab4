"""Onboarding and the conversational avatar setup, through the real turn runner and database."""

from __future__ import annotations

from typing import Any

import pytest
from arq.connections import ArqRedis
from tortoise.transactions import in_transaction

from ava_bot.wiring import Services, build_services
from core.engine import ACCEPT, DECLINE, PASSED_LINE, REF_AGAIN, REF_KEEP
from core.messages import ChatRef, InboundMessage
from core.models import Avatar, Direction, Message, MessageStatus, SetupStep, User
from core.ports import PhotoEvent
from core.setup import CHANGE_PREFIX, CONFIRM
from imaging.models import Photo
from tests.fakes.entitlements import Gate
from tests.fakes.openai import FakeOpenAI
from tests.support import eventually, stamped_button

__all__ = ["Gate"]  # other tests import it from here


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def settings(make_settings: Any, fake_llm: FakeOpenAI) -> Any:
    return make_settings(llm_api_key="sk-test", llm_base_url=fake_llm.base_url, setup_free_regenerations=2)


@pytest.fixture
def services(db: str, redis: ArqRedis, settings: Any, gate: Gate) -> Services:
    return build_services(settings, redis, entitlements=gate)


class Chat:
    """Drives one web user through the real inbox + turn runner.

    Without a worker the test drains inline; with `worker=True` a running worker does it and `send` waits.
    A `choice` is pressed like a user would: the stamped button data of the latest question offering it.
    """

    def __init__(self, services: Services, chat_id: str = "42", *, worker: bool = False, channel: str = "web") -> None:
        self.services = services
        self.chat_id = chat_id
        self.channel = channel
        self.count = 0
        self.user_id = 0
        self.worker = worker

    async def send(self, text: str | None = None, choice: str | None = None) -> list[dict[str, Any]]:
        self.count += 1
        before = await self._last_id()
        pressed = await self.button(choice) if choice is not None else None
        msg = InboundMessage(ChatRef(self.channel, self.chat_id), f"{self.chat_id}:m{self.count}", text, pressed)
        stored = await self.services.inbox.receive(msg)
        self.user_id = stored.user_id
        if self.worker:
            await eventually(lambda: self._handled(stored.message_id), what=f"message {stored.message_id} handled")
        else:
            await self.services.runner.drain(stored.user_id, whole=True)
        return await self._since(before)

    async def button(self, data: str) -> str:
        """The data a press of the button `data` of the latest question sends (unstamped if none offers it)."""
        return await stamped_button(data, chat_id=self.chat_id) or data

    async def _handled(self, message_id: int) -> bool:
        row = await Message.get(id=message_id)
        if row.status == MessageStatus.PENDING:
            return False
        return not await Message.exists(
            direction=Direction.OUTBOUND, chat_id=self.chat_id, status=MessageStatus.PENDING
        )

    async def photo_done(self, status: str = "ready") -> list[dict[str, Any]]:
        """What the photo pipeline does when the pending reference finishes: its terminal transaction, then delivery."""
        photo = await Photo.filter(user_id=self.user_id).order_by("-id").first()
        assert photo is not None
        before = await self._last_id()
        event = PhotoEvent(
            user_id=self.user_id,
            photo_id=photo.id,
            kind=photo.kind.value,
            status=status,  # type: ignore[arg-type]
            avatar_id=photo.avatar_id,
            ref=ChatRef(self.channel, self.chat_id),
        )
        async with in_transaction():
            await self.services.runner.record_photo_event(event)
        await self.services.runner.drain(self.user_id, whole=True)
        return await self._since(before)

    async def user(self) -> User:
        return await User.get(id=self.user_id)

    async def _last_id(self) -> int:
        last = await Message.filter(direction=Direction.OUTBOUND).order_by("-id").first()
        return last.id if last else 0

    async def _since(self, after: int) -> list[dict[str, Any]]:
        rows = await Message.filter(direction=Direction.OUTBOUND, id__gt=after, chat_id=self.chat_id).order_by("id")
        return [r.payload for r in rows if r.payload is not None]


def texts(payloads: list[dict[str, Any]]) -> str:
    return " | ".join(p["text"] for p in payloads)


async def complete_questions(chat: Chat, *, age: str = "27") -> None:
    """Confirm 18+, answer every question and confirm the summary (the reference photo is then requested)."""
    await chat.send("/start")
    await chat.send(choice=ACCEPT)
    await complete_questions_after_accept(chat, age=age)


async def test_nothing_works_before_the_adult_confirmation(services: Services) -> None:
    """Before confirming 18+, every message gets the confirmation request; nothing else happens."""
    chat = Chat(services)
    for text in ("hello", "/mode", "woman"):
        replies = await chat.send(text)
        assert replies[-1]["type"] == "choices" and "18 or older" in replies[-1]["text"]
    user = await chat.user()
    assert user.adult_confirmed_at is None and user.setup_step == SetupStep.ONBOARDING
    await chat.send(choice=ACCEPT)
    user = await chat.user()
    assert user.adult_confirmed_at is not None and user.terms_accepted_at is not None
    assert user.setup_step == SetupStep.GENDER


async def test_age_below_20_and_non_numbers_are_re_asked(services: Services) -> None:
    """Age 19, 'nineteen', 'abc' and '-25' are refused with a clear re-ask in one bubble; 20 is accepted."""
    for index, bad_answers in enumerate((("19", "nineteen"), ("abc", "-25"))):
        chat = Chat(services, chat_id=f"age-{index}")
        await chat.send("/start")
        await chat.send(choice=ACCEPT)
        await chat.send(choice="woman")
        for bad in bad_answers:  # two at most: the third refusal would leave adult presets only
            replies = await chat.send(bad)
            expected = "at least 20" if bad in ("19", "nineteen") else "whole number"
            assert len(replies) == 1 and expected in texts(replies) and "How old should I be?" in texts(replies)
            assert (await chat.user()).setup_step == SetupStep.AGE
        await chat.send("20")
        user = await chat.user()
        assert user.setup_step == SetupStep.NATIONALITY and user.draft_age == 20


async def test_unsafe_appearance_is_refused(services: Services) -> None:
    """An appearance suggesting a minor is refused at setup and asked again."""
    chat = Chat(services)
    await chat.send("/start")
    await chat.send(choice=ACCEPT)
    for answer in ("woman", "25", "French"):
        await chat.send(answer)
    replies = await chat.send("looks like a schoolgirl")
    assert "always a grown adult" in texts(replies)
    assert (await chat.user()).setup_step == SetupStep.APPEARANCE


async def test_setup_requests_reference_then_regenerate_cap_then_keep(services: Services, gate: Gate) -> None:
    """After the questions a reference is requested; regenerations are capped before subscribing; keep approves."""
    chat = Chat(services)
    await complete_questions(chat)
    user = await chat.user()
    assert user.setup_step == SetupStep.REFERENCE_PENDING
    avatar = await Avatar.get(user_id=user.id)
    assert (avatar.age, avatar.name, avatar.approved_at) == (27, "Mia", None)
    assert await Photo.filter(user_id=user.id, kind="reference").count() == 1

    shown = await chat.photo_done()
    assert shown[0]["type"] == "photo" and shown[0]["kind"] == "reference" and "/photos/" in shown[0]["url"]
    assert "2 of 2 free regenerations left" in shown[1]["text"]
    for left in (1, 0):
        await chat.send(choice=REF_AGAIN)
        shown = await chat.photo_done()
        assert f"{left} of 2 free regenerations left" in shown[1]["text"]
    capped = await chat.send("again")  # the Regenerate button is gone; typing still asks
    assert "last of your 2 free regenerations" in texts(capped)
    assert any(p["type"] == "link" and p["url"].endswith("/subscribe") for p in capped)
    assert await Photo.filter(user_id=user.id, kind="reference").count() == 3

    kept = await chat.send(choice=REF_KEEP)
    avatar = await Avatar.get(user_id=user.id)
    last_photo = await Photo.filter(user_id=user.id).order_by("-id").first()
    assert avatar.approved_at is not None and last_photo is not None and avatar.reference_photo_id == last_photo.id
    assert (await chat.user()).setup_step == SetupStep.DONE
    assert kept[-1]["type"] == "link" and "subscription" in kept[-1]["text"]  # the paywall line

    paywalled = await chat.send("hi Mia")
    assert paywalled[-1]["type"] == "link"
    gate.open = True
    answered = await chat.send("hi Mia")
    assert answered[-1]["text"] == "echo: hi Mia"


async def test_restart_mid_setup_resumes_at_the_same_step(settings: Any, redis: ArqRedis, gate: Gate, db: str) -> None:
    """A new process (new services) continues the setup where the stored step says."""
    chat = Chat(build_services(settings, redis, entitlements=gate))
    await chat.send("/start")
    await chat.send(choice=ACCEPT)
    await chat.send("woman")
    await chat.send("31")
    chat.services = build_services(settings, redis, entitlements=gate)  # "restart"
    resumed = await chat.send("/start")
    assert "nationality" in texts(resumed)
    await chat.send("Korean")
    user = await chat.user()
    assert user.setup_step == SetupStep.APPEARANCE
    assert (user.draft_gender, user.draft_age, user.draft_nationality) == ("woman", 31, "Korean")
    assert user.draft_appearance is None


async def test_avatar_edit_offers_current_values_and_ends_with_new_reference(services: Services, gate: Gate) -> None:
    """/avatar shows the current look as a summary; a changed answer makes a new avatar version and reference."""
    gate.open = True
    chat = Chat(services)
    await complete_questions(chat)
    await chat.photo_done()
    await chat.send(choice=REF_KEEP)
    first = await Avatar.get(user_id=chat.user_id)

    started = await chat.send("/avatar")
    assert "new look" in started[-1]["text"] and "• Looks: long dark hair, green eyes, freckles" in started[-1]["text"]
    assert (await chat.user()).setup_step == SetupStep.SUMMARY
    asked = await chat.send(choice=CHANGE_PREFIX + "appearance")
    assert asked[-1]["choices"][0]["label"] == "Keep: long dark hair, green eyes, freckles"
    assert asked[-1]["choices"][0]["data"].endswith(".keep")
    back_at_summary = await chat.send("short silver hair, blue eyes")
    assert "• Looks: short silver hair, blue eyes" in back_at_summary[-1]["text"]
    await chat.send(choice=CONFIRM)
    assert (await chat.user()).setup_step == SetupStep.REFERENCE_PENDING
    await chat.photo_done()
    await chat.send(choice=REF_KEEP)
    versions = await Avatar.filter(user_id=chat.user_id).order_by("id")
    assert len(versions) == 2
    newest = versions[-1]
    assert newest.appearance == "short silver hair, blue eyes" and newest.name == first.name == "Mia"
    assert newest.reference_photo_id != first.reference_photo_id


async def test_mode_switch_and_commands(services: Services, gate: Gate) -> None:
    """/mode switches modes; /portal, /subscribe and /photos answer with links."""
    gate.open = True
    chat = Chat(services)
    await complete_questions(chat)
    await chat.photo_done()
    await chat.send(choice=REF_KEEP)
    offered = await chat.send("/mode")
    assert [c["data"].partition(".")[2] for c in offered[-1]["choices"]] == ["mode:secretary", "mode:intimate"]
    await chat.send(choice="mode:intimate")
    assert (await chat.user()).mode == "intimate"
    for command, fragment in (("/portal", "/portal/sign-in/"), ("/subscribe", "/subscribe"), ("/photos", "/gallery")):
        reply = (await chat.send(command))[-1]
        assert reply["type"] == "link" and fragment in reply["url"]


async def test_a_passed_choice_is_refused_and_never_reaches_the_llm(
    services: Services, gate: Gate, fake_llm: FakeOpenAI
) -> None:
    """Old buttons (an old keyboard, a reloaded page) get "that choice has passed" and no LLM call."""
    gate.open = True
    chat = Chat(services)
    await chat.send("/start")
    old_decline = await chat.button(DECLINE)  # the 18+ question's buttons, round 1
    await chat.send(choice=ACCEPT)
    await complete_questions_after_accept(chat)
    await chat.photo_done()
    old_again = await chat.button(REF_AGAIN)
    await chat.send(choice=REF_KEEP)
    assert (await chat.user()).setup_step == SetupStep.DONE
    for stale in (old_decline, old_again, "onboard:decline", "ref:again", "999.ref:again", "garbage"):
        before = await chat._last_id()
        msg = InboundMessage(ChatRef("web", chat.chat_id), f"stale-{stale}", None, stale)
        await services.inbox.receive(msg)
        await services.runner.drain(chat.user_id, whole=True)
        replies = await chat._since(before)
        assert [r["text"] for r in replies] == [PASSED_LINE], stale
    assert fake_llm.completions() == []
    user = await chat.user()
    assert user.setup_step == SetupStep.DONE and user.adult_confirmed_at is not None
    assert await Photo.filter(user_id=chat.user_id).count() == 1  # no regeneration happened


async def test_the_current_round_is_accepted_and_a_new_question_closes_the_old_one(services: Services) -> None:
    """A press of the open question works; once the next question is asked, the old buttons have passed."""
    chat = Chat(services)
    await chat.send("/start")
    await chat.send(choice=ACCEPT)
    gender_woman = await chat.button("woman")
    await chat.send(text=None, choice="woman")
    assert (await chat.user()).setup_step == SetupStep.AGE
    before = await chat._last_id()
    await services.inbox.receive(InboundMessage(ChatRef("web", chat.chat_id), "again-woman", None, gender_woman))
    await services.runner.drain(chat.user_id, whole=True)
    assert [r["text"] for r in await chat._since(before)] == [PASSED_LINE]
    assert (await chat.user()).setup_step == SetupStep.AGE and (await chat.user()).draft_gender == "woman"


async def complete_questions_after_accept(chat: Chat, *, age: str = "27") -> None:
    """Answer every question, then confirm the summary."""
    for answer in ("woman", age, "Italian", "long dark hair, green eyes, freckles", "Mia", "playful"):
        await chat.send(answer)
    await chat.send(choice=CONFIRM)
