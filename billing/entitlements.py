"""Entitlement gate implementations ("may this user chat now?").

Only the development gate exists until the billing issue lands Stripe subscriptions; production wiring
refuses to start without a real gate (see `ava_bot.wiring`).
"""

from __future__ import annotations


class DevelopmentEntitlements:
    """DEVELOPMENT ONLY: every user may chat. Never wired in production."""

    async def may_chat(self, user_id: int) -> bool:
        """Always true in development."""
        return True
