# ruff: noqa: RUF002, RUF003  (deliberately holds other scripts, homoglyphs and full-width forms)
"""Text normalisation for `imaging.safety`: folds evasive spellings before any rule is matched.

Two folds of the same text are made.

`fold(text)` gives the Latin-script view that the English/Romance/German rules and romanised slang read:

1. NFKC (full-width and mathematical letters, superscripts, circled digits, ligatures -> ASCII);
2. a capital ``I`` after a lower-case letter, or starting a word before a vowel, is marked, and read as
   ``i`` in the plain text and as both ``i`` and ``l`` in the leetspeak readings below (``IoIi``,
   ``ScHooIgirl``: "a capital I for an l");
3. casefold (``ß`` -> ``ss``); invisible and control characters removed (zero-width space/joiner, soft
   hyphen, BOM, bidi marks, Hangul fillers, braille blank); diacritics and other combining marks
   stripped (``é`` -> ``e``, zalgo, keycaps) except the tilde of ``ñ``, so ``niña`` is not the name
   ``Nina``; digits of any script -> ASCII (Arabic-Indic ``١٦`` -> ``16``);
4. Latin letters without a decomposition mapped to their base letter (``ø æ œ ł``, small capitals
   ``ᴛᴇᴇɴ``, by Unicode name), and look-alike letters of other scripts (Cyrillic ie, Greek tau...) to the
   ASCII letter they imitate, from the Unicode confusables data (``confusable-homoglyphs``) plus overrides;
5. ``_`` read as ``-`` (punctuation), whitespace collapsed.

`fold_native(text)` keeps Cyrillic, Arabic, kana and CJK as they are, for the rules written in them: NFKC,
casefold, invisibles and tatweel removed, marks stripped (``ё`` -> ``е``, Arabic harakat) except the kana
voicing marks, Arabic letter variants unified (``أ إ آ`` -> ``ا``, ``ة`` -> ``ه``, ``ى`` -> ``ي``), digits ->
ASCII, and Latin letters or digits inside a Cyrillic word read as the Cyrillic letter they imitate
(``шкoльница`` with a Latin o, ``шк0льница``).

`views(folded)` then gives the spellings every Latin rule is matched against: the folded text, and - only for
the phrases around a spot where they differ, so that a long ordinary prompt is scanned about once - *spaced*
(punctuation inside a word becomes a space: ``baby-faced`` -> ``baby faced``); *joined* (punctuation inside
a word removed: ``sch-ool-girl``, ``t.e.e.n``); *collapsed* (runs of three or more single characters glued:
``t e e n``); *squeezed* (a letter repeated three times or more kept twice, and once: ``teeeen``); each also
in two leetspeak readings (``1 ! |`` and a marked capital I as ``i`` then as ``l``; ``0 3 4 5 7 8 9 6 @ $ € +``
as ``o e a s t b g b a s e t``), applied only to words holding a letter and never to a number with a unit
(``16th``, ``35mm``) or a digit run holding a 2 (``42-year-old`` stays 42), so numbers stay numbers. Punctuation
between two digits (``5'4``, ``16:9``) is left alone. `spaced_runs` gives the glued single-character runs
alone (for stems matched without word boundaries), `despaced` the whole text with no spaces or punctuation
(for long unambiguous stems: ``sch ool girl``), `pair_joins` adjacent short fragments glued
(``te en``, ``chi ld``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from bisect import bisect, bisect_left
from functools import cache, lru_cache
from importlib import resources

# Latin letters NFD does not decompose, and look-alikes the confusables data maps poorly.
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
    "\U0001f51f": "10",  # keycap ten
}
# Invisible characters that are not in category Cf.
_INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800\u0640")
_KANA_VOICING = frozenset("\u3099\u309a")
_N_TILDE = "\u00f1"
_N_TILDE_GUARD = "\ue000"  # private-use stand-in that keeps n-tilde whole through NFD

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
# A capital I that may stand for an l is folded to this mark: read as "i" in the plain text and as both "i" and
# "l" in the leetspeak readings, like 1, ! and | ("IoIi", "ScHooIgirl").
CAPITAL_I = "\ue001"
LEET_AMBIGUOUS = "1!|" + CAPITAL_I
_LEET_SYMBOLS = "@$\u20ac+!|" + CAPITAL_I
_LEET_TABLES = {
    reading: str.maketrans({**LEET_COMMON, **dict.fromkeys(LEET_AMBIGUOUS, reading)}) for reading in ("i", "l")
}
# A run of digits is read as letters only if every digit has a letter reading (2 has none): "42yearold" keeps
# its 42 rather than becoming "a2yearold".
_DIGITS_OR_NOT = re.compile(r"[0-9]+|[^0-9]+")

# Word characters: letters and digits of any script (a Cyrillic or CJK letter left in the Latin fold is not
# punctuation) and the leet symbols; everything else but whitespace is punctuation ("_" is folded to "-").
_WORD_CHAR = r"[\w" + re.escape(_LEET_SYMBOLS) + "]"
_NOT_WORD = r"[^\w\s" + re.escape(_LEET_SYMBOLS) + "]"
_PUNCT_RUN = re.compile(_NOT_WORD + "+")
_INNER_PUNCT = re.compile(rf"(?<={_WORD_CHAR}){_NOT_WORD}+(?={_WORD_CHAR})")
_APOSTROPHE_ONLY = re.compile(r"'+")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_SINGLE_RUN = re.compile(rf"(?<!\S){_WORD_CHAR}(?:\s+{_WORD_CHAR}(?!\S)){{2,}}")
_HAS_LETTER = re.compile(r"[a-z\u00f1]")
# Leetspeak is read per run of word characters: "42-year-old" is three runs, so "42" stays a number.
_WORD_RUN = re.compile(f"{_WORD_CHAR}+")
_LEET_CHARS = re.compile(f"[0-9{re.escape(_LEET_SYMBOLS)}]+")
_UNIT_TOKEN = re.compile(r"[0-9]+(?:mm|cm|km|m|k|p|px|fps|kg|lbs?|s|h|x|d|gb|mb|hz|ft|in|st|nd|rd|th|yo|y|yr|yrs)")
# A whole word holding a digit or leet symbol (the lookahead scans each word once: linear time).
_LEET_WORD = re.compile(f"(?<!{_WORD_CHAR})(?={_WORD_CHAR}*[0-9{re.escape(_LEET_SYMBOLS)}]){_WORD_CHAR}+")
_TRAILING_BANG = re.compile(r"!+$")
_BANG_AT_WORD_END = re.compile(r"!+(?!\S)")
_REPEATED = re.compile(r"([a-z])\1{2,}")
# A capital I may stand for an l after a lower-case letter ("chiId", "ScHooIgirl") or starting a word before a
# vowel ("IoIi", "Iolita"); not in an all-capitals word, nor in the many words that begin with a capital I and a
# consonant ("It", "In", "Is", "If"), which would only cost a second reading of ordinary prose.
_CAPITAL_I = re.compile(r"(?<=[a-z])[I\u0406\u0399\u04c0]|(?<![A-Za-z])[I\u0406\u0399\u04c0](?=[aeiouy])")
# Latin letters by Unicode name, also enclosed ones NFKC leaves alone ("NEGATIVE CIRCLED LATIN CAPITAL LETTER T",
# "SQUARED LATIN CAPITAL LETTER A") and regional indicators ("🇹🇪🇪🇳").
_LATIN_NAME = re.compile(
    r"(?:[A-Z ]+ )?(?:LATIN (?:SMALL |CAPITAL )?|REGIONAL INDICATOR SYMBOL )LETTER (?:SMALL CAPITAL )?([A-Z])"
    r"(?: WITH .*)?"
)

_NATIVE_SCRIPT = re.compile(
    r"[\u0400-\u04ff\u0600-\u06ff\u0750-\u077f\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uff66-\uff9f]"
)
_EMOJI = re.compile(r"[\u2600-\u27bf\U0001f000-\U0001faff]")
_EMOJI_NOISE = re.compile(r"[\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")

ARABIC_FOLDS = {"\u0623": "\u0627", "\u0625": "\u0627", "\u0622": "\u0627", "\u0671": "\u0627", "\u0649": "\u064a"}
ARABIC_FOLDS |= {"\u0629": "\u0647", "\u0624": "\u0648", "\u0626": "\u064a", "\u06cc": "\u064a", "\u06a9": "\u0643"}
# Latin letters and digits as typed inside a Cyrillic word, read as the Cyrillic letter they imitate.
_TO_CYRILLIC = str.maketrans(
    "abcehkmnoprtuxy03469",
    "\u0430\u0432\u0441\u0435\u043d\u043a\u043c\u043f\u043e\u0440\u0433\u0442\u0438\u0445"
    "\u0443\u043e\u0437\u0447\u0431\u0434",
)
_MIXED_CYRILLIC_WORD = re.compile(r"[0-9a-z\u0430-\u044f]*[\u0430-\u044f][0-9a-z\u0430-\u044f]*")
_LATIN_OR_DIGIT = re.compile(r"[0-9a-z]")
_NOT_NATIVE_WORD = re.compile(r"[\W_]+")


@cache
def _confusable_table() -> dict[str, str]:
    """Non-ASCII character -> the ASCII letter or digit it imitates, from the Unicode confusables data."""
    raw = (resources.files("confusable_homoglyphs") / "confusables.json").read_text(encoding="utf-8")
    data: dict[str, list[dict[str, str]]] = json.loads(raw)

    def ascii_lookalikes(char: str) -> list[str]:
        # Letters only: a Cyrillic letter read as a digit ("б" as 6) would turn Russian words into leetspeak.
        return sorted(h["c"] for h in data.get(char, []) if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha())

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


def _common_fold(char: str) -> str | None:
    """What both folds do to a character: drop invisibles, map whitespace and digits; None if unchanged."""
    category = unicodedata.category(char)
    if category == "Cf" or char in _INVISIBLE:
        return ""
    if category == "Cc":
        return " " if char.isspace() else ""
    if char.isspace():
        return " "
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    return None


class _FoldTable(dict[int, str]):
    """`str.translate` table for `fold`, filled lazily one character at a time."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = char
        if char == _N_TILDE_GUARD:
            value = _N_TILDE
        elif unicodedata.category(char).startswith("M"):
            value = ""
        elif not char.isascii():
            common = _common_fold(char)
            if common is not None:
                value = common
            elif char in _EXTRA_FOLDS:
                value = _EXTRA_FOLDS[char]
            else:
                named = _LATIN_NAME.fullmatch(unicodedata.name(char, ""))
                value = named.group(1).lower() if named else _confusable_table().get(char, char)
        self[code] = value
        return value


