"""The web chat's paywall: `POST /chat/messages` answers 402 before storing a message the model would answer
for a user who is not entitled, or who used up today's messages (`channels.web.ChatGate`).

Only messages that would reach the model are gated: onboarding, the avatar setup, commands ("/...") and pressed
buttons work unpaid, as in every other channel (where the engine answers with the subscribe link instead).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.web import ChatGate
from core.linking import parse_link
from core.models import SetupStep, User
from core.ports import Entitlements, QuotaVerdict
from core.quota import messages_used_up_line

#: Where the browser sends a user who needs a subscription (the portal's subscribe page).
SUBSCRIBE_PATH = "/subscribe"
PAYWALL_MESSAGE = "To chat with Ava you need a subscription. It only takes a minute."


def reaches_model(user: User, text: str | None, choice: str | None) -> bool:
    """Whether the engine would hand this message to the model (a typed text of a set-up user, no command)."""
    stripped = (text or "").strip()
    if choice is not None or not stripped or stripped.startswith("/") or parse_link(stripped) is not None:
        return False
    return user.adult_confirmed_at is not None and user.setup_step == SetupStep.DONE


async def gate_message(
    entitlements: Entitlements, user: User, text: str | None, choice: str | None
) -> dict[str, Any] | None:
    """None when the message may be stored; else the JSON body of the 402 answer."""
    if not reaches_model(user, text, choice):
        return None
    if not await entitlements.may_chat(user.id):
        return {"error": PAYWALL_MESSAGE, "reason": "subscription", "subscribe_url": SUBSCRIBE_PATH}
    if await entitlements.remaining(user.id, "message") == 0:
        renews_at = await entitlements.renews_at(user.id, "message")
        line = messages_used_up_line(QuotaVerdict(False, "quota", renews_at=renews_at))
        return {"error": line, "reason": "quota", "renews_at": renews_at.isoformat() if renews_at else None}
    return None


def make_chat_gate(entitlements: Callable[[], Entitlements]) -> ChatGate:
    """The gate for `setup_web_chat`; `entitlements` is a getter (the services open in a `cleanup_ctx`)."""

    async def gate(user: User, text: str | None, choice: str | None) -> dict[str, Any] | None:
        return await gate_message(entitlements(), user, text, choice)

    return gate
