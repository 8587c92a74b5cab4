"""HTTP plumbing shared by every route: the one middleware mapping `AvaError`s to responses."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from core.errors import AvaError

logger = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn an `AvaError` into a JSON error with its status; anything else propagates (Sentry sees it)."""
    try:
        return await handler(request)
    except AvaError as exc:
        if exc.http_status >= 500:
            logger.exception("request failed: %s %s", request.method, request.path)
        return web.json_response({"error": exc.public_message}, status=exc.http_status)
