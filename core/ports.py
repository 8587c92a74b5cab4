"""Ports: what the core needs from the outside world, as Protocols. `ava_bot` wires implementations in.

Fakes in tests need no base class; `runtime_checkable` lets the composition root assert conformance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from core.messages import ChatRef, Reply

PhotoKind = Literal["reference", "photo"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One entry of an LLM conversation. Only plain roles: stored history never holds tool calls."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call (JSON-schema parameters)."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model made, arguments already parsed from JSON."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class LLMResult:
    """The model's answer: text, tool calls, or both."""

    text: str | None
    tool_calls: tuple[ToolCall, ...] = field(default_factory=tuple)


@runtime_checkable
class LLMProvider(Protocol):
    """A chat-completion model."""

    name: str

    async def complete(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = ()) -> LLMResult:
        """Answer the conversation; raise `core.errors.LLMUnavailable` on provider errors and timeouts."""
        ...


PhotoStatusName = Literal["ready", "failed", "blocked"]


@dataclass(frozen=True, slots=True)
class PhotoEvent:
    """A photo reached its end: ready, failed after every retry, or blocked by safety."""

    user_id: int
    photo_id: int
    kind: PhotoKind
    status: PhotoStatusName
    avatar_id: int
    #: The chat the request came from (None: unknown, use the user's last active chat).
    ref: ChatRef | None = None
    #: Why a photo was refused before generation: its user's photo quota was used up ("quota"), or they have no
    #: subscription any more ("subscription"); None otherwise.
    reason: Literal["quota", "subscription"] | None = None
    #: For a quota refusal: the quota's size and when it renews.
    limit: int | None = None
    renews_at: datetime | None = None


@runtime_checkable
class PhotoRequests(Protocol):
    """Creates photo generation requests (the imaging pipeline implements it)."""

    async def request_photo(
        self, *, user_id: int, avatar_id: int, kind: PhotoKind, scene: str | None, source_key: str, ref: ChatRef
    ) -> int:
        """Record a queued photo (idempotent on `source_key`) inside the caller's transaction; return its id.

        `ref` is the chat the request came from: the ready / failed notice goes there.
        """
        ...

    async def dispatch(self, photo_id: int) -> None:
        """Start generating a recorded photo (called after the transaction committed)."""
        ...


#: What a quota counts: photos per billing period, reference regenerations per day, messages per day.
QuotaKind = Literal["photo", "regeneration", "message"]


@dataclass(frozen=True, slots=True)
class QuotaVerdict:
    """The answer to charging one unit of a quota."""

    allowed: bool
    #: Why it was refused: no entitlement ("subscription"), the quota is used up ("quota"), too many requests
    #: in a short time ("rate"); None when allowed.
    reason: Literal["subscription", "quota", "rate"] | None = None
    #: The quota's size in its period (None: unknown or unlimited).
    limit: int | None = None
    #: When the quota starts again (the next billing period, or the next UTC midnight).
    renews_at: datetime | None = None
    #: The quota period a unit allowed by `Entitlements.check` is charged to (opaque to the core).
    period: str | None = None


@runtime_checkable
class Entitlements(Protocol):
    """Whether a user has a paid entitlement now, and their quotas (billing implements it)."""

    async def may_chat(self, user_id: int) -> bool:
        """True when the user may chat (and get photos) now."""
        ...

    async def charge(self, user_id: int, kind: QuotaKind, key: str) -> QuotaVerdict:
        """Consume one unit of `kind` under `key`, atomically (concurrent charges never overspend).

        Idempotent: charging a key again consumes nothing more and answers allowed.
        """
        ...

    async def check(self, user_id: int, kind: QuotaKind, key: str) -> QuotaVerdict:
        """Whether one unit of `kind` may be charged under `key` now (a key charged already: allowed), consuming
        nothing. The unit is then charged by `charge_checked` in the transaction that commits what it pays for."""
        ...

    async def charge_checked(self, user_id: int, kind: QuotaKind, key: str, verdict: QuotaVerdict) -> bool:
        """Consume the unit an allowing `check` answered with `verdict`, INSIDE the caller's open transaction (no
        transaction or savepoint of its own: one or two statements). False when the unit is gone meanwhile: the
        caller then rolls back. Idempotent on `key`: a key charged already consumes nothing more."""
        ...

    def charge_expression(
        self, user_id: int, kind: QuotaKind, key: str, verdict: QuotaVerdict
    ) -> tuple[str, list[Any]] | None:
        """`charge_checked` as an SQL boolean expression with its values (placeholders `$1`...), for a caller that
        commits in ONE statement: true when the unit was taken (when false, the caller must roll its statement
        back). None when it cannot be one statement: the caller uses `charge_checked` in a transaction."""
        ...

    async def refund(self, key: str) -> bool:
        """Give back the unit charged under `key`, once; False when there was none to give back."""
        ...

    async def remaining(self, user_id: int, kind: QuotaKind) -> int | None:
        """Units of `kind` left in the current period (0 when not entitled); None when unlimited."""
        ...

    async def renews_at(self, user_id: int, kind: QuotaKind) -> datetime | None:
        """When the current period of `kind` ends for the user (None: unknown or not entitled)."""
        ...


