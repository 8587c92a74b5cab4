"""The web channel: posting chat messages, the live event stream (Server-Sent Events), and sending.

Inbound: `POST /chat/messages` turns a typed text or a pressed choice into an `InboundMessage` and hands it to
the same `Inbox` as every other channel. The browser generates `client_id`; it is the idempotency key (scoped
to the user), so a retried post is stored and processed once.

Outbound: the turn runner stores every reply as a message row before it calls `WebChannel.send`, so
delivery to the browser is reading those rows. `send` only pokes the user's Redis pub/sub channel; open event
streams (`GET /chat/events`) wake up and stream this user's outbound rows newer than `Last-Event-ID` (or
`?after=`). Pokes carry no data: a lost or foreign poke costs one query, and streams also re-read on every
keepalive, so a lost poke only delays a reply. `show_activity` publishes `{"activity": kind}` on the same
channel; streams pass it on as an `activity` event (best effort, nothing is stored).

The portal owns sessions, CSRF and the page, so this module imports none of it: `setup_web_chat` takes the
signed-in-user lookup, the CSRF check and the row-to-event shaping as callables (wired in `ava_bot.app`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_args

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import DeliveryError
from core.inbox import MAX_TEXT_CHARS, Inbox
from core.messages import ChatRef, InboundMessage, Reply
from core.models import Direction, Message, User
from core.ports import ActivityKind, ChannelCapabilities, Delivery

logger = logging.getLogger(__name__)

WEB = "web"

#: The browser shows everything: long texts, many buttons, any link, photos inline.
WEB_CAPABILITIES = ChannelCapabilities(
    max_text_chars=100_000,
    max_body_chars=100_000,
    max_buttons=12,
    max_button_label_chars=200,
    url_buttons=True,
    url_button_https_only=False,
    url_button_local_hosts=True,
    inline_images=True,
)

#: Longest pressed-choice data accepted (the column holds 128).
MAX_CHOICE_CHARS = 128
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_BATCH = 100
_ACTIVITY_KINDS: tuple[str, ...] = get_args(ActivityKind)

#: The signed-in user of a request, or None (the portal's session lookup).
SessionUser = Callable[[web.Request], Awaitable[User | None]]
#: Raises an HTTP 403 unless the request carries the session's CSRF token (header or posted field).
CsrfCheck = Callable[[web.Request, Mapping[str, Any]], Awaitable[None]]
#: The JSON shape of one outbound row as the chat page's script shows it.
MessageView = Callable[[Message], Mapping[str, Any]]


def web_ref(user_id: int) -> ChatRef:
    """Where a web user's replies go: on the web the chat id is the user id."""
    return ChatRef(WEB, str(user_id))


def events_channel(chat_id: str) -> str:
    """The Redis pub/sub channel poked when a web chat has new outbound rows (or Ava shows an activity)."""
    return f"ava:web:{chat_id}"


def activity_payload(kind: ActivityKind) -> str:
    """The pub/sub text announcing an activity (a row poke is anything else, e.g. "1")."""
    return json.dumps({"activity": kind}, separators=(",", ":"))


def activity_of(data: object) -> ActivityKind | None:
    """The activity a pub/sub message announces, or None for a plain poke."""
    if isinstance(data, bytes):
        data = data.decode(errors="replace")
    if not isinstance(data, str) or not data.startswith("{"):
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    kind = value.get("activity") if isinstance(value, dict) else None
    return cast(ActivityKind, kind) if kind in _ACTIVITY_KINDS else None


class WebChannel:
    """`core.ports.Channel` for the web: wakes the user's open chat pages."""

    name = WEB
    capabilities = WEB_CAPABILITIES

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def send(self, ref: ChatRef, reply: Reply) -> Delivery:
        """Tell open chat pages of `ref` to fetch new rows (the reply row is already stored)."""
        _check_ref(ref)
        try:
            await self._redis.publish(events_channel(ref.chat_id), "1")
        except RedisError as exc:
            raise DeliveryError(f"web poke for chat {ref.chat_id} failed: {exc}", permanent=False) from exc
        return Delivery(None)

    async def show_activity(self, ref: ChatRef, kind: ActivityKind) -> None:
        """Show "Ava is typing…" / "taking a photo…" on open chat pages; Redis errors are ignored."""
        _check_ref(ref)
        try:
            await self._redis.publish(events_channel(ref.chat_id), activity_payload(kind))
        except RedisError as exc:  # an activity hint is best effort: the reply itself still arrives
            logger.debug("web activity for chat %s not published: %s", ref.chat_id, exc)


def _check_ref(ref: ChatRef) -> None:
    if ref.channel != WEB:
        raise ValueError(f"WebChannel cannot send to channel {ref.channel!r}")


@dataclass(slots=True)
class WebChat:
    """What the chat routes need, held on the application under `WEB_CHAT`."""

    inbox: Callable[[], Inbox]
    redis: Callable[[], Redis]
    session_user: SessionUser
    require_csrf: CsrfCheck
    message_view: MessageView
    #: Seconds between keepalive comments (and safety re-reads) on event streams.
    keepalive: float = 15.0
    #: Set when the application shuts down, so long-lived event streams end promptly.
    closing: asyncio.Event = field(default_factory=asyncio.Event)


WEB_CHAT = web.AppKey("ava_web_chat", WebChat)