class _NativeTable(dict[int, str]):
    """`str.translate` table for `fold_native`, filled lazily."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        value = char
        if char in _KANA_VOICING:
            value = char
        elif unicodedata.category(char).startswith("M"):
            value = ""
        elif not char.isascii():
            common = _common_fold(char)
            value = common if common is not None else ARABIC_FOLDS.get(char, char)
        self[code] = value
        return value


_FOLD_TABLE = _FoldTable()
_NATIVE_TABLE = _NativeTable()


def fold(text: str) -> str:
    """The Latin-script fold of `text` (see the module docstring)."""
    if text.isascii():
        text = _CAPITAL_I.sub(CAPITAL_I, text) if "I" in text else text
        return _SPACES.sub(" ", _CONTROL.sub("", text).lower().replace("_", "-")).strip()
    text = _CAPITAL_I.sub(CAPITAL_I, unicodedata.normalize("NFKC", text))
    text = text.casefold().replace(_N_TILDE, _N_TILDE_GUARD)
    text = unicodedata.normalize("NFD", text).translate(_FOLD_TABLE).replace("_", "-")
    return _SPACES.sub(" ", text).strip()


def has_native_script(text: str) -> bool:
    """Whether `text` holds Cyrillic, Arabic, kana or CJK characters (so the native rules must run)."""
    return _NATIVE_SCRIPT.search(text) is not None


def _to_cyrillic(match: re.Match[str]) -> str:
    word = match.group(0)
    return word.translate(_TO_CYRILLIC) if _LATIN_OR_DIGIT.search(word) else word


def fold_native(text: str) -> str:
    """The fold of `text` that keeps Cyrillic, Arabic, kana and CJK (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).translate(_NATIVE_TABLE))
    text = _MIXED_CYRILLIC_WORD.sub(_to_cyrillic, text)
    return _SPACES.sub(" ", text).strip()


