"""Error hierarchy of Ava: every package's errors derive from `AvaError`."""

from __future__ import annotations


class AvaError(Exception):
    """Base class of every error Ava raises on purpose."""

    #: HTTP status the web middleware maps this error to.
    http_status: int = 500
    #: Short text safe to show to an end user.
    public_message: str = "Something went wrong."


class ConfigError(AvaError):
    """The configuration is incomplete or inconsistent."""


class ValidationFailed(AvaError):
    """Input broke a domain rule; the message says which and why."""

    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.public_message = message
