"""The avatar-setup conversation: answers, "back", the summary, then the reference photo (`core.setup_review`).

`SetupFlow` is the part of `core.engine.ConversationEngine` that runs while `User.setup_step` is not DONE; like
the engine it mutates the user in memory and returns an `Outcome` whose effects the turn runner commits. The
questions and their texts are `core.setup`; reading typed answers is `core.answers`.

The flow bends instead of breaking: an answer that cannot be used gets ONE bubble that says why and asks again
(same choices); "back" (typed or "← Back") returns to the previous question with its answer as the default;
after the last question a summary lists every answer with "Looks good — take my photo" and "Change …"; a
changed answer comes back to the summary. Only confirming the summary creates the avatar and requests its
reference photo, after every answer is checked again (shape and safety rules). Every free-text answer is
checked on its own by both safety layers where it enters; the age floor (20) holds for every spelling.
"""

from __future__ import annotations

import logging
import re

from core.errors import UnsafeAnswer, ValidationFailed
from core.messages import InboundMessage, Reply, TextReply
from core.models import Avatar, SetupStep, User
from core.outcome import Effect, Outcome
from core.ports import Entitlements, Links, PhotoEvent, PhotoRequests, TextSafety
from core.safety import RULES_LAYER, Refusal, SafetyChecker, reason_code, record_refusal
from core.setup import (
    BACK,
    CHANGE_PREFIX,
    CONFIRM,
    CONFIRM_LABEL,
    FIELD_LABELS,
    FREE_TEXT_STEPS,
    KEEP,
    MAX_REFUSALS,
    QUESTION_STEPS,
    REFUSED_ANSWER,
    AvatarSpec,
    ask,
    clear_draft,
    draft_complete,
    draft_value,
    first_unusable,
    parse_answer,
    preset_value,
    refused,
    set_draft_value,
    summary,
)
from core.setup_review import REF_AGAIN, REF_KEEP, ReferenceReview, paywall

__all__ = ["REF_AGAIN", "REF_KEEP", "SetupFlow", "audit", "change_target", "is_back", "paywall"]

logger = logging.getLogger(__name__)
FIRST_QUESTION_LINE = "This is the first question."
SUMMARY_HINT = "Tell me what to change, or say \"looks good\" and I'll take my photo. Here's me so far:"
EDIT_INTRO = (
    "Let's give me a new look! Change whatever you like, then I'll take a new photo (or send /cancel to stay as "
    "I am). Here's me now:"
)

_BACK_WORDS = frozenset({"back", "go back", "← back", "<- back", "previous", "previous question"})
_CONFIRM_WORDS = frozenset(
    {"yes", "y", "yep", "yeah", "ok", "okay", "sure", "good", "looks good", "perfect", "confirm", "done", "go"}
    | {"go ahead", "take my photo", "take the photo", "take a photo", "👍", CONFIRM_LABEL.casefold()}
)
_FIELD_WORDS: dict[str, SetupStep] = {
    **{label: step for step, label in FIELD_LABELS.items()},
    **{step.value: step for step in QUESTION_STEPS},
    "look": SetupStep.APPEARANCE,
    "ethnicity": SetupStep.NATIONALITY,
}
_CHANGE = re.compile(r"(?:change|edit|fix)?\s*(?:my|the|her|his|their)?\s*([a-z-]+)")


def _words(raw: str) -> str:
    """A typed reply folded for matching a few fixed words ("Looks good!" -> "looks good")."""
    return re.sub(r"\s+", " ", raw.casefold()).strip().rstrip(".!?").strip()


def is_back(raw: str) -> bool:
    """Whether `raw` (a choice or typed text) asks for the previous question."""
    return raw == BACK or _words(raw) in _BACK_WORDS


def change_target(raw: str) -> SetupStep | None:
    """The question a summary reply wants to change ("change:age", "change my age", "age"), if any."""
    if raw.startswith(CHANGE_PREFIX):
        wanted = raw.removeprefix(CHANGE_PREFIX)
        return next((step for step in QUESTION_STEPS if step.value == wanted), None)
    typed = _CHANGE.fullmatch(_words(raw))
    return _FIELD_WORDS.get(typed.group(1)) if typed else None


def audit(user_id: int, refusal: Refusal, channel: str | None) -> Effect:
    """An effect recording a safety refusal in the audit table, committed with the turn."""

    async def record() -> None:
        await record_refusal(user_id, refusal, channel=channel)

    return record


