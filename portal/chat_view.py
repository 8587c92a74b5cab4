"""How the chat page shows messages: links in text, answered and passed choice sets, message times.

Pure functions over stored rows, shared by the page and (through `portal.chat.message_event`) the live stream.

Links: an http(s) URL in a message becomes a link, and so does a site path to one of the portal's pages (the 18+
question's "(/terms)"); chat commands such as "/help" stay text. Text is returned as segments and the template
or script escapes every segment, so nothing in a message is ever parsed as HTML.

Choice sets mirror what the server accepts (`core.engine.open_choice`): a set is *answered* once a later inbound
message pressed one of its buttons, *open* when it is the newest set, nothing was sent after it and its buttons
carry the current question round, and *passed* otherwise. Only an open set is enabled, so a reload never brings
old buttons back to life.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from core.engine import open_choice
from core.models import Direction, Message
from portal.humane import human_time

#: First path segments of the portal pages a message may link to (commands like "/help" are not pages).
LINKABLE_PAGES = frozenset({"terms", "privacy", "chat", "gallery", "account", "subscribe"})
#: The size photos are made in (2:3 portrait, about one megapixel): the page reserves their box before they load.
PHOTO_WIDTH = 832
PHOTO_HEIGHT = 1248

_LINK = re.compile(r"https?://[^\s<>\"'`]+|(?<![\w/.:@%-])/[A-Za-z][\w\-./?=&%#~+]*", re.IGNORECASE)
_PHOTO_PATH = re.compile(r"/photos/[0-9]{1,19}(?:/view)?")
_TRAILING = ".,;:!?'\""

ChoiceStateName = Literal["open", "answered", "passed"]


@dataclass(frozen=True, slots=True)
class ChoiceState:
    """Whether a choices message is still open, answered (with the pressed button's data) or passed."""

    state: ChoiceStateName
    chosen: str | None = None


def _trim(candidate: str) -> str:
    """Drop sentence punctuation after a link, and a closing bracket the link did not open."""
    while candidate and (
        candidate[-1] in _TRAILING or (candidate[-1] == ")" and candidate.count(")") > candidate.count("("))
    ):
        candidate = candidate[:-1]
    return candidate


def _href(candidate: str) -> str | None:
    """The link target of a matched piece of text, or None when it must stay text."""
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if candidate.startswith("/"):
        first = parts.path.strip("/").split("/", 1)[0].lower()
        return candidate if first in LINKABLE_PAGES or _PHOTO_PATH.fullmatch(parts.path) else None
    return candidate if parts.scheme.lower() in ("http", "https") and host else None


def linkify(text: str) -> list[dict[str, str]]:
    """`text` as segments `{"text": ...}` and `{"text": ..., "href": ...}` (an http(s) URL or a portal page)."""
    segments: list[dict[str, str]] = []
    position = 0
    for match in _LINK.finditer(text):
        candidate = _trim(match.group(0))
        href = _href(candidate) if candidate else None
        if href is None:  # stays part of the text around it
            continue
        if match.start() > position:
            segments.append({"text": text[position : match.start()]})
        segments.append({"text": candidate, "href": href})
        position = match.start() + len(candidate)
    if position < len(text) or not segments:
        segments.append({"text": text[position:]})
    return segments


def _choice_data(payload: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The button data of a choices payload (empty for anything else)."""
    if not payload or payload.get("type") != "choices" or not isinstance(payload.get("choices"), list):
        return ()
    return tuple(str(c.get("data")) for c in payload["choices"] if isinstance(c, dict))


def choice_states(rows: Sequence[Message], question_round: int) -> dict[int, ChoiceState]:
    """The state of every choices message in `rows` (oldest first), by row id."""
    sets: list[tuple[int, tuple[str, ...]]] = []
    chosen: dict[int, str] = {}
    last_inbound = 0
    for row in rows:
        if row.direction == Direction.OUTBOUND:
            data = _choice_data(row.payload)
            if data:
                sets.append((row.id, data))
            continue
        last_inbound = max(last_inbound, row.id)
        if row.choice is None:
            continue
        # The press answers the newest earlier set that offered it (data repeat only across rounds).
        for set_id, data in reversed(sets):
            if row.choice in data:
                chosen.setdefault(set_id, row.choice)
                break
    states: dict[int, ChoiceState] = {}
    for index, (set_id, data) in enumerate(sets):
        if set_id in chosen:
            states[set_id] = ChoiceState("answered", chosen[set_id])
        elif _is_open(index == len(sets) - 1, set_id > last_inbound, data, question_round):
            states[set_id] = ChoiceState("open")
        else:
            states[set_id] = ChoiceState("passed")
    return states


def _is_open(newest: bool, nothing_sent_after: bool, data: Iterable[str], question_round: int) -> bool:
    """The newest set, with no message from the user after it, of the round the server still accepts."""
    return newest and nothing_sent_after and all(open_choice(d, question_round) is not None for d in data)


def message_time(when: datetime, now: datetime | None = None) -> str:
    """A message's time as the chat shows it (in UTC; the page's script relabels it in local time): "21:04"
    today, "Yesterday, 21:04", "3 Nov, 21:04", "3 Nov 2025"."""
    label = human_time(when, now)
    return label.removeprefix("Today, ")


def instant(when: datetime) -> str:
    """`when` as an ISO 8601 UTC instant for `<time datetime>` and the stream's `at`."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
