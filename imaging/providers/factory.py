"""Choose and build the image provider from a `ProviderConfig` (which `ava_bot` fills from its settings).

Rules: an explicit `kind` wins; otherwise Replicate when a token is set, else the offline placeholder.
Production refuses the placeholder and Replicate without a token. Adding a provider means a new
module plus one entry in `_BUILDERS` (and its name in `ProviderKind`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from core.errors import ConfigError
from imaging.providers.base import ImageProvider
from imaging.providers.placeholder import PlaceholderImageProvider
from imaging.providers.replicate import DEFAULT_BASE_URL, ReplicateImageProvider

ProviderKind = Literal["replicate", "placeholder"]


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What the factory needs to know; `imaging` does not import `ava_bot.settings`."""

    kind: ProviderKind | None = None
    environment: Literal["development", "production"] = "development"
    replicate_api_token: str | None = field(default=None, repr=False)
    replicate_base_url: str = DEFAULT_BASE_URL
    replicate_reference_model: str = "black-forest-labs/flux-1.1-pro"
    replicate_edit_model: str = "black-forest-labs/flux-kontext-pro"

    @property
    def has_replicate_token(self) -> bool:
        """True when a non-blank Replicate token is configured."""
        return bool(self.replicate_api_token and self.replicate_api_token.strip())


def create_image_provider(config: ProviderConfig) -> ImageProvider:
    """Build the configured provider; raises `ConfigError` for a choice the environment forbids."""
    kind = config.kind or ("replicate" if config.has_replicate_token else "placeholder")
    if kind == "placeholder" and config.environment == "production":
        if config.kind is None:
            raise ConfigError("REPLICATE_API_TOKEN is required in production: placeholder provider is development-only")
        raise ConfigError("placeholder provider is development-only")
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise ConfigError(f"unknown image provider {kind!r}; choose one of {', '.join(sorted(_BUILDERS))}")
    return builder(config)


def _replicate(config: ProviderConfig) -> ImageProvider:
    if not config.has_replicate_token or config.replicate_api_token is None:
        raise ConfigError("the replicate image provider needs REPLICATE_API_TOKEN")
    return ReplicateImageProvider(
        config.replicate_api_token,
        base_url=config.replicate_base_url,
        reference_model=config.replicate_reference_model,
        edit_model=config.replicate_edit_model,
    )


def _placeholder(config: ProviderConfig) -> ImageProvider:
    return PlaceholderImageProvider()


_BUILDERS: dict[str, Callable[[ProviderConfig], ImageProvider]] = {
    "replicate": _replicate,
    "placeholder": _placeholder,
}
