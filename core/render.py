"""Render any `Reply` into parts a channel can show, from its `ChannelCapabilities` alone.

Pure functions, no I/O: adapters call `render` and send the parts in order, dispatching with `match`.
Long text is split at paragraph, line, sentence, then word boundaries, never inside a word or a URL (only a
word longer than the limit is cut hard). Choices become buttons, a list message, or, when there are too many
for either, a numbered list in the text; `numbered_choice` maps a typed number back to its choice. URL buttons
the platform refuses (localhost, plain http) become plain-text links, and photos are shown inline only where
the platform can (never on WhatsApp).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from core.messages import Choice, ChoicesReply, LinkReply, PhotoReady, Reply, TextReply
from core.ports import ChannelCapabilities

#: Longest list row description (WhatsApp: 72); it holds the full label of a row whose title was shortened.
ROW_DESCRIPTION_CHARS = 72
#: Label of the button that opens a list message.
LIST_BUTTON_LABEL = "Choose"
#: Link label for a finished photo on channels that cannot show it inline.
PHOTO_LINK_LABEL = "View photo"
#: Body of an interactive message whose question text is blank (WhatsApp refuses an empty body).
BLANK_QUESTION_TEXT = "Please choose:"
ELLIPSIS = "…"

_WHITESPACE = re.compile(r"\s+")
# A typed choice number: "3", " 3 ", "3." or "3)". Bounded so int() never sees a huge digit string.
_NUMBER = re.compile(r"\s*([0-9]{1,6})[.)]?\s*")
_SENTENCE_PUNCTUATION = (".", "!", "?", ELLIPSIS)
_CLOSING = "\"')]»\u201d\u2019"  # closing quotes and brackets after a sentence end
# Dropped from the end of a shortened label so it does not read "hair,…".
_TRAILING = ",;:.-\u2013\u2014/&(["

# Boundary ranks, best first.
_PARAGRAPH, _LINE, _SENTENCE, _WORD = range(4)


@dataclass(frozen=True, slots=True)
class TextPart:
    """A plain text message."""

    text: str


@dataclass(frozen=True, slots=True)
class Button:
    """A reply button: the label shown and the choice data sent back."""

    label: str
    data: str


@dataclass(frozen=True, slots=True)
class ButtonsPart:
    """Text with reply buttons."""

    text: str
    buttons: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class ListRow:
    """One row of a list message; `description` holds the full label when the title was shortened."""

    title: str
    data: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ListPart:
    """Text with a button that opens a list of rows (WhatsApp list message)."""

    text: str
    button_label: str
    rows: tuple[ListRow, ...]


@dataclass(frozen=True, slots=True)
class UrlButtonPart:
    """Text with one button that opens a URL."""

    text: str
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """A photo shown inline, with its caption."""

    url: str
    caption: str
    photo_id: int


RenderedPart = TextPart | ButtonsPart | ListPart | UrlButtonPart | ImagePart

_Break = tuple[int, int, int]  # (start, end, rank) of a whitespace run between two words


def render(reply: Reply, caps: ChannelCapabilities) -> tuple[RenderedPart, ...]:
    """The parts that show `reply` on a channel with `caps`, to be sent in order (empty for blank text)."""
    match reply:
        case TextReply(text=text):
            return _text_parts(text, caps)
        case ChoicesReply(text=text, choices=choices):
            return _render_choices(text, choices, caps)
        case LinkReply(text=text, label=label, url=url):
            return _render_link(text, label, url, caps)
        case PhotoReady(photo_id=photo_id, url=url, caption=caption):
            if not caps.inline_images:
                return _render_link(caption, PHOTO_LINK_LABEL, url, caps)
            lead, body = _fit_body(caption, caps, fallback="")
            return (*lead, ImagePart(url, body, photo_id))
    raise TypeError(f"not a reply: {reply!r}")


def uses_numbered_list(n_choices: int, caps: ChannelCapabilities) -> bool:
    """Whether `render` shows `n_choices` choices as a numbered list in the text (too many for buttons or a list)."""
    return n_choices > caps.max_buttons and n_choices > caps.list_rows


def numbered_choice(text: str | None, choices: Sequence[Choice], caps: ChannelCapabilities) -> str | None:
    """The data of the choice whose number the user typed, when `render` numbered these choices; else None."""
    if text is None or not uses_numbered_list(len(choices), caps):
        return None
    typed = _NUMBER.fullmatch(text)
    if typed is None:
        return None
    number = int(typed.group(1))
    return choices[number - 1].data if 1 <= number <= len(choices) else None


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into chunks of at most `limit` characters at the best boundaries, never inside a word or URL."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    text = text.strip()
    breaks = _breaks(text)
    starts = [start for start, _, _ in breaks]
    chunks: list[str] = []
    pos = 0  # start of the rest: never whitespace
    while len(text) - pos > limit:
        # Breaks whose chunk text[pos:start] is non-empty and fits.
        candidates = breaks[bisect_right(starts, pos) : bisect_right(starts, pos + limit)]
        if candidates:
            start, end, _ = _choose(candidates, [start - pos for start, _, _ in candidates], limit)
            chunks.append(text[pos:start])
            pos = end
        else:  # the word at `pos` is longer than the limit: the only case where a cut is allowed
            chunks.append(text[pos : pos + limit])
            pos += limit
    if pos < len(text):
        chunks.append(text[pos:])
    return chunks


def shorten(label: str, limit: int) -> str:
    """`label` cut to at most `limit` characters, at a word boundary where possible, ending with "…"."""
    if len(label) <= limit:
        return label
    if limit < 1:
        return ""
    head = label[: limit - 1]
    if not label[limit - 1].isspace():  # the cut falls inside a word: go back to the last word boundary
        last_space = max((m.start() for m in _WHITESPACE.finditer(head)), default=-1)
        if last_space * 2 >= len(head):  # but not when that would throw away most of the label
            head = head[:last_space]
    trimmed = head.rstrip().rstrip(_TRAILING).rstrip()
    return (trimmed or head) + ELLIPSIS


def _text_parts(text: str, caps: ChannelCapabilities) -> tuple[RenderedPart, ...]:
    return tuple(TextPart(chunk) for chunk in split_text(text, caps.max_text_chars))


def _render_choices(text: str, choices: Sequence[Choice], caps: ChannelCapabilities) -> tuple[RenderedPart, ...]:
    if not choices:
        return _text_parts(text, caps)
    if uses_numbered_list(len(choices), caps):
        numbered = "\n".join(f"{number}. {choice.label}" for number, choice in enumerate(choices, 1))
        return _text_parts(f"{text.strip()}\n\n{numbered}" if text.strip() else numbered, caps)
    full_labels: list[str] = []  # shown in the body because the button cannot show them
    if len(choices) <= caps.max_buttons:
        buttons = tuple(Button(shorten(c.label, caps.max_button_label_chars), c.data) for c in choices)
        full_labels = [c.label for c, button in zip(choices, buttons, strict=True) if button.label != c.label]
        lead, body = _fit_body(_with_full_labels(text, full_labels), caps, fallback=BLANK_QUESTION_TEXT)
        return (*lead, ButtonsPart(body, buttons))
    rows: list[ListRow] = []
    for choice in choices:
        title = shorten(choice.label, caps.list_row_title_chars)
        description = None
        if title != choice.label:
            description = shorten(choice.label, ROW_DESCRIPTION_CHARS)
            if description != choice.label:
                full_labels.append(choice.label)
        rows.append(ListRow(title, choice.data, description))
    lead, body = _fit_body(_with_full_labels(text, full_labels), caps, fallback=BLANK_QUESTION_TEXT)
    return (*lead, ListPart(body, shorten(LIST_BUTTON_LABEL, caps.list_button_label_chars), tuple(rows)))


def _render_link(text: str, label: str, url: str, caps: ChannelCapabilities) -> tuple[RenderedPart, ...]:
    if caps.accepts_url_button(url):
        lead, body = _fit_body(text, caps, fallback=label.strip() or url)
        return (*lead, UrlButtonPart(body, shorten(label, caps.url_button_label_chars), url))
    link = f"{label}: {url}"
    return _text_parts(f"{text.strip()}\n{link}" if text.strip() else link, caps)


def _with_full_labels(text: str, full_labels: Sequence[str]) -> str:
    """The question text, then a blank line and the full labels that buttons or rows could only show shortened."""
    text = text.strip() or BLANK_QUESTION_TEXT
    return (text + "\n\n" + "\n".join(f"• {label}" for label in full_labels)) if full_labels else text


def _fit_body(text: str, caps: ChannelCapabilities, *, fallback: str) -> tuple[tuple[TextPart, ...], str]:
    """Leading text parts and the last chunk (at most `max_body_chars`) that goes with the interactive part."""
    head, body = _split_tail(text.strip() or fallback, caps.max_body_chars)
    return tuple(TextPart(chunk) for chunk in split_text(head, caps.max_text_chars)), body


def _split_tail(text: str, limit: int) -> tuple[str, str]:
    """`text` as (head, tail): the tail fits `limit` and starts at the best boundary, taking as much as fits."""
    if len(text) <= limit:
        return "", text
    breaks = _breaks(text)
    ends = [end for _, end, _ in breaks]
    candidates = breaks[bisect_left(ends, len(text) - limit) :]  # breaks after which the rest fits
    if not candidates:  # the last word is longer than the limit
        return text[: len(text) - limit], text[len(text) - limit :]
    start, end, _ = _choose(candidates, [len(text) - end for _, end, _ in candidates], limit)
    return text[:start], text[end:]


def _breaks(text: str) -> list[_Break]:
    """Every whitespace run between two words of stripped `text`, ranked paragraph, line, sentence or word."""
    breaks: list[_Break] = []
    for run in _WHITESPACE.finditer(text):
        start, end = run.span()
        if start == 0 or end == len(text):
            continue
        newlines = run.group().count("\n")
        if newlines >= 2:
            rank = _PARAGRAPH
        elif newlines == 1:
            rank = _LINE
        elif text[max(0, start - 4) : start].rstrip(_CLOSING).endswith(_SENTENCE_PUNCTUATION):
            rank = _SENTENCE
        else:
            rank = _WORD
        breaks.append((start, end, rank))
    return breaks


def _choose(candidates: Sequence[_Break], sizes: Sequence[int], limit: int) -> _Break:
    """The best-ranked break, largest chunk first; breaks leaving the chunk at least half full come first.

    Without the half-full rule a paragraph break near the start would win over a sentence end near the limit
    and the text would go out in needlessly many small messages.
    """
    ranked = [
        (size * 2 < limit, rank, -size, index)
        for index, ((_, _, rank), size) in enumerate(zip(candidates, sizes, strict=True))
    ]
    return candidates[min(ranked)[3]]
