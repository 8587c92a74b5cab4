"""Delete my data: `GET /account/delete` (what goes, type DELETE to confirm), `POST /account/delete`, and the
page that says it is done (`GET /account/deleted`).

The work is the `AccountEraser` port's (`portal.ports`, implemented in `ava_bot.erasure`): cancel the
subscription, erase photo files, pseudonymise audit rows, delete the user with everything hanging off it. The
portal then ends the session; every other session and every photo link of the account die with the user row.
A failure part-way keeps the session, so the user can simply confirm again (erasure finishes on a second run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from core.errors import AvaError
from portal.csrf import require_csrf
from portal.errors import ErasureIncomplete
from portal.pages import render
from portal.paths import sign_in_first
from portal.ports import AccountEraser
from portal.sessions import current_user, end_session

logger = logging.getLogger(__name__)

#: What the user types to confirm (the account's email works too).
CONFIRM_WORD = "DELETE"
_MAX_CONFIRM_CHARS = 300


def confirmed(typed: object, email: str | None) -> bool:
    """Whether `typed` is DELETE or the account's email (surrounding spaces and letter case ignored)."""
    if not isinstance(typed, str) or len(typed) > _MAX_CONFIRM_CHARS:
        return False
    typed = typed.strip().lower()
    return typed == CONFIRM_WORD.lower() or (email is not None and typed == email.lower())


def setup_erasure(app: web.Application, *, eraser: Callable[[], AccountEraser]) -> None:
    """Register the delete-my-data pages on `app`; `eraser` returns the `AccountEraser` (built at start-up)."""

    async def confirm_page(request: web.Request) -> web.Response:
        """What will be erased, and the confirmation form."""
        user = await current_user(request)
        if user is None:
            raise sign_in_first(request)
        return await render(request, "delete.html", {"has_email": user.email is not None})

    async def erase(request: web.Request) -> web.Response:
        """Erase the signed-in account once confirmed, end the session, show the goodbye page."""
        user = await current_user(request)
        if user is None:
            raise sign_in_first(request)
        form = await request.post()
        await require_csrf(request, form)
        if not confirmed(form.get("confirm"), user.email):
            context = {"has_email": user.email is not None, "error": f"Type {CONFIRM_WORD} to confirm."}
            return await render(request, "delete.html", context, status=400)
        try:
            await eraser().erase(user.id)
        except AvaError as exc:
            logger.exception("erasure of user %s did not finish", user.id)
            raise ErasureIncomplete(f"erasure of user {user.id}: {type(exc).__name__}") from exc
        logger.info("user %s erased their account", user.id)
        await end_session(request)
        raise web.HTTPSeeOther("/account/deleted")

    async def deleted_page(request: web.Request) -> web.Response:
        """The confirmation that the data is gone."""
        return await render(request, "deleted.html", {})

    app.router.add_get("/account/delete", confirm_page)
    app.router.add_post("/account/delete", erase)
    app.router.add_get("/account/deleted", deleted_page)