def native_glued(native: str) -> str:
    """Natively folded text with every space and punctuation removed (``ш к о л а``, ``萝 莉``)."""
    return _NOT_NATIVE_WORD.sub("", native)


def emoji_text(text: str) -> str | None:
    """`text` with emoji variation selectors and skin tones removed (ZWJ kept), or None if it has no emoji."""
    if not _EMOJI.search(text):
        return None
    return _EMOJI_NOISE.sub("", text)


def plain(text: str) -> str:
    """Folded text as written: a marked capital I is an i."""
    return text.replace(CAPITAL_I, "i")


def _deleet_word(word: str, reading: str) -> str:
    """One leetspeak reading of a word: only words holding a letter and not a number with a unit ("16th",
    "35mm"); a trailing '!' stays punctuation."""
    if not _HAS_LETTER.search(word) or _UNIT_TOKEN.fullmatch(word):
        return word
    core = _TRAILING_BANG.sub("", word)
    table, tail = _LEET_TABLES[reading], word[len(core) :]
    if "2" not in core:
        return core.translate(table) + tail
    pieces = _DIGITS_OR_NOT.findall(core)
    return "".join(p if p[0].isdigit() and "2" in p else p.translate(table) for p in pieces) + tail


def _deleet(text: str, reading: str) -> str:
    return _LEET_WORD.sub(lambda m: _deleet_word(m.group(0), reading), text)


