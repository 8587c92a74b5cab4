"""`download_image` against a local fake server: size cap, type checks, typed transient/permanent errors."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from PIL import Image

from imaging.download import download_image, sniff_image_type
from imaging.errors import DownloadFailed, DownloadTooLarge, DownloadTransient, NotAnImage
from tests.fakes.server import FakeServer


def _image(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(out, format=fmt)
    return out.getvalue()


JPEG = _image("JPEG")


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    """A running fake file server."""
    async with FakeServer() as fake:
        yield fake


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client."""
    async with httpx.AsyncClient() as http:
        yield http


@pytest.mark.parametrize(("fmt", "mime"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")])
async def test_downloads_accepted_image_types(
    server: FakeServer, client: httpx.AsyncClient, fmt: str, mime: str
) -> None:
    """JPEG, PNG and WebP with a matching content type come back byte for byte."""
    data = _image(fmt)
    server.queue("GET", "/out.img", body=data, headers={"Content-Type": mime})
    assert await download_image(client, f"{server.url}/out.img") == data
    assert sniff_image_type(data) == mime


async def test_rejects_non_http_urls(client: httpx.AsyncClient) -> None:
    """file:, data: and schemeless URLs are refused without a request."""
    for url in ("file:///etc/passwd", "data:image/jpeg;base64,AAAA", "/files/x.jpg", "ftp://host/x.jpg"):
        with pytest.raises(DownloadFailed) as info:
            await download_image(client, url)
        assert not isinstance(info.value, DownloadTransient)


async def test_rejects_wrong_content_type(server: FakeServer, client: httpx.AsyncClient) -> None:
    """An HTML answer is not an image, whatever its bytes."""
    server.queue("GET", "/x.jpg", body=JPEG, headers={"Content-Type": "text/html"})
    with pytest.raises(NotAnImage):
        await download_image(client, f"{server.url}/x.jpg")


async def test_rejects_bytes_that_are_not_an_image(server: FakeServer, client: httpx.AsyncClient) -> None:
    """A declared image/jpeg whose magic bytes are not an image is refused."""
    server.queue("GET", "/x.jpg", body=b"<html>nope</html>", headers={"Content-Type": "image/jpeg"})
    with pytest.raises(NotAnImage):
        await download_image(client, f"{server.url}/x.jpg")


async def test_caps_size_by_header_and_by_stream(server: FakeServer, client: httpx.AsyncClient) -> None:
    """Bodies over `max_bytes` are refused (declared length or streamed without one)."""
    big = JPEG + b"\0" * 5000
    server.queue("GET", "/big.jpg", body=big, headers={"Content-Type": "image/jpeg"})
    with pytest.raises(DownloadTooLarge):
        await download_image(client, f"{server.url}/big.jpg", max_bytes=4096)

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(10):
            await response.write(b"\xff" * 1024)
        await response.write_eof()
        return response

    server.handle("GET", "/chunked.jpg", chunked)
    with pytest.raises(DownloadTooLarge):
        await download_image(client, f"{server.url}/chunked.jpg", max_bytes=4096)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_server_errors_are_transient(server: FakeServer, client: httpx.AsyncClient, status: int) -> None:
    """5xx and 429 raise `DownloadTransient` (worth a retry)."""
    server.queue("GET", "/x.jpg", status=status, body=b"busy")
    with pytest.raises(DownloadTransient):
        await download_image(client, f"{server.url}/x.jpg")


async def test_not_found_is_permanent(server: FakeServer, client: httpx.AsyncClient) -> None:
    """A 404 is a permanent `DownloadFailed`."""
    server.queue("GET", "/x.jpg", status=404, body=b"gone")
    with pytest.raises(DownloadFailed) as info:
        await download_image(client, f"{server.url}/x.jpg")
    assert not isinstance(info.value, DownloadTransient)


async def test_slow_server_times_out_as_transient(server: FakeServer, client: httpx.AsyncClient) -> None:
    """A server slower than the deadline raises `DownloadTransient`."""
    server.queue("GET", "/slow.jpg", body=JPEG, headers={"Content-Type": "image/jpeg"}, delay=1.0)
    with pytest.raises(DownloadTransient, match="longer than"):
        await download_image(client, f"{server.url}/slow.jpg", timeout=0.1)


async def test_connection_refused_is_transient(client: httpx.AsyncClient) -> None:
    """Nothing listening raises `DownloadTransient`."""
    fake = FakeServer()
    await fake.start()
    url = f"{fake.url}/x.jpg"
    await fake.stop()
    with pytest.raises(DownloadTransient):
        await download_image(client, url)
