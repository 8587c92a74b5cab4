"""The conversation engine: onboarding (18+) -> avatar setup -> paywall -> chat turn, channel-agnostic.

The avatar setup (questions, back, summary, reference review) is `core.setup_flow.SetupFlow`; the engine routes
a user there while their setup is not done, and answers commands, links, modes and chat turns itself.

`handle` runs with NO database transaction open (it may call the LLM): it reads what it needs, mutates the
user's state in memory and returns an `Outcome` whose `effects` (avatar versions, photo requests) the turn
runner commits together with the user, the replies and the inbound status in one short transaction.
`photo_event` runs inside the transaction that finishes a photo and does no network I/O.

Paid features go through the `Entitlements` port: a text for the model needs a subscription, then a unit of
today's messages (checked before the model runs, charged under the message's key in the turn's own commit, so a
turn charges once, and only when it is done); `/avatar` needs a
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

from core.chat import ChatTurn, latest_avatar
from core.errors import StateChanged
from core.linking import find_code, link_token, parse_link, usable
from core.messages import Choice, ChoicesReply, InboundMessage, LinkReply, PhotoReady, Reply, TextReply
from core.models import Avatar, Mode, SetupStep, User
from core.outcome import Outcome
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
from core.safety import SafetyChecker
from core.setup import ask, clear_draft, restart
from core.setup_flow import REF_AGAIN, REF_KEEP, SetupFlow, audit, paywall

__all__ = [
    "ACCEPT",
    "DECLINE",
    "HELP",
    "MODE_PREFIX",
    "PASSED_LINE",
    "REF_AGAIN",
    "REF_KEEP",
    "ConversationEngine",
    "EngineConfig",
    "audit",
    "current_avatar",
    "help_text",
    "open_choice",
    "stamp_choice",
    "stamp_outcome",
]

logger = logging.getLogger(__name__)

ACCEPT = "onboard:accept"
DECLINE = "onboard:decline"
MODE_PREFIX = "mode:"
PASSED_LINE = "That choice has passed 🙂 Please answer my latest message instead."
#: The web channel is the portal: it is not offered a sign-in link to itself.
WEB_CHANNEL = "web"

_HELP_LINES = (
    ("avatar", "/avatar - change how I look (ends with a new photo)"),
    ("mode", "/mode - switch between secretary and intimate mode"),
    ("portal", "/portal - a sign-in link to your web portal"),
    ("photos", "/photos - your photo gallery"),
    ("subscribe", "/subscribe - subscription and billing"),
    ("help", "/help - this list"),
)


def help_text(channel: str | None = None) -> str:
    """The commands Ava understands; on the web channel (already the portal) without `/portal`."""
    lines = [line for command, line in _HELP_LINES if not (command == "portal" and channel == WEB_CHANNEL)]
    return "Here's what I understand:\n" + "\n".join(lines)


HELP = help_text()


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
        self._entitlements = entitlements
        self._links = links
        self._checker = SafetyChecker(safety, moderation)
        self._config = config or EngineConfig()
        self._setup = SetupFlow(
            photos=photos,
            entitlements=entitlements,
            links=links,
            safety=safety,
            checker=self._checker,
            free_regenerations=self._config.free_regenerations,
        )
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
            return await self._command(user, command.split("@")[0].lower(), argument.strip(), msg.ref.channel)
        if user.adult_confirmed_at is None:
            return self._onboarding(user, msg.choice)
        if user.setup_step != SetupStep.DONE:
            return await self._setup.handle(user, msg, message_id)
        if msg.choice is not None:
            if msg.choice.startswith(MODE_PREFIX):
                return self._set_mode(user, msg.choice.removeprefix(MODE_PREFIX))
            return Outcome([TextReply(PASSED_LINE)])  # a button of a finished setup: never text for the LLM
        # Checked before the model runs (a refused turn never reaches it); the check also answers "may this user
        # chat" (refused for want of a subscription: the paywall), so the subscription is read once per turn. The
        # unit is charged under the message's key by the turn's own commit (an effect): consumed exactly when the
        # turn is done, never by a turn that fails; gone meanwhile -> the commit rolls back, the turn is recomputed.
        key = message_key(message_id)
        verdict = await self._entitlements.check(user.id, "message", key)
        if not verdict.allowed:
            if verdict.reason == "subscription":
                return Outcome([self._paywall(user)])
            return Outcome([TextReply(messages_used_up_line(verdict))])
        outcome = await self._chat.run(user, text, message_id=message_id, ref=msg.ref)
        if outcome is None:  # no approved avatar (defensive: DONE always has one)
            return Outcome([restart(user)])

        async def charge() -> None:
            if not await self._entitlements.charge_checked(user.id, "message", key, verdict):
                raise StateChanged(f"the message quota of user {user.id} was used up during the turn")

        if not outcome.effects:  # the charge alone: the turn may be committed in one statement
            outcome.effects_sql = self._entitlements.charge_expression(user.id, "message", key, verdict)
        outcome.effects.insert(0, charge)
        return outcome

    # -- commands -------------------------------------------------------------------------------------------

    async def _command(self, user: User, command: str, argument: str, channel: str) -> Outcome:
        if command == "help":
            return Outcome([TextReply(help_text(channel))])
        if user.adult_confirmed_at is None:
            return self._onboarding(user, None)
        match command:
            case "start":
                if user.setup_step == SetupStep.DONE:
                    avatar = await current_avatar(user)
                    name = avatar.name if avatar else "Ava"
                    return Outcome([TextReply(f"Hey, it's {name} 💕 I'm here. Type /help to see what I can do.")])
                return Outcome([await self._setup.current(user)])
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
                    return Outcome([TextReply("Let's finish setting me up first."), await self._setup.current(user)])
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
        return Outcome([TextReply("I don't know that command. " + help_text(channel))])

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
                replies.append(await self._setup.current(user))
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
            return Outcome([TextReply("Thank you! 💕"), ask(user, SetupStep.GENDER)])
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

    async def _start_edit(self, user: User) -> Outcome:
        avatar = await current_avatar(user)
        if user.setup_step != SetupStep.DONE or avatar is None:
            return Outcome([TextReply("Let's finish setting me up first."), await self._setup.current(user)])
        # A new look ends with a new reference photo, which costs money: subscribers only, within their daily cap.
        if not await self._entitlements.may_chat(user.id):
            return Outcome([self._paywall(user)])
        if await self._entitlements.remaining(user.id, "regeneration") == 0:
            renews_at = await self._entitlements.renews_at(user.id, "regeneration")
            return Outcome([TextReply(regenerations_used_up_line(QuotaVerdict(False, "quota", renews_at=renews_at)))])
        return self._setup.start_edit(user, avatar)

    def _paywall(self, user: User) -> LinkReply:
        return paywall(self._links, user.id)

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
        return await self._setup.reference_event(user, event)


async def current_avatar(user: User) -> Avatar | None:
    """The user's latest approved avatar version (the one chat and photos use)."""
    return await latest_avatar(user.id)