#: What a channel may show while Ava works: typing (a turn waits for the LLM), a photo being made, or a photo
#: attempt that failed and will be tried again (`photo_retry`: the web chat says "still trying…"; chat platforms
#: have no such indicator and show nothing for it).
ActivityKind = Literal["typing", "upload_photo", "photo_retry"]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})  # noqa: S104 - a host name, not a bind


@dataclass(frozen=True, slots=True)
class ChannelCapabilities:
    """What a platform can show in one message; the core renderer (`core.render`) shapes replies from it alone.

    Counts are per message; lengths are in characters. `0` buttons / list rows means the platform has none.
    """

    #: Longest plain text message.
    max_text_chars: int
    #: Longest text that accompanies buttons, a list or a URL button (WhatsApp's interactive body: 1024).
    max_body_chars: int
    #: Reply buttons per message (0: no buttons; choices become a numbered list in the text).
    max_buttons: int = 0
    #: Longest button label.
    max_button_label_chars: int = 64
    #: Rows of a list message (0: no list messages).
    list_rows: int = 0
    #: Longest list row title.
    list_row_title_chars: int = 24
    #: Longest label of the button that opens a list.
    list_button_label_chars: int = 20
    #: Whether a message can carry a button that opens a URL.
    url_buttons: bool = False
    #: Longest URL button label.
    url_button_label_chars: int = 64
    #: URL buttons accept only https: URLs.
    url_button_https_only: bool = True
    #: URL buttons may point at localhost / loopback addresses (Telegram refuses them).
    url_button_local_hosts: bool = False
    #: Whether a finished photo can be shown inline (never on WhatsApp: PLAT-03).
    inline_images: bool = False
    #: Longest button data in bytes (Telegram's callback data: 64), None when unbounded.
    max_choice_data_bytes: int | None = None
    #: Seconds after the user's last message in which the platform lets us write (WhatsApp: 24 hours); outside it
    #: replies are held until the user writes again. None: no such window.
    reply_window_seconds: int | None = None

    def accepts_url_button(self, url: str) -> bool:
        """Whether the platform will take a URL button to `url` (else the link goes in the text)."""
        if not self.url_buttons:
            return False
        parts = urlsplit(url)
        if parts.scheme not in (("https",) if self.url_button_https_only else ("https", "http")):
            return False
        host = (parts.hostname or "").lower()
        if not host:
            return False
        return self.url_button_local_hosts or (host not in _LOCAL_HOSTS and not host.endswith(".localhost"))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A sent message: the platform's message id (stored on the outbound row), None where there is none."""

    platform_message_id: str | None = None


@runtime_checkable
class Channel(Protocol):
    """A chat platform adapter (Telegram, WhatsApp, web) as the core sees it."""

    name: str
    capabilities: ChannelCapabilities

    async def send(self, ref: ChatRef, reply: Reply) -> Delivery:
        """Deliver one reply (rendered with `core.render.render` for `capabilities`).

        Raise `core.errors.DeliveryError`: `permanent=True` when no retry can work (blocked, chat gone,
        recipient unreachable), else transient with `retry_after` seconds when the platform said so.
        """
        ...

    async def show_activity(self, ref: ChatRef, kind: ActivityKind) -> None:
        """Show typing / uploading a photo for a few seconds; a no-op where the platform has none."""
        ...