def _inner_punct_sub(text: str, repl: str, keep: re.Pattern[str] | None = None) -> str:
    def sub(match: re.Match[str]) -> str:
        before, after = text[match.start() - 1], text[match.end()]
        if (before.isdigit() and after.isdigit()) or (keep is not None and keep.fullmatch(match.group(0))):
            return match.group(0)
        return repl

    return _INNER_PUNCT.sub(sub, text)


@lru_cache(maxsize=8)
def _fully_spaced(text: str) -> str:
    """Every punctuation run (except between two digits) and every word-final '!' becomes a space."""
    text = _BANG_AT_WORD_END.sub(" ", text)

    def sub(match: re.Match[str]) -> str:
        start, end = match.start(), match.end()
        if start > 0 and end < len(text) and text[start - 1].isdigit() and text[end].isdigit():
            return match.group(0)
        return " "

    return _SPACES.sub(" ", _PUNCT_RUN.sub(sub, text)).strip()


@lru_cache(maxsize=8)
def _spaced_readings(folded: str) -> tuple[str, ...]:
    """The fully spaced text in its plain and (when they differ) two leetspeak readings."""
    spaced = _fully_spaced(folded)
    if not _LEET_CHARS.search(spaced):
        return (spaced,)
    return tuple(dict.fromkeys((plain(spaced), _deleet(spaced, "i"), _deleet(spaced, "l"))))


def _glue_if_letter(match: re.Match[str]) -> str:
    run = match.group(0)
    return _SPACES.sub("", run) if _HAS_LETTER.search(run) else run


def _variants(text: str) -> dict[str, None]:
    """Every spelling of `text`: spaced, joined, collapsed, squeezed, each in three leetspeak readings."""
    bases = [text]
    if _INNER_PUNCT.search(text):
        bases += [_SPACES.sub(" ", _inner_punct_sub(text, " ")), _inner_punct_sub(text, "", _APOSTROPHE_ONLY)]
    full = _fully_spaced(text)
    if _SINGLE_RUN.search(full):
        bases.append(_SINGLE_RUN.sub(_glue_if_letter, full))
    if _REPEATED.search(text):
        bases += [_REPEATED.sub(r"\1\1", text), _REPEATED.sub(r"\1", text)]
    found: dict[str, None] = {}
    for base in bases:
        found.setdefault(plain(base), None)
        if _LEET_CHARS.search(base):
            found.setdefault(_deleet(base, "i"), None)
            found.setdefault(_deleet(base, "l"), None)
    return found


# Spots whose spelling differs between views: punctuation inside a word, a word mixing letters with digits or
# leet symbols (not a number with a unit: "35mm", "8k", "1080p", "16yo" read the same in every view), a letter
# repeated three times, and (rare; then the whole text) three single characters in a row. Found with patterns
# that open with a character class, which the regex engine scans for quickly.
_PUNCT_CHARS = re.compile(_NOT_WORD + "+")
_MARGIN = 80  # characters of context kept around a changed spot (every rule spans less)
_PHRASE_BREAK = re.compile(r"[,;?\n]")


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char in _LEET_SYMBOLS


