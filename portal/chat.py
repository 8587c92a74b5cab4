"""The web channel's chat: the page, posting messages, and the live event stream (Server-Sent Events).

Inbound: `POST /chat/messages` turns a typed text or a pressed choice into an `InboundMessage` and hands
it to the same `Inbox` as every other channel. The browser generates `client_id`; it is the idempotency
key (scoped to the user), so a retried post is stored and processed once.

Outbound: the turn runner stores replies as rows; `GET /chat/events` streams this user's outbound web rows
newer than `Last-Event-ID` (or `?after=`), waking on Redis pokes from `channels.web.WebChannel` and
re-reading on every keepalive as a safety net.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp_session import get_session
from redis.exceptions import RedisError

from channels.web import WEB, events_channel, web_ref
from core.inbox import MAX_TEXT_CHARS
from core.messages import InboundMessage
from core.models import Direction, Message, User
from portal.auth import current_user_id
from portal.csrf import require_csrf
from portal.deps import portal
from portal.pages import bad_request, json_error, render, safe_href

logger = logging.getLogger(__name__)

#: How many recent messages the chat page shows.
HISTORY_LIMIT = 200
#: Longest pressed-choice data accepted (the column holds 128).
MAX_CHOICE_CHARS = 128
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_BATCH = 100

routes = web.RouteTableDef()


def message_event(row: Message, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON shape of one message for the page and the event stream: id, direction, text, payload.

    An inbound pressed choice shows the label of the button it came from when `labels` knows it. Photos point
    at `/photos/{id}` (served to the signed-in owner), unsafe link targets are dropped.
    """
    text = row.text
    if row.direction == Direction.INBOUND and not text and row.choice:
        text = (labels or {}).get(row.choice, row.choice)
    payload = row.payload
    if payload is not None and payload.get("type") == "link" and safe_href(payload.get("url")) is None:
        payload = {"type": "text", "text": payload.get("text", "")}
    if payload is not None and payload.get("type") == "photo" and isinstance(payload.get("photo_id"), int):
        # The chat is signed in, so show photos through the session route: the signed link in the stored
        # payload expires (old photos would break) and would put a bearer token into the page.
        payload = {**payload, "url": f"/photos/{payload['photo_id']}"}
    return {"id": row.id, "direction": str(row.direction), "text": text, "payload": payload}


def _choice_labels(payload: Mapping[str, Any] | None) -> dict[str, str]:
    """Button data -> label of a choices payload."""
    if not payload or payload.get("type") != "choices" or not isinstance(payload.get("choices"), list):
        return {}
    return {str(c.get("data")): str(c.get("label")) for c in payload["choices"] if isinstance(c, dict)}


async def _session_user(request: web.Request) -> User | None:
    """The signed-in user; a session of a deleted account is ended (else sign-in and chat would loop)."""
    user_id = await current_user_id(request)
    if user_id is None:
        return None
    user = await User.get_or_none(id=user_id)
    if user is None:
        (await get_session(request)).invalidate()
    return user


@routes.get("/chat")
async def chat_page(request: web.Request) -> web.Response:
    """The chat: recent web messages in both directions, a text box, live updates by script."""
    user = await _session_user(request)
    if user is None:
        raise web.HTTPSeeOther("/signin")
    user_id = user.id
    rows = await Message.filter(user_id=user_id, channel=WEB).order_by("-id").limit(HISTORY_LIMIT)
    rows.reverse()
    labels: dict[str, str] = {}
    messages = []
    for row in rows:
        labels.update(_choice_labels(row.payload))
        messages.append(message_event(row, labels))
    after = rows[-1].id if rows else 0
    context = {"messages": messages, "after": after, "new_client_id": lambda: uuid.uuid4().hex}
    return await render(request, "chat.html", context)


