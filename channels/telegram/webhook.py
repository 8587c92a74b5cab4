"""The Telegram webhook route: verify the secret token, parse, store through the `Inbox`, answer 200 at once.

Order of work for `POST /webhooks/telegram`:

1. `X-Telegram-Bot-Api-Secret-Token` must equal the configured secret (constant-time compare) before anything
   else is read: otherwise 401 and nothing is stored.
2. The body must be a JSON object (else 400).
3. `my_chat_member` updates of private chats call `on_blocked(ref, blocked)` (the user blocked / unblocked Ava).
4. A text message or a button press is stored idempotently (`Inbox.receive`, which also schedules the turn).
   If storing fails (database down) the answer is 503, so Telegram delivers the update again later.
5. Button presses are answered (`answerCallbackQuery`, stops the client's spinner) in a background task after
   the update is stored, so the 200 never waits for the Bot API. Private messages without text (stickers,
   photos, voice) get a short "I can only read text" reply the same way.

Every other update (edits, groups, channel posts, malformed ones) is logged and acknowledged with 200: an
error status would make Telegram redeliver it for hours. Message texts are never logged.

Like `channels.web`, the route takes what it needs as arguments (wired in `ava_bot.app`): no portal or
`ava_bot` imports here.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from telegram import Bot
from telegram.error import TelegramError

from channels.background import BackgroundCalls
from channels.telegram.bot import check_webhook_secret
from channels.telegram.parse import parse_blocked_update, parse_update, unreadable_private_message
from core.inbox import Inbox
from core.messages import ChatRef

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
#: Default answer to a private message Ava cannot read (None in `setup_telegram_webhook` turns it off).
UNREADABLE_REPLY = "Sorry, I can only read text messages. Could you write it down for me?"
#: How long shutdown waits for background Bot API calls (callback answers, notices) to finish.
_SHUTDOWN_GRACE = 5.0

#: Told when a user blocks (True) or unblocks (False) the bot in their private chat.
OnBlocked = Callable[[ChatRef, bool], Awaitable[None]]


@dataclass(slots=True)
class TelegramWebhook:
    """What the webhook route needs, held on the application under `TELEGRAM_WEBHOOK`."""

    secret: bytes
    inbox: Callable[[], Inbox]
    bot: Callable[[], Bot]
    on_blocked: OnBlocked
    unreadable_reply: str | None = UNREADABLE_REPLY
    #: Bot API calls answered in the background (callback answers, polite lines, keyboard removal).
    background: BackgroundCalls = field(default_factory=BackgroundCalls)


TELEGRAM_WEBHOOK = web.AppKey("ava_telegram_webhook", TelegramWebhook)


def setup_telegram_webhook(
    app: web.Application,
    *,
    path: str = "/webhooks/telegram",
    secret: str,
    inbox: Callable[[], Inbox] | Inbox,
    bot: Callable[[], Bot] | Bot,
    on_blocked: OnBlocked,
    unreadable_reply: str | None = UNREADABLE_REPLY,
) -> None:
    """Register `POST path` for Telegram updates on `app`.

    `inbox` and `bot` may be zero-argument callables when they are opened later, in a `cleanup_ctx`.
    """
    deps = TelegramWebhook(
        secret=check_webhook_secret(secret).encode(),
        inbox=(lambda: inbox) if isinstance(inbox, Inbox) else inbox,
        bot=(lambda: bot) if isinstance(bot, Bot) else bot,
        on_blocked=on_blocked,
        unreadable_reply=unreadable_reply,
    )
    app[TELEGRAM_WEBHOOK] = deps

    async def finish_background_calls(app: web.Application) -> None:
        # on_shutdown runs before cleanup_ctx closes the bot: let answers in flight complete first.
        await deps.background.finish(_SHUTDOWN_GRACE)

    app.on_shutdown.append(finish_background_calls)
    app.router.add_post(path, telegram_webhook)


def _status(status: int, message: str) -> web.Response:
    return web.json_response({"ok": status == 200, "error": message} if message else {"ok": True}, status=status)


async def telegram_webhook(request: web.Request) -> web.Response:
    """Verify, parse, store and acknowledge one Telegram update (see the module docstring)."""
    deps = request.app[TELEGRAM_WEBHOOK]
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), deps.secret):
        logger.warning("telegram webhook call refused: missing or wrong secret token")
        return _status(401, "unauthorized")
    try:
        payload = json.loads(await request.read())
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return _status(400, "the body is not JSON")
    if not isinstance(payload, dict):
        return _status(400, "expected a JSON object")
    status = await handle_update(deps, payload)
    return _status(status, "" if status == 200 else "temporarily unavailable")


async def handle_update(deps: TelegramWebhook, payload: Mapping[str, Any]) -> int:
    """Parse, store and acknowledge one verified update (webhook or polling); the HTTP status to answer."""
    update_id = payload.get("update_id")
    try:
        blocked = parse_blocked_update(payload)
        msg = parse_update(payload)
        unreadable = unreadable_private_message(payload) if msg is None else None
    except Exception:  # parsing is total by design; a bug here must still not make Telegram redeliver forever
        logger.exception("telegram update %s could not be parsed; ignored", update_id)
        return 200

    if blocked is not None:
        ref, is_blocked = blocked
        try:
            await deps.on_blocked(ref, is_blocked)
        except Exception:
            logger.exception("recording telegram (un)block of update %s failed; Telegram will redeliver", update_id)
            return 503
    if msg is not None:
        try:
            await deps.inbox().receive(msg)
        except Exception:
            logger.exception("storing telegram update %s failed; Telegram will redeliver", update_id)
            return 503
    elif blocked is None:
        logger.debug("telegram update %s ignored (%s)", update_id, _kind(payload))

    query_id = _callback_query_id(payload)
    if query_id is not None:
        deps.background.spawn(_answer_callback_query(deps.bot(), query_id))
        if msg is not None and msg.choice is not None:
            keyboard = msg.raw.get("message_id")
            if isinstance(keyboard, int):  # that question is answered (or has passed): its buttons go
                deps.background.spawn(_remove_keyboard(deps.bot(), msg.ref.chat_id, keyboard))
    if unreadable is not None and deps.unreadable_reply:
        deps.background.spawn(_say(deps.bot(), unreadable, deps.unreadable_reply))
    return 200


def _kind(payload: Mapping[str, Any]) -> str:
    return next((key for key in payload if key != "update_id"), "empty")


def _callback_query_id(payload: Mapping[str, Any]) -> str | None:
    query = payload.get("callback_query")
    query_id = query.get("id") if isinstance(query, Mapping) else None
    return query_id if isinstance(query_id, str) and query_id else None


async def _remove_keyboard(bot: Bot, chat_id: str, message_id: int) -> None:
    """Remove the inline keyboard of a pressed message, so an old question cannot be answered twice."""
    try:
        await bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id, reply_markup=None)
    except TelegramError as exc:  # already removed, too old to edit: the core refuses a passed press anyway
        logger.info("removing a telegram keyboard failed: %s", exc)
    except Exception:
        logger.exception("removing a telegram keyboard failed")


async def _answer_callback_query(bot: Bot, query_id: str) -> None:
    try:
        await bot.answer_callback_query(query_id)
    except TelegramError as exc:  # e.g. "query is too old" after a redelivery: the spinner stopped anyway
        logger.info("answering a telegram callback query failed: %s", exc)
    except Exception:
        logger.exception("answering a telegram callback query failed")


async def _say(bot: Bot, ref: ChatRef, text: str) -> None:
    try:
        await bot.send_message(chat_id=ref.chat_id, text=text)
    except Exception as exc:  # a courtesy notice: never worth more than a log line
        logger.info("telegram notice to a chat failed: %s", exc)
