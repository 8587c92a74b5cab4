"""A chat turn: persona prompt + bounded history + the user's message -> LLM -> reply (maybe a photo).

History only ever holds plain user/assistant texts, so replaying it is always a valid request: a
`send_photo` call is recorded as the assistant's in-character line, never as a dangling `tool_calls`
message. No internal note is ever stored as something Ava said (the user would see it, and the model would
learn to write it); bracketed notes the model invents anyway are removed from its answer.

Photos have a quota per billing period and a per-user request rate: when no photo is left the `send_photo` tool
is not offered, and a call the model makes anyway (or one past the rate limit) gets one line saying so and
records no photo. The unit itself is charged when the photo's job starts (see `imaging.pipeline`).

The LLM call runs with no database transaction or connection held. When the model stays unavailable after
its client's own retries, `LLMUnavailable` propagates: the turn runner counts the attempt, retries, and after
the last one dead-letters the message and tells the user.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from core.inbox import _postgres, _sql
from core.messages import ChatRef, TextReply
from core.models import Avatar, Direction, Mode, User
from core.outcome import Outcome
from core.persona import SEND_PHOTO_TOOL, build_system_prompt, photo_blocked_line, photo_line
from core.ports import ChatMessage, Entitlements, LLMProvider, PhotoRequests, RateLimiter, ToolCall
from core.quota import PHOTO_RATE_WINDOW_SECONDS, photo_rate_key, photo_rate_line, photos_used_up_line
from core.safety import SafetyChecker, record_refusal

logger = logging.getLogger(__name__)

#: Bounds of the history sent to the model: at most this many past messages, and this many characters.
HISTORY_MESSAGES = 40
HISTORY_CHARS = 12_000
MAX_SCENE_CHARS = 500
#: Bracketed stage notes a model may imitate ("[sent a photo: ...]", "[photo]", "(sends a selfie)").
_INTERNAL_NOTE = re.compile(
    r"[\[(]\s*(?:sent|sends|sending)?\s*(?:a\s+)?(?:photo|picture|selfie|image)\b[^\])]*[\])]", re.I
)


# Plain SQL, run on every chat turn (`core.inbox._sql` adapts the placeholders to SQLite).
_HISTORY = "SELECT direction, text FROM messages WHERE user_id = $1 AND in_history = $2 ORDER BY id DESC LIMIT $3"
_AVATAR = (
    "SELECT * FROM avatars WHERE user_id = $1 AND approved_at IS NOT NULL ORDER BY approved_at DESC, id DESC LIMIT 1"
)
# PostgreSQL: the avatar's row with the history, newest first, as an array of (direction, text) in one statement.
_AVATAR_AND_HISTORY = (
    "SELECT a.*, ARRAY(SELECT ROW(h.direction, h.text) FROM messages h "  # noqa: S608 (constants)
    "WHERE h.user_id = $1 AND h.in_history ORDER BY h.id DESC LIMIT $2) AS history "
    f"FROM ({_AVATAR}) a"
)


def strip_internal_notes(text: str) -> str:
    """The model's answer without bracketed stage notes about photos, whitespace tidied."""
    cleaned = _INTERNAL_NOTE.sub("", text)
    return re.sub(r"[ \t]{2,}", " ", re.sub(r"\n{3,}", "\n\n", cleaned)).strip()


async def load_history(
    user_id: int, *, limit: int = HISTORY_MESSAGES, budget: int = HISTORY_CHARS
) -> list[ChatMessage]:
    """The latest history messages of the user, oldest first, within `limit` messages and `budget` characters."""
    # Only the two columns the prompt needs, in plain SQL: no model objects, no JSON payloads parsed, no query
    # building (CPU on every turn).
    rows = await _sql(_HISTORY, [user_id, True, limit])
    return _bounded([(row["direction"], row["text"]) for row in rows], budget)


async def load_avatar_and_history(user_id: int) -> tuple[Avatar | None, list[ChatMessage]]:
    """The user's current avatar (`latest_avatar`) and history (`load_history`): one statement on PostgreSQL."""
    if not _postgres():
        return await latest_avatar(user_id), await load_history(user_id)
    rows = await _sql(_AVATAR_AND_HISTORY, [user_id, HISTORY_MESSAGES])
    if not rows:
        return None, await load_history(user_id)
    return Avatar._init_from_db(**rows[0]), _bounded(rows[0]["history"], HISTORY_CHARS)


