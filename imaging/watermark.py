"""Visible watermark: a semi-transparent caption in the lower-right corner of a generated photo.

Only the caption's bounding box is composited (crop, `alpha_composite`, paste back): a full-frame
`alpha_composite` costs 10-30x more on a 1024x1536 photo. The output is always a baseline RGB JPEG,
ready to be C2PA-signed; sign AFTER watermarking, since any later re-encode destroys the manifest.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from imaging.errors import ImageTooLarge, InvalidImage

logger = logging.getLogger(__name__)

#: Largest image we decode (pixels). Generated photos are 1-4 MP; 40 MP leaves room for upscales while
#: bounding memory at ~120 MB RGB per decode. Checked from the header, before any pixel is decoded.
MAX_IMAGE_PIXELS = 40_000_000
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")

#: Caption height as a fraction of the image's shorter side.
FONT_SCALE = 0.035
MIN_FONT_SIZE = 10
TEXT_FILL = (255, 255, 255, 190)  # white at ~75 % opacity
OUTLINE_FILL = (0, 0, 0, 110)  # dark outline keeps the caption legible on light areas
SHADOW_FILL = (0, 0, 0, 80)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where and how large the caption is drawn for one image size."""

    box: tuple[int, int, int, int]  # (left, top, right, bottom) in image coordinates, clipped to the image
    font_size: int
    stroke: int
    shadow: int
    origin: tuple[int, int]  # where the text's anchor goes inside the layer


def _text_bbox(font_size: int, text: str, stroke: int) -> tuple[int, int, int, int]:
    left, top, right, bottom = ImageFont.load_default(size=font_size).getbbox(text, stroke_width=stroke)
    return math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)


def _layout(size: tuple[int, int], text: str) -> _Layout:
    width, height = size
    font_size = max(MIN_FONT_SIZE, round(FONT_SCALE * min(width, height)))
    margin = max(4, round(font_size * 0.6))
    stroke = max(1, round(font_size / 16))
    left, top, right, bottom = _text_bbox(font_size, text, stroke)
    text_w = right - left
    available = width - 2 * margin
    if text_w > available > 0:
        # Too wide for a small image: shrink the font rather than clip the caption.
        font_size = max(MIN_FONT_SIZE // 2, int(font_size * available / text_w))
        stroke = max(1, round(font_size / 16))
        left, top, right, bottom = _text_bbox(font_size, text, stroke)
    shadow = max(1, round(font_size / 20))
    layer_w = right - left + shadow
    layer_h = bottom - top + shadow
    x1, y1 = width - margin, height - margin
    x0, y0 = x1 - layer_w, y1 - layer_h
    box = (max(0, x0), max(0, y0), max(0, min(width, x1)), max(0, min(height, y1)))
    # The layer is drawn at the clipped box's size; shift the text by what clipping cut off.
    origin = (-left - (box[0] - x0), -top - (box[1] - y0))
    return _Layout(box=box, font_size=font_size, stroke=stroke, shadow=shadow, origin=origin)


def watermark_box(size: tuple[int, int], text: str) -> tuple[int, int, int, int]:
    """The (left, top, right, bottom) box `apply_watermark` draws `text` in for an image of `size`."""
    return _layout(size, text).box


def decode_image(image_bytes: bytes, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode JPEG/PNG/WebP bytes to an upright RGB image (ICC profile kept in `.info`), refusing huge images."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns/raises at its global limit; ours below is stricter.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(image_bytes), formats=ACCEPTED_FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image exceeds Pillow's decompression-bomb limit: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"not a JPEG, PNG or WebP image: {exc}") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
        raise InvalidImage(f"the image data is corrupt: {exc}") from exc
    ImageOps.exif_transpose(image, in_place=True)
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    # An ICC profile only stays valid for RGB sources (a CMYK or grey profile would misdescribe RGB output).
    icc = image.info.get("icc_profile") if image.mode in ("RGB", "RGBA") else None
    if image.mode == "RGB":
        rgb = image
    elif image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Flatten transparency onto white: a JPEG has no alpha, and dropping it would expose
        # whatever colour the transparent pixels happen to carry (often black).
        rgba = image.convert("RGBA")
        rgb = Image.new("RGB", rgba.size, (255, 255, 255))
        rgb.paste(rgba, mask=rgba.getchannel("A"))
    else:
        rgb = image.convert("RGB")
    rgb.info = {"icc_profile": icc} if isinstance(icc, bytes) and icc else {}
    return rgb


@functools.lru_cache(maxsize=32)
def _caption_layer(size: tuple[int, int], text: str) -> tuple[tuple[int, int, int, int], Image.Image | None]:
    """The caption's box and its RGBA layer for an image of `size` (None when nothing fits).

    Cached: generated photos come in a handful of sizes, and rendering the stroked text costs more than
    compositing it. The layer is shared between threads and must never be modified.
    """
    layout = _layout(size, text)
    left, top, right, bottom = layout.box
    if right <= left or bottom <= top:
        return layout.box, None  # degenerate image (a few pixels wide): nothing visible to draw
    font = ImageFont.load_default(size=layout.font_size)
    layer = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    ox, oy = layout.origin
    shadow_xy = (ox + layout.shadow, oy + layout.shadow)
    draw.text(shadow_xy, text, font=font, fill=SHADOW_FILL, stroke_width=layout.stroke, stroke_fill=SHADOW_FILL)
    draw.text((ox, oy), text, font=font, fill=TEXT_FILL, stroke_width=layout.stroke, stroke_fill=OUTLINE_FILL)
    return layout.box, layer


def draw_watermark(image: Image.Image, text: str) -> None:
    """Draw the caption onto an RGB `image` in place, compositing only the caption's box."""
    if not text.strip():
        raise ValueError("watermark text must not be empty")
    box, layer = _caption_layer(image.size, text)
    if layer is None:
        return
    region = image.crop(box).convert("RGBA")
    region.alpha_composite(layer)
    image.paste(region.convert("RGB"), box[:2])


def encode_jpeg(image: Image.Image, *, quality: int = 90, icc_profile: bytes | None = None) -> bytes:
    """Encode an RGB image as a baseline JPEG (no EXIF; the ICC profile is kept when given)."""
    out = io.BytesIO()
    params: dict[str, object] = {"quality": quality}
    if icc_profile:
        params["icc_profile"] = icc_profile
    image.save(out, "JPEG", **params)
    return out.getvalue()


def apply_watermark(image_bytes: bytes, text: str, *, quality: int = 90) -> bytes:
    """Decode `image_bytes`, draw `text` as a visible watermark in the lower-right corner, return JPEG bytes."""
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be within 1..95, got {quality}")
    image = decode_image(image_bytes)
    draw_watermark(image, text)
    return encode_jpeg(image, quality=quality, icc_profile=image.info.get("icc_profile"))
