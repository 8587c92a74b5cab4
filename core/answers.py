"""Reading the setup answers people actually type: typed genders, ages in words, free-text personalities.

Each `parse_*` function returns the value to store or raises `ValidationFailed` whose message EXPLAINS what
was wrong (the flow adds the short question again, in the same bubble). Shape only: the safety of free text
is judged by the caller with both safety layers.

Ages: digits of any script ("25", Arabic-Indic, full-width), English words ("twenty-five", "Twenty Five years old") and
the usual wrappers ("I'm 25", "25 years", "25yo"). Anything that is not exactly one whole number (decimals,
signs, exponents, ranges, comparisons, two numbers) is asked again, never guessed; the floor of 20 is
checked on the number read, so no spelling gets under it.
"""

from __future__ import annotations

import re
import unicodedata

from core.errors import ValidationFailed
from core.models import MAX_APPEARANCE_CHARS, MIN_AVATAR_AGE

MAX_AGE = 99
PERSONALITIES = ("playful", "dominant", "shy", "caring", "intellectual", "adventurous")
GENDERS = ("woman", "man", "non-binary")
#: Longest free-text personality (the avatar's `personality` column holds 32 characters).
MAX_PERSONALITY_CHARS = 32
#: Longest text read as an age (an age is a few words; a longer text is not one).
MAX_AGE_TEXT_CHARS = 60

AGE_NOT_UNDERSTOOD = (
    f'I couldn\'t read that as an age. A whole number like 25 or words like "twenty-five" work ({MIN_AVATAR_AGE} '
    "or more)."
)
AGE_WHOLE_NUMBER = f"Just a whole number of years, please, like 25 ({MIN_AVATAR_AGE} or more)."
AGE_UNDER_FLOOR = f"I have to be at least {MIN_AVATAR_AGE}: that's a firm rule."
AGE_OVER_MAX = f"Let's keep it between {MIN_AVATAR_AGE} and {MAX_AGE}."

_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_SMALL = {
    **_UNITS,
    "zero": 0,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_BIG = ("hundred", "thousand", "million")
# Words that make a single number mean something other than the age itself: asked again, never guessed.
_QUALIFIERS = frozenset(
    {"under", "below", "less", "younger", "than", "not", "minus", "half", "almost", "nearly", "between"}
    | {"over", "above", "more", "older", "plus", "teen", "teens", "teenager", "teenage"}
)
_DECIMAL = re.compile(r"\d\s*[.,]\s*\d")
# A sign before a number ("-30") or a range ("20-25"); "25-year-old" is neither.
_SIGNED = re.compile(r"(?<![a-z0-9])[-+\u2212\u2013\u2014]\s*\d|\d\s*[-~\u2212\u2013\u2014]\s*\d")
_TOKEN = re.compile(r"[a-z]+|\d+")
_ARTICLE = re.compile(r"^(?:an?|the)\s+", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".!?,;:"

_GENDER_WORDS = {
    "female": "woman",
    "lady": "woman",
    "male": "man",
    "guy": "man",
    "nonbinary": "non-binary",
    "non binary": "non-binary",
    "enby": "non-binary",
    "nb": "non-binary",
}


def clean(text: str) -> str:
    """`text` with runs of whitespace made one space, stripped."""
    return re.sub(r"\s+", " ", text).strip()


def _plain(text: str) -> str:
    """A short answer without trailing punctuation or a leading article ("a woman." -> "woman")."""
    return _ARTICLE.sub("", clean(text).rstrip(_TRAILING_PUNCTUATION).strip())


def ascii_digits(text: str) -> str:
    """`text` with compatibility forms folded (NFKC) and the decimal digits of every script made ASCII."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(str(unicodedata.decimal(ch)) if unicodedata.category(ch) == "Nd" else ch for ch in folded)


def parse_gender(text: str) -> str:
    """A short gender description, typed or pressed ("a woman", "female" -> "woman")."""
    value = _plain(text).lower()
    value = _GENDER_WORDS.get(value, value)
    if not 2 <= len(value) <= 30 or any(ch.isdigit() for ch in value) or len(value.split()) > 3:
        raise ValidationFailed("A word or two is enough: woman, man, non-binary, or your own word.")
    return value


def parse_age(text: str) -> int:
    """A whole number of years, at least 20 (hard floor), from digits of any script or English words."""
    value = ascii_digits(text).lower().replace("\u2019", "'")
    if len(value) > MAX_AGE_TEXT_CHARS:
        raise ValidationFailed(AGE_NOT_UNDERSTOOD)
    if _DECIMAL.search(value) or _SIGNED.search(value):
        raise ValidationFailed(AGE_WHOLE_NUMBER)
    numbers: list[int] = []
    tokens = _TOKEN.findall(value)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token in _QUALIFIERS:
            raise ValidationFailed(AGE_NOT_UNDERSTOOD)
        if token.isdigit():
            numbers.append(int(token) if len(token) <= 3 else MAX_AGE + 1)  # bounded: int() never sees a huge string
        elif token in _TENS:
            number = _TENS[token]
            if index < len(tokens) and tokens[index] in _UNITS:  # "twenty five", "twenty-five"
                number += _UNITS[tokens[index]]
                index += 1
            numbers.append(number)
        elif token in _SMALL:
            numbers.append(_SMALL[token])
        elif token in _BIG:
            numbers.append(MAX_AGE + 1)
    if len(numbers) != 1:  # none, or two ("19 or 25", "2e1"): ambiguous, ask again
        raise ValidationFailed(AGE_NOT_UNDERSTOOD)
    age = numbers[0]
    if age < MIN_AVATAR_AGE:
        raise ValidationFailed(AGE_UNDER_FLOOR)
    if age > MAX_AGE:
        raise ValidationFailed(AGE_OVER_MAX)
    return age


def parse_nationality(text: str) -> str:
    """Free text, 2-128 characters ("an Italian." -> "Italian")."""
    value = _plain(text)
    if not 2 <= len(value) <= 128:
        raise ValidationFailed("A nationality or ethnicity in a few words, please, like Italian or Korean.")
    return value


def parse_appearance(text: str) -> str:
    """Free text of 3 to 2000 characters."""
    value = text.strip()
    if len(value) < 3:
        raise ValidationFailed("A few words at least, please: hair, eyes, style…")
    if len(value) > MAX_APPEARANCE_CHARS:
        raise ValidationFailed(f"That's {len(value)} characters; please keep it under {MAX_APPEARANCE_CHARS}.")
    return value


def parse_name(text: str) -> str:
    """1-64 characters of name."""
    value = clean(text)
    if not 1 <= len(value) <= 64 or value.startswith("/"):
        raise ValidationFailed("A name of up to 64 characters, please.")
    return value


def parse_personality(text: str) -> str:
    """One of the six personalities (any case), or the user's own words ("funny and sweet"), up to 32 characters."""
    value = clean(text).rstrip(_TRAILING_PUNCTUATION).strip()
    if value.casefold() in PERSONALITIES:
        return value.casefold()
    if len(value) > MAX_PERSONALITY_CHARS:
        raise ValidationFailed(
            f'A few words are enough (up to {MAX_PERSONALITY_CHARS} characters), like "funny and sweet".'
        )
    if len(value) < 2 or value.startswith("/") or not any(ch.isalpha() for ch in value):
        raise ValidationFailed('Describe it in a few words, like "funny and sweet", or pick one.')
    return value
