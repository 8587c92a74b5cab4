"""The conversation engine: onboarding (18+) -> avatar setup -> paywall -> chat turn, channel-agnostic.

`handle` runs with NO database transaction open (it may call the LLM): it reads what it needs, mutates the
user's state in memory and returns an `Outcome` whose `effects` (avatar versions, photo requests) the turn
runner commits together with the user, the replies and the inbound status in one short transaction.
`photo_event` runs inside the transaction that finishes a photo and does no network I/O.

Paid features go through the `Entitlements` port: a text for the model needs a subscription, then a unit of
today's messages (charged under the message's key, so a retried turn charges once); `/avatar` needs a
subscription and a unit of today's reference regenerations, as do a subscriber's regenerations in the setup
(the first reference of the initial setup is free, and unsubscribed users keep their free regenerations).

Every answer Ava gives opens a new question round (`User.question_round`); a pressed button carries its round
(`"<round>.<data>"`), so a press on a question that has passed (an old keyboard, a reloaded page, a button
offered before the conversation moved on) is answered with a short line and never reaches the setup flow or
the LLM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from core.chat import ChatTurn
from core.errors import UnsafeAnswer, ValidationFailed
from core.linking import find_code, link_token, parse_link, usable
from core.messages import Choice, ChoicesReply, InboundMessage, LinkReply, PhotoReady, Reply, TextReply
from core.models import Avatar, Mode, SetupStep, User
from core.outcome import Effect, Outcome
from core.persona import photo_blocked_line, photo_failed_line
from core.ports import (
    Entitlements,
    Links,
    LLMProvider,
    Moderation,
    PhotoEvent,
    PhotoRequests,
    QuotaVerdict,
    RateLimiter,
    TextSafety,
)
from core.quota import (
    message_key,
    messages_used_up_line,
    photos_used_up_line,
    regeneration_key,
    regenerations_used_up_line,
)
from core.safety import RULES_LAYER, Refusal, SafetyChecker, reason_code, record_refusal
from core.setup import (
    FREE_TEXT_STEPS,
    KEEP,
    MAX_REFUSALS,
    QUESTION_STEPS,
    REFUSED_ANSWER,
    AvatarSpec,
    clear_draft,
    draft_value,
    next_step,
    parse_answer,
    preset_value,
    question,
    set_draft_value,
)

logger = logging.getLogger(__name__)

ACCEPT = "onboard:accept"
DECLINE = "onboard:decline"
REF_KEEP = "ref:keep"
REF_AGAIN = "ref:again"
MODE_PREFIX = "mode:"
PASSED_LINE = "That choice has passed 🙂 Please answer my latest message instead."

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
    #: How long a sign-in link works (said when `/portal` sends one).
    sign_in_link_minutes: int = 15
    #: Photo requests a user may make per hour (the model's `send_photo` calls), on top of the photo quota.
    photo_requests_per_hour: int = 30


def stamp_choice(question_round: int, data: str) -> str:
    """The button data sent to the platform: the question's round, then the choice."""
    return f"{question_round}.{data}"


def open_choice(pressed: str, question_round: int) -> str | None:
    """The choice a press carries when it answers the open question round, else None (passed or foreign)."""
    round_text, dot, data = pressed.partition(".")
    if not dot or not round_text.isdigit() or int(round_text) != question_round or not data:
        return None
    return data


