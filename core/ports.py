"""Ports: what the core needs from the outside world, as Protocols. `ava_bot` wires implementations in.

Fakes in tests need no base class; `runtime_checkable` lets the composition root assert conformance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

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


@runtime_checkable
class PhotoRequests(Protocol):
    """Creates photo generation requests (the imaging pipeline implements it)."""

    async def request_photo(
        self, *, user_id: int, avatar_id: int, kind: PhotoKind, scene: str | None, source_key: str
    ) -> int:
        """Record a queued photo (idempotent on `source_key`) inside the caller's transaction; return its id."""
        ...

    async def dispatch(self, photo_id: int) -> None:
        """Start generating a recorded photo (called after the transaction committed)."""
        ...


@runtime_checkable
class Entitlements(Protocol):
    """Answers whether a user has a paid entitlement now (billing implements it)."""

    async def may_chat(self, user_id: int) -> bool:
        """True when the user may chat (and get photos) now."""
        ...


@runtime_checkable
class Outbox(Protocol):
    """Sends replies through the user's channel."""

    async def send(self, ref: ChatRef, reply: Reply) -> None:
        """Deliver one reply; raise `core.errors.DeliveryError` when the platform refuses."""
        ...


@runtime_checkable
class TurnQueue(Protocol):
    """Schedules processing of a stored inbound message."""

    async def enqueue_turn(self, user_id: int, message_id: int) -> None:
        """Make sure a worker will process the user's pending messages."""
        ...


@runtime_checkable
class UserLock(Protocol):
    """Mutual exclusion per user across worker processes."""

    def hold(self, user_id: int) -> AbstractAsyncContextManager[None]:
        """Hold the user's lock for the block; raise `core.errors.Busy` if it cannot be had in time."""
        ...


class SafetyVerdictLike(Protocol):
    """Shape of a text-safety verdict."""

    @property
    def allowed(self) -> bool: ...

    @property
    def reason(self) -> str | None: ...


@runtime_checkable
class TextSafety(Protocol):
    """Checks free text that will feed image generation (imaging's prompt safety implements it)."""

    def __call__(self, text: str) -> SafetyVerdictLike:
        """Verdict on `text`."""
        ...


@runtime_checkable
class Links(Protocol):
    """Builds user-facing portal URLs (the portal implements it, signing where needed)."""

    def sign_in_url(self, user_id: int) -> str:
        """A one-time sign-in link to the portal."""
        ...

    def subscribe_url(self, user_id: int) -> str:
        """Where the user subscribes."""
        ...

    def gallery_url(self, user_id: int) -> str:
        """The user's photo gallery."""
        ...

    def photo_url(self, user_id: int, photo_id: int) -> str:
        """A signed, expiring link to one photo."""
        ...
