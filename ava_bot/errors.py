"""Errors of the composition root: start-up and configuration."""

from __future__ import annotations

from core.errors import ConfigError


class MissingSettingsError(ConfigError):
    """Production start-up without required settings; names every missing key at once."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            "Ava cannot start in production: missing required settings: "
            + ", ".join(missing)
            + ". Set them in the environment or .env (see .env.example)."
        )
