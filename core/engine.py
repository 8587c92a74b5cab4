"""The conversation engine: onboarding (18+) -> avatar setup -> paywall -> chat turn, channel-agnostic.

`handle` runs inside the turn runner's transaction with the user row locked; it mutates the user's state
in memory (the runner saves the user once, in the same transaction) and returns an `Outcome`
(replies, photos to dispatch after commit, what enters LLM history). `photo_event` works the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from core.chat import ChatTurn
from core.errors import ValidationFailed
from core.messages import Choice, ChoicesReply, InboundMessage, LinkReply, PhotoReady, Reply, TextReply
from core.models import Avatar, Mode, SetupStep, User
from core.outcome import Outcome
from core.persona import photo_blocked_line, photo_failed_line
from core.ports import Entitlements, Links, LLMProvider, PhotoRequests, TextSafety
from core.setup import KEEP, QUESTION_STEPS, AvatarSpec, next_step, parse_answer, question

logger = logging.getLogger(__name__)

ACCEPT = "onboard:accept"
DECLINE = "onboard:decline"
REF_KEEP = "ref:keep"
REF_AGAIN = "ref:again"
MODE_PREFIX = "mode:"

HELP = (
    "Here's what I understand:\n"
    "/avatar - change how I look (ends with a new photo)\n"
    "/mode - switch between secretary and intimate mode\n"
    "/portal - a sign-in link to your web portal\n"
    "/photos - your photo gallery\n"
    "/subscribe - subscription and billing\n"
    "/help - this list"
)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Tunables of the engine (from Settings)."""

    free_regenerations: int = 3
    terms_url: str = "/terms"


@dataclass(frozen=True, slots=True)
class PhotoEvent:
    """A photo finished (ready), failed, or was blocked by safety."""

    photo_id: int
    kind: str
    status: str
    avatar_id: int


