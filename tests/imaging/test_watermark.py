"""Tests of the visible watermark: placement, visibility, scaling, and refusal of bad or oversized input."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image, ImageChops, ImageStat

from imaging.errors import ImageTooLarge, ImagingError, InvalidImage
from imaging.watermark import MAX_IMAGE_PIXELS, apply_watermark, watermark_box

TEXT = "Ava · AI-generated"


def photo(width: int = 1024, height: int = 1536, *, seed: int = 3) -> Image.Image:
    """A deterministic photo-like RGB image: gradients, smooth colour blobs and fine grain."""
    rng = random.Random(seed)
    channels = (
        Image.linear_gradient("L").resize((width, height)),
        Image.linear_gradient("L").rotate(90).resize((width, height)),
        Image.radial_gradient("L").resize((width, height)),
    )
    image = Image.merge("RGB", channels)
    blobs = Image.frombytes("RGB", (16, 24), rng.randbytes(16 * 24 * 3)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    return Image.blend(Image.blend(image, blobs, 0.5), grain, 0.08)


def encode(image: Image.Image, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


def mean_difference(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int]) -> float:
    diff = ImageChops.difference(a.crop(box), b.crop(box)).convert("L")
    return float(ImageStat.Stat(diff).mean[0])


def png_claiming_size(width: int, height: int) -> bytes:
    """A small PNG whose header claims `width` x `height` pixels (a decompression bomb's calling card)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_output_is_jpeg_of_same_size() -> None:
    """The watermarked output is an RGB JPEG with the source's dimensions."""
    out = Image.open(io.BytesIO(apply_watermark(encode(photo()), TEXT)))
    assert (out.format, out.mode, out.size) == ("JPEG", "RGB", (1024, 1536))


def test_pixels_change_only_inside_watermark_box() -> None:
    """Pixels inside `watermark_box` differ noticeably from the source; pixels far from it barely change."""
    source_bytes = encode(photo())
    source = Image.open(io.BytesIO(source_bytes)).convert("RGB")
    out = Image.open(io.BytesIO(apply_watermark(source_bytes, TEXT))).convert("RGB")
    box = watermark_box(source.size, TEXT)
    left, top, right, bottom = box
    assert 0 <= left < right <= 1024 and 0 <= top < bottom <= 1536
    assert right > 1024 * 0.8 and bottom > 1536 * 0.9, "the caption sits in the lower-right corner"
    assert mean_difference(source, out, box) > 15
    assert mean_difference(source, out, (0, 0, 600, 1000)) < 2.0


@pytest.mark.parametrize("background", ["white", "black"])
def test_caption_legible_on_light_and_dark_images(background: str) -> None:
    """The caption has dark pixels on a white image and light pixels on a black one (outline + white text)."""
    source = Image.new("RGB", (1024, 1536), background)
    out = Image.open(io.BytesIO(apply_watermark(encode(source), TEXT))).convert("L")
    low, high = out.crop(watermark_box(source.size, TEXT)).getextrema()
    if background == "white":
        assert low < 170
    else:
        assert high > 170


def test_caption_scales_with_image() -> None:
    """The caption box grows in proportion to the image's shorter side."""
    _, top1, _, bottom1 = watermark_box((1024, 1536), TEXT)
    left2, top2, right2, bottom2 = watermark_box((2048, 3072), TEXT)
    assert 1.8 < (bottom2 - top2) / (bottom1 - top1) < 2.2
    out = Image.open(io.BytesIO(apply_watermark(encode(photo(2048, 3072)), TEXT))).convert("RGB")
    src = photo(2048, 3072)
    assert mean_difference(src, out, (left2, top2, right2, bottom2)) > 15


def test_small_image_keeps_caption_inside() -> None:
    """On a small image the caption shrinks to fit instead of running off the left edge."""
    left, top, right, bottom = watermark_box((160, 120), TEXT)
    assert 0 < left < right <= 160 and 0 < top < bottom <= 120
    out = Image.open(io.BytesIO(apply_watermark(encode(photo(160, 120)), TEXT)))
    assert out.size == (160, 120)


def test_png_with_alpha_and_webp_are_accepted() -> None:
    """PNG (transparency flattened onto white) and WebP inputs come out as RGB JPEG."""
    rgba = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    flat = Image.open(io.BytesIO(apply_watermark(encode(rgba, "PNG"), TEXT)))
    assert flat.format == "JPEG"
    assert flat.convert("RGB").getpixel((10, 10)) == pytest.approx((255, 255, 255), abs=3)
    webp = Image.open(io.BytesIO(apply_watermark(encode(photo(300, 200), "WEBP"), TEXT)))
    assert (webp.format, webp.size) == ("JPEG", (300, 200))


def test_quality_changes_output_size() -> None:
    """A lower JPEG quality gives a smaller file."""
    source = encode(photo(512, 768))
    assert len(apply_watermark(source, TEXT, quality=60)) < len(apply_watermark(source, TEXT, quality=90))


@pytest.mark.parametrize("size", [(8000, 8000), (100_000, 100_000)])
def test_decompression_bomb_is_refused(size: tuple[int, int]) -> None:
    """An image header claiming more than MAX_IMAGE_PIXELS raises ImageTooLarge before any pixel is decoded."""
    assert size[0] * size[1] > MAX_IMAGE_PIXELS
    with pytest.raises(ImageTooLarge, match="limit"):
        apply_watermark(png_claiming_size(*size), TEXT)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not an image at all", b"GIF89a" + bytes(100), encode(photo(256, 256))[:2000]],
    ids=["empty", "garbage", "gif", "truncated-jpeg"],
)
def test_unreadable_input_raises_invalid_image(payload: bytes) -> None:
    """Garbage, unsupported formats and truncated JPEGs raise InvalidImage (an ImagingError)."""
    with pytest.raises(InvalidImage) as info:
        apply_watermark(payload, TEXT)
    assert isinstance(info.value, ImagingError)


def test_empty_text_is_rejected() -> None:
    """A blank watermark text is a programming error."""
    with pytest.raises(ValueError, match="empty"):
        apply_watermark(encode(photo(64, 64)), "  ")