@runtime_checkable
class TurnQueue(Protocol):
    """Schedules the drain of a user's work (turns and deliveries): at most one drain job per user at a time.

    A user's drain slot is claimed with a token; the job holding it is the only one working for the user.
    Fair scheduling: a drain does a short slice of work, then hands the slot over to a continuation job that
    queues behind other users' jobs.
    """

    async def schedule(self, user_id: int) -> bool:
        """Claim the user's free slot and enqueue a drain job; False when a drain already holds the slot."""
        ...

    async def claim(self, user_id: int) -> str | None:
        """Claim the user's free slot for a drain the caller runs itself (`run_drain_job` with the token); None when
        a drain already holds the slot."""
        ...

    async def adopt(self, user_id: int, token: str) -> bool:
        """A starting drain job: True when its token holds the slot (or the slot was free and is now its own)."""
        ...

    async def keep(self, user_id: int, token: str) -> bool:
        """Extend the slot's lease while the job works; False when `token` no longer holds the slot (the lease ran
        out, or Redis lost it and another job took it): the job must then stop before sending anything."""
        ...

    async def hand_over(self, user_id: int, token: str, *, defer: float = 0.0) -> None:
        """Keep the slot for a continuation job enqueued to run after `defer` seconds (behind queued jobs)."""
        ...

    async def release(self, user_id: int, token: str) -> None:
        """Free the slot (only when `token` still holds it)."""
        ...


@runtime_checkable
class BatchTurnQueue(TurnQueue, Protocol):
    """A `TurnQueue` that schedules several users' drains in one round trip (the inbox uses it under load)."""

    async def schedule_many(self, user_ids: Sequence[int]) -> list[bool]:
        """`schedule` for each of `user_ids` (distinct): per user, True when this call claimed the slot."""
        ...


@dataclass(frozen=True, slots=True)
class ModerationVerdict:
    """A moderation layer's answer on one text."""

    allowed: bool
    #: Why it refused: the category or reason code (e.g. "sexual/minors", "S4"); None when allowed.
    reason: str | None = None
    #: Which layer answered (the implementation's `name`).
    layer: str = "moderation"


@runtime_checkable
class Moderation(Protocol):
    """The model-based second safety layer for text that can reach an image prompt (fields, scenes, prompts).

    Both layers - the rules and this one - must allow a text. Fail closed: when the service cannot answer, raise
    `core.errors.ModerationUnavailable`; the caller then waits and retries, and never generates unchecked.
    """

    name: str

    async def check(self, text: str) -> ModerationVerdict:
        """Classify `text`; refuse anything that sexualises or implies a minor."""
        ...


class SafetyVerdictLike(Protocol):
    """Shape of a text-safety verdict."""

    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str | None: ...


@runtime_checkable
class TextSafety(Protocol):
    """The safety rules for free text that can reach an image prompt (imaging's `check_field` implements it)."""

    def __call__(self, field: str, text: str) -> SafetyVerdictLike:
        """Verdict on `text` given as `field` (gender, nationality, appearance, name, scene, prompt), checked alone."""
        ...


@runtime_checkable
class Links(Protocol):
    """Builds user-facing portal URLs (the portal implements it).

    The URL methods answer placeholders that carry no secret (they are stored in outbound message rows);
    `for_sending` turns one into the real signed link when the message leaves, so a token is never stored.
    """

    def sign_in_url(self, user_id: int, next: str = "/chat") -> str:
        """A one-time sign-in link to the portal that opens `next` (a local path) afterwards."""
        ...

    def subscribe_url(self, user_id: int) -> str:
        """A sign-in link that opens the subscribe page."""
        ...

    def gallery_url(self, user_id: int) -> str:
        """A sign-in link that opens the user's photo gallery."""
        ...

    def photo_url(self, user_id: int, photo_id: int) -> str:
        """An expiring link to one photo."""
        ...

    async def for_sending(self, user_id: int, url: str) -> str:
        """`url` as it must leave in a message to `user_id` now: placeholders become freshly signed links."""
        ...


@runtime_checkable
class RateLimiter(Protocol):
    """Counts hits per key in a moving window shared by every process (Redis); `ava_bot.ratelimits` implements it."""

    async def hit(self, key: str, limit: int, window_seconds: int) -> bool:
        """Count one hit on `key`; False when it would be more than `limit` hits within `window_seconds`."""
        ...

    async def peek(self, key: str, limit: int, window_seconds: int) -> bool:
        """Whether one more hit on `key` would be allowed now (counts nothing)."""
        ...

    async def reset(self, key: str, limit: int, window_seconds: int) -> None:
        """Forget the hits on `key` (e.g. failed sign-ins after a successful one)."""
        ...
