"""What Ava says when a quota is used up or photos come too fast, and the quota keys the core charges.

Quotas themselves live behind the `Entitlements` port (billing counts them); the core only asks, charges a
unit under a key that makes retries harmless (a turn computed twice charges once), and says when the quota
renews: daily quotas at midnight UTC, photos with the next billing period.
"""

from __future__ import annotations

from datetime import datetime

from core.ports import QuotaVerdict

#: The window of the per-user photo request rate limit.
PHOTO_RATE_WINDOW_SECONDS = 3600


def message_key(message_id: int) -> str:
    """The charge key of one inbound message reaching the model."""
    return f"msg:{message_id}"


def regeneration_key(message_id: int) -> str:
    """The charge key of a reference regeneration (or an edit's new reference) asked for by one message."""
    return f"regen:{message_id}"


def photo_key(photo_id: int) -> str:
    """The charge key of one photo (charged when its job starts, refunded when it ends blocked or failed)."""
    return f"photo:{photo_id}"


def photo_rate_key(user_id: int) -> str:
    """The rate-limit key of a user's photo requests."""
    return f"photos:user:{user_id}"


def renewal(renews_at: datetime | None) -> str:
    """When a quota renews, in words ("at 00:00 UTC on 2025-06-02")."""
    if renews_at is None:
        return "when your subscription renews"
    return f"at {renews_at:%H:%M} UTC on {renews_at:%Y-%m-%d}"


def _count(limit: int | None, singular: str, plural: str) -> str:
    if limit is None:
        return f"all your {plural}"
    return f"all {limit} {singular if limit == 1 else plural}" if limit else f"the 0 {plural} your plan includes"


def messages_used_up_line(verdict: QuotaVerdict) -> str:
    """Today's messages are used up (one line, with when they renew)."""
    return (
        f"You've used {_count(verdict.limit, 'message', 'messages')} of today 💬 "
        f"Your messages renew {renewal(verdict.renews_at)} (midnight UTC). Talk to you then!"
    )


def photos_used_up_line(limit: int | None, renews_at: datetime | None) -> str:
    """The photo quota of this period is used up (one line, with when it renews)."""
    return (
        f"I'd love to, but you've had {_count(limit, 'photo', 'photos')} of this period 📸 "
        f"New photos {renewal(renews_at)}."
    )


def photo_rate_line() -> str:
    """Too many photo requests in the last hour."""
    return "That's a lot of photos in a short time 😅 Give me a little while before the next one."


def regenerations_used_up_line(verdict: QuotaVerdict) -> str:
    """Today's reference regenerations (new looks) are used up."""
    return (
        f"You've used {_count(verdict.limit, 'new photo of my look', 'new photos of my look')} for today 📸 "
        f"More {renewal(verdict.renews_at)}."
    )
