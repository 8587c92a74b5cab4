"""Text normalisation for `imaging.safety`: folds evasive spellings to plain lowercase ASCII-ish text.

`fold(text)` does, in order:

1. NFKC (fullwidth and mathematical-alphanumeric letters, superscripts, circled digits, ligatures -> ASCII);
2. removes invisible characters (format characters such as zero-width space/joiner, soft hyphen, BOM,
   bidi marks, Hangul fillers, braille blank);
3. casefold (``ß`` -> ``ss``);
4. strips diacritics and other combining marks (``é`` -> ``e``, zalgo, keycap emoji) but keeps the tilde
   of ``ñ``, so Spanish ``niña`` stays distinct from the name ``Nina``;
5. maps Latin letters without a decomposition to their base letter (``ø æ œ ł``, small capitals ``ᴛᴇᴇɴ``,
   by Unicode name), and look-alike letters of other scripts (Cyrillic ie, Greek tau...) to the
   ASCII letter they imitate, from the Unicode confusables data shipped by ``confusable-homoglyphs``
   (plus a handful of overrides);
6. collapses whitespace.

`views(folded)` then gives the spellings every rule is matched against:

* the folded text itself;
* *spaced*: punctuation inside a word becomes a space (``baby-faced`` -> ``baby faced``);
* *joined*: punctuation inside a word is removed (``sch-ool-girl`` / ``t.e.e.n`` -> ``schoolgirl`` / ``teen``);
* *collapsed*: runs of three or more single characters are glued (``t e e n`` -> ``teen``);

each also in two leetspeak readings (``1 ! |`` read as ``i`` then as ``l``; ``0 3 4 5 7 8 9 6 @ $ € +`` as
``o e a s t b g b a s e t``), applied only to words that contain a letter, so numbers (ages, sizes) are
never rewritten. Punctuation between two digits (``5'4``, ``1.6``, ``16:9``) is left alone everywhere.
`spaced_runs(folded)` gives the glued single-character runs on their own, for a match without word
boundaries (``a t e e n`` -> ``ateen``); `despaced(folded)` the whole text with all spaces and
punctuation removed, for long unambiguous stems only (``sch ool girl`` -> ``...schoolgirl...``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib import resources

# Latin letters NFD does not decompose, and a few look-alikes the confusables data maps poorly.
_EXTRA_FOLDS: dict[str, str] = {
    "\u00f8": "o",  # o with stroke
    "\u00e6": "ae",
    "\u0153": "oe",
    "\u0142": "l",  # l with stroke
    "\u0111": "d",  # d with stroke
    "\u00f0": "d",  # eth
    "\u0131": "i",  # dotless i
    "\u00fe": "th",  # thorn
    "\u014b": "n",  # eng
    "\u0138": "k",  # kra
    "\u0127": "h",  # h with stroke
    "\u03b7": "n",  # Greek small eta, looks like n
    "\u043f": "n",  # Cyrillic small pe, looks like n
    "\u0438": "u",  # Cyrillic small i, looks like u
    "\u0448": "w",  # Cyrillic small sha
    "\u03c9": "w",  # Greek small omega
    "\u03b4": "d",  # Greek small delta
    "\u0434": "d",  # Cyrillic small de
    "\u03bb": "l",  # Greek small lambda
    "\u0436": "x",  # Cyrillic small zhe
    "\u044f": "r",  # Cyrillic small ya (reversed R)
    "\u2018": "'",  # curly quotes and modifier apostrophe
    "\u2019": "'",
    "\u02bc": "'",
}
# Invisible characters that are not in category Cf.
_INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800")
_TILDE = "\u0303"

LEET_COMMON: dict[str, str] = {
    "0": "o",
    "3": "e",
    "4": "a",
    "5": "s",
    "6": "b",
    "7": "t",
    "8": "b",
    "9": "g",
    "@": "a",
    "$": "s",
    "\u20ac": "e",  # euro sign
    "+": "t",
}
LEET_AMBIGUOUS = "1!|"
_LEET_SYMBOLS = "@$\u20ac+!|"

# A character that is part of a word: ASCII letter or digit, n-tilde, or a leetspeak symbol.
_WORD_CHAR = r"[a-z0-9\u00f1" + re.escape(_LEET_SYMBOLS) + "]"
_PUNCT_RUN = re.compile(r"[^a-z0-9\u00f1\s" + re.escape(_LEET_SYMBOLS) + r"]+")
_INNER_PUNCT = re.compile(rf"(?<={_WORD_CHAR})[^a-z0-9\u00f1\s{re.escape(_LEET_SYMBOLS)}]+(?={_WORD_CHAR})")
_APOSTROPHE_ONLY = re.compile(r"'+")
_SPACES = re.compile(r"\s+")
_SINGLE_RUN = re.compile(rf"(?<!\S){_WORD_CHAR}(?:\s+{_WORD_CHAR}(?!\S)){{2,}}")
_HAS_LETTER = re.compile(r"[a-z\u00f1]")
_TRAILING_BANG = re.compile(r"!+$")
_BANG_AT_WORD_END = re.compile(r"!+(?!\S)")


@cache
def _confusable_table() -> dict[str, str]:
    """Non-ASCII character -> the ASCII letter or digit it imitates, from the Unicode confusables data."""
    raw = (resources.files("confusable_homoglyphs") / "confusables.json").read_text(encoding="utf-8")
    data: dict[str, list[dict[str, str]]] = json.loads(raw)

    def ascii_lookalikes(char: str) -> list[str]:
        found = [h["c"] for h in data.get(char, []) if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalnum()]
        return sorted(found, key=lambda c: (c.isdigit(), c))  # letters first, deterministic

    table: dict[str, str] = {}
    for char in data:
        if len(char) != 1 or char.isascii():
            continue
        candidates = ascii_lookalikes(char)
        upper = char.upper()
        if not candidates and len(upper) == 1 and upper != char:
            candidates = ascii_lookalikes(upper)
        if candidates:
            table[char] = candidates[0].lower()
    return table


_LATIN_NAME = re.compile(r"LATIN (?:SMALL |CAPITAL )?LETTER (?:SMALL CAPITAL )?([A-Z])(?: WITH .*)?")


@cache
def _fold_char(char: str) -> str:
    """ASCII stand-in for one non-ASCII character (itself when none is known)."""
    if char in _EXTRA_FOLDS:
        return _EXTRA_FOLDS[char]
    if char.isspace():
        return " "
    named = _LATIN_NAME.fullmatch(unicodedata.name(char, ""))
    if named:
        return named.group(1).lower()
    return _confusable_table().get(char, char)


def _strip_marks(text: str) -> str:
    """Drop combining marks (diacritics), except the tilde that makes n into n-tilde."""
    out: list[str] = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.category(char).startswith("M"):
            if char == _TILDE and out and out[-1] == "n":
                out.append(char)
            continue
        out.append(char)
    return unicodedata.normalize("NFC", "".join(out))


def fold(text: str) -> str:
    """Unicode-normalised, invisible-free, casefolded, diacritic-free, homoglyph-mapped text (see module doc)."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if c not in _INVISIBLE and unicodedata.category(c) != "Cf")
    text = _strip_marks(text.casefold())
    folded = "".join(c if c.isascii() or c == "\u00f1" else _fold_char(c) for c in text)
    return _SPACES.sub(" ", folded).strip()