def _changed_spots(folded: str) -> list[tuple[int, int]]:
    """Where the views differ from the folded text (see above); the whole text for spaced-out letters."""
    if _SINGLE_RUN.search(_fully_spaced(folded)):
        return [(0, len(folded))]
    spots = [m.span() for m in _REPEATED.finditer(folded)]
    end = len(folded)
    for match in _PUNCT_CHARS.finditer(folded):
        start, stop = match.span()
        if start > 0 and stop < end and _is_word_char(folded[start - 1]) and _is_word_char(folded[stop]):
            before, after = folded[start - 1], folded[stop]
            # only next to a Latin letter: between digits it stays ("16:9"), between other scripts it is moot
            if _HAS_LETTER.match(before) or _HAS_LETTER.match(after):
                spots.append((start, stop))
    for match in _LEET_CHARS.finditer(folded):
        start, stop = match.span()
        if (start > 0 and folded[start - 1].isalpha()) or (stop < end and folded[stop].isalpha()):
            word = _WORD_RUN.match(folded, _word_start(folded, start))
            if word and not _UNIT_TOKEN.fullmatch(word.group(0)):
                spots.append(word.span())
    return sorted(spots)


def _word_start(text: str, index: int) -> int:
    while index > 0 and _is_word_char(text[index - 1]):
        index -= 1
    return index


def _regions(folded: str) -> list[str]:
    """The parts of the text around changed spots, each widened by `_MARGIN` and then to whole phrases.

    Cutting only at phrase breaks keeps every rule's context (``minor scar``, ``depuis 15 ans``) whole."""
    merged: list[list[int]] = []
    for spot_start, spot_end in _changed_spots(folded):
        start, end = max(0, spot_start - _MARGIN), min(len(folded), spot_end + _MARGIN)
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(end, merged[-1][1])
        else:
            merged.append([start, end])
    if not merged:
        return []
    breaks = [-1, *(m.start() for m in _PHRASE_BREAK.finditer(folded)), len(folded)]
    # each region runs from just after the last break before it to the first break after it
    return [
        folded[breaks[bisect(breaks, start - 1) - 1] + 1 : breaks[bisect_left(breaks, end)]] for start, end in merged
    ]


def views(folded: str) -> tuple[str, ...]:
    """The distinct spellings of folded text that Latin rules are matched against (see module doc).

    The whole text is one view; the other spellings are made only of the regions around spots they change
    (with enough context for every rule), so a long ordinary prompt is scanned about once."""
    found: dict[str, None] = {plain(folded): None}
    for region in _regions(folded):
        as_written = plain(region)
        for variant in _variants(region):
            if variant != as_written:  # the region as written is part of the whole text
                found.setdefault(variant, None)
    return tuple(found)


def spaced_runs(folded: str) -> tuple[str, ...]:
    """Each run of spaced-out single characters glued together, in its plain and leetspeak readings."""
    found: dict[str, None] = {}
    for match in _SINGLE_RUN.finditer(_fully_spaced(folded)):
        run = _SPACES.sub("", match.group(0))
        if _HAS_LETTER.search(run):
            for reading in (plain(run), _deleet_word(run, "i"), _deleet_word(run, "l")):
                found.setdefault(reading, None)
    return tuple(found)


def despaced(folded: str) -> tuple[str, ...]:
    """The whole text with every space and punctuation removed, in its plain and leetspeak readings."""
    return tuple(reading.replace(" ", "") for reading in _spaced_readings(folded))


# A fragment that may be glued to its neighbour: 1-3 characters with a letter, but not a standalone one-letter
# word of the supported languages ("a", "y", "e", "o", "n" for "and"...).
_FRAGMENT = r"(?![aeinouy](?!\S))(?=\S{0,2}[a-z\u00f1])\S{1,3}(?!\S)"
_SHORT_PAIR = re.compile(rf"(?<!\S)({_FRAGMENT}) (?=({_FRAGMENT}))")


def pair_joins(folded: str) -> str:
    """Adjacent short fragments glued pairwise (``te en`` -> ``teen``, ``chi ld`` -> ``child``).

    Returned as one space-separated string of the glued pairs, for whole-word term rules only."""
    found: dict[str, None] = {}
    for reading in _spaced_readings(folded):
        for match in _SHORT_PAIR.finditer(reading):
            found.setdefault(match.group(1) + match.group(2), None)
    return " ".join(found)
