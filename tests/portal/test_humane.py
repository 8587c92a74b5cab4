"""Human dates (`portal.humane`): "Today, 21:04", "Yesterday, 21:04", "3 Nov, 21:04", "3 Nov 2025"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from portal.humane import human_time, time_tag

NOW = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("when", "label"),
    [
        (datetime(2026, 11, 28, 0, 0, tzinfo=UTC), "Today, 00:00"),
        (datetime(2026, 11, 28, 10, 30, tzinfo=UTC), "Today, 10:30"),
        (datetime(2026, 11, 27, 23, 59, tzinfo=UTC), "Yesterday, 23:59"),
        (datetime(2026, 11, 27, 0, 1, tzinfo=UTC), "Yesterday, 00:01"),
        (datetime(2026, 11, 26, 21, 4, tzinfo=UTC), "26 Nov, 21:04"),
        (datetime(2026, 1, 3, 7, 5, tzinfo=UTC), "3 Jan, 07:05"),
        (datetime(2025, 11, 3, 21, 4, tzinfo=UTC), "3 Nov 2025"),
        (datetime(2026, 11, 28, 9, 0), "Today, 09:00"),  # naive database values are UTC
    ],
)
def test_human_time_labels(when: datetime, label: str) -> None:
    """Days are counted by calendar date, not by 24-hour spans; other years show the year instead of the clock."""
    assert human_time(when, NOW) == label


def test_human_time_counts_days_in_the_given_time_zone() -> None:
    """23:30 UTC yesterday is already today at UTC+2."""
    plus_two = timezone(timedelta(hours=2))
    when = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    assert human_time(when, NOW) == "Yesterday, 23:30"
    assert human_time(when, NOW, plus_two) == "Today, 01:30"


def test_time_tag_carries_the_instant_and_escapes_nothing_unsafe() -> None:
    """The `<time>` element has the UTC instant for the browser's script and the label as its text."""
    tag = time_tag(datetime(2026, 11, 26, 23, 4, 5, tzinfo=timezone(timedelta(hours=2))), NOW)
    assert str(tag) == '<time class="when" datetime="2026-11-26T21:04:05Z">26 Nov, 21:04</time>'
