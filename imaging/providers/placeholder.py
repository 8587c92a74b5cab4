"""`PlaceholderImageProvider`: an OFFLINE stand-in for development and tests. Never used in production.

It makes no network call and no real photo: it draws a portrait card with Pillow (a colour derived
from the prompt and seed, an "OFFLINE PLACEHOLDER" banner, the prompt text and, when the request is
conditioned on a reference, a thumbnail of it), so the whole pipeline can run without an API token.
The factory refuses it in production.

Unlike a real provider, whose model works elsewhere, this one does its image work in the worker's own
threads: at most one drawing per CPU at a time (each holds a ~1 MP canvas), and the reference is decoded
at a reduced scale for its thumbnail, so a burst of photo jobs does not raise the worker's memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import os
import uuid

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from imaging.providers.base import GeneratedImage, ImageRequest
from imaging.providers.errors import PermanentProviderError

MODEL = "placeholder-v1"
#: About one megapixel, like FLUX: 832x1248 for 2:3.
TARGET_PIXELS = 832 * 1248
_MARGIN = 40
_THUMB = (240, 360)

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont


class PlaceholderImageProvider:
    """Draws a labelled JPEG card instead of a photo (offline development/test only, never production)."""

    name: str = "placeholder"

    def __init__(self, *, max_drawing: int | None = None) -> None:
        """`max_drawing`: images drawn at once (default: the CPU count); further requests wait their turn."""
        self._drawing = asyncio.Semaphore(max_drawing or os.cpu_count() or 1)

    async def generate(self, request: ImageRequest) -> GeneratedImage:
        """Return a freshly drawn JPEG (in `data`) describing the request."""
        size = image_size(request.aspect_ratio)
        async with self._drawing:
            data = await asyncio.to_thread(self.draw, request, size)
        return GeneratedImage(
            data=data,
            url=None,
            content_type="image/jpeg",
            provider=self.name,
            model=MODEL,
            seed=request.seed,
            job_id=uuid.uuid4().hex,
        )

    def draw(self, request: ImageRequest, size: tuple[int, int]) -> bytes:
        """The JPEG card for `request` at `size` (CPU work: `generate` runs it in a thread)."""
        return _draw(request, size)


def image_size(aspect_ratio: str) -> tuple[int, int]:
    """Width and height of about one megapixel for a "W:H" ratio, multiples of 16."""
    try:
        w_part, h_part = aspect_ratio.split(":")
        ratio = int(w_part) / int(h_part)
    except (ValueError, ZeroDivisionError):
        raise PermanentProviderError(f"unsupported aspect ratio {aspect_ratio!r}") from None
    if not 0.25 <= ratio <= 4:
        raise PermanentProviderError(f"unsupported aspect ratio {aspect_ratio!r}")
    width = math.sqrt(TARGET_PIXELS * ratio)
    return _round16(width), _round16(width / ratio)


def _round16(value: float) -> int:
    return max(16, round(value / 16) * 16)


def _background(request: ImageRequest) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{request.seed}\x00{request.prompt}".encode()).digest()
    return (40 + digest[0] % 120, 40 + digest[1] % 120, 40 + digest[2] % 120)  # dark enough for white text


def _draw(request: ImageRequest, size: tuple[int, int]) -> bytes:
    width, height = size
    image = Image.new("RGB", size, _background(request))
    draw = ImageDraw.Draw(image)
    banner_font = ImageFont.load_default(size=max(24, width // 15))
    small_font = ImageFont.load_default(size=max(14, width // 40))
    text_font = ImageFont.load_default(size=max(16, width // 32))

    banner_height = width // 15 + 70
    draw.rectangle((0, 0, width, banner_height), fill=(0, 0, 0))
    draw.text((_MARGIN, 20), "OFFLINE PLACEHOLDER", font=banner_font, fill=(255, 214, 0))
    draw.text((_MARGIN, banner_height - 34), "development only - not a real photo", font=small_font, fill="white")

    y = banner_height + _MARGIN
    bottom = height - _MARGIN - (_THUMB[1] + 40 if request.has_reference else 0)
    line_height = int(text_font.size * 1.35) if isinstance(text_font, ImageFont.FreeTypeFont) else 14
    for line in _wrap(draw, request.prompt, text_font, width - 2 * _MARGIN):
        if y + line_height > bottom:
            draw.text((_MARGIN, y), "...", font=text_font, fill="white")
            break
        draw.text((_MARGIN, y), line, font=text_font, fill="white")
        y += line_height

    if request.has_reference:
        _draw_reference(image, draw, request, small_font)
    footer = f"{MODEL}  {width}x{height}  seed={request.seed}"
    draw.text((_MARGIN, height - _MARGIN), footer, font=small_font, fill=(220, 220, 220))

    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def _draw_reference(image: Image.Image, draw: ImageDraw.ImageDraw, request: ImageRequest, font: FontType) -> None:
    width, height = image.size
    x, y = width - _MARGIN - _THUMB[0], height - _MARGIN - _THUMB[1] - 30
    draw.text((_MARGIN, y), "conditioned on reference", font=font, fill=(255, 214, 0))
    if request.reference_image is None:  # only a URL: nothing to show offline
        draw.text((_MARGIN, y + 30), "(reference given by URL)", font=font, fill="white")
        return
    try:
        with Image.open(io.BytesIO(request.reference_image)) as reference:
            reference.draft("RGB", _THUMB)  # a JPEG decodes at 1/2..1/8 scale, still at least the thumbnail's size
            thumb = reference.convert("RGB")
            thumb.thumbnail(_THUMB)
    except (UnidentifiedImageError, OSError) as exc:
        raise PermanentProviderError("the reference image could not be decoded") from exc
    draw.rectangle((x - 4, y - 4, x + thumb.width + 4, y + thumb.height + 4), outline="white", width=3)
    image.paste(thumb, (x, y))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: FontType, max_width: int) -> list[str]:
    """Greedy word wrap by rendered width (an over-long word is cut)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if draw.textlength(candidate, font=font) <= max_width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while draw.textlength(word, font=font) > max_width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and draw.textlength(word[:cut], font=font) > max_width:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines
