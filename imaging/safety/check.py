"""The engine of `imaging.safety`: folds the text once, then tries the rules in order on every spelling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from imaging.safety import terms, terms_world
from imaging.safety.ages import Age, adult_stated, latin_ages
from imaging.safety.ages_world import native_adult_stated, native_ages
from imaging.safety.normalise import (
    despaced,
    emoji_text,
    fold,
    fold_native,
    has_native_script,
    native_glued,
    pair_joins,
    spaced_runs,
    views,
)
from imaging.safety.patterns import alternation
from imaging.safety.verdict import (
    AGE_FLOOR,
    ALLOWED,
    FIELDS,
    RULE_AGE,
    RULE_AGE_PLAY,
    RULE_BORDERLINE,
    RULE_MINOR,
    RULE_SCHOOL,
    RULE_YOUTH_BODY,
    SafetyVerdict,
    blocked,
)

_LETTER = "a-z\u00f1"


@dataclass(frozen=True, slots=True)
class _Texts:
    """Every spelling of one input that the rules read ("" where the input has none of that kind)."""

    views: tuple[str, ...]  # Latin views (normalise.views)
    term_views: tuple[str, ...]  # the views in which some term rule's words occur (one scan finds them)
    runs: tuple[str, ...]  # glued spaced-out runs
    glued: tuple[str, ...]  # Latin text without spaces
    joins: str  # adjacent short fragments glued pairwise
    native: str  # the native fold, when the text holds Cyrillic, Arabic, kana or CJK
    russian: str  # the native fold, when it holds Cyrillic and some Russian term
    arabic: str  # the native fold, when it holds Arabic and some Arabic term
    native_glued: str  # the native fold without spaces, when it holds some CJK term or long stem
    emoji: str


def _compiled(pattern: str) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


@dataclass(frozen=True, slots=True)
class _TermRule:
    """One rule's patterns for each kind of spelling (None where the rule has none)."""

    code: str
    words: re.Pattern[str]  # whole words, in the Latin views and the pair joins
    runs: re.Pattern[str] | None
    glued: re.Pattern[str] | None
    russian: re.Pattern[str] | None
    arabic: re.Pattern[str] | None
    native_glued: re.Pattern[str] | None  # Japanese, Chinese and long Russian and Arabic stems
    emoji: re.Pattern[str] | None

    @classmethod
    def build(cls, code: str) -> _TermRule:
        """The compiled patterns of rule `code` from the term tables."""
        arabic_words = terms_world.ARABIC_WORDS.get(code, ())
        arabic = [alternation(terms_world.ARABIC_PHRASES.get(code, ()), boundary=terms_world.ARABIC)]
        if arabic_words:
            arabic.append(
                rf"(?<![{terms_world.ARABIC}])[\u0648\u0641\u0628\u0644\u0643]?(?:\u0627\u0644)?"
                rf"(?:{alternation(arabic_words)})"
            )
        return cls(
            code=code,
            words=re.compile(rf"(?:{alternation(terms.WORDS[code], boundary=_LETTER)})(?![{_LETTER}])"),
            runs=_compiled("|".join(terms.SPACED_OUT.get(code, ()))),
            glued=_compiled("|".join(terms.DESPACED.get(code, ()))),
            russian=_compiled(alternation(terms_world.RUSSIAN.get(code, ()), boundary=terms_world.CYRILLIC)),
            arabic=_compiled("|".join(a for a in arabic if a)),
            native_glued=_compiled(alternation(terms_world.GLUED.get(code, ()))),
            emoji=_compiled("|".join(terms_world.EMOJI.get(code, ()))),
        )

    def find(self, texts: _Texts, *, joins: bool = True) -> str | None:
        """The first match of this rule in any spelling, or None."""
        for view in texts.term_views:
            match = self.words.search(view)
            if match:
                return match.group(0)
        for pattern, spellings in (
            (self.runs, texts.runs),
            (self.glued, texts.glued),
            (self.words if joins else None, (texts.joins,)),
            (self.russian, (texts.russian,)),
            (self.arabic, (texts.arabic,)),
            (self.native_glued, (texts.native_glued,)),
            (self.emoji, (texts.emoji,)),
        ):
            if pattern is None:
                continue
            for spelling in spellings:
                if spelling:
                    match = pattern.search(spelling)
                    if match:
                        return match.group(0)
        return None


# Tried in this order; the first that matches names the reason. The borderline rule comes last, apart.
_TERM_RULES = tuple(_TermRule.build(code) for code in (RULE_YOUTH_BODY, RULE_MINOR, RULE_AGE_PLAY, RULE_SCHOOL))
_BORDERLINE = _TermRule.build(RULE_BORDERLINE)
_ALL_RULES = (*_TERM_RULES, _BORDERLINE)
# The words of every term rule at once: most texts hold none, and one scan tells (then no rule reads them).
_ANY_WORDS = re.compile(
    rf"(?:{alternation((w for words in terms.WORDS.values() for w in words), boundary=_LETTER)})(?![{_LETTER}])"
)
_ANY_RUSSIAN = re.compile("|".join(r.russian.pattern for r in _ALL_RULES if r.russian))
_ANY_ARABIC = re.compile("|".join(r.arabic.pattern for r in _ALL_RULES if r.arabic))
_ANY_GLUED = re.compile("|".join(r.native_glued.pattern for r in _ALL_RULES if r.native_glued))

