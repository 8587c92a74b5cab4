"""A slow image provider for browser tests: the offline placeholder, but as slow as a real model.

Replicate's FLUX models take about 8 s per photo; the web chat must show that wait (a placeholder card with
the elapsed time, "still trying…" on a retry). This provider draws the offline placeholder after `delay`
seconds, and can fail its next calls with a retryable error, so the chat's retry line can be seen too.
It satisfies the `ImageProvider` port (ARCH-03) and is passed to `create_app(image_provider=...)`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from imaging.providers.base import GeneratedImage, ImageRequest
from imaging.providers.errors import TransientProviderError
from imaging.providers.placeholder import PlaceholderImageProvider


@dataclass
class SlowImageProvider:
    """The placeholder provider after `delay` seconds per image; `fail_next(n)` makes the next n calls fail."""

    delay: float = 8.0
    name: str = "placeholder"
    #: Requests received, in order (also the failed ones).
    requests: list[ImageRequest] = field(default_factory=list)
    _failures: int = 0
    _inner: PlaceholderImageProvider = field(default_factory=PlaceholderImageProvider)

    def fail_next(self, count: int = 1) -> None:
        """The next `count` calls wait `delay`, then fail with a retryable (transient) provider error."""
        self._failures += count

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        """Wait `delay` seconds, then draw the placeholder (or fail, when told to)."""
        self.requests.append(request)
        await asyncio.sleep(self.delay)
        if self._failures:
            self._failures -= 1
            raise TransientProviderError("the slow fake provider was told to fail")
        return await self._inner.generate(request)