class ConversationEngine:
    """Decides what Ava answers. Dependencies come in through ports (constructor arguments)."""

    def __init__(
        self,
        *,
        llm: LLMProvider,
        photos: PhotoRequests,
        entitlements: Entitlements,
        links: Links,
        safety: TextSafety,
        config: EngineConfig | None = None,
    ) -> None:
        self._photos = photos
        self._entitlements = entitlements
        self._links = links
        self._safety = safety
        self._config = config or EngineConfig()
        self._chat = ChatTurn(llm=llm, photos=photos)

    async def handle(self, user: User, msg: InboundMessage, *, message_id: int) -> Outcome:
        """Answer one inbound message of `user` (locked by the caller)."""
        text = (msg.text or "").strip()
        if msg.choice is None and text.startswith("/"):
            command, _, argument = text[1:].partition(" ")
            return await self._command(user, command.split("@")[0].lower(), argument.strip())
        if user.adult_confirmed_at is None:
            return self._onboarding(user, msg.choice)
        if user.setup_step != SetupStep.DONE:
            return await self._setup(user, msg, message_id)
        if msg.choice is not None and msg.choice.startswith(MODE_PREFIX):
            return await self._set_mode(user, msg.choice.removeprefix(MODE_PREFIX))
        if not await self._entitlements.may_chat(user.id):
            return Outcome([self._paywall(user)])
        avatar = await current_avatar(user)
        if avatar is None:  # defensive: DONE always has an approved avatar
            user.setup_step = SetupStep.GENDER
            return Outcome([question(SetupStep.GENDER)])
        return await self._chat.run(user, avatar, text or (msg.choice or ""), message_id=message_id)

    # -- commands -------------------------------------------------------------------------------------------

    async def _command(self, user: User, command: str, argument: str) -> Outcome:
        if command == "help":
            return Outcome([TextReply(HELP)])
        if user.adult_confirmed_at is None:
            return self._onboarding(user, None)
        match command:
            case "start":
                if user.setup_step == SetupStep.DONE:
                    avatar = await current_avatar(user)
                    name = avatar.name if avatar else "Ava"
                    return Outcome([TextReply(f"Hey, it's {name} 💕 I'm here. Type /help to see what I can do.")])
                return Outcome([await self._current_question(user)])
            case "portal":
                return Outcome(
                    [
                        LinkReply(
                            "Here's your sign-in link (valid 15 minutes).",
                            "Open portal",
                            self._links.sign_in_url(user.id),
                        )
                    ]
                )
            case "subscribe":
                return Outcome(
                    [LinkReply("Manage your subscription here.", "Subscribe", self._links.subscribe_url(user.id))]
                )
            case "photos":
                return Outcome(
                    [
                        LinkReply(
                            "All my photos for you are in your gallery.",
                            "Open gallery",
                            self._links.gallery_url(user.id),
                        )
                    ]
                )
            case "mode":
                if user.setup_step != SetupStep.DONE:
                    return Outcome([TextReply("Let's finish setting me up first."), await self._current_question(user)])
                if argument:
                    return await self._set_mode(user, argument.lower())
                return Outcome(
                    [
                        ChoicesReply(
                            f"I'm in {user.mode} mode. Which mode do you want?",
                            (
                                Choice("Secretary", MODE_PREFIX + Mode.SECRETARY),
                                Choice("Intimate", MODE_PREFIX + Mode.INTIMATE),
                            ),
                        )
                    ]
                )
            case "avatar":
                return await self._start_edit(user)
            case "cancel":
                if user.editing_avatar and user.setup_step != SetupStep.DONE:
                    user.editing_avatar, user.setup_step, user.setup_draft = False, SetupStep.DONE, {}
                    return Outcome([TextReply("Okay, I'll stay just as I am 😊")])
                return Outcome([TextReply("Nothing to cancel.")])
        return Outcome([TextReply("I don't know that command. " + HELP)])

    async def _set_mode(self, user: User, value: str) -> Outcome:
        if value not in (Mode.SECRETARY, Mode.INTIMATE):
            return Outcome([TextReply("Modes are: secretary, intimate.")])
        user.mode = Mode(value)
        if user.mode == Mode.INTIMATE:
            return Outcome([TextReply("Intimate mode 😘 It's just you and me now.")])
        return Outcome([TextReply("Secretary mode. How can I help you today?")])

    # -- onboarding -----------------------------------------------------------------------------------------

    def _onboarding(self, user: User, choice: str | None) -> Outcome:
        if choice == ACCEPT:
            now = datetime.now(UTC)
            user.adult_confirmed_at = now
            user.terms_accepted_at = now
            user.setup_step = SetupStep.GENDER
            return Outcome(
                [TextReply("Thank you! 💕"), question(SetupStep.GENDER)],
            )
        if choice == DECLINE:
            return Outcome([TextReply("I understand. Ava is only for adults, so I can't chat with you. Take care!")])
        return Outcome(
            [
                ChoicesReply(
                    "Hi, I'm Ava, your AI companion ✨ Before we start: I'm only for adults. Please confirm that "
                    "you are "
                    f"18 or older and accept the terms ({self._config.terms_url}).",
                    (Choice("I'm 18+ and accept", ACCEPT), Choice("I'm not", DECLINE)),
                )
            ]
        )

    # -- setup ----------------------------------------------------------------------------------------------

    async def _current_question(self, user: User) -> Reply:
        step = SetupStep(user.setup_step)
        if step in QUESTION_STEPS:
            return question(step, current=self._default(user, step))
        if step == SetupStep.REFERENCE_PENDING:
            return TextReply("I'm still getting ready for my photo… it'll be here in a moment 📸")
        if step == SetupStep.REFERENCE_REVIEW:
            return self._review_choices(user, await self._entitled(user))
        return TextReply("I'm all set! Talk to me 💬")

    def _default(self, user: User, step: SetupStep) -> object:
        if not user.editing_avatar:
            return None
        return (user.setup_draft or {}).get(step.value)

    async def _start_edit(self, user: User) -> Outcome:
        avatar = await current_avatar(user)
        if user.setup_step != SetupStep.DONE or avatar is None:
            return Outcome([TextReply("Let's finish setting me up first."), await self._current_question(user)])
        user.editing_avatar = True
        user.setup_step = SetupStep.GENDER
        user.setup_draft = {s.value: getattr(avatar, s.value) for s in QUESTION_STEPS}
        return Outcome(
            [
                TextReply("Let's give me a new look! Keep any answer with its button, or send /cancel to stop."),
                question(SetupStep.GENDER, current=avatar.gender),
            ]
        )

    async def _setup(self, user: User, msg: InboundMessage, message_id: int) -> Outcome:
        step = SetupStep(user.setup_step)
        if step in QUESTION_STEPS:
            return await self._answer(user, step, msg, message_id)
        if step == SetupStep.REFERENCE_PENDING:
            return Outcome([await self._current_question(user)])
        if step == SetupStep.REFERENCE_REVIEW:
            return await self._review(user, msg, message_id)
        return Outcome([await self._current_question(user)])

    async def _answer(self, user: User, step: SetupStep, msg: InboundMessage, message_id: int) -> Outcome:
        draft = dict(user.setup_draft or {})
        raw = msg.choice if msg.choice is not None else (msg.text or "")
        if raw == KEEP and step.value in draft and user.editing_avatar:
            value = draft[step.value]
        else:
            try:
                value = parse_answer(step, raw, self._safety)
            except ValidationFailed as problem:
                return Outcome([TextReply(problem.public_message), question(step, current=self._default(user, step))])
        draft[step.value] = value
        user.setup_draft = draft
        following = next_step(step)
        if following != SetupStep.REFERENCE_PENDING:
            user.setup_step = following
            return Outcome([question(following, current=self._default(user, following))])
        spec = AvatarSpec.from_draft(draft, self._safety)
        avatar = await Avatar.create(user=user, **{k: getattr(spec, k) for k in spec.__slots__})
        draft["avatar_id"] = avatar.id
        user.setup_draft = draft
        return await self._request_reference(
            user, avatar.id, message_id, intro=f"Nice to meet you, I'm {spec.name}! 💕"
        )

    async def _request_reference(self, user: User, avatar_id: int, message_id: int, *, intro: str) -> Outcome:
        photo_id = await self._photos.request_photo(
            user_id=user.id, avatar_id=avatar_id, kind="reference", scene=None, source_key=f"ref:{message_id}"
        )
        user.setup_step = SetupStep.REFERENCE_PENDING
        return Outcome(
            [TextReply(f"{intro} Give me a moment, I'm taking my first photo so you can see me 📸")],
            photo_ids=[photo_id],
        )

    async def _entitled(self, user: User) -> bool:
        return await self._entitlements.may_chat(user.id)

    def _review_choices(self, user: User, entitled: bool) -> ChoicesReply:
        if entitled:
            note = "Keep me like this, or I can take a new one."
        else:
            left = max(0, self._config.free_regenerations - user.reference_regenerations)
            note = (
                f"Keep me like this, or regenerate: {left} of {self._config.free_regenerations} free "
                "regenerations left before subscribing."
            )
        options = [Choice("Keep ✓", REF_KEEP)]
        if entitled or user.reference_regenerations < self._config.free_regenerations:
            options.append(Choice("Regenerate ↻", REF_AGAIN))
        return ChoicesReply(f"Do you like how I look? {note}", tuple(options))

    async def _review(self, user: User, msg: InboundMessage, message_id: int) -> Outcome:
        draft = dict(user.setup_draft or {})
        answer = msg.choice or (msg.text or "").strip().lower()
        entitled = await self._entitled(user)
        if answer in (REF_KEEP, "keep", "yes") and draft.get("photo_id"):
            return await self._keep(user, draft)
        if answer in (REF_AGAIN, "regenerate", "again", "no"):
            if not draft.get("photo_id"):  # the last attempt failed: retrying is free
                return await self._request_reference(
                    user, int(str(draft["avatar_id"])), message_id, intro="Let's try again!"
                )
            if not entitled and user.reference_regenerations >= self._config.free_regenerations:
                return Outcome(
                    [
                        TextReply(
                            f"That was the last of your {self._config.free_regenerations} free regenerations. "
                            "You can keep this photo, or subscribe to regenerate as often as you like."
                        ),
                        self._review_choices(user, entitled),
                        LinkReply(
                            "Subscribe for unlimited regenerations.", "Subscribe", self._links.subscribe_url(user.id)
                        ),
                    ]
                )
            user.reference_regenerations += 1
            draft.pop("photo_id", None)
            user.setup_draft = draft
            return await self._request_reference(user, int(str(draft["avatar_id"])), message_id, intro="Sure!")
        return Outcome([self._review_choices(user, entitled)])

    async def _keep(self, user: User, draft: dict[str, object]) -> Outcome:
        avatar = await Avatar.get(id=int(str(draft["avatar_id"])), user=user)
        avatar.reference_photo_id = int(str(draft["photo_id"]))
        avatar.approved_at = datetime.now(UTC)
        await avatar.save()
        was_editing = user.editing_avatar
        user.setup_step, user.setup_draft, user.editing_avatar = SetupStep.DONE, {}, False
        if was_editing:
            return Outcome([TextReply(f"New look saved ✨ It's still me, {avatar.name}.")])
        replies: list[Reply] = [
            TextReply(
                f"Perfect, that's me: {avatar.name} 💕 I'm in secretary mode; send /mode to switch to intimate mode."
            )
        ]
        if not await self._entitled(user):
            replies.append(self._paywall(user))
        return Outcome(replies)

    def _paywall(self, user: User) -> LinkReply:
        return LinkReply(
            "To chat with me you need a subscription. It only takes a minute:",
            "Subscribe",
            self._links.subscribe_url(user.id),
        )

    # -- photo events ---------------------------------------------------------------------------------------

    async def photo_event(self, user: User, event: PhotoEvent) -> Outcome:
        """Replies for a finished, failed or blocked photo; moves setup on for reference photos."""
        if event.kind != "reference":
            if event.status == "ready":
                url = self._links.photo_url(user.id, event.photo_id)
                return Outcome([PhotoReady(event.photo_id, url, "Just for you 😘", kind="photo")])
            line = photo_blocked_line() if event.status == "blocked" else photo_failed_line()
            return Outcome([TextReply(line)])
        draft = dict(user.setup_draft or {})
        if user.setup_step != SetupStep.REFERENCE_PENDING or draft.get("avatar_id") != event.avatar_id:
            logger.info("stale reference photo %s ignored", event.photo_id)
            return Outcome()
        user.setup_step = SetupStep.REFERENCE_REVIEW
        if event.status == "ready":
            draft["photo_id"] = event.photo_id
            user.setup_draft = draft
            url = self._links.photo_url(user.id, event.photo_id)
            return Outcome(
                [
                    PhotoReady(event.photo_id, url, "Here I am! 📸", kind="reference"),
                    self._review_choices(user, await self._entitled(user)),
                ]
            )
        if event.status == "blocked":
            user.setup_step = SetupStep.APPEARANCE
            user.setup_draft = {k: v for k, v in draft.items() if k not in ("appearance", "avatar_id", "photo_id")}
            return Outcome(
                [
                    TextReply(
                        "I couldn't take that photo: the description broke our safety rules. "
                        "Please describe how I look again."
                    ),
                    question(SetupStep.APPEARANCE),
                ]
            )
        draft.pop("photo_id", None)
        user.setup_draft = draft
        return Outcome(
            [
                ChoicesReply(
                    "My camera failed this time 😕 Shall I try again? (This one is free.)",
                    (Choice("Try again ↻", REF_AGAIN),),
                )
            ]
        )


async def current_avatar(user: User) -> Avatar | None:
    """The user's latest approved avatar version (the one chat and photos use)."""
    return await Avatar.filter(user=user, approved_at__isnull=False).order_by("-approved_at", "-id").first()
