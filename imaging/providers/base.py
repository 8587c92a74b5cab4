"""The `ImageProvider` port and the values crossing it.

A provider turns one `ImageRequest` into one `GeneratedImage`. It does not download, watermark,
sign or store anything: the pipeline does that with its own size, type and time limits, so a
provider that answers with a URL leaves `data` empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """What to generate: a finished prompt and, for photos after the first, the approved reference image."""

    prompt: str
    aspect_ratio: str = "2:3"
    #: The approved reference JPEG; when given (or `reference_image_url`) the provider keeps that face.
    reference_image: bytes | None = field(default=None, repr=False)
    #: Or where the provider fetches it: a short-lived capability URL (a presigned GET), never shown in a repr or log.
    reference_image_url: str | None = field(default=None, repr=False)
    seed: int | None = None

    @property
    def has_reference(self) -> bool:
        """True when the request is conditioned on a reference image."""
        return self.reference_image is not None or self.reference_image_url is not None


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """A provider's answer: either the bytes (`data`) or where to download them (`url`)."""

    data: bytes | None = field(repr=False)
    url: str | None
    content_type: str | None
    provider: str
    model: str
    seed: int | None
    job_id: str | None


@runtime_checkable
class ImageProvider(Protocol):
    """Port of every image generator; `isinstance(x, ImageProvider)` holds for each adapter (ARCH-03)."""

    name: str

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        """Generate one image; raises a `ProviderError` subclass when it cannot."""
        ...
