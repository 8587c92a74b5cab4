"""A fake Telegram Bot API server that the real python-telegram-bot `Bot` talks to over HTTP.

It speaks `POST /bot{token}/{method}` (form-encoded as PTB sends it, or JSON; `reply_markup` and other
structured fields as JSON strings) and answers `{"ok": true, "result": ...}` with realistic results for the
methods Ava uses. It checks what Telegram checks on `sendMessage` (empty or too long text, callback data of
1-64 bytes, URL buttons only to public http(s) hosts), records every call (`calls`) with its arrival time,
and serves queued errors (`flood`, `block`, `chat_not_found`, `refuse_url`, `fail`) in Telegram's shape.

    async with FakeTelegram() as fake:
        bot = build_bot(fake.token, fake.url)
        fake.flood(retry_after=2)
        ... await bot.send_message(...) raises RetryAfter ...
        assert fake.calls_to("sendMessage")[0].params["text"] == "hi"
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from tests.fakes.server import MATCH, FakeServer

TOKEN = "8011223344:AAFakeTokenForTestsOnly-0123456789ab"
BOT_USER = {
    "id": 8011223344,
    "is_bot": True,
    "first_name": "Ava",
    "username": "ava_companion_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
#: Parameters PTB sends as JSON strings; decoded in `BotCall.params`.
JSON_PARAMS = frozenset(
    {"reply_markup", "allowed_updates", "commands", "link_preview_options", "entities", "reply_parameters", "scope"}
)
_TRUE_METHODS = frozenset(
    {
        "sendChatAction",
        "answerCallbackQuery",
        "setWebhook",
        "deleteWebhook",
        "setMyCommands",
        "deleteMyCommands",
        "editMessageReplyMarkup",
    }
)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "0.0.0.0", "::1"})


@dataclass
class BotCall:
    """One Bot API call: the method, its parameters (JSON fields decoded) and when it arrived (monotonic)."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass
class _Failure:
    status: int
    description: str
    parameters: dict[str, Any] | None = None
    #: Calls of the method still answered normally before this failure.
    after: int = 0


class FakeTelegram(FakeServer):
    """The Bot API for one bot token."""

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.calls: list[BotCall] = []
        self._failures: dict[str, deque[_Failure]] = defaultdict(deque)
        self._next_message_id: dict[str, int] = defaultdict(lambda: 100)
        self._delays: dict[str, float] = {}
        #: Updates waiting for `getUpdates`.
        self.updates: list[dict[str, Any]] = []
        self.handle("POST", f"/bot{self.token}/{{method}}", self._method)

    # --- scripting ------------------------------------------------------------------------------------------

    def fail(
        self, status: int, description: str, *, method: str = "sendMessage", after: int = 0, **parameters: Any
    ) -> None:
        """A coming call of `method` answers this error: the next one, or the one after `after` more successes.

        `parameters` (such as retry_after) go into the error body's `parameters`.
        """
        self._failures[method].append(_Failure(status, description, parameters or None, after))

    def flood(self, retry_after: int = 2, *, method: str = "sendMessage", after: int = 0) -> None:
        """A coming call of `method` hits flood control (429 with retry_after)."""
        self.fail(
            429, f"Too Many Requests: retry after {retry_after}", method=method, after=after, retry_after=retry_after
        )

    def block(self, *, method: str = "sendMessage") -> None:
        """The next call of `method` finds the bot blocked by the user (403)."""
        self.fail(403, "Forbidden: bot was blocked by the user", method=method)

    def chat_not_found(self, *, method: str = "sendMessage") -> None:
        """The next call of `method` names a chat Telegram does not know (400)."""
        self.fail(400, "Bad Request: chat not found", method=method)

    def refuse_url(self, *, method: str = "sendMessage") -> None:
        """The next call of `method` is refused for its button URL (400), whatever the URL."""
        self.fail(400, "Bad Request: wrong HTTP URL", method=method)

    def slow(self, method: str, seconds: float) -> None:
        """Answer every call of `method` only after `seconds`."""
        self._delays[method] = seconds

    # --- inspection -----------------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[BotCall]:
        """The recorded calls of `method`, in order."""
        return [call for call in self.calls if call.method == method]

    def sent_texts(self) -> list[str]:
        """Texts of the `sendMessage` calls received (refused ones included)."""
        return [str(call.params.get("text")) for call in self.calls_to("sendMessage")]

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    # --- the API --------------------------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        method = request[MATCH]["method"]
        params = _params(await request.read(), request.content_type)  # aiohttp caches the body
        self.calls.append(BotCall(method, params, time.monotonic()))
        if method in self._delays:
            await asyncio.sleep(self._delays[method])
        failures = self._failures.get(method)
        if failures and failures[0].after > 0:
            failures[0].after -= 1
        elif failures:
            failure = failures.popleft()
            return _error(failure.status, failure.description, failure.parameters)
        if method == "getMe":
            return _ok(BOT_USER)
        if method == "sendMessage":
            return self._send_message(params)
        if method in _TRUE_METHODS:
            return _ok(True)
        if method == "getUpdates":
            return await self._get_updates(params)
        if method == "getWebhookInfo":
            return _ok({"url": "", "has_custom_certificate": False, "pending_update_count": 0})
        return _error(404, "Not Found")

    def push_update(self, update: dict[str, Any]) -> None:
        """Make an update available to `getUpdates` (long polling)."""
        self.updates.append(update)

    async def _get_updates(self, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        # Like Telegram: an offset confirms every update before it.
        self.updates = [u for u in self.updates if int(u["update_id"]) >= offset]
        if not self.updates:
            await asyncio.sleep(min(float(params.get("timeout") or 0), 0.2))  # a short "long poll"
        return _ok(list(self.updates))

    def _send_message(self, params: dict[str, Any]) -> web.Response:
        chat_id = str(params.get("chat_id", ""))
        text = params.get("text")
        if not chat_id.lstrip("-").isdigit():
            return _error(400, "Bad Request: chat not found")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        problem = _keyboard_problem(markup)
        if problem:
            return _error(400, problem)
        self._next_message_id[chat_id] += 1
        message: dict[str, Any] = {
            "message_id": self._next_message_id[chat_id],
            "from": {k: BOT_USER[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": {"id": int(chat_id), "first_name": "Mara", "type": "private"},
            "date": int(time.time()),
            "text": text,
        }
        if markup is not None:
            message["reply_markup"] = markup
        return _ok(message)


def _params(body: bytes, content_type: str) -> dict[str, Any]:
    if content_type == "application/json":
        raw: dict[str, Any] = json.loads(body) if body else {}
    else:
        raw = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
    return {k: json.loads(v) if k in JSON_PARAMS and isinstance(v, str) else v for k, v in raw.items()}


def _keyboard_problem(markup: Any) -> str | None:
    """What Telegram would say about an inline keyboard, or None when it takes it."""
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list):
        return "Bad Request: can't parse reply keyboard markup JSON object"
    for row in rows:
        for button in row:
            if not button.get("text"):
                return "Bad Request: text buttons are unallowed in the inline keyboard"
            if "callback_data" in button and not 1 <= len(str(button["callback_data"]).encode()) <= 64:
                return "Bad Request: BUTTON_DATA_INVALID"
            if "url" in button:
                parts = urlsplit(str(button["url"]))
                host = (parts.hostname or "").lower()
                if parts.scheme not in ("http", "https", "tg") or host in _LOCAL_HOSTS or "." not in host:
                    return "Bad Request: wrong HTTP URL"
    return None


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
