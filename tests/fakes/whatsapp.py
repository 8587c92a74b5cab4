"""A fake WhatsApp Cloud (Graph) API: `POST /{version}/{phone_id}/messages`, reached by real pywa.

It answers like Graph (`{"messaging_product", "contacts", "messages": [{"id": "wamid..."}]}`), refuses what
Graph refuses (over-long texts, bodies, button / row / list / CTA titles, too many buttons or rows) with Graph's
error shape, records every message sent (text, interactive button / list / cta_url, image, ...) and every typing
indicator, and fails the next sends on request (`fail_next`) with any Graph error code.

    async with FakeGraph() as graph:
        wa = build_whatsapp(..., base_url=graph.url)
        ...
        assert graph.kinds() == ["text", "button"]
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import MATCH, FakeServer

MESSAGES_PATH = "/{version}/{phone_id}/messages"
#: The business phone number id of the recorded payloads (`tests/payloads/whatsapp`).
PHONE_ID = "106540352242922"


def sign(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header Meta sends with `body`: HMAC-SHA256 with the app secret."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class SentMessage:
    """One message Graph accepted."""

    wamid: str
    phone_id: str
    to: str
    type: str
    #: The type-specific object (`text`, `interactive`, `image`, ...) as sent.
    content: dict[str, Any]

    @property
    def kind(self) -> str:
        """ "text", "image", ... or the interactive type: "button", "list", "cta_url"."""
        return str(self.content.get("type")) if self.type == "interactive" else self.type

    @property
    def body(self) -> str:
        """The text shown: a text message's body or an interactive message's body text."""
        if self.type == "text":
            return str(self.content["body"])
        return str(self.content.get("body", {}).get("text", ""))


@dataclass
class PlannedError:
    """A Graph error to answer the next send with."""

    code: int
    message: str
    status: int = 400
    details: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Sends to let through before this error.
    skip: int = 0


def graph_error(code: int, message: str, *, details: str | None = None, status: int = 400) -> web.Response:
    """A Graph API error response."""
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": f"A{uuid.uuid4().hex[:22]}",
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return web.json_response({"error": error}, status=status)


def _too_long(value: Any, limit: int) -> bool:
    return not isinstance(value, str) or not value or len(value) > limit


def invalid_message(body: dict[str, Any]) -> str | None:
    """Why Graph would refuse this message body (parameter 131009 / 100), or None."""
    kind = body.get("type")
    content = body.get(kind) if isinstance(kind, str) else None
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not (body.get("to") or body.get("recipient")):
        return "to or recipient is required"
    if not isinstance(content, dict):
        return f"missing object for type {kind!r}"
    if kind == "text":
        return "text.body is empty or longer than 4096" if _too_long(content.get("body"), 4096) else None
    if kind != "interactive":
        return None
    if _too_long(content.get("body", {}).get("text"), 1024):
        return "interactive body is empty or longer than 1024"
    action = content.get("action", {})
    match content.get("type"):
        case "button":
            buttons = action.get("buttons", [])
            if not 1 <= len(buttons) <= 3:
                return "1 to 3 reply buttons"
            if any(_too_long(b["reply"]["title"], 20) or _too_long(b["reply"]["id"], 256) for b in buttons):
                return "button title longer than 20 (or id longer than 256)"
        case "list":
            rows = [row for section in action.get("sections", []) for row in section.get("rows", [])]
            if _too_long(action.get("button"), 20):
                return "list button longer than 20"
            if not 1 <= len(rows) <= 10:
                return "1 to 10 rows"
            if any(_too_long(r["title"], 24) or len(r.get("description") or "") > 72 for r in rows):
                return "row title longer than 24 (or description longer than 72)"
            if any(_too_long(s.get("title"), 24) for s in action.get("sections", [])):
                return "section title empty or longer than 24"
        case "cta_url":
            parameters = action.get("parameters", {})
            if _too_long(parameters.get("display_text"), 20):
                return "cta_url display_text longer than 20"
            if not str(parameters.get("url", "")).startswith(("https://", "http://")):
                return "cta_url url must be a URL"
        case other:
            return f"unsupported interactive type {other!r}"
    return None


class FakeGraph(FakeServer):
    """Speaks the Cloud API messages endpoint (sending and typing indicators)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[SentMessage] = []
        #: Message ids a typing indicator was shown for.
        self.typing: list[str] = []
        self.errors: deque[PlannedError] = deque()
        self.handle("POST", MESSAGES_PATH, self._messages)

    def fail_next(
        self,
        code: int,
        message: str = "(#131000) Something went wrong",
        *,
        status: int = 400,
        details: str | None = None,
        headers: dict[str, str] | None = None,
        skip: int = 0,
    ) -> None:
        """Answer a coming message send (not a typing indicator) with this Graph error, after `skip` accepted ones."""
        self.errors.append(PlannedError(code, message, status, details, headers or {}, skip))

    def kinds(self) -> list[str]:
        """The kinds of the messages sent, in order ("text", "button", "list", "cta_url", "image", ...)."""
        return [m.kind for m in self.sent]

    async def _messages(self, request: web.Request) -> web.Response:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return graph_error(190, "Invalid OAuth access token.", status=401)
        body = await request.json()
        if body.get("status") == "read":  # mark as read, with or without a typing indicator
            if "typing_indicator" in body:
                self.typing.append(str(body.get("message_id")))
            return web.json_response({"success": True})
        if self.errors and self.errors[0].skip > 0:
            self.errors[0].skip -= 1
        elif self.errors:
            planned = self.errors.popleft()
            response = graph_error(planned.code, planned.message, details=planned.details, status=planned.status)
            response.headers.update(planned.headers)
            return response
        problem = invalid_message(body)
        if problem is not None:
            return graph_error(131009, "(#131009) Parameter value is not valid", details=problem)
        wamid = f"wamid.{uuid.uuid4().hex}"
        to = str(body.get("to") or body.get("recipient"))
        self.sent.append(SentMessage(wamid, request[MATCH]["phone_id"], to, body["type"], body[body["type"]]))
        contact = {"input": to, "wa_id": to} if body.get("to") else {"input": to, "user_id": to}
        return web.json_response({"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]})
