"""Benchmark: cost of watermark + C2PA signing relative to a plain Pillow decode + JPEG q90 encode.

Run with `uv run python -m bench.postprocess`. Both pipelines run on the same deterministic 1024x1536 JPEG in the
same process, interleaved so that CPU frequency drift hits both alike. The last line is `postprocess_ratio=<x.xx>`
(median of the full pipeline / median of the baseline); the target is <= 1.30.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from imaging.certs import create_dev_certificates
from imaging.provenance import ProvenanceSigner, sign_manifest
from imaging.watermark import apply_watermark

WIDTH, HEIGHT = 1024, 1536
QUALITY = 90
TEXT = "Ava · AI-generated"


def make_photo(width: int = WIDTH, height: int = HEIGHT, seed: int = 1) -> bytes:
    """A deterministic photo-like JPEG: colour gradients, smooth blobs and fine grain (~450 KB at q90)."""
    rng = random.Random(seed)
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.linear_gradient("L").rotate(90).resize((width, height))
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    blobs = Image.frombytes("RGB", (16, 24), rng.randbytes(16 * 24 * 3)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    image = Image.blend(image, blobs, 0.5)
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    image = Image.blend(image, grain, 0.08)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def baseline(jpeg: bytes) -> bytes:
    """Plain Pillow decode + JPEG q90 encode."""
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    out = io.BytesIO()
    image.save(out, "JPEG", quality=QUALITY)
    return out.getvalue()


def postprocess(jpeg: bytes, signer: ProvenanceSigner) -> bytes:
    """What the worker does to a generated photo: decode once, watermark, encode once, sign from memory."""
    watermarked = apply_watermark(jpeg, TEXT, quality=QUALITY)
    return sign_manifest(
        watermarked, photo_id=1, model="black-forest-labs/flux-kontext-pro", provider="replicate", signer=signer
    )


def measure(runs: int, warmup: int, steps: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median milliseconds of each step, the steps interleaved run by run."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(runs):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            samples[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    """Print both medians in ms and their ratio; the last line is `postprocess_ratio=<x.xx>`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    jpeg = make_photo()
    with tempfile.TemporaryDirectory() as tmp:
        certs = create_dev_certificates(Path(tmp))
        signer = ProvenanceSigner.from_files(certs.chain, certs.signer_key)
    medians = measure(
        args.runs,
        args.warmup,
        {
            "baseline": lambda: baseline(jpeg),
            "postprocess": lambda: postprocess(jpeg, signer),
        },
    )
    ratio = medians["postprocess"] / medians["baseline"]
    size_kb = len(jpeg) / 1024
    print(f"image: {WIDTH}x{HEIGHT} JPEG q{QUALITY}, {size_kb:.0f} KB; {args.runs} runs + {args.warmup} warm-up")
    print(f"baseline    (decode + encode q{QUALITY}):                    {medians['baseline']:.2f} ms")
    print(f"postprocess (decode + watermark + encode + C2PA sign): {medians['postprocess']:.2f} ms")
    print(f"postprocess_ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
