"""A chat turn: persona prompt + bounded history + the user's message -> LLM -> reply (maybe a photo).

History only ever holds plain user/assistant texts, so replaying it is always a valid request: a
`send_photo` call is recorded as the assistant's in-character line with a note of the scene, never as
a dangling `tool_calls` message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from core.errors import LLMUnavailable
from core.messages import TextReply
from core.models import Avatar, Message, Mode, User
from core.outcome import Outcome
from core.persona import SEND_PHOTO_TOOL, build_system_prompt, llm_unavailable_line, photo_line
from core.ports import ChatMessage, LLMProvider, PhotoRequests, ToolCall

logger = logging.getLogger(__name__)

#: Bounds of the history sent to the model: at most this many past messages, and this many characters.
HISTORY_MESSAGES = 40
HISTORY_CHARS = 12_000
MAX_SCENE_CHARS = 500


async def load_history(
    user_id: int, *, limit: int = HISTORY_MESSAGES, budget: int = HISTORY_CHARS
) -> list[ChatMessage]:
    """The latest history messages of the user, oldest first, within `limit` messages and `budget` characters."""
    rows = await Message.filter(user_id=user_id, in_history=True).order_by("-id").limit(limit)
    history: list[ChatMessage] = []
    used = 0
    for row in rows:  # newest first
        text = row.text or ""
        if used + len(text) > budget:
            break
        used += len(text)
        history.append(ChatMessage("user" if row.direction == "in" else "assistant", text))
    history.reverse()
    while history and history[0].role == "assistant":  # start on a user message
        history.pop(0)
    return history


def _scene(call: ToolCall) -> str | None:
    scene = call.arguments.get("scene_description")
    if not isinstance(scene, str) or not scene.strip():
        return None
    return " ".join(scene.split())[:MAX_SCENE_CHARS]


class ChatTurn:
    """Runs the LLM for one user message."""

    def __init__(self, *, llm: LLMProvider, photos: PhotoRequests) -> None:
        self._llm = llm
        self._photos = photos

    async def run(self, user: User, avatar: Avatar, text: str, *, message_id: int) -> Outcome:
        """Answer `text`; in intimate mode the model may call `send_photo`."""
        messages: Sequence[ChatMessage] = [
            ChatMessage("system", build_system_prompt(avatar, Mode(user.mode))),
            *await load_history(user.id),
            ChatMessage("user", text),
        ]
        tools = [SEND_PHOTO_TOOL] if user.mode == Mode.INTIMATE else []
        try:
            result = await self._llm.complete(messages, tools=tools)
        except LLMUnavailable as exc:
            logger.warning("LLM unavailable for a turn: %s", exc)
            # The user's message stays in history; nothing is lost, they can simply go on.
            return Outcome([TextReply(llm_unavailable_line())], user_in_history=True)
        scenes = [s for c in result.tool_calls if c.name == SEND_PHOTO_TOOL.name and tools and (s := _scene(c))]
        reply = (result.text or "").strip()
        if not scenes:
            reply = reply or "…"
            return Outcome([TextReply(reply)], user_in_history=True, history_reply=0, history_text=reply)
        scene = scenes[0]  # one photo per turn bounds cost
        photo_id = await self._photos.request_photo(
            user_id=user.id, avatar_id=avatar.id, kind="photo", scene=scene, source_key=f"chat:{message_id}"
        )
        reply = reply or photo_line(avatar)
        return Outcome(
            [TextReply(reply)],
            photo_ids=[photo_id],
            user_in_history=True,
            history_reply=0,
            history_text=f"{reply}\n[sent a photo: {scene}]",
        )
