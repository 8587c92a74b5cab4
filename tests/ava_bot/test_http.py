"""The error middleware: errors become the styled HTML page for browsers and JSON (or aiohttp's answer) for the rest."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ava_bot.http import HTTP_WORDS, PageRenderer, error_middleware, make_error_middleware, prefers_html
from core.errors import AvaError, ValidationFailed

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


class Refused(AvaError):
    """An error a route raises on purpose."""

    http_status = 403
    public_title = "Not for you"
    public_message = "You may not see this."


@dataclass
class RecordingPage:
    """An `PageRenderer` answering a small HTML page and recording what it was asked to show."""

    calls: list[tuple[int, str, str]] = field(default_factory=list)

    async def __call__(self, request: web.Request, *, status: int, title: str, message: str) -> web.Response:
        self.calls.append((status, title, message))
        return web.Response(status=status, text=f"<h1>{title}</h1><p>{message}</p>", content_type="text/html")


async def broken_page(request: web.Request, *, status: int, title: str, message: str) -> web.Response:
    raise RuntimeError("template missing")


def _raising(exc: BaseException) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        raise exc

    return handler


@asynccontextmanager
async def serve(middleware: web.Middleware = error_middleware) -> AsyncIterator[TestClient]:
    """A bare application with `middleware` and routes raising different kinds of exceptions."""
    app = web.Application(middlewares=[middleware])
    app.router.add_get("/refused/{token}", _raising(Refused("detail for the log")))
    app.router.add_post("/api/things", _raising(ValidationFailed("A name is required.")))
    app.router.add_get("/redirect", _raising(web.HTTPSeeOther("/elsewhere")))
    app.router.add_get(
        "/json-403", _raising(web.HTTPForbidden(text='{"error": "csrf"}', content_type="application/json"))
    )
    app.router.add_get("/bug", _raising(RuntimeError("a bug")))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("text/html, */*;q=0.01", True),
        ("application/json;q=0.5, text/html", True),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/json, text/html", False),
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=0", False),
        ("text/html;q=nonsense", False),
    ],
)
def test_prefers_html(accept: str, expected: bool) -> None:
    """HTML wins only when named and ranked above JSON; wildcards alone (scripts, `fetch()`) mean JSON."""
    assert prefers_html(accept) is expected


async def test_browser_gets_the_error_page_with_the_errors_status() -> None:
    """A page request that hits an `AvaError` gets the injected page with its status, title and message."""
    page = RecordingPage()
    async with serve(make_error_middleware(page=page)) as client:
        response = await client.get("/refused/t0k3n", headers={"Accept": BROWSER})
        assert response.status == 403
        assert response.content_type == "text/html"
        assert response.headers["Vary"] == "Accept"
        assert "You may not see this." in await response.text()
    assert page.calls == [(403, "Not for you", "You may not see this.")]


async def test_json_client_gets_json_even_when_pages_are_rendered() -> None:
    """The same error for `Accept: application/json` (or no preference) answers `{"error": message}`."""
    page = RecordingPage()
    async with serve(make_error_middleware(page=page)) as client:
        for accept in ("application/json", "*/*"):
            response = await client.get("/refused/t0k3n", headers={"Accept": accept})
            assert response.status == 403
            assert await response.json() == {"error": "You may not see this."}
        response = await client.post("/api/things", json={}, headers={"Accept": "application/json"})
        assert response.status == 400
        assert await response.json() == {"error": "A name is required."}
    assert page.calls == []


async def test_middleware_without_a_page_always_answers_json() -> None:
    """`error_middleware` (no page renderer) answers JSON to browsers too, as before."""
    async with serve() as client:
        response = await client.get("/refused/t0k3n", headers={"Accept": BROWSER})
        assert response.status == 403
        assert await response.json() == {"error": "You may not see this."}


async def test_broken_error_page_falls_back_to_json_with_the_status(caplog: pytest.LogCaptureFixture) -> None:
    """When the page itself fails, the error is logged and the client still gets the error's status, as JSON."""
    page: PageRenderer = broken_page
    async with serve(make_error_middleware(page=page)) as client:
        response = await client.get("/refused/t0k3n", headers={"Accept": BROWSER})
        assert response.status == 403
        assert await response.json() == {"error": "You may not see this."}
    assert "could not be rendered" in caplog.text


async def test_redirects_and_script_errors_pass_through_untouched() -> None:
    """Redirects are never rewritten; aiohttp's own error responses reach scripts (JSON or no preference) as is."""
    page = RecordingPage()
    async with serve(make_error_middleware(page=page)) as client:
        response = await client.get("/redirect", headers={"Accept": BROWSER}, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (303, "/elsewhere")
        response = await client.get("/json-403", headers={"Accept": "*/*"})  # one instance: raised once
        assert response.status == 403
        assert await response.json() == {"error": "csrf"}
        for accept in ("application/json", "*/*"):
            response = await client.get("/no-such-page", headers={"Accept": accept})
            assert response.status == 404 and "404: Not Found" in await response.text()
    assert page.calls == []


async def test_browser_gets_the_styled_page_for_aiohttps_own_errors() -> None:
    """A browser gets the styled page for an unknown path (404) and a JSON 403 (its `error` is the message),
    with the original status, private and never cached; 405 keeps its `Allow` header."""
    page = RecordingPage()
    async with serve(make_error_middleware(page=page)) as client:
        response = await client.get("/no-such-page", headers={"Accept": BROWSER})
        assert (response.status, response.content_type) == (404, "text/html")
        assert response.headers["Cache-Control"] == "private, no-store"
        response = await client.get("/json-403", headers={"Accept": BROWSER})
        assert (response.status, response.content_type) == (403, "text/html")
        response = await client.post("/redirect", headers={"Accept": BROWSER})
        assert response.status == 405 and response.headers["Allow"] == "GET,HEAD"
    assert page.calls == [
        (404, *HTTP_WORDS[404]),
        (403, HTTP_WORDS[403][0], "csrf"),
        (405, *HTTP_WORDS[405]),
    ]


async def test_a_bug_is_a_styled_500_for_browsers_and_aiohttps_500_for_scripts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected exception is logged with its traceback; a browser gets the styled 500 page, a script gets
    aiohttp's own 500."""
    page = RecordingPage()
    async with serve(make_error_middleware(page=page)) as client:
        response = await client.get("/bug", headers={"Accept": BROWSER})
        assert (response.status, response.content_type) == (500, "text/html")
        response = await client.get("/bug", headers={"Accept": "application/json"})
        assert response.status == 500 and "500 Internal Server Error" in await response.text()
    assert page.calls == [(500, *HTTP_WORDS[500])]
    assert "GET /bug failed" in caplog.text and "RuntimeError: a bug" in caplog.text


async def test_a_broken_page_for_a_bug_falls_back_to_aiohttps_500() -> None:
    """When even the 500 page cannot be rendered, aiohttp's own 500 answers."""
    async with serve(make_error_middleware(page=broken_page)) as client:
        response = await client.get("/bug", headers={"Accept": BROWSER})
        assert response.status == 500 and "500 Internal Server Error" in await response.text()


async def test_refusals_are_logged_by_route_not_path(caplog: pytest.LogCaptureFixture) -> None:
    """The log names the route template, never the path (which can carry a signed token)."""
    caplog.set_level(logging.INFO, logger="ava_bot.http")
    async with serve() as client:
        await client.get("/refused/s3cret-token")
    assert "/refused/{token}" in caplog.text
    assert "s3cret-token" not in caplog.text