def _deleet_word(word: str, ambiguous_as: str) -> str:
    """One leetspeak reading of a word: only words holding a letter; a trailing '!' stays punctuation."""
    if not _HAS_LETTER.search(word):
        return word
    core = _TRAILING_BANG.sub("", word)
    tail = word[len(core) :]
    mapped = "".join(ambiguous_as if c in LEET_AMBIGUOUS else LEET_COMMON.get(c, c) for c in core)
    return mapped + tail


def _deleet(text: str, ambiguous_as: str) -> str:
    return " ".join(_deleet_word(w, ambiguous_as) for w in text.split(" "))


def _spaced(text: str) -> str:
    """Punctuation inside a word (between two word characters, not two digits) becomes a space."""
    return _SPACES.sub(" ", _inner_punct_sub(text, " "))


def _joined(text: str) -> str:
    """Punctuation inside a word (between two word characters, not two digits) is removed, but for
    apostrophes, which keep elisions apart (``d'experience``)."""
    return _inner_punct_sub(text, "", keep=_APOSTROPHE_ONLY)


def _inner_punct_sub(text: str, repl: str, keep: re.Pattern[str] | None = None) -> str:
    def sub(match: re.Match[str]) -> str:
        before = text[match.start() - 1]
        after = text[match.end()]
        if (before.isdigit() and after.isdigit()) or (keep is not None and keep.fullmatch(match.group(0))):
            return match.group(0)
        return repl

    return _INNER_PUNCT.sub(sub, text)


def _fully_spaced(text: str) -> str:
    """Every punctuation run (except between two digits) and every word-final '!' becomes a space."""
    text = _BANG_AT_WORD_END.sub(" ", text)

    def sub(match: re.Match[str]) -> str:
        start, end = match.start(), match.end()
        if start > 0 and end < len(text) and text[start - 1].isdigit() and text[end].isdigit():
            return match.group(0)
        return " "

    return _SPACES.sub(" ", _PUNCT_RUN.sub(sub, text)).strip()


def _runs(text: str) -> list[str]:
    """Glued runs of three or more single characters separated by spaces or punctuation."""
    return [_SPACES.sub("", m.group(0)) for m in _SINGLE_RUN.finditer(_fully_spaced(text))]


def _glue_if_letter(match: re.Match[str]) -> str:
    run = match.group(0)
    return _SPACES.sub("", run) if _HAS_LETTER.search(run) else run


def spaced_runs(folded: str) -> tuple[str, ...]:
    """Each run of spaced-out single characters glued together, in its plain and leetspeak readings."""
    found: dict[str, None] = {}
    for run in _runs(folded):
        if not _HAS_LETTER.search(run):
            continue
        for reading in (run, _deleet_word(run, "i"), _deleet_word(run, "l")):
            found.setdefault(reading, None)
    return tuple(found)


def despaced(folded: str) -> tuple[str, ...]:
    """The whole text with every space and punctuation removed, in its plain and leetspeak readings."""
    words = _fully_spaced(folded).split(" ")
    found: dict[str, None] = {}
    for ambiguous_as in ("", "i", "l"):
        readings = [_deleet_word(w, ambiguous_as) if ambiguous_as else w for w in words]
        found.setdefault("".join(readings), None)
    return tuple(found)


def views(folded: str) -> tuple[str, ...]:
    """The distinct spellings of folded text that rules are matched against (see module doc)."""
    bases = [folded, _spaced(folded), _joined(folded)]
    if _runs(folded):
        full = _fully_spaced(folded)
        bases.append(_SINGLE_RUN.sub(_glue_if_letter, full))
    found: dict[str, None] = {}
    for base in bases:
        for reading in (base, _deleet(base, "i"), _deleet(base, "l")):
            found.setdefault(reading, None)
    return tuple(found)