def stamp_outcome(user: User, outcome: Outcome) -> Outcome:
    """Every answer opens a new question round (whatever was asked before has passed); stamp its choices."""
    if not outcome.replies:
        return outcome
    user.question_round += 1
    outcome.replies = [
        replace(r, choices=tuple(Choice(c.label, stamp_choice(user.question_round, c.data)) for c in r.choices))
        if isinstance(r, ChoicesReply)
        else r
        for r in outcome.replies
    ]
    return outcome


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
        moderation: Moderation | None = None,
        config: EngineConfig | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        """`rate_limiter` bounds photo requests per user and hour (None: only the photo quota bounds them)."""
        self._photos = photos
        self._entitlements = entitlements
        self._links = links
        self._safety = safety
        self._checker = SafetyChecker(safety, moderation)
        self._config = config or EngineConfig()
        self._chat = ChatTurn(
            llm=llm,
            photos=photos,
            safety=self._checker,
            entitlements=entitlements,
            rate_limiter=rate_limiter,
            photo_requests_per_hour=self._config.photo_requests_per_hour,
        )

    async def handle(self, user: User, msg: InboundMessage, *, message_id: int) -> Outcome:
        """Answer one inbound message of `user` (the caller commits the outcome)."""
        if msg.choice is not None:
            choice = open_choice(msg.choice, user.question_round)
            if choice is None:
                logger.info("passed choice pressed by user %s", user.id)
                return Outcome([TextReply(PASSED_LINE)])
            msg = replace(msg, choice=choice)
        return stamp_outcome(user, await self._handle(user, msg, message_id))

    async def abandoned(self, message_id: int) -> None:
        """A message failed for good: give back the units its turn may have charged (it got no answer)."""
        for key in (message_key(message_id), regeneration_key(message_id)):
            await self._entitlements.refund(key)

    async def _handle(self, user: User, msg: InboundMessage, message_id: int) -> Outcome:
        text = (msg.text or "").strip()
        link = parse_link(text) if msg.choice is None else None
        if link is not None:
            return await self._link_reply(user, msg, link[0])
        if msg.choice is None and text.startswith("/"):
            command, _, argument = text[1:].partition(" ")
            return await self._command(user, command.split("@")[0].lower(), argument.strip())
        if user.adult_confirmed_at is None:
            return self._onboarding(user, msg.choice)
        if user.setup_step != SetupStep.DONE:
            return await self._setup(user, msg, message_id)
        if msg.choice is not None:
            if msg.choice.startswith(MODE_PREFIX):
                return self._set_mode(user, msg.choice.removeprefix(MODE_PREFIX))
            return Outcome([TextReply(PASSED_LINE)])  # a button of a finished setup: never text for the LLM
        if not await self._entitlements.may_chat(user.id):
            return Outcome([self._paywall(user)])
        # Charged before the model runs, under the message's key: a retried or recomputed turn charges once.
        verdict = await self._entitlements.charge(user.id, "message", message_key(message_id))
        if not verdict.allowed:
            if verdict.reason == "subscription":  # the subscription ended a moment ago
                return Outcome([self._paywall(user)])
            return Outcome([TextReply(messages_used_up_line(verdict))])
        avatar = await current_avatar(user)
        if avatar is None:  # defensive: DONE always has an approved avatar
            user.setup_step = SetupStep.GENDER
            return Outcome([question(SetupStep.GENDER)])
        return await self._chat.run(user, avatar, text, message_id=message_id, ref=msg.ref)

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
                url = self._links.sign_in_url(user.id)
                return Outcome(
                    [
                        LinkReply(
                            "Here's your sign-in link: it works once, for "
                            f"{self._config.sign_in_link_minutes} minutes.",
                            "Open portal",
                            url,
                        )
                    ]
                )
            case "subscribe":
                url = self._links.subscribe_url(user.id)
                return Outcome([LinkReply("Manage your subscription here.", "Subscribe", url)])
            case "photos":
                url = self._links.gallery_url(user.id)
                return Outcome([LinkReply("All my photos for you are in your gallery.", "Open gallery", url)])
            case "mode":
                if user.setup_step != SetupStep.DONE:
                    return Outcome([TextReply("Let's finish setting me up first."), await self._current_question(user)])
                if argument:
                    return self._set_mode(user, argument.lower())
                options = (
                    Choice("Secretary", MODE_PREFIX + Mode.SECRETARY),
                    Choice("Intimate", MODE_PREFIX + Mode.INTIMATE),
                )
                return Outcome([ChoicesReply(f"I'm in {user.mode} mode. Which mode do you want?", options)])
            case "avatar":
                return await self._start_edit(user)
            case "cancel":
                if user.editing_avatar and user.setup_step != SetupStep.DONE:
                    user.editing_avatar, user.setup_step = False, SetupStep.DONE
                    clear_draft(user)
                    return Outcome([TextReply("Okay, I'll stay just as I am 😊")])
                return Outcome([TextReply("Nothing to cancel.")])
        return Outcome([TextReply("I don't know that command. " + HELP)])

    async def _link_reply(self, user: User, msg: InboundMessage, code: str) -> Outcome:
        """Answer a link message: linked (the inbox moved this chat already), a question, or an invalid code."""
        row = await find_code(code)
        if row is not None and row.user_id == user.id and row.used_at is not None:
            avatar = await current_avatar(user)
            name = avatar.name if avatar else "Ava"
            replies: list[Reply] = [TextReply(f"Linked ✓ This chat now talks to your account: it's me, {name}.")]
            if user.adult_confirmed_at is None:
                replies += self._onboarding(user, None).replies
            elif user.setup_step != SetupStep.DONE:
                replies.append(await self._current_question(user))
            return Outcome(replies)
        if usable(row, msg.ref.channel) and row is not None and row.user_id != user.id:
            avatar = await current_avatar(user)
            name = avatar.name if avatar else "your Ava here"
            return Outcome(
                [
                    TextReply(
                        f"This chat already has its own Ava, {name}. To switch it to your web account's Ava, send: "
                        f"{link_token(code)} confirm — {name} and her chat history here will be deleted. "
                        "To keep them apart, just ignore this."
                    )
                ]
            )
        return Outcome(
            [TextReply("That link code isn't valid any more. Make a new one on your account page (/portal).")]
        )

    def _set_mode(self, user: User, value: str) -> Outcome:
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
            return Outcome([TextReply("Thank you! 💕"), question(SetupStep.GENDER)])
        if choice == DECLINE:
            return Outcome([TextReply("I understand. Ava is only for adults, so I can't chat with you. Take care!")])
        return Outcome(
            [
                ChoicesReply(
                    "Hi, I'm Ava, your AI companion ✨ Before we start: I'm only for adults. Please confirm that "
                    f"you are 18 or older and accept the terms ({self._config.terms_url}).",
                    (Choice("I'm 18+ and accept", ACCEPT), Choice("I'm not", DECLINE)),
                )
            ]
        )

    # -- setup ----------------------------------------------------------------------------------------------

    async def _current_question(self, user: User) -> Reply:
        step = SetupStep(user.setup_step)
        if step in QUESTION_STEPS:
            return self._question(user, step)
        if step == SetupStep.REFERENCE_PENDING:
            return TextReply("I'm still getting ready for my photo… it'll be here in a moment 📸")
        if step == SetupStep.REFERENCE_REVIEW:
            return self._review_choices(user, await self._entitled(user))
        return TextReply("I'm all set! Talk to me 💬")

    def _default(self, user: User, step: SetupStep) -> object:
        return draft_value(user, step) if user.editing_avatar else None

    def _question(self, user: User, step: SetupStep) -> Reply:
        """The question for `step`: its safe presets alone once answers were refused too often."""
        return question(step, current=self._default(user, step), choices_only=user.setup_refusals >= MAX_REFUSALS)

    def _refused(self, user: User, step: SetupStep, why: str) -> Outcome:
        """An answer was refused: say what to change and ask again (presets only after too many refusals)."""
        user.setup_refusals += 1
        return Outcome([TextReply(why), self._question(user, step)])

    async def _start_edit(self, user: User) -> Outcome:
        avatar = await current_avatar(user)
        if user.setup_step != SetupStep.DONE or avatar is None:
            return Outcome([TextReply("Let's finish setting me up first."), await self._current_question(user)])
        # A new look ends with a new reference photo, which costs money: subscribers only, within their daily cap.
        if not await self._entitled(user):
            return Outcome([self._paywall(user)])
        if await self._entitlements.remaining(user.id, "regeneration") == 0:
            renews_at = await self._entitlements.renews_at(user.id, "regeneration")
            return Outcome([TextReply(regenerations_used_up_line(QuotaVerdict(False, "quota", renews_at=renews_at)))])
        user.editing_avatar = True
        user.setup_step = SetupStep.GENDER
        clear_draft(user)
        for step in QUESTION_STEPS:
            set_draft_value(user, step, getattr(avatar, step.value))
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
        if step == SetupStep.REFERENCE_REVIEW:
            return await self._review(user, msg, message_id)
        return Outcome([await self._current_question(user)])

    async def _answer(self, user: User, step: SetupStep, msg: InboundMessage, message_id: int) -> Outcome:
        raw = msg.choice if msg.choice is not None else (msg.text or "")
        value: str | int | None
        if user.setup_refusals >= MAX_REFUSALS:  # presets only: anything else shows them again
            preset = preset_value(step, raw)
            if preset is None:
                return Outcome([self._question(user, step)])
            value = parse_answer(step, preset)
        elif raw == KEEP and user.editing_avatar and draft_value(user, step) is not None:
            value = draft_value(user, step)  # checked again, with every answer, before the avatar is made
        else:
            try:
                value = parse_answer(step, raw)
            except ValidationFailed as problem:
                return self._refused(user, step, problem.public_message)
            if step in FREE_TEXT_STEPS:
                refusal = await self._checker.check(step.value, str(value))
                if refusal is not None:
                    logger.info("setup answer refused for user %s: %s by %s", user.id, refusal.code, refusal.layer)
                    outcome = self._refused(user, step, REFUSED_ANSWER[step])
                    outcome.effects.append(audit(user.id, refusal, msg.ref.channel))
                    return outcome
        user.setup_refusals = 0
        set_draft_value(user, step, value)
        following = next_step(step)
        if following != SetupStep.REFERENCE_PENDING:
            user.setup_step = following
            return Outcome([self._question(user, following)])
        try:
            spec = AvatarSpec.from_user(user, self._safety)
        except UnsafeAnswer as unsafe:  # e.g. a kept value from an older avatar the rules now refuse
            bad = SetupStep(str(unsafe.step))
            user.setup_step = bad
            set_draft_value(user, bad, None)
            refusal = Refusal(bad.value, RULES_LAYER, reason_code(unsafe.reason), unsafe.reason, "")
            outcome = self._refused(user, bad, REFUSED_ANSWER.get(bad, unsafe.public_message))
            outcome.effects.append(audit(user.id, refusal, msg.ref.channel))
            return outcome
        if user.editing_avatar:  # an edit's new reference is charged like a regeneration (the first look is free)
            refused = await self._charge_regeneration(user, message_id)
            if refused is not None:
                user.editing_avatar, user.setup_step = False, SetupStep.DONE
                clear_draft(user)
                refused.replies.append(TextReply("I'll keep my current look for now 😊"))
                return refused
        outcome = self._reference_requested(user, f"Nice to meet you, I'm {spec.name}! 💕")

        async def create_avatar_and_request_reference() -> None:
            avatar = await Avatar.create(
                user=user,
                gender=spec.gender,
                age=spec.age,
                nationality=spec.nationality,
                appearance=spec.appearance,
                name=spec.name,
                personality=spec.personality,
            )
            user.setup_avatar_id = avatar.id
            outcome.photo_ids.append(await self._request_reference(user, avatar.id, message_id, msg))

        outcome.effects.append(create_avatar_and_request_reference)
        return outcome

    def _reference_requested(self, user: User, intro: str) -> Outcome:
        user.setup_step = SetupStep.REFERENCE_PENDING
        user.setup_photo_id = None
        return Outcome([TextReply(f"{intro} Give me a moment, I'm taking my photo so you can see me 📸")])

    async def _request_reference(self, user: User, avatar_id: int, message_id: int, msg: InboundMessage) -> int:
        return await self._photos.request_photo(
            user_id=user.id,
            avatar_id=avatar_id,
            kind="reference",
            scene=None,
            source_key=f"ref:{message_id}",
            ref=msg.ref,
        )

    def _again(self, user: User, message_id: int, msg: InboundMessage, intro: str) -> Outcome:
        avatar_id = user.setup_avatar_id
        if avatar_id is None:  # defensive: review always has an avatar being set up
            user.setup_step = SetupStep.GENDER
            return Outcome([question(SetupStep.GENDER)])
        outcome = self._reference_requested(user, intro)

        async def request_reference() -> None:
            outcome.photo_ids.append(await self._request_reference(user, avatar_id, message_id, msg))

        outcome.effects.append(request_reference)
        return outcome

    async def _entitled(self, user: User) -> bool:
        return await self._entitlements.may_chat(user.id)

    async def _charge_regeneration(self, user: User, message_id: int) -> Outcome | None:
        """Charge one regeneration for `message_id`; the refusal to answer when none is left today, else None."""
        verdict = await self._entitlements.charge(user.id, "regeneration", regeneration_key(message_id))
        if verdict.allowed:
            return None
        if verdict.reason == "subscription":
            return Outcome([self._paywall(user)])
        return Outcome([TextReply(regenerations_used_up_line(verdict))])

    def _review_choices(self, user: User, entitled: bool, *, regenerate: bool = True) -> ChoicesReply:
        if not regenerate:
            return ChoicesReply("Do you like how I look? You can keep me like this.", (Choice("Keep ✓", REF_KEEP),))
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
        answer = msg.choice or (msg.text or "").strip().lower()
        entitled = await self._entitled(user)
        if answer in (REF_KEEP, "keep", "yes") and user.setup_photo_id is not None:
            return await self._keep(user)
        if answer in (REF_AGAIN, "regenerate", "again", "no"):
            if user.setup_photo_id is None:  # the last attempt failed: retrying is free
                return self._again(user, message_id, msg, "Let's try again!")
            if entitled:  # subscribers' regenerations count against their plan's daily cap
                refused = await self._charge_regeneration(user, message_id)
                if refused is not None:
                    refused.replies.append(self._review_choices(user, entitled, regenerate=False))
                    return refused
                return self._again(user, message_id, msg, "Sure!")
            if user.editing_avatar:  # the subscription ended during an edit: the free ones are for the first setup
                return Outcome([self._paywall(user), self._review_choices(user, entitled, regenerate=False)])
            if user.reference_regenerations >= self._config.free_regenerations:
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
            return self._again(user, message_id, msg, "Sure!")
        return Outcome([self._review_choices(user, entitled)])

    async def _keep(self, user: User) -> Outcome:
        avatar_id, photo_id = user.setup_avatar_id, user.setup_photo_id
        avatar = await Avatar.get_or_none(id=avatar_id, user_id=user.id) if avatar_id is not None else None
        if avatar is None or photo_id is None:  # defensive: start the questions again
            user.setup_step = SetupStep.GENDER
            return Outcome([question(SetupStep.GENDER)])
        was_editing = user.editing_avatar
        user.setup_step, user.editing_avatar = SetupStep.DONE, False
        clear_draft(user)
        if was_editing:
            outcome = Outcome([TextReply(f"New look saved ✨ It's still me, {avatar.name}.")])
        else:
            outcome = Outcome(
                [
                    TextReply(
                        f"Perfect, that's me: {avatar.name} 💕 I'm in secretary mode; send /mode to switch to "
                        "intimate mode."
                    )
                ]
            )
            if not await self._entitled(user):
                outcome.replies.append(self._paywall(user))

        async def approve() -> None:
            await Avatar.filter(id=avatar.id).update(reference_photo_id=photo_id, approved_at=datetime.now(UTC))

        outcome.effects.append(approve)
        return outcome

    def _paywall(self, user: User) -> LinkReply:
        return LinkReply(
            "To chat with me you need a subscription. It only takes a minute:",
            "Subscribe",
            self._links.subscribe_url(user.id),
        )

    # -- photo events ---------------------------------------------------------------------------------------

    async def photo_event(self, user: User, event: PhotoEvent) -> Outcome:
        """Replies for a finished, failed or blocked photo; moves setup on for reference photos (no network)."""
        return stamp_outcome(user, await self._photo_event(user, event))

    async def _photo_event(self, user: User, event: PhotoEvent) -> Outcome:
        if event.kind != "reference":
            if event.reason == "quota":  # refused when its job started: no photo left this period
                return Outcome([TextReply(photos_used_up_line(event.limit, event.renews_at))])
            if event.reason == "subscription":
                return Outcome([self._paywall(user)])
            if event.status == "ready":
                url = self._links.photo_url(user.id, event.photo_id)
                return Outcome([PhotoReady(event.photo_id, url, "Just for you 😘", kind="photo")])
            line = photo_blocked_line() if event.status == "blocked" else photo_failed_line()
            return Outcome([TextReply(line)])
        if user.setup_step != SetupStep.REFERENCE_PENDING or user.setup_avatar_id != event.avatar_id:
            logger.info("stale reference photo %s ignored", event.photo_id)
            return Outcome()
        user.setup_step = SetupStep.REFERENCE_REVIEW
        if event.status == "ready":
            user.setup_photo_id = event.photo_id
            url = self._links.photo_url(user.id, event.photo_id)
            return Outcome(
                [
                    PhotoReady(event.photo_id, url, "Here I am! 📸", kind="reference"),
                    self._review_choices(user, await self._entitled(user)),
                ]
            )
        user.setup_photo_id = None
        if event.status == "blocked":  # refused when the prompt was built: it counts as a refused answer
            user.setup_step = SetupStep.APPEARANCE
            set_draft_value(user, SetupStep.APPEARANCE, None)
            user.setup_avatar_id = None
            return self._refused(
                user,
                SetupStep.APPEARANCE,
                "I couldn't take that photo: my description broke our safety rules. "
                + REFUSED_ANSWER[SetupStep.APPEARANCE],
            )
        return Outcome(
            [
                ChoicesReply(
                    "My camera failed this time 😕 Shall I try again? (This one is free.)",
                    (Choice("Try again ↻", REF_AGAIN),),
                )
            ]
        )


def audit(user_id: int, refusal: Refusal, channel: str | None) -> Effect:
    """An effect recording a safety refusal in the audit table, committed with the turn."""

    async def record() -> None:
        await record_refusal(user_id, refusal, channel=channel)

    return record


async def current_avatar(user: User) -> Avatar | None:
    """The user's latest approved avatar version (the one chat and photos use)."""
    return await Avatar.filter(user_id=user.id, approved_at__isnull=False).order_by("-approved_at", "-id").first()