async def _read_message_body(request: web.Request) -> tuple[Mapping[str, Any], bool]:
    """The posted fields and whether they came as JSON."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise bad_request("Expected a JSON object.")
        return body, True
    return await request.post(), False


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


@routes.post("/chat/messages")
async def post_message(request: web.Request) -> web.StreamResponse:
    """Store a typed text or pressed choice and schedule the turn: 202 `{"message_id", "duplicate"}`.

    A plain HTML form post (no script) is answered with a redirect back to the chat instead.
    """
    user = await _session_user(request)
    if user is None:
        return json_error(401, "Sign in first.")
    user_id = user.id
    body, is_json = await _read_message_body(request)
    await require_csrf(request, body)
    text = (_optional_str(body, "text") or "").strip() or None
    choice = _optional_str(body, "choice") or None
    client_id = _optional_str(body, "client_id") or ""
    if text is None and choice is None:
        return json_error(400, "Write a message or press a button.")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        return json_error(400, f"Messages can be at most {MAX_TEXT_CHARS} characters.")
    if choice is not None and len(choice) > MAX_CHOICE_CHARS:
        return json_error(400, "Unknown choice.")
    if not _CLIENT_ID.fullmatch(client_id):
        return json_error(400, "client_id must be 8-64 letters, digits, '-' or '_'.")
    # Message ids are unique per channel, so scope the browser's id to its user.
    msg = InboundMessage(ref=web_ref(user_id), message_id=f"{user_id}:{client_id}", text=text, choice=choice)
    stored = await portal(request).inbox().receive(msg, user)
    if not is_json:
        raise web.HTTPSeeOther("/chat")
    return web.json_response({"message_id": stored.message_id, "duplicate": not stored.created}, status=202)


def _resume_after(request: web.Request) -> int:
    """The id after which to stream: `Last-Event-ID` (a reconnect) wins over `?after=` (the page)."""
    for raw in (request.headers.get("Last-Event-ID"), request.query.get("after")):
        if raw is not None and raw.strip().isdigit():
            return int(raw.strip())
    return 0


async def _send_new(response: web.StreamResponse, user_id: int, after: int) -> int:
    """Write outbound rows newer than `after` as events; return the last id written."""
    while True:
        rows = (
            await Message.filter(user_id=user_id, channel=WEB, direction=Direction.OUTBOUND, id__gt=after)
            .order_by("id")
            .limit(_BATCH)
        )
        for row in rows:
            data = json.dumps(message_event(row), separators=(",", ":"), default=str)
            await response.write(f"id: {row.id}\ndata: {data}\n\n".encode())
            after = row.id
        if len(rows) < _BATCH:
            return after


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


@routes.get("/chat/events")
async def chat_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: this user's new outbound web messages, live, resumable by `Last-Event-ID`."""
    user = await _session_user(request)
    if user is None:
        return json_error(401, "Sign in first.")
    user_id = user.id
    deps = portal(request)
    after = _resume_after(request)
    pubsub = deps.redis().pubsub()
    try:
        # Subscribe before the first read: a poke arriving in between is then queued, not lost.
        await pubsub.subscribe(events_channel(str(user_id)))
    except RedisError as exc:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        logger.warning("chat event stream of user %s cannot subscribe: %s", user_id, exc)
        # A 200 that ends at once: EventSource retries after `retry` ms (an error status would stop it for good).
        return web.Response(text="retry: 5000\n\n", content_type="text/event-stream")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # ask reverse proxies not to buffer the stream
        }
    )
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        after = await _send_new(response, user_id, after)
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        # Short waits so a disconnect or shutdown ends the stream within about a second.
        while not deps.closing.is_set() and not _gone(request):
            poke = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if poke is not None:
                after = await _send_new(response, user_id, after)
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= deps.keepalive:
                await response.write(b": keepalive\n\n")
                after = await _send_new(response, user_id, after)
                quiet_since = loop.time()
    except ConnectionResetError:
        logger.debug("chat event stream of user %s closed by the client", user_id)
    except RedisError as exc:  # the browser reconnects with Last-Event-ID and resumes
        logger.warning("chat event stream of user %s lost Redis: %s", user_id, exc)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # drops the subscription with its connection
    return response
