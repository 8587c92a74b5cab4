"""`ava-bot audit blocked --since ...`: every safety refusal (field, scene or prompt; layer; reason code)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from core.errors import ValidationFailed
from core.models import SafetyRefusal

_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """`--since`: an ISO date or date-time (UTC unless it says otherwise), or a span back from now ("24h", "7d")."""
    now = now or datetime.now(UTC)
    text = value.strip()
    relative = _RELATIVE.fullmatch(text.lower())
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            f"--since {value!r}: use a date (2026-11-01), a date-time, or a span like 24h or 7d"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def blocked_lines(since: datetime, *, limit: int = 500) -> list[str]:
    """One tab-separated line per refusal since `since`, oldest first."""
    rows = await SafetyRefusal.filter(created_at__gte=since).order_by("id").limit(limit)
    lines = []
    for row in rows:
        excerpt = " ".join((row.text or "").split())
        excerpt = excerpt if len(excerpt) <= 80 else excerpt[:79] + "…"
        lines.append(
            "\t".join(
                (
                    f"{row.created_at:%Y-%m-%d %H:%M:%S}",
                    row.user_ref,
                    row.channel or "-",
                    row.field,
                    row.layer,
                    row.code,
                    f"photo={row.photo_id}" if row.photo_id else "-",
                    repr(excerpt),
                )
            )
        )
    return lines