# Borderline terms that lean child-like even next to an adult age: they block whatever age is stated.
_STRONG_BORDERLINE = re.compile(
    rf"(?<![{_LETTER}])(?:(?:very|so|too|super|really)\s+young(?!\s+(?:at\s+heart|in\s+spirit))"
    rf"|young\s+(?:{terms.GIRL}|{terms.BOY}|body)s?"
    rf"|(?:tiny|small|smol|wee)\s+(?:{terms.GIRL}|{terms.BOY})s?)(?![{_LETTER}])"
)
#: Separate young-looking terms that block a description even when it states an adult age.
STACKED_BORDERLINE = 3
# Each borderline pattern on its own, to count how many different ones a text stacks up.
_BORDERLINE_EACH = tuple(re.compile(rf"(?<![{_LETTER}])(?:{pattern})(?![{_LETTER}])") for pattern in terms.BORDERLINE)


def _disjoint_borderline(view: str) -> int:
    """How many separate places of `view` hold borderline wording (overlapping matches count once)."""
    spans = sorted(m.span() for pattern in _BORDERLINE_EACH for m in pattern.finditer(view))
    places, end = 0, -1
    for start, stop in spans:
        if start >= end:
            places += 1
        end = max(end, stop)
    return places


def _borderline_stacked(texts: _Texts) -> str | None:
    """Why borderline wording blocks even with an adult age stated: a strong term, or three separate ones (a
    description piling young looks up; one or two, like "a youthful 30-year-old with a girlish smile", pass)."""
    for view in texts.views:
        strong = _STRONG_BORDERLINE.search(view)
        if strong:
            return f"'{strong.group(0)}' (child-like whatever the age)"
    places = max((_disjoint_borderline(view) for view in texts.views), default=0)
    return f"{places} young-looking terms stacked" if places >= STACKED_BORDERLINE else None


# In the name field any number under 20 reads as an age ("Mia 15"), unless it stands for a letter ("L0la").
_NAME_NUMBER = re.compile(r"(?<![0-9])[0-9]{1,2}(?![0-9])")


def _name_numbers(folded: str) -> list[Age]:
    ages = []
    for match in _NAME_NUMBER.finditer(folded):
        start, end = match.start(), match.end()
        inside_word = start > 0 and folded[start - 1].isalpha() and end < len(folded) and folded[end].isalpha()
        value = int(match.group(0))
        if not inside_word and 0 < value < AGE_FLOOR:
            ages.append(Age(value, f"{value} (number in a name)"))
    return ages


_CYRILLIC_SCRIPT = re.compile(f"[{terms_world.CYRILLIC}]")
_ARABIC_SCRIPT = re.compile(f"[{terms_world.ARABIC}]")


def _texts(text: str, folded: str) -> _Texts:
    native = fold_native(text) if has_native_script(text) else ""
    glued = native_glued(native) if native else ""
    spellings = views(folded)
    return _Texts(
        views=spellings,
        term_views=tuple(view for view in spellings if _ANY_WORDS.search(view)),
        runs=spaced_runs(folded),
        glued=despaced(folded),
        joins=pair_joins(folded),
        native=native,
        russian=native if _CYRILLIC_SCRIPT.search(native) and _ANY_RUSSIAN.search(native) else "",
        arabic=native if _ARABIC_SCRIPT.search(native) and _ANY_ARABIC.search(native) else "",
        native_glued=glued if _ANY_GLUED.search(glued) else "",
        emoji=emoji_text(text) or "",
    )


def _check(text: str, field: str, year: int) -> SafetyVerdict:
    folded = fold(text)
    if not folded:
        return ALLOWED
    texts = _texts(text, folded)

    ages = [age for view in texts.views for age in latin_ages(view, year)]
    if texts.native:
        ages += native_ages(texts.native, year)
    if field == "name":
        ages += _name_numbers(folded)
    under = [age for age in ages if age.value < AGE_FLOOR]
    if under:
        return blocked(RULE_AGE, min(under, key=lambda age: age.value).detail)

    for rule in _TERM_RULES:
        found = rule.find(texts)
        if found:
            return blocked(rule.code, f"'{found}'")

    # A one-word name is a name, not a description of looks ("Nena"): the borderline rule reads descriptions.
    if field == "name" and " " not in folded:
        return ALLOWED
    found = _BORDERLINE.find(texts, joins=False)
    if found:
        # A scene sets no age (the avatar's is fixed): an age written there must not license young looks.
        if field == "scene":
            return blocked(RULE_BORDERLINE, f"'{found}' (young-looking wording in a scene)")
        stacked = _borderline_stacked(texts)
        if stacked:
            return blocked(RULE_BORDERLINE, stacked)
        adult = (
            any(age.value >= AGE_FLOOR for age in ages)
            or any(adult_stated(view) for view in texts.views)
            or (bool(texts.native) and native_adult_stated(texts.native))
        )
        if not adult:
            return blocked(RULE_BORDERLINE, f"'{found}' (no adult age >= {AGE_FLOOR} stated)")
    return ALLOWED


def _current_year(year: int | None) -> int:
    return datetime.now(UTC).year if year is None else year


def check_prompt(text: str, *, year: int | None = None) -> SafetyVerdict:
    """Whether `text` may be used for an image of the user's adult character (see `imaging.safety`).

    `year` is the current year, for birth years; it defaults to the clock (UTC)."""
    return _check(text, "prompt", _current_year(year))


def check_field(field: str, text: str, *, year: int | None = None) -> SafetyVerdict:
    """Whether one avatar setup field, checked alone, is allowed; ``field="prompt"`` is `check_prompt`.

    Raises ValueError for a field not in `FIELDS`."""
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}; expected one of {', '.join(FIELDS)}")
    return _check(text, field, _current_year(year))
