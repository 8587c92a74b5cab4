"""Building the pywa client: `server=None` (our own aiohttp routes), signature checks on, Graph API base URL settable.

pywa hard-codes ``https://graph.facebook.com`` as the session's base URL, so `WHATSAPP_API_BASE_URL` (a fake in
tests, a proxy for self-hosters) is honoured by rewriting each request's scheme, host, port and path prefix in
the HTTP layer: a `GraphRedirectTransport` for the session we build, a request hook for one the caller passes.
"""

from __future__ import annotations

import httpx
from pywa_async.client import WhatsApp

#: The Graph API pywa talks to.
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
#: Graph API calls are small; a slow one is better retried later than waited for.
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


def redirect_url(url: httpx.URL, base_url: str) -> httpx.URL:
    """`url` (on graph.facebook.com) moved onto `base_url`, keeping its path (after `base_url`'s own path) and query."""
    base = httpx.URL(base_url)
    prefix = base.raw_path.rstrip(b"/")
    return url.copy_with(scheme=base.scheme, host=base.host, port=base.port, raw_path=prefix + url.raw_path)


def _needs_redirect(base_url: str) -> bool:
    return base_url.rstrip("/") != DEFAULT_GRAPH_URL


def _rewrite(request: httpx.Request, base_url: str) -> None:
    request.url = redirect_url(request.url, base_url)
    request.headers["Host"] = request.url.netloc.decode("ascii")


class GraphRedirectTransport(httpx.AsyncBaseTransport):
    """An httpx transport that sends Graph API requests to `base_url` instead of graph.facebook.com."""

    def __init__(self, base_url: str, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._base_url = base_url
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Rewrite the request's URL onto the base URL, then send it."""
        _rewrite(request, self._base_url)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def graph_session(base_url: str = DEFAULT_GRAPH_URL, *, timeout: httpx.Timeout = DEFAULT_TIMEOUT) -> httpx.AsyncClient:
    """A fresh httpx client for one `WhatsApp` instance, reaching the Graph API at `base_url`."""
    transport = GraphRedirectTransport(base_url) if _needs_redirect(base_url) else None
    return httpx.AsyncClient(transport=transport, timeout=timeout)


def build_whatsapp(
    *,
    phone_id: str,
    token: str,
    app_secret: str,
    verify_token: str,
    base_url: str = DEFAULT_GRAPH_URL,
    session: httpx.AsyncClient | None = None,
) -> WhatsApp:
    """The pywa client of our business number: no pywa server, updates signature-checked with `app_secret`.

    `session` must serve no other `WhatsApp` (pywa stores the token in its headers). pywa has no close method: to
    close the connections on shutdown, pass a session (e.g. from `graph_session`) and `aclose()` it yourself.
    """
    if not (phone_id and token and app_secret and verify_token):
        # Without an app secret pywa would accept unsigned updates; without a verify token any challenge passes.
        raise ValueError("WhatsApp needs a phone id, a token, an app secret and a verify token")
    if session is None:
        session = graph_session(base_url)
    elif _needs_redirect(base_url):

        async def to_base_url(request: httpx.Request) -> None:
            _rewrite(request, base_url)

        session.event_hooks["request"] = [*session.event_hooks["request"], to_base_url]
    return WhatsApp(
        phone_id=phone_id,
        token=token,
        session=session,
        server=None,
        verify_token=verify_token,
        app_secret=app_secret,
        validate_updates=True,
        filter_updates=False,
    )