def setup_web_chat(
    app: web.Application,
    *,
    inbox: Inbox | Callable[[], Inbox],
    redis: Redis | Callable[[], Redis],
    session_user: SessionUser,
    require_csrf: CsrfCheck,
    message_view: MessageView,
    keepalive: float = 15.0,
) -> None:
    """Register `POST /chat/messages` and `GET /chat/events` on `app`.

    `inbox` and `redis` may be zero-argument callables when they are opened later, in a `cleanup_ctx`.
    """
    deps = WebChat(
        inbox=(lambda: inbox) if isinstance(inbox, Inbox) else inbox,
        redis=(lambda: redis) if isinstance(redis, Redis) else redis,
        session_user=session_user,
        require_csrf=require_csrf,
        message_view=message_view,
        keepalive=keepalive,
    )
    app[WEB_CHAT] = deps

    async def end_streams(app: web.Application) -> None:
        deps.closing.set()  # event streams notice within a second and finish

    app.on_shutdown.append(end_streams)
    app.router.add_post("/chat/messages", post_message)
    app.router.add_get("/chat/events", chat_events)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


async def _read_message_body(request: web.Request) -> tuple[Mapping[str, Any], bool]:
    """The posted fields and whether they came as JSON."""
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise _bad_request("The body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _bad_request("Expected a JSON object.")
        return body, True
    return await request.post(), False


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


async def post_message(request: web.Request) -> web.StreamResponse:
    """Store a typed text or pressed choice and schedule the turn: 202 `{"message_id", "duplicate"}`.

    A plain HTML form post (no script) is answered with a redirect back to the chat instead.
    """
    deps = request.app[WEB_CHAT]
    user = await deps.session_user(request)
    if user is None:
        return _json_error(401, "Sign in first.")
    body, is_json = await _read_message_body(request)
    await deps.require_csrf(request, body)
    text = (_optional_str(body, "text") or "").strip() or None
    choice = _optional_str(body, "choice") or None
    client_id = _optional_str(body, "client_id") or ""
    if text is None and choice is None:
        return _json_error(400, "Write a message or press a button.")
    if text is not None and len(text) > MAX_TEXT_CHARS:
        return _json_error(400, f"Messages can be at most {MAX_TEXT_CHARS} characters.")
    if choice is not None and len(choice) > MAX_CHOICE_CHARS:
        return _json_error(400, "Unknown choice.")
    if not _CLIENT_ID.fullmatch(client_id):
        return _json_error(400, "client_id must be 8-64 letters, digits, '-' or '_'.")
    # Message ids are unique per channel, so scope the browser's id to its user.
    msg = InboundMessage(ref=web_ref(user.id), message_id=f"{user.id}:{client_id}", text=text, choice=choice)
    stored = await deps.inbox().receive(msg, user)
    if not is_json:
        raise web.HTTPSeeOther("/chat")
    return web.json_response({"message_id": stored.message_id, "duplicate": not stored.created}, status=202)


def _resume_after(request: web.Request) -> int:
    """The id after which to stream: `Last-Event-ID` (a reconnect) wins over `?after=` (the page)."""
    for raw in (request.headers.get("Last-Event-ID"), request.query.get("after")):
        if raw is not None and raw.strip().isdigit():
            return int(raw.strip())
    return 0


async def _send_new(response: web.StreamResponse, view: MessageView, user_id: int, after: int) -> int:
    """Write outbound rows newer than `after` as events; return the last id written."""
    while True:
        rows = (
            await Message.filter(user_id=user_id, channel=WEB, direction=Direction.OUTBOUND, id__gt=after)
            .order_by("id")
            .limit(_BATCH)
        )
        for row in rows:
            data = json.dumps(view(row), separators=(",", ":"), default=str)
            await response.write(f"id: {row.id}\ndata: {data}\n\n".encode())
            after = row.id
        if len(rows) < _BATCH:
            return after


def _activity_event(kind: ActivityKind) -> bytes:
    # No id line: an activity is not a row, so it must not move the browser's Last-Event-ID.
    data = json.dumps({"kind": kind}, separators=(",", ":"))
    return f"event: activity\ndata: {data}\n\n".encode()


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def chat_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: this user's new outbound web messages and Ava's activity, resumable by `Last-Event-ID`."""
    deps = request.app[WEB_CHAT]
    user = await deps.session_user(request)
    if user is None:
        return _json_error(401, "Sign in first.")
    user_id = user.id
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
        after = await _send_new(response, deps.message_view, user_id, after)
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        # Short waits so a disconnect or shutdown ends the stream within about a second.
        while not deps.closing.is_set() and not _gone(request):
            poke = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            kind = activity_of(poke.get("data")) if poke is not None else None
            if kind is not None:
                await response.write(_activity_event(kind))
            elif poke is not None:
                after = await _send_new(response, deps.message_view, user_id, after)
                quiet_since = loop.time()
            # Checked after activity events too, so a stream of them cannot starve the safety re-read.
            if loop.time() - quiet_since >= deps.keepalive:
                await response.write(b": keepalive\n\n")
                after = await _send_new(response, deps.message_view, user_id, after)
                quiet_since = loop.time()
    except ConnectionResetError:
        logger.debug("chat event stream of user %s closed by the client", user_id)
    except RedisError as exc:  # the browser reconnects with Last-Event-ID and resumes
        logger.warning("chat event stream of user %s lost Redis: %s", user_id, exc)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # drops the subscription with its connection
    return response
