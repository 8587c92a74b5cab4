"""Image providers: the `ImageProvider` port, its request/result types, errors and adapters.

Adapters live in their own modules (`replicate`, `placeholder`); `factory.create_image_provider` picks one.
This package only depends on `core`; `ava_bot` builds a `ProviderConfig` from its settings.
"""

from __future__ import annotations

from imaging.providers.base import GeneratedImage, ImageProvider, ImageRequest
from imaging.providers.errors import (
    ContentPolicyError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)

__all__ = [
    "ContentPolicyError",
    "GeneratedImage",
    "ImageProvider",
    "ImageRequest",
    "PermanentProviderError",
    "ProviderError",
    "TransientProviderError",
]
