"""The WhatsApp Cloud API webhook: `GET` answers Meta's verification challenge, `POST` takes updates.

POST, in this order: verify `X-Hub-Signature-256` over the raw body (pywa's validator, HMAC-SHA256 with the app
secret) before anything else is read; parse; store every user message through the `Inbox` (idempotent on the
wamid, so Meta's redeliveries do nothing) and pass every status callback to `on_status`; answer. Each message of
a batch is handled on its own, so one failure never loses the others.

Answers: 200 when everything was handled (also for updates we ignore); 401/403 for a missing/bad signature; 400
for a body that is not a JSON object; 503 when the database or Redis failed for any item, so Meta redelivers the
batch (the stored items are then duplicates and ignored; `on_status` must be idempotent). A message the database
refuses as data (a poison message) is logged and acknowledged: redelivering it could never succeed.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pywa_async.client import WhatsApp
from tortoise.exceptions import OperationalError, ValidationError

from channels.background import BackgroundCalls
from channels.whatsapp.channel import WhatsAppChannel
from channels.whatsapp.parse import parse_statuses, parse_webhook, unreadable_senders
from core.inbox import Inbox

logger = logging.getLogger(__name__)

#: Called with (wamid, status, first error code or None) for each status callback of an outbound message.
StatusHandler = Callable[[str, str, str | None], Awaitable[None]]
SIGNATURE_HEADER = "X-Hub-Signature-256"


@dataclass(frozen=True, slots=True)
class WhatsAppWebhook:
    """What the webhook routes need, held on the application under `WHATSAPP_WEBHOOK`."""

    wa: Callable[[], WhatsApp]
    verify_token: str
    inbox: Callable[[], Inbox]
    on_status: StatusHandler | None
    channel: WhatsAppChannel | None
    #: Graph calls made in the background (polite lines).
    background: BackgroundCalls = field(default_factory=BackgroundCalls)


#: Seconds shutdown waits for background Graph calls.
_SHUTDOWN_GRACE = 2.0
WHATSAPP_WEBHOOK = web.AppKey("ava_whatsapp_webhook", WhatsAppWebhook)


def setup_whatsapp_webhook(
    app: web.Application,
    *,
    path: str = "/webhooks/whatsapp",
    wa: WhatsApp | Callable[[], WhatsApp],
    verify_token: str,
    inbox: Inbox | Callable[[], Inbox],
    on_status: StatusHandler | None = None,
    channel: WhatsAppChannel | None = None,
) -> None:
    """Register `GET` and `POST` `path` on `app`.

    `wa` (used to verify signatures: build it with `build_whatsapp`) and `inbox` may be zero-argument callables
    when they are created later, in a `cleanup_ctx`. `channel` is told each sender's latest wamid (typing).
    """
    app[WHATSAPP_WEBHOOK] = WhatsAppWebhook(
        wa=(lambda: wa) if isinstance(wa, WhatsApp) else wa,
        verify_token=verify_token,
        inbox=(lambda: inbox) if isinstance(inbox, Inbox) else inbox,
        on_status=on_status,
        channel=channel,
    )
    deps = app[WHATSAPP_WEBHOOK]

    async def finish_background_calls(app: web.Application) -> None:
        await deps.background.finish(_SHUTDOWN_GRACE)

    app.on_shutdown.append(finish_background_calls)
    app.router.add_get(path, verify_challenge)
    app.router.add_post(path, receive_update)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def verify_challenge(request: web.Request) -> web.Response:
    """Echo `hub.challenge` when `hub.mode` is subscribe and `hub.verify_token` is ours; else 403."""
    deps = request.app[WHATSAPP_WEBHOOK]
    mode = request.query.get("hub.mode")
    token = request.query.get("hub.verify_token")
    challenge = request.query.get("hub.challenge")
    # Compare even when the mode is wrong, so the answer time does not tell which check failed.
    token_ok = bool(deps.verify_token) and token is not None and _same(token, deps.verify_token)
    if mode != "subscribe" or not token_ok or challenge is None:
        logger.warning("WhatsApp webhook verification refused")
        return web.Response(status=403, text="Forbidden")
    return web.Response(text=challenge)


async def _signature_problem(wa: WhatsApp, raw: bytes, signature: str | None) -> int | None:
    """None when the body is signed with our app secret, else the status to answer (fails closed)."""
    if not signature:
        return 401
    try:
        problem = await wa.webhook_update_validator(raw, signature)
    except Exception:  # e.g. a client built without an app secret: refuse rather than accept unsigned updates
        logger.exception("WhatsApp signature check failed")
        return 403
    if problem is not None:
        return problem[1]
    # pywa skips the check when validation is off (`validate_updates=False` or no app secret): refuse then.
    if not getattr(wa, "_validate_updates", False):
        logger.error("WhatsApp client does not validate signatures: build it with build_whatsapp")
        return 403
    return None


def _poison(exc: Exception) -> bool:
    """Whether the database refused the data itself (retrying cannot help), not the connection."""
    # SQLSTATE class 22 is "data exception" (a value too long, a NUL byte in text, ...).
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    return isinstance(exc, ValidationError) or (
        isinstance(exc, OperationalError) and isinstance(sqlstate, str) and sqlstate.startswith("22")
    )


async def receive_update(request: web.Request) -> web.Response:
    """Verify the signature, then store the messages and pass on the statuses of one webhook body."""
    deps = request.app[WHATSAPP_WEBHOOK]
    raw = await request.read()
    try:
        wa = deps.wa()
    except Exception:  # the client is not built yet (startup) or failed to build: Meta retries later
        logger.exception("WhatsApp client unavailable")
        return web.Response(status=503, text="Try again later")
    status = await _signature_problem(wa, raw, request.headers.get(SIGNATURE_HEADER))
    if status is not None:
        logger.warning("WhatsApp update with a missing or bad signature refused (%s)", status)
        return web.Response(status=status, text="Unauthorized" if status == 401 else "Forbidden")
    try:
        payload: Any = json.loads(raw)
    except ValueError:  # UnicodeDecodeError is a ValueError too
        return web.Response(status=400, text="Body is not JSON")
    if not isinstance(payload, dict):
        return web.Response(status=400, text="Expected a JSON object")
    messages = parse_webhook(payload)
    statuses = parse_statuses(payload)
    unavailable = False
    for msg in messages:
        if deps.channel is not None and isinstance(wamid := msg.raw.get("wamid"), str):
            deps.channel.note_inbound(msg.ref.chat_id, wamid)
        try:
            await deps.inbox().receive(msg)
        except Exception as exc:
            if _poison(exc):
                logger.error("WhatsApp message %s refused by the database, dropped: %s", msg.message_id, exc)
            else:
                unavailable = True
                logger.exception("WhatsApp message %s not stored; Meta will redeliver", msg.message_id)
    if deps.on_status is not None:
        for wamid, state, error_code in statuses:
            try:
                await deps.on_status(wamid, state, error_code)
            except Exception:
                unavailable = True
                logger.exception("WhatsApp status %s of %s not recorded; Meta will redeliver", state, wamid)
    if unavailable:
        return web.Response(status=503, text="Try again later")
    for chat_id in unreadable_senders(payload):
        deps.background.spawn(_say_unreadable(wa, chat_id))
    return web.Response(text="ok")


#: The polite line for media, stickers, locations...
UNREADABLE_REPLY = "I can only read text messages for now 🙂 Write me in words?"


async def _say_unreadable(wa: WhatsApp, chat_id: str) -> None:
    try:
        await wa.send_message(to=chat_id, text=UNREADABLE_REPLY)
    except Exception as exc:  # best effort: the user can simply write again
        logger.info("polite WhatsApp reply to an unreadable message failed: %r", exc)
