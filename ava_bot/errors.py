"""Errors of the composition root: start-up, configuration and admin commands."""

from __future__ import annotations

from core.errors import AvaError, ConfigError


class MissingSettingsError(ConfigError):
    """Production start-up without required settings; names every missing key at once."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            "Ava cannot start in production: missing required settings: "
            + ", ".join(missing)
            + ". Set them in the environment or .env (see .env.example)."
        )


class UnknownUser(AvaError):
    """An admin command named a user (id or email) that does not exist."""

    http_status = 404


class GrantRefused(AvaError):
    """A grant would overwrite a running Stripe subscription (cancel it first, or grant after it ends)."""

    http_status = 409
