"""The chat page (`GET /chat`) and how a message row looks on it.

Posting and the live event stream belong to the web channel adapter (`channels.web`); the composition root
hands it `signed_in_user` and `message_event` from here, so the page and its stream share one shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from core.models import Direction, Message, User
from portal.deps import portal
from portal.links import local_href
from portal.pages import render, safe_href
from portal.sessions import current_user

#: How many recent messages the chat page shows.
HISTORY_LIMIT = 200

routes = web.RouteTableDef()


def message_event(row: Message, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The JSON shape of one message for the page and the event stream: id, direction, text, payload.

    An inbound pressed choice shows the label of the button it came from when `labels` knows it. Photos point
    at `/photos/{id}` (served to the signed-in owner); a link placeholder (a sign-in link for chat platforms,
    minted only when sent there) is a plain link to its page, since this reader is signed in; unsafe link
    targets are dropped.
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
        payload = {**payload, "url": f"/photos/{payload['photo_id']}"}
    return {"id": row.id, "direction": str(row.direction), "text": text, "payload": payload}


def _choice_labels(payload: Mapping[str, Any] | None) -> dict[str, str]:
    """Button data -> label of a choices payload."""
    if not payload or payload.get("type") != "choices" or not isinstance(payload.get("choices"), list):
        return {}
    return {str(c.get("data")): str(c.get("label")) for c in payload["choices"] if isinstance(c, dict)}


async def signed_in_user(request: web.Request) -> User | None:
    """The signed-in user; a dead session (account erased, signed out everywhere) is ended and gives None."""
    return await current_user(request)


@routes.get("/chat")
async def chat_page(request: web.Request) -> web.Response:
    """The chat: recent web messages in both directions, a text box, live updates by script."""
    user = await signed_in_user(request)
    if user is None:
        raise web.HTTPSeeOther("/signin")
    channel = portal(request).web_channel
    rows = await Message.filter(user_id=user.id, channel=channel).order_by("-id").limit(HISTORY_LIMIT)
    rows.reverse()
    labels: dict[str, str] = {}
    messages = []
    for row in rows:
        labels.update(_choice_labels(row.payload))
        messages.append(message_event(row, labels))
    after = rows[-1].id if rows else 0
    context = {"messages": messages, "after": after, "new_client_id": lambda: uuid.uuid4().hex}
    return await render(request, "chat.html", context)
