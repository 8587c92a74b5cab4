"""HTTP plumbing shared by every route: the one middleware mapping `AvaError`s to responses.

An `AvaError` answers with its `http_status` and `public_message`: as the portal's HTML error page when the
request is a browser loading a page (its `Accept` ranks HTML above JSON) and the application renders pages,
else as JSON `{"error": message}`. aiohttp's own `web.HTTPException`s pass through untouched; any other
exception propagates (aiohttp answers 500 and Sentry sees it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Protocol

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from core.errors import AvaError
from portal.pages import render

logger = logging.getLogger(__name__)

#: Headers on every error answer.
PRIVATE_ERROR_HEADERS = {
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: Media ranges that match `application/json`, by specificity: the most specific one present sets its quality.
_JSON_RANGES = {"application/json": 2, "application/*": 1, "*/*": 0}


class PageRenderer(Protocol):
    """Renders the HTML page a browser gets for an `AvaError`."""

    def __call__(
        self, request: web.Request, *, status: int, title: str, message: str
    ) -> Awaitable[web.StreamResponse]: ...


def make_error_middleware(*, page: PageRenderer | None = None) -> Middleware:
    """The error middleware; with `page`, browser page requests get that HTML page instead of JSON."""

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise  # already a response (redirect, 404, CSRF refusal...): aiohttp sends it as is
        except AvaError as exc:
            return await _answer(request, exc, page)

    return error_middleware


#: The JSON-only error middleware (applications without portal pages).
error_middleware = make_error_middleware()


async def portal_error_page(request: web.Request, *, status: int, title: str, message: str) -> web.Response:
    """The portal's `error.html` with `status`, its CSP nonce and security headers (a `PageRenderer`)."""
    return await render(request, "error.html", {"title": title, "message": message}, status=status)


def prefers_html(accept: str) -> bool:
    """Whether an `Accept` header ranks an HTML page above JSON: a browser loading a page, not a script.

    HTML must be named explicitly (`*/*` alone is what scripts and `fetch()` send); a tie goes to HTML only
    when JSON is merely covered by a wildcard.
    """
    html_q = 0.0
    json_q, json_specificity = 0.0, -1
    for media_range in accept.split(","):
        media, _, params = media_range.partition(";")
        media = media.strip().lower()
        q = _quality(params)
        if media in _HTML_TYPES:
            html_q = max(html_q, q)
        specificity = _JSON_RANGES.get(media, -1)
        if specificity > json_specificity:
            json_q, json_specificity = q, specificity
    return html_q > 0 and (
        html_q > json_q or (html_q == json_q and json_specificity < _JSON_RANGES["application/json"])
    )


def _quality(params: str) -> float:
    """The `q` parameter of a media range (1 when absent, 0 when malformed)."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


async def _answer(request: web.Request, exc: AvaError, page: PageRenderer | None) -> web.StreamResponse:
    status = exc.http_status
    # The route's template, not the path: paths can carry signed tokens (magic sign-in links).
    route = _route(request)
    if status >= 500:
        logger.error("%s %s failed with %d", request.method, route, status, exc_info=exc)
    else:
        logger.info("%s %s refused with %d: %s", request.method, route, status, exc)
    response: web.StreamResponse | None = None
    if page is None:
        response = web.json_response({"error": exc.public_message}, status=status)
        response.headers.update(PRIVATE_ERROR_HEADERS)
        return response
    if prefers_html(request.headers.get(hdrs.ACCEPT, "")):
        try:
            response = await page(request, status=status, title=exc.public_title, message=exc.public_message)
        except Exception:
            # A broken error page must not turn a 403 into a 500: log it (Sentry sees it) and answer JSON.
            logger.exception("error page for %s %s could not be rendered", request.method, route)
    if response is None:
        response = web.json_response({"error": exc.public_message}, status=status)
    response.headers[hdrs.VARY] = hdrs.ACCEPT
    # Error answers are private and never cached; the URL (it may carry a signed token) never leaks onwards.
    response.headers.update(PRIVATE_ERROR_HEADERS)
    return response


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path
