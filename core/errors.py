"""Error hierarchy of Ava: every package's errors derive from `AvaError`."""

from __future__ import annotations


class AvaError(Exception):
    """Base class of every error Ava raises on purpose."""

    #: HTTP status the web middleware maps this error to.
    http_status: int = 500
    #: Short text safe to show to an end user.
    public_message: str = "Something went wrong."
    #: Heading of the error page a browser gets (pages only; JSON answers carry `public_message`).
    public_title: str = "Something went wrong"


class ConfigError(AvaError):
    """The configuration is incomplete or inconsistent."""


class ValidationFailed(AvaError):
    """Input broke a domain rule; the message says which and why."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.public_message = message


class LLMUnavailable(AvaError):
    """The language model failed or timed out; the user gets a friendly line and nothing is lost."""

    http_status = 503


class DeliveryError(AvaError):
    """A channel refused or failed to deliver a reply.

    `permanent`: no retry can work (the user blocked the bot, the chat is gone, the recipient is not reachable):
    the outbound row fails and the identity is marked unreachable. Otherwise the send is retried later, after
    `retry_after` seconds when the platform said how long to wait (flood control), else with backoff.
    """

    http_status = 502

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None, hold: bool = False
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        #: The platform takes it only after the user writes again (WhatsApp's 24-hour window closed): the reply
        #: is held, not retried, and leaves with the user's next message.
        self.hold = hold


class NotReplayable(AvaError):
    """The dead letter does not exist, was replayed already, or its message is gone."""

    http_status = 409


class StateChanged(AvaError):
    """The user's state changed while a turn was computed: the turn is rolled back and computed again."""

    http_status = 409


class ModerationUnavailable(AvaError):
    """The moderation service could not answer (network, timeout, 5xx): fail closed, retry later."""

    http_status = 503
    public_message = "Our safety check is unavailable right now. Please try again in a moment."


class AuditImmutable(AvaError):
    """Something tried to change or remove a stored audit row (audit trails are append-only)."""


class UnsafeAnswer(ValidationFailed):
    """A stored setup answer no longer passes the safety rules (checked again before an avatar is made)."""

    def __init__(self, step: object, reason: str | None) -> None:
        super().__init__("One of your answers can't be used. Let's go over it again.")
        self.step = step
        self.reason = reason
