"""Regex building helpers for `imaging.safety`: fast alternations of many words."""

from __future__ import annotations

from collections.abc import Iterable

_QUANTIFIERS = frozenset("?*+{")


def split_alternatives(pattern: str) -> list[str]:
    """The top-level ``|`` alternatives of a regex (groups, classes and escapes respected)."""
    parts, depth, in_class, start, i = [], 0, False, 0, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def _literal_start(part: str) -> bool:
    """Whether the alternative opens with one plain character (not a group, class, escape or quantified)."""
    return len(part) > 1 and part[0].isalnum() and part[1] not in _QUANTIFIERS


def alternation(alternatives: Iterable[str], *, boundary: str = "") -> str:
    """One regex alternation of `alternatives`, grouped by first letter so few are tried at each position.

    Python's engine tries the branches of an alternation one by one at every position; grouping hundreds of
    words under their first letter (``t(?:een|ween|oddler)``) leaves about one group to try. Alternatives
    not starting with a plain letter come first, in their given order (so ``quatre-vingts`` is tried before
    ``quatre``); within a letter the given order is kept.

    With `boundary` (a character class body such as ``a-z``), every alternative must start a word: no such
    character may stand before it. The check is made after the first letter (``t(?<![a-z].)...``) so that
    the pattern still opens with a plain letter, which lets the engine skip quickly to where one occurs."""
    rest: list[str] = []
    groups: dict[str, list[str]] = {}
    for alternative in alternatives:
        for part in _distributed(split_alternatives(alternative)):
            if _literal_start(part):
                groups.setdefault(part[0], []).append(part[1:])
            else:
                rest.append(f"(?<![{boundary}]){part}" if boundary else part)
    check = f"(?<![{boundary}].)" if boundary else ""
    grouped = [f"{first}{check}(?:{'|'.join(tails)})" for first, tails in groups.items()]
    return "|".join(rest + grouped)


def _group_end(pattern: str) -> int:
    """Index of the ``)`` closing the group that opens `pattern`."""
    depth, in_class, i = 0, False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced group in {pattern!r}")


def _distributed(parts: list[str]) -> list[str]:
    """Alternatives that open with a plain group, ``(?:a|b)x``, rewritten as ``ax``, ``bx`` (so they can be grouped)."""
    out: list[str] = []
    for part in parts:
        if part.startswith("(?:"):
            end = _group_end(part)
            after = part[end + 1 :]
            if not after or after[0] not in _QUANTIFIERS:
                inner = split_alternatives(part[3:end])
                out.extend(_distributed([alternative + after for alternative in inner]))
                continue
        out.append(part)
    return out
