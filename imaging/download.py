"""`download_image`: fetch a provider's output image with a size cap, a deadline and type checks.

Only http(s) URLs; the body is streamed and abandoned as soon as it passes `max_bytes`; the declared
content type must be JPEG, PNG or WebP AND the first bytes must say the same (a server's header alone is
not trusted). Network trouble, timeouts, 5xx and 429 are `DownloadTransient` (worth a retry); anything
else is `DownloadFailed`.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

import httpx

from imaging.errors import DownloadFailed, DownloadTooLarge, DownloadTransient, NotAnImage

logger = logging.getLogger(__name__)

MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
DOWNLOAD_TIMEOUT = 30.0
ACCEPTED_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


def sniff_image_type(data: bytes) -> str | None:
    """The image MIME type the magic bytes of `data` announce (JPEG, PNG, WebP), else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# One deadline for connecting and the whole body, enforced inside with `asyncio.timeout`.
async def download_image(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_bytes: int = MAX_DOWNLOAD_BYTES,
    timeout: float = DOWNLOAD_TIMEOUT,  # noqa: ASYNC109
) -> bytes:
    """GET `url` and return the image bytes; raises a `DownloadFailed` subclass (`DownloadTransient` if retryable)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadFailed(f"refusing to download from a non-http(s) URL (scheme {parts.scheme!r})")
    where = f"{parts.scheme}://{parts.hostname}"  # never log query strings: they may carry signatures
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(client, url, max_bytes=max_bytes, where=where)
    except TimeoutError:
        raise DownloadTransient(f"download from {where} took longer than {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise DownloadTransient(f"network error downloading from {where}: {type(exc).__name__}") from exc


async def _fetch(client: httpx.AsyncClient, url: str, *, max_bytes: int, where: str) -> bytes:
    async with client.stream("GET", url, follow_redirects=True) as response:
        status = response.status_code
        if status == 429 or status >= 500:
            raise DownloadTransient(f"{where} answered HTTP {status}")
        if status != 200:
            raise DownloadFailed(f"{where} answered HTTP {status}")
        declared = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if declared not in ACCEPTED_TYPES:
            raise NotAnImage(f"{where} sent content type {declared or 'none'!r}, not an image")
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise DownloadTooLarge(f"image of {length} bytes exceeds the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise DownloadTooLarge(f"image exceeds the {max_bytes}-byte limit")
            chunks.append(chunk)
    data = b"".join(chunks)
    sniffed = sniff_image_type(data)
    if sniffed is None:
        raise NotAnImage(f"{where} sent {declared} whose bytes are not a JPEG, PNG or WebP image")
    if sniffed != declared:
        logger.info("image from %s declared %s but is %s", where, declared, sniffed)
    return data
