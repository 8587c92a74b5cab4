"""The chat page (`GET /chat`) and how a message row looks on it.

Posting and the live event stream belong to the web channel adapter (`channels.web`); the composition root
hands it `signed_in_user` and `message_event` from here, so the page and its stream share one shape. The page's
behaviour (scrolling, typing indicator, photo placeholder, live region) is `static/chat.js`.

Ava greets first: the first time a user opens the chat with no web messages at all, the page stores a `/start`
from them through the `Inbox` (as if typed, under the idempotent id `"{user_id}:welcome"`), so her greeting or
the onboarding question arrives by itself. That message is never shown as the user's.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from redis.exceptions import RedisError

from core.inbox import Inbox
from core.messages import ChatRef, InboundMessage
from core.models import Direction, Message, MessageStatus, User
from portal.chat_view import (
    PHOTO_HEIGHT,
    PHOTO_WIDTH,
    ChoiceState,
    choice_states,
    instant,
    linkify,
    message_time,
)
from portal.deps import portal
from portal.links import local_href
from portal.pages import render, safe_href
from portal.sessions import current_user

#: How many recent messages the chat page shows.
HISTORY_LIMIT = 200
#: What the page sends for a user whose web chat is empty (the engine answers with its greeting).
WELCOME_COMMAND = "/start"

logger = logging.getLogger(__name__)
routes = web.RouteTableDef()


@dataclass(frozen=True, slots=True)
class ChatServices:
    """What the chat page needs beyond the portal's basics (a getter: the inbox opens in a `cleanup_ctx`)."""

    inbox: Callable[[], Inbox]


CHAT = web.AppKey("ava_chat", ChatServices)


def setup_chat(app: web.Application, *, inbox: Callable[[], Inbox]) -> None:
    """Let the chat page greet new users through `inbox` (without it an empty chat waits for the user)."""
    app[CHAT] = ChatServices(inbox=inbox)


def welcome_id(user_id: int) -> str:
    """The idempotency key of a user's greeting request: stored once, however often the empty page loads."""
    return f"{user_id}:welcome"


def message_event(
    row: Message, labels: Mapping[str, str] | None = None, *, state: ChoiceState | None = None
) -> dict[str, Any]:
    """The JSON shape of one message for the page and the event stream.

    `id`, `direction`, `text`, `payload`; `parts`: the shown text as link/text segments (`chat_view.linkify`);
    `at`: the ISO instant; `photo_notice`: whether the row tells how a photo ended (it ends the placeholder);
    for choices `choice_state` and `chosen` (streamed rows are the newest, so open unless `state` says otherwise).
    An inbound pressed choice shows the label of the button it came from when `labels` knows it. Photos point at
    `/photos/{id}` (served to the signed-in owner), link to their page and carry the size to reserve; a link
    placeholder (a sign-in link for chat platforms, minted only when sent there) is a plain link to its page,
    since this reader is signed in; unsafe link targets are dropped.
    """
    text = row.text
    if row.direction == Direction.INBOUND and not text and row.choice:
        text = (labels or {}).get(row.choice, row.choice)
    payload = row.payload
    link_url = payload.get("url") if payload is not None and payload.get("type") == "link" else None
    local = local_href(link_url) if isinstance(link_url, str) else None
    if payload is not None and local is not None:
        payload = {**payload, "url": local}
    if payload is not None and payload.get("type") == "link" and safe_href(payload.get("url")) is None:
        payload = {"type": "text", "text": payload.get("text", "")}
    if payload is not None and payload.get("type") == "photo" and isinstance(payload.get("photo_id"), int):
        # The chat is signed in, so show photos through the session route: the signed link in the stored
        # payload expires (old photos would break) and would put a bearer token into the page.
        photo_id = payload["photo_id"]
        payload = {
            **payload,
            "url": f"/photos/{photo_id}",
            "page": f"/photos/{photo_id}/view",
            "width": PHOTO_WIDTH,
            "height": PHOTO_HEIGHT,
        }
    shown = payload.get("text") if payload is not None else text
    event: dict[str, Any] = {
        "id": row.id,
        "direction": str(row.direction),
        "text": text,
        "payload": payload,
        "parts": linkify(shown if isinstance(shown, str) else ""),
        "at": instant(row.created_at) if row.created_at is not None else None,
        "photo_notice": (row.external_message_id or "").startswith("photo:"),
    }
    if payload is not None and payload.get("type") == "choices":
        state = state or ChoiceState("open")
        event["choice_state"], event["chosen"] = state.state, state.chosen
    return event


def _choice_labels(payload: Mapping[str, Any] | None) -> dict[str, str]:
    """Button data -> label of a choices payload."""
    if not payload or payload.get("type") != "choices" or not isinstance(payload.get("choices"), list):
        return {}
    return {str(c.get("data")): str(c.get("label")) for c in payload["choices"] if isinstance(c, dict)}


async def signed_in_user(request: web.Request) -> User | None:
    """The signed-in user; a dead session (account erased, signed out everywhere) is ended and gives None."""
    return await current_user(request)


async def _greet(request: web.Request, user: User, channel: str) -> int | None:
    """Store the user's `/start` so Ava greets first; the stored row's id, or None when it could not be asked for.

    A queue that is down does not break the page: a stored row is found by the sweeper, and a row that was not
    stored is asked for again on the next visit (the chat is still empty then).
    """
    services = request.app.get(CHAT)
    if services is None:
        return None
    message = InboundMessage(ChatRef(channel, str(user.id)), welcome_id(user.id), WELCOME_COMMAND)
    try:
        stored = await services.inbox().receive(message, user)
    except (RedisError, OSError) as exc:
        logger.warning("greeting of user %s not scheduled: %s", user.id, exc)
        return None
    return stored.message_id


@routes.get("/chat")
async def chat_page(request: web.Request) -> web.Response:
    """The chat: recent web messages in both directions, a message box, live updates by script."""
    user = await signed_in_user(request)
    if user is None:
        raise web.HTTPSeeOther("/signin")
    channel = portal(request).web_channel
    rows = await Message.filter(user_id=user.id, channel=channel).order_by("-id").limit(HISTORY_LIMIT)
    rows.reverse()
    greeted = await _greet(request, user, channel) if not rows else None
    states = choice_states(rows, user.question_round)
    labels: dict[str, str] = {}
    messages = []
    for row in rows:
        labels.update(_choice_labels(row.payload))
        if row.direction == Direction.INBOUND and row.external_message_id == welcome_id(user.id):
            continue  # the page asked for the greeting: the user never typed it
        event = message_event(row, labels, state=states.get(row.id))
        event["time"] = message_time(row.created_at) if row.created_at is not None else ""
        messages.append(event)
    # Ava is working on an answer: show her typing from the start (the script hides it when she answers).
    waiting = greeted is not None or bool(
        rows and rows[-1].direction == Direction.INBOUND and rows[-1].status == MessageStatus.PENDING
    )
    context = {
        "messages": messages,
        "after": rows[-1].id if rows else greeted or 0,
        "waiting": waiting,
        "new_client_id": lambda: uuid.uuid4().hex,
    }
    return await render(request, "chat.html", context)
