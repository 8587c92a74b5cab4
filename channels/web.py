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
from typing import Any

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from channels.web_events import EventHub, Listener, StreamSlots, activity_payload, events_channel, redis_db
from channels.web_events import activity_of as activity_of  # re-exported: the pub/sub protocol lives there
from core.errors import DeliveryError
from core.inbox import MAX_TEXT_CHARS, Inbox, storable
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
#: Largest id a resume point may name (message ids are PostgreSQL bigints).
MAX_EVENT_ID = 2**63 - 1
_EVENT_ID = re.compile(r"[0-9]{1,19}")

#: The signed-in user of a request, or None (the portal's session lookup).
SessionUser = Callable[[web.Request], Awaitable[User | None]]
#: Raises an HTTP 403 unless the request carries the session's CSRF token (header or posted field).
CsrfCheck = Callable[[web.Request, Mapping[str, Any]], Awaitable[None]]
#: The JSON shape of one outbound row as the chat page's script shows it.
MessageView = Callable[[Message], Mapping[str, Any]]
#: The paywall of a posted (user, text, choice): None lets it in, a JSON body refuses it with 402 (nothing stored).
ChatGate = Callable[[User, str | None, str | None], Awaitable[dict[str, Any] | None]]


def web_ref(user_id: int) -> ChatRef:
    """Where a web user's replies go: on the web the chat id is the user id."""
    return ChatRef(WEB, str(user_id))


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
            await self._redis.publish(events_channel(ref.chat_id, redis_db(self._redis)), "1")
        except RedisError as exc:
            raise DeliveryError(f"web poke for chat {ref.chat_id} failed: {exc}", permanent=False) from exc
        return Delivery(None)

    async def show_activity(self, ref: ChatRef, kind: ActivityKind) -> None:
        """Show "Ava is typing…" / "taking a photo…" on open chat pages; Redis errors are ignored."""
        _check_ref(ref)
        try:
            await self._redis.publish(events_channel(ref.chat_id, redis_db(self._redis)), activity_payload(kind))
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
    #: The paywall of posted messages (None: every message is let in).
    gate: ChatGate | None = None
    #: Seconds between keepalive comments (and safety re-reads) on event streams.
    keepalive: float = 15.0
    #: Set when the application shuts down, so long-lived event streams end promptly.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    #: Live event streams one user may hold across every replica (CHAT_STREAMS_PER_USER).
    streams_per_user: int = 5
    #: This process's one pub/sub connection, fanned out to its event streams.
    hub: EventHub = field(init=False)
    #: The per-user stream cap in Redis; a slot lives four keepalives unless its stream refreshes it.
    slots: StreamSlots = field(init=False)

    def __post_init__(self) -> None:
        self.hub = EventHub(self.redis)
        self.slots = StreamSlots(self.redis, limit=self.streams_per_user, ttl=4 * self.keepalive)


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
    gate: ChatGate | None = None,
    streams_per_user: int = 5,
) -> None:
    """Register `POST /chat/messages` and `GET /chat/events` on `app`.

    `inbox` and `redis` may be zero-argument callables when they are opened later, in a `cleanup_ctx`.
    `streams_per_user` caps a user's live event streams across replicas (more are refused with 429).
    `gate` refuses (402) posts that would reach the model without an entitlement or past the daily quota.
    """
    deps = WebChat(
        inbox=(lambda: inbox) if isinstance(inbox, Inbox) else inbox,
        redis=(lambda: redis) if isinstance(redis, Redis) else redis,
        session_user=session_user,
        require_csrf=require_csrf,
        message_view=message_view,
        keepalive=keepalive,
        gate=gate,
        streams_per_user=streams_per_user,
    )
    app[WEB_CHAT] = deps

    async def end_streams(app: web.Application) -> None:
        deps.closing.set()  # event streams notice within a second and finish
        await deps.hub.close()

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

    A plain HTML form post (no script) is answered with a redirect back to the chat instead. A message the gate
    refuses (no subscription, today's messages used up) is answered 402 with the gate's JSON and NOT stored.
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
    if not all(storable(value) for value in (text or "", choice or "")):
        return _json_error(400, "Messages cannot contain NUL characters or broken Unicode (lone surrogates).")
    if deps.gate is not None and (refusal := await deps.gate(user, text, choice)) is not None:
        return web.json_response(refusal, status=402)
    # Message ids are unique per channel, so scope the browser's id to its user.
    msg = InboundMessage(ref=web_ref(user.id), message_id=f"{user.id}:{client_id}", text=text, choice=choice)
    stored = await deps.inbox().receive(msg, user)
    if not is_json:
        raise web.HTTPSeeOther("/chat")
    return web.json_response({"message_id": stored.message_id, "duplicate": not stored.created}, status=202)


def _resume_after(request: web.Request) -> int:
    """The id after which to stream: `Last-Event-ID` (a reconnect) wins over `?after=` (the page).

    Anything but a message id (not digits, or past the largest id) is refused with 400, never a 500.
    """
    for raw in (request.headers.get("Last-Event-ID"), request.query.get("after")):
        value = (raw or "").strip()
        if not value:
            continue
        if not _EVENT_ID.fullmatch(value) or int(value) > MAX_EVENT_ID:
            raise _bad_request("Last-Event-ID and ?after= must be a message id.")
        return int(value)
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


def _retry_later() -> web.Response:
    # A 200 that ends at once: EventSource retries after `retry` ms (an error status would stop it for good).
    return web.Response(text="retry: 5000\n\n", content_type="text/event-stream")


async def chat_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: this user's new outbound web messages and Ava's activity, resumable by `Last-Event-ID`.

    A user holds at most `streams_per_user` live streams across every replica: one more is refused with 429 (the
    new one, so open tabs are never kicked out). Without Redis the answer is a 200 asking the browser to retry.
    """
    deps = request.app[WEB_CHAT]
    user = await deps.session_user(request)
    if user is None:
        return _json_error(401, "Sign in first.")
    user_id = user.id
    after = _resume_after(request)
    try:
        slot = await deps.slots.acquire(user_id)
    except (RedisError, OSError) as exc:
        logger.warning("chat event stream of user %s cannot count its streams: %s", user_id, exc)
        return _retry_later()
    if slot is None:
        refused = _json_error(429, f"Too many open chat windows (at most {deps.slots.limit}): close one, then reload.")
        refused.headers["Retry-After"] = str(int(4 * deps.keepalive))
        return refused
    try:
        try:
            # Subscribed (and confirmed by Redis) before the first read: a poke arriving in between is not lost.
            listener = await deps.hub.subscribe(str(user_id))
        except (RedisError, OSError) as exc:
            logger.warning("chat event stream of user %s cannot subscribe: %s", user_id, exc)
            return _retry_later()
        try:
            return await _stream(request, deps, user_id, after, listener, slot)
        finally:
            await deps.hub.unsubscribe(listener)
    finally:
        try:
            await deps.slots.release(user_id, slot)
        except (RedisError, OSError) as exc:  # the slot expires on its own
            logger.debug("stream slot of user %s not released: %s", user_id, exc)


async def _keep_slot(deps: WebChat, user_id: int, slot: str) -> bool:
    """Refresh the stream's slot; False when it expired meanwhile and the user's slots are full (end the stream)."""
    try:
        return await deps.slots.refresh(user_id, slot)
    except (RedisError, OSError) as exc:  # Redis is away: keep streaming, the hub reconnects
        logger.debug("stream slot of user %s not refreshed: %s", user_id, exc)
        return True


async def _stream(
    request: web.Request, deps: WebChat, user_id: int, after: int, listener: Listener, slot: str
) -> web.StreamResponse:
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
        quiet_since = kept_at = loop.time()
        # Short waits so a disconnect or shutdown ends the stream within about a second.
        while not deps.closing.is_set() and not _gone(request):
            poked, kinds = await listener.next(1.0)
            for kind in kinds:
                await response.write(_activity_event(kind))
            if poked:
                after = await _send_new(response, deps.message_view, user_id, after)
                quiet_since = loop.time()
            # Checked after activity events too, so a stream of them cannot starve the safety re-read.
            if loop.time() - quiet_since >= deps.keepalive:
                await response.write(b": keepalive\n\n")
                after = await _send_new(response, deps.message_view, user_id, after)
                quiet_since = loop.time()
            # Apart from the keepalive: a busy stream (pokes all the time) must keep its slot too.
            if loop.time() - kept_at >= deps.keepalive:
                kept_at = loop.time()
                if not await _keep_slot(deps, user_id, slot):
                    break
    except ConnectionResetError:
        logger.debug("chat event stream of user %s closed by the client", user_id)
    return response
