"""Dates as people say them: "Today, 21:04", "Yesterday, 21:04", "3 Nov, 21:04", "3 Nov 2025".

Pages render the label in UTC inside `<time class="when" datetime="...">`; `static/time.js` relabels it in the
reader's own time zone by the same rules (the server does not know it). The label never wraps (CSS).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from markupsafe import Markup, escape

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def human_time(when: datetime, now: datetime | None = None, tz: tzinfo = UTC) -> str:
    """`when` as a short human label relative to `now` (both seen in `tz`)."""
    when = _aware(when).astimezone(tz)
    now = _aware(now or datetime.now(UTC)).astimezone(tz)
    clock = f"{when.hour:02d}:{when.minute:02d}"
    days = (now.date() - when.date()).days
    if days == 0:
        return f"Today, {clock}"
    if days == 1:
        return f"Yesterday, {clock}"
    date = f"{when.day} {_MONTHS[when.month - 1]}"
    if when.year == now.year:
        return f"{date}, {clock}"
    return f"{date} {when.year}"


def time_tag(when: datetime, now: datetime | None = None) -> Markup:
    """A `<time>` element with the machine-readable instant and the human label (the template global `when`)."""
    instant = _aware(when).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return Markup('<time class="when" datetime="{}">{}</time>').format(instant, escape(human_time(when, now)))


def _aware(value: datetime) -> datetime:
    """Naive datetimes from the database are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
