"""HTTP plumbing shared by every route: the one middleware mapping errors to responses.

An `AvaError` answers with its `http_status` and `public_message`: as the portal's HTML error page when the
request is a browser loading a page (its `Accept` ranks HTML above JSON) and the application renders pages,
else as JSON `{"error": message}`. aiohttp's own error responses (a `web.HTTPException` with a 4xx/5xx status:
an unknown path's 404, a CSRF refusal's 403) get the same styled page for such a browser, keeping their status,
and pass through untouched for everyone else; redirects always pass through. Any other exception is a bug: it is
logged (Sentry sees the record) and such a browser gets the styled 500 page; other clients get aiohttp's 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable
from typing import Protocol

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
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
#: What the error page says for aiohttp's own error responses (title, message), by status.
HTTP_WORDS = {
    400: ("Something's not right", "That request could not be understood. Go back and try again."),
    403: ("Not allowed", "You cannot open this page."),
    404: ("Page not found", "There is nothing here. The link may be old or mistyped."),
    405: ("Not allowed", "This page cannot be used like that."),
    413: ("Too large", "That was too large to send."),
    500: ("Something went wrong", "Sorry, that is on our side. Try again in a moment."),
}
_OTHER_WORDS = ("Something went wrong", "This page cannot be shown right now.")
#: Headers of an aiohttp error response the styled page keeps (what to retry, which methods are allowed).
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.RETRY_AFTER)
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
        except web.HTTPException as exc:
            # Already a response (redirect, 404, CSRF refusal...): sent as is, except an error to a browser.
            if exc.status < 400 or page is None or not prefers_html(request.headers.get(hdrs.ACCEPT, "")):
                raise
            styled = await _styled(request, page, exc.status, *_http_words(exc))
            if styled is None:
                raise
            for name in _KEPT_HEADERS:
                if name in exc.headers:
                    styled.headers[name] = exc.headers[name]
            return styled
        except AvaError as exc:
            return await _answer(request, exc, page)
        except Exception:
            if page is None or not prefers_html(request.headers.get(hdrs.ACCEPT, "")):
                raise  # aiohttp answers its own 500 and logs it
            logger.exception("%s %s failed", request.method, _route(request))
            styled = await _styled(request, page, 500, *HTTP_WORDS[500])
            if styled is None:
                raise
            return styled

    return error_middleware


#: The JSON-only error middleware (applications without portal pages).
error_middleware = make_error_middleware()

#: Largest body of a platform webhook (Meta sends WhatsApp batches of up to 3 MB); also the app's `client_max_size`.
WEBHOOK_MAX_BYTES = 3 * 1024**2
#: Largest body of every other route: portal forms and chat JSON (a 4,000-character message, escaped, fits).
FORM_MAX_BYTES = 64 * 1024
WEBHOOK_PATHS = frozenset({"/webhooks/telegram", "/webhooks/whatsapp", "/billing/webhook"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


@web.middleware
async def body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse an oversized body with 413 before reading it, and an unreadable one with 400, never a 500.

    A declared `Content-Length` over the route's limit is refused at once; a chunked body stops at the limit
    while it is read. Forms are decoded here, once (handlers get aiohttp's cached result), so a non-UTF-8, wrongly
    declared or broken multipart body is a 400 on every form route. Webhook bodies are left raw for their
    signature checks. A `RecursionError` is how the JSON decoder refuses deeply nested input: a 400 too.
    """
    webhook = request.path in WEBHOOK_PATHS
    limit = WEBHOOK_MAX_BYTES if webhook else FORM_MAX_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    # aiohttp sets the read limit per application only; `clone(client_max_size=...)` would hide what inner
    # middlewares store on the request (the session) from the error middleware's page, so it is set in place.
    request._client_max_size = limit
    if request.method == hdrs.METH_POST and not webhook and request.content_type in _FORM_TYPES:
        try:
            await request.post()
        except (ValueError, LookupError, AssertionError, HttpProcessingError) as exc:  # decoding and multipart
            logger.info("%s %s: unreadable form body: %s", request.method, _route(request), type(exc).__name__)
            raise bad_body("The form could not be read.") from None
    try:
        return await handler(request)
    except RecursionError:
        logger.info("%s %s: body nested too deeply", request.method, _route(request))
        raise bad_body("The body is nested too deeply.") from None


def bad_body(message: str) -> web.HTTPBadRequest:
    """A 400 whose JSON body says `message` (the error page shows it to a browser)."""
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def portal_error_page(request: web.Request, *, status: int, title: str, message: str) -> web.Response:
    """The portal's `error.html` with `status`, its CSP nonce and security headers (a `PageRenderer`)."""
    return await render(request, "error.html", {"title": title, "message": message, "status": status}, status=status)


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
    if page is not None and prefers_html(request.headers.get(hdrs.ACCEPT, "")):
        # A broken error page must not turn a 403 into a 500: `_styled` logs it, and JSON answers instead.
        response = await _styled(request, page, status, exc.public_title, exc.public_message)
    if response is None:
        response = web.json_response({"error": exc.public_message}, status=status)
        if page is not None:
            response.headers[hdrs.VARY] = hdrs.ACCEPT
        # Error answers are private and never cached; the URL (it may carry a signed token) never leaks onwards.
        response.headers.update(PRIVATE_ERROR_HEADERS)
    return response


def _http_words(exc: web.HTTPException) -> tuple[str, str]:
    """Title and message for an aiohttp error response: a JSON body's `error` is the message when present."""
    title, message = HTTP_WORDS.get(exc.status, _OTHER_WORDS)
    if exc.content_type == "application/json" and isinstance(exc.text, str):
        try:
            body = json.loads(exc.text)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]:
            message = body["error"]
    return title, message


async def _styled(
    request: web.Request, page: PageRenderer, status: int, title: str, message: str
) -> web.StreamResponse | None:
    """The styled page for an error, private and never cached; None when the page itself cannot be rendered."""
    try:
        response = await page(request, status=status, title=title, message=message)
    except Exception:
        logger.exception("error page for %s %s could not be rendered", request.method, _route(request))
        return None
    response.headers[hdrs.VARY] = hdrs.ACCEPT
    response.headers.update(PRIVATE_ERROR_HEADERS)
    return response


def _route(request: web.Request) -> str:
    """The route's template (paths can carry signed tokens: never log them)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path