async def latest_avatar(user_id: int) -> Avatar | None:
    """The user's latest approved avatar version (the one chat and photos use)."""
    rows = await _sql(_AVATAR, [user_id])
    return Avatar._init_from_db(**rows[0]) if rows else None


def _bounded(rows: Sequence[tuple[str, str | None]], budget: int) -> list[ChatMessage]:
    """History messages from (direction, text) rows, newest first, within `budget` characters; oldest first."""
    history: list[ChatMessage] = []
    used = 0
    for direction, stored in rows:  # newest first
        text = stored or ""
        if used + len(text) > budget:
            break
        used += len(text)
        history.append(ChatMessage("user" if direction == Direction.INBOUND else "assistant", text))
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

    def __init__(
        self,
        *,
        llm: LLMProvider,
        photos: PhotoRequests,
        safety: SafetyChecker,
        entitlements: Entitlements,
        rate_limiter: RateLimiter | None = None,
        photo_requests_per_hour: int = 30,
    ) -> None:
        self._llm = llm
        self._photos = photos
        self._safety = safety
        self._entitlements = entitlements
        self._rate_limiter = rate_limiter
        self._photo_rate = photo_requests_per_hour

    async def run(self, user: User, text: str, *, message_id: int, ref: ChatRef) -> Outcome | None:
        """Answer `text`; in intimate mode the model may call `send_photo` (recorded by an effect at commit). None
        when the user has no approved avatar (the caller restarts the setup)."""
        avatar, history = await load_avatar_and_history(user.id)
        if avatar is None:
            return None
        messages: Sequence[ChatMessage] = [
            ChatMessage("system", build_system_prompt(avatar, Mode(user.mode))),
            *history,
            ChatMessage("user", text),
        ]
        intimate = user.mode == Mode.INTIMATE
        photos_left = await self._entitlements.remaining(user.id, "photo") if intimate else 0
        tools = [SEND_PHOTO_TOOL] if intimate and photos_left != 0 else []
        result = await self._llm.complete(messages, tools=tools)  # LLMUnavailable propagates to the runner
        # Outside intimate mode a photo call is ignored; in it, one the model makes without the tool is answered.
        scenes = [s for c in result.tool_calls if c.name == SEND_PHOTO_TOOL.name and intimate and (s := _scene(c))]
        reply = strip_internal_notes(result.text or "")
        if not scenes:
            return Outcome([TextReply(reply or "…")], user_in_history=True, history_reply=0)
        if not tools:  # no photo left this period: the model asked anyway
            logger.info("send_photo of user %s refused: photo quota used up", user.id)
            renews_at = await self._entitlements.renews_at(user.id, "photo")
            return self._line(photos_used_up_line(None, renews_at))
        scene = scenes[0]  # one photo per turn bounds cost
        refusal = await self._safety.check("scene", scene)  # alone, before any prompt is composed
        if refusal is not None:
            logger.info("send_photo scene refused for user %s: %s by %s", user.id, refusal.code, refusal.layer)
            outcome = self._line(photo_blocked_line())

            async def audit() -> None:
                await record_refusal(user.id, refusal, channel=ref.channel)

            outcome.effects.append(audit)
            return outcome
        if self._rate_limiter is not None and not await self._rate_limiter.hit(
            photo_rate_key(user.id), self._photo_rate, PHOTO_RATE_WINDOW_SECONDS
        ):
            logger.info("send_photo of user %s refused: photo request rate limit", user.id)
            return self._line(photo_rate_line())
        outcome = Outcome([TextReply(reply or photo_line(avatar))], user_in_history=True, history_reply=0)

        async def request_photo() -> None:
            photo_id = await self._photos.request_photo(
                user_id=user.id,
                avatar_id=avatar.id,
                kind="photo",
                scene=scene,
                source_key=f"chat:{message_id}",
                ref=ref,
            )
            outcome.photo_ids.append(photo_id)

        outcome.effects.append(request_photo)
        return outcome

    @staticmethod
    def _line(text: str) -> Outcome:
        """One line instead of the model's answer (which may promise a photo that will not come)."""
        return Outcome([TextReply(text)], user_in_history=True, history_reply=0)