class SetupFlow:
    """Runs the setup questions and the summary of one user's turn, then the reference review (`ReferenceReview`)."""

    def __init__(
        self,
        *,
        photos: PhotoRequests,
        entitlements: Entitlements,
        links: Links,
        safety: TextSafety,
        checker: SafetyChecker,
        free_regenerations: int,
    ) -> None:
        self._safety = safety
        self._checker = checker
        self._review = ReferenceReview(
            photos=photos, entitlements=entitlements, links=links, free_regenerations=free_regenerations
        )

    async def current(self, user: User) -> Reply:
        """What the user is being asked now (after /start, a link, or a command that needs setup finished)."""
        step = SetupStep(user.setup_step)
        if step in QUESTION_STEPS:
            return ask(user, step)
        if step == SetupStep.SUMMARY:
            return summary(user)
        if step == SetupStep.REFERENCE_PENDING:
            return TextReply("I'm still getting ready for my photo… it'll be here in a moment 📸")
        if step == SetupStep.REFERENCE_REVIEW:
            return self._review.choices(user, await self._review.entitled(user))
        return TextReply("I'm all set! Talk to me 💬")

    def start_edit(self, user: User, avatar: Avatar) -> Outcome:
        """`/avatar`: the summary of the current look, every answer changeable, ending with a new reference."""
        user.editing_avatar = True
        clear_draft(user)
        for step in QUESTION_STEPS:
            set_draft_value(user, step, getattr(avatar, step.value))
        user.setup_step = SetupStep.SUMMARY
        return Outcome([summary(user, intro=EDIT_INTRO)])

    # -- answers --------------------------------------------------------------------------------------------

    async def handle(self, user: User, msg: InboundMessage, message_id: int) -> Outcome:
        """Answer a message of a user who is setting up their avatar."""
        step = SetupStep(user.setup_step)
        if step in QUESTION_STEPS:
            return await self._answer(user, step, msg)
        if step == SetupStep.SUMMARY:
            return await self._at_summary(user, msg, message_id)
        if step == SetupStep.REFERENCE_REVIEW:
            return await self._review.review(user, msg, message_id)
        return Outcome([await self.current(user)])

    async def _answer(self, user: User, step: SetupStep, msg: InboundMessage) -> Outcome:
        raw = msg.choice if msg.choice is not None else (msg.text or "")
        if is_back(raw):
            return Outcome([self._back(user, step)])
        value: str | int | None
        if user.setup_refusals >= MAX_REFUSALS:  # presets only: anything else shows them again
            preset = preset_value(step, raw)
            if preset is None:
                return Outcome([ask(user, step)])
            value = parse_answer(step, preset)
        elif _words(raw) == KEEP and draft_value(user, step) is not None:
            value = draft_value(user, step)  # checked again, with every answer, before the avatar is made
        else:
            try:
                value = parse_answer(step, raw)
            except ValidationFailed as problem:
                return refused(user, step, problem.public_message)
            if step in FREE_TEXT_STEPS:
                refusal = await self._checker.check(step.value, str(value))
                if refusal is not None:
                    logger.info("setup answer refused for user %s: %s by %s", user.id, refusal.code, refusal.layer)
                    outcome = refused(user, step, REFUSED_ANSWER[step])
                    outcome.effects.append(audit(user.id, refusal, msg.ref.channel))
                    return outcome
        user.setup_refusals = 0
        set_draft_value(user, step, value)
        return Outcome([self._after(user, step)])

    def _after(self, user: User, step: SetupStep) -> Reply:
        """The next question after `step`, or the summary once every question has an answer."""
        if draft_complete(user):
            user.setup_step = SetupStep.SUMMARY
            return summary(user)
        index = QUESTION_STEPS.index(step)
        later = QUESTION_STEPS[index + 1 :] or tuple(s for s in QUESTION_STEPS if draft_value(user, s) is None)
        user.setup_step = later[0]
        return ask(user, later[0])

    def _back(self, user: User, step: SetupStep) -> Reply:
        """The question before `step` (or the summary, when `step` was reached from it)."""
        if draft_complete(user):
            user.setup_step = SetupStep.SUMMARY
            return summary(user)
        index = QUESTION_STEPS.index(step)
        if index == 0:
            return ask(user, step, problem=FIRST_QUESTION_LINE)
        user.setup_step = QUESTION_STEPS[index - 1]
        return ask(user, QUESTION_STEPS[index - 1])

    # -- summary --------------------------------------------------------------------------------------------

    async def _at_summary(self, user: User, msg: InboundMessage, message_id: int) -> Outcome:
        raw = msg.choice if msg.choice is not None else (msg.text or "")
        if raw == CONFIRM or _words(raw) in _CONFIRM_WORDS:
            return await self._confirm(user, msg, message_id)
        target = change_target(raw)
        if target is None and is_back(raw):
            target = QUESTION_STEPS[-1]
        if target is not None:
            user.setup_step = target
            return Outcome([ask(user, target)])
        return Outcome([summary(user, intro=SUMMARY_HINT)])

    async def _confirm(self, user: User, msg: InboundMessage, message_id: int) -> Outcome:
        """The summary is confirmed: check every answer again, create the avatar and request its reference."""
        unusable = first_unusable(user)
        if unusable is not None:  # e.g. an edit's value from an older avatar the rules now refuse
            step, why = unusable
            set_draft_value(user, step, None)
            user.setup_step = step
            return Outcome([ask(user, step, problem=why)])
        try:
            spec = AvatarSpec.from_user(user, self._safety)
        except UnsafeAnswer as unsafe:
            bad = SetupStep(str(unsafe.step))
            user.setup_step = bad
            set_draft_value(user, bad, None)
            refusal = Refusal(bad.value, RULES_LAYER, reason_code(unsafe.reason), unsafe.reason, "")
            outcome = refused(user, bad, REFUSED_ANSWER.get(bad, unsafe.public_message))
            outcome.effects.append(audit(user.id, refusal, msg.ref.channel))
            return outcome
        if user.editing_avatar:  # an edit's new reference is charged like a regeneration (the first look is free)
            declined = await self._review.charge_regeneration(user, message_id)
            if declined is not None:
                user.editing_avatar, user.setup_step = False, SetupStep.DONE
                clear_draft(user)
                declined.replies.append(TextReply("I'll keep my current look for now 😊"))
                return declined
        outcome = self._review.requested(user, f"Nice to meet you, I'm {spec.name}! 💕")

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
            outcome.photo_ids.append(await self._review.request(user, avatar.id, message_id, msg))

        outcome.effects.append(create_avatar_and_request_reference)
        return outcome

    async def reference_event(self, user: User, event: PhotoEvent) -> Outcome:
        """A reference photo finished, failed or was blocked (inside the photo's transaction, no network)."""
        return await self._review.photo_event(user, event)
