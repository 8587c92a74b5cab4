"""Stated ages in Latin-script text (EN FR ES DE IT PT and romanised JA ZH RU AR), for `imaging.safety`.

A number - digits, decimals, a number word, a Roman numeral, an ordinal - is an age only in an age
construction; everything here runs on one folded view (`imaging.safety.normalise.views`):

* a marker after it: ``years old``, ``yo``, ``y/o``, ``-jährige``, ``años de edad``, ``añitos``, ``geworden``,
  romanised ``sai``/``sui``/``let``/``sana``; or a bare ``years``/``yrs``/``ans``/``años``/``Jahre``/``anni``/
  ``anos``, unless a duration word stands before (``for``, ``since``, ``over``, ``than``, ``depuis``,
  ``hace``, ``seit``, ``da``...) or after (``ago``, ``of``, ``in``, ``together``, ``d'expérience``, ``fa``,
  ``lang``...): ``a girl, 17 yrs`` is an age, ``married for 15 years`` is not. A range counts from both ends
  (``15-17``, ``16 or 17``, ``between 15 and 17 years old``; not ``y``/``e``/``et``/``und``, which join the
  parts of one number: ``setenta e um``);
* a marker before it: ``age``, ``aged (between)``, ``âgée de``, ``edad``, ``Alter``, ``età``, ``idade``,
  ``turned``/``turns``, ``barely``, ``sweet``, ``she is``/``I'm`` (with hedges: ``she's like 15``),
  ``she'll be``, ``looks``, ``seems``, ``appears to be``, ``could pass for``, ``pretending to be``,
  ``cumple``, ``aparenta``, ``sieht aus wie``, ``dimostra``, ``completou``, ``a girl/woman/chica/chamaca…
  of/de/di/von``, ``mit … Jahren``, ``N going on M``;
* a number ending its phrase after a hedge (``only 14``, ``could be 16``, ``maybe 15 or 16``, ``no more than
  15``, ``tiene 16``, ``elle a 16``), after a child-ish person noun (``girl, 14``, ``Baby Girl 15``), alone
  as a phrase of a description (``Lisa, 15, blonde``), in brackets after a word (``Mia (15)``), or with
  ``and a half``;
* "under N": ``under``, ``below``, ``younger than``, ``not yet``, ``almost``, ``menos de``, ``moins de``,
  ``unter``, ``sotto i``, ``abaixo de``..., ``u18``/``sub-18`` - the age is N-1, so ``under 20`` and lower
  block (``under 21`` does not); only when the number ends the phrase, so ``under 5 feet`` and ``less
  than 10 people`` are not ages;
* a birthday: an ordinal or number with ``birthday``/``bday``/``anniversaire``/``cumpleaños``/
  ``Geburtstag``/``compleanno``/``aniversário`` (``16th``, ``sixteenth``, ``16.``, ``16º``, ``seizième``);
  ``in her 16th year`` is 15;
* a birth year: ``born (in)``, ``b.``, ``DOB``, ``date of birth``, ``birth year``, ``née en``, ``nacida en``,
  ``geboren``, ``Jahrgang``, ``nata nel``, ``classe``, ``nascida em``... followed within a few words by a
  year (4 digits, ``'09`` or the end of a date ``03/05/09``): the age is the current year minus the birth
  year (``born 16 years ago`` is 16); ``class of 2030`` is read as a university class (22 at graduation).

Numbers next to units or as ordinals otherwise are never ages: ``19th century``, ``size 14``, ``5'4``,
``18+``, ``16:9``, ``room 16``, ``under 5 ft``. Adult ages stated in words (``in her twenties``,
``mid-30s``, ``la trentaine``, ``over 25``) count as adult for the borderline rule (`adult_stated`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from imaging.safety.numbers import (
    INTEGER,
    INTEGER_DIGITS,
    NUMBER,
    ORDINAL,
    ROMAN_NUMERAL,
    ROMANISED_NUMBER_WORD,
    number_value,
    ordinal_value,
    roman_value,
)
from imaging.safety.patterns import alternation
from imaging.safety.verdict import AGE_FLOOR

_LETTER = "a-z\u00f1"
_N = "(?:\u00f1|n|ny|nh)"


@dataclass(frozen=True, slots=True)
class Age:
    """An age stated in the text, with how it was written (the reason's detail)."""

    value: int
    detail: str


_JAHR = "j(?:a|ae)hr"
_ANO = f"a{_N}?(?:i)?o"
_STRONG_AFTER = (
    r"(?:years?|yrs?|yr|y)\s*-?\s*(?:old|of\s+age|young)",
    r"(?:months?|weeks?|days?)\s*-?\s*old",
    r"(?:summers|springs|winters)\s*-?\s*(?:old|young)",
    r"y\s*[/.]?\s*o\.?",
    rf"{_JAHR}(?:e|en)?\s*-?\s*alt",
    rf"{_JAHR}ig(?:e|er|en|em|es)?",
    rf"{_ANO}s?\s+de\s+(?:edad|idade)",
    r"ann(?:i|o)\s+(?:d\s*'?\s*eta|di\s+eta)",
    r"ans\s+d\s*'?\s*age",
    r"geworden",
    rf"a{_N}itos",
)
_BARE_AFTER = (r"ans", rf"{_ANO}s?", rf"{_JAHR}e?", r"ann(?:i|o)", r"years?|yrs?")
# Between the ends of a range. Not "y", "e", "et", "und": they join the parts of one number ("setenta e um").
_RANGE = r"(?:\s*(?:-|/|~)\s*|\s+(?:to|a|bis|al|or|and|o|ou|oder)\s+)"
_HALF = r"(?:\s+(?:and\s+a\s+half|et\s+demi|y\s+medio|und\s+(?:ein\s*)?halb|e\s+mezzo|e\s+meio))?"
# An age marker after a number; the number is then looked for right before it (markers are rare, numbers not).
_ROMANISED_AFTER = ("sai", "sui", "let", "goda", "sana", "sanah", "sanawat")
# One alternation of every marker (strong ones first, so "years old" is not read as the bare "years"); which
# kind was found is told afterwards.
_AFTER_MARKER = re.compile(rf"(?:{alternation((*_STRONG_AFTER, *_BARE_AFTER, *_ROMANISED_AFTER))})(?![{_LETTER}])")
_STRONG_MARKER = re.compile(alternation(_STRONG_AFTER))
_ROMANISED_MARKER = re.compile("|".join(_ROMANISED_AFTER))
_NUMBER_BEFORE_MARKER = re.compile(rf"(?P<n1>{NUMBER})(?:{_RANGE}(?P<n2>{NUMBER}))?{_HALF}\s*-?\s*\Z")
_ROMANISED_BEFORE_MARKER = re.compile(rf"(?P<n1>{ROMANISED_NUMBER_WORD}|{INTEGER_DIGITS})\s*-?\s*\Z")
_ROMAN_BEFORE_MARKER = re.compile(rf"(?P<n1>{ROMAN_NUMERAL})\s*-?\s*\Z")
_ROMAN_MARKERS = ("year", "yr", "ans", "an", "a\u00f1", "ann", "jahr")
_WINDOW = 60  # characters before a marker in which its number is looked for
_DURATION_BEFORE = re.compile(
    r"(?<![a-z\u00f1])(?:depuis|pendant|durant|en|dans|il\s+y\s+a|apres|tous\s+les|desde|hace|durante|por|cada|"
    r"tras|seit|vor|fur|fuer|nach|alle|uber|ueber|da|per|fra|tra|dopo|ogni|faz|em|apos|for|since|after|every|"
    r"over|in|within|past|last|next|than|of|about|around|nearly|almost|took|spent|lasted|been|some|few)\s*$"
)
_PT_AGO = re.compile(r"(?<![a-z\u00f1])ha\s*$")
_DURATION_AFTER = re.compile(
    r"\s*(?:de(?!\s+(?:edad|idade))|d(?:\s*'|(?![a-z\u00f1]))|di(?!\s+eta)|du|des|do|da|fa|her|lang|spater|spaeter|"
    r"zuvor|erfahrung|later|despues|depois|dopo|apres|plus\s+tard|mas\s+tarde|mais\s+tarde|antes|avant|prima|"
    r"fruher|frueher|atras|auparavant|luego|ago|of|in|earlier|before|after|together|married|since|on|at|with|long|"
    r"running|straight)(?![a-z\u00f1])"
)

_PERSON_NOUNS = (
    "woman|man|lady|girl|boy|guy|female|male|femme|fille|gamine|meuf|mujer|chica|chico|chamaca|chava|chavala|morra|"
    "piba|muchacha|nena|ni\u00f1a|ni\u00f1o|jovencita|chiquilla|frau|madchen|maedchen|donna|ragazza|ragazzina|"
    "ragazzo|mulher|garota|garoto|moca|menina|novinha"
)
_HEDGES = r"(?:\s+(?:like|about|around|only|just|barely|maybe|probably|now|already|still|almost|nearly|erst|schon))*"
_BEFORE_MARKERS = (
    r"(?:at\s+the\s+)?age\s+of",
    r"ages?",
    r"aged",
    r"agee?s?(?:\s+de)?",
    r"edad(?:\s+de)?",
    r"(?:im\s+)?alter(?:\s+von)?",
    r"eta(?:\s+di)?",
    r"idade(?:\s+de)?",
    r"turned|turning|turns?|barely|sweet|fresh",
    r"(?:she|he|i|you)\s*(?:'?\s*ll|will)\s+(?:be|turn)",
    rf"(?:she|he|i|you)\s*(?:'?\s*s|is|am|'?\s*m|was|are|'?\s*re|were){_HEDGES}",
    r"look(?:s|ed|ing)?(?:\s+(?:like|about|around|maybe|only|barely|just|roughly|at\s+most|no\s+(?:older|more)\s+than))*",
    rf"(?:seem|appear)(?:s|ed|ing)?(?:\s+to\s+be)?{_HEDGES}",
    r"(?:could|would|can|might|will)\s+(?:easily\s+)?pass\s+(?:for|as)",
    r"pass(?:es|ing)?\s+(?:for|as)",
    r"pretend(?:s|ed|ing)?\s+to\s+be",
    r"cumpl(?:e|io|ira|ir|idos)|recien\s+cumplidos|aparenta(?:r)?(?:\s+tener)?|parece\s+(?:tener|de)",
    r"on\s+lui\s+donne(?:rait)?|semble\s+avoir|a\s+peine|tout\s+juste",
    r"sieht\s+aus\s+wie|wirkt\s+wie|(?:sie|er|ich)\s+(?:wird|wurde|ist|bin|war)" + _HEDGES,
    r"sembra\s+(?:avere|una\s+di)|dimostra|compi(?:e|uto|uti)|ha\s+appena\s+compiuto",
    r"parece\s+ter|aparenta(?:r)?\s+ter|complet(?:ou|a|ando)|mal\s+fez",
    rf"(?:{_PERSON_NOUNS})\s+(?:of|de|di|von)",
)
_UNITS = (
    r"ft|feet|foot|inch|inches|in|cm|mm|m|meters?|metres?|metros?|km|kg|kilos?|lbs?|pounds?|stone|st|nd|rd|th|x|k|p|"
    r"pm|am|h|hours?|hrs?|horas?|heures?|stunden?|ore|uhr|minutes?|mins?|minutos?|minuten?|minuti|seconds?|secs?|"
    r"days?|dias?|jours?|tage?n?|giorni|weeks?|wochen?|months?|times?|veces|fois|mal|volte|vezes|of|out|more|"
    r"percent|stars?|points?|dd|d|cups?|degrees?|euros?|dollars?|pesos?|usd|eur|gb|mb|fps|mph|kmh"
)
_NOT_AN_AGE_AFTER = rf"\s*(?:['\"+%\u00b0]|(?:{alternation([_UNITS])})(?![a-z]))"
_AGE_BEFORE = re.compile(
    rf"(?:{alternation(_BEFORE_MARKERS, boundary=_LETTER)})\s*[:=]?\s*(?:between\s+)?(?P<n1>{INTEGER})"
    rf"(?!{_NOT_AN_AGE_AFTER})"
)
_AGE_MIT_JAHREN = re.compile(rf"(?<![{_LETTER}])mit\s+(?P<n1>{NUMBER})\s*{_JAHR}en(?![{_LETTER}])")

# What may follow a number read as an age after "under", or after a person noun: the end of the phrase.
_PHRASE_END = (
    r"(?=s?\s*(?:$|[^\w\s'\"+%]|(?:and|or|y|et|und|e|o|ou|yet|only|still|girls?|boys?|models?|women|woman|"
    r"females?|ladies|lady|chicas?|filles?|madchen|ragazze?|garotas?|mujer(?:es)?|femmes?|frau(?:en)?|donn[ae]|"
    r"mulher(?:es)?)(?![a-z])))"
)
_UNDER_MARKERS = (
    r"under|below|younger\s+than|less\s+than|not\s+(?:yet|quite)|almost|nearly|"
    r"menos\s+de|menor\s+de|menor\s+que|casi|moins\s+de|presque|pas\s+encore|unter|j(?:u|ue)nger\s+als|fast|"
    r"noch\s+nicht|sotto\s+(?:i|gli)|meno\s+di|minore\s+di|quasi|non\s+ancora|abaixo\s+de|menos\s+que|quase|"
    r"ainda\s+nao"
)
_AGE_UNDER = re.compile(
    rf"(?:{alternation([_UNDER_MARKERS], boundary=_LETTER)})\s*-?\s*(?P<n1>{INTEGER}){_PHRASE_END}"
    rf"(?!{_NOT_AN_AGE_AFTER})|(?<![{_LETTER}0-9])(?:u|sub)\s*-?\s*(?P<n2>1[2-9]|2[01])(?![0-9])"
)
# A hedged number ending the phrase: "only 14", "could be 16", "maybe 15 or 16", "no more than 15".
_HEDGES_BEFORE = (
    r"only|just|merely|still|barely|not\s+even|could\s+be|maybe|probably|no\s+more\s+than|no\s+older\s+than|"
    r"at\s+most|tiene|tenia|tem|tinha|ha|hat|(?:elle|il)\s+a"
)
_AGE_HEDGED = re.compile(
    rf"(?:{alternation([_HEDGES_BEFORE], boundary=_LETTER)})\s+(?P<n1>{INTEGER}){_PHRASE_END}(?!{_NOT_AN_AGE_AFTER})"
)
_AGE_GOING_ON = re.compile(rf"(?P<n1>{INTEGER})\s+going\s+on\s+[0-9a-z]")
# A number standing alone as a phrase of a description ("Lisa, 22, blonde"; "after school, 15"), or in
# brackets right after a word ("Mia (15)"), is an age; so is "fourteen and a half".
_AGE_ALONE = re.compile(rf"[,;]\s*(?P<n1>{INTEGER_DIGITS})\s*(?=$|[,;]|\.\s*$)")
_AGE_ALONE_AT_START = re.compile(rf"\s*(?P<n1>{INTEGER_DIGITS})\s*(?=$|[,;]|\.\s*$)")
_AGE_IN_BRACKETS = re.compile(rf"\(\s*(?P<n1>{INTEGER_DIGITS})\s*\)")
_AGE_AND_A_HALF = re.compile(
    rf"(?P<n1>{INTEGER})\s+(?:and\s+a\s+half|et\s+demi|y\s+medio|und\s+ein\s*halb|e\s+mezzo|e\s+meio){_PHRASE_END}"
)
_CHILD_NOUNS = (
    r"girl|gurl|boy|babe|baby|kid|chica|chico|fille|madchen|maedchen|ragazza|ragazzo|garota|garoto|menina|menino|"
    r"nena|lolita|teen|ni\u00f1a|ni\u00f1o"
)
_AGE_AFTER_NOUN = re.compile(
    rf"(?:{alternation([_CHILD_NOUNS])})s?\s*[-_,:(]?\s*(?P<n1>{INTEGER_DIGITS}){_PHRASE_END}(?!{_NOT_AN_AGE_AFTER})"
)
_BIRTHDAY = rf"(?:birthday|bday|b\s*-?\s*day|anniversaire|cumplea{_N}os|cumple|geburtstag|compleanno|aniversario)"
_AGE_BIRTHDAY = re.compile(
    rf"{ORDINAL}\s*{_BIRTHDAY}(?![{_LETTER}])"
    rf"|(?<![0-9])(?P<card>[0-9]{{1,2}})\s*{_BIRTHDAY}(?![{_LETTER}])"
    rf"|{_BIRTHDAY}\s+(?:(?:numero|number|n\s*o\.?)\s*)?(?P<after>{INTEGER_DIGITS})(?!{_NOT_AN_AGE_AFTER})"
)
_AGE_NTH_YEAR = re.compile(rf"in\s+(?:her|his|their|my|your)\s+{ORDINAL}\s+year")
# Words after which a year within a few words is a birth year; the short ones only right before the year.
_BIRTH_WORDS = (
    r"born|dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*(?:date|year)|birthday\s*[:=]|year\s+of\s+birth|"
    r"nee?\s+le\s+[0-9]|date\s+de\s+naissance|annee\s+de\s+naissance|nacid[ao]|nacio|"
    rf"fecha\s+de\s+nacimiento|{_ANO}\s+de\s+nacimiento|geboren|geburtsjahr|geburtsdatum|nat[ao]\s+(?:a|il|nel)|"
    r"data\s+di\s+nascita|anno\s+di\s+nascita|nascid[ao]|nasceu|data\s+de\s+nascimento|ano\s+de\s+nascimento"
)
_BIRTH_WORDS_TIGHT = r"b\.|nee?\s+en|geb\.|jahrgang|classe(?:\s+del)?"
_BIRTH_YEAR = re.compile(
    rf"(?<![{_LETTER}])(?:(?:{_BIRTH_WORDS})(?:[^.;!?\n]|(?<=[0-9])\.(?=[0-9])){{0,24}}?|(?:{_BIRTH_WORDS_TIGHT})\s*)"
    r"(?:(?<![0-9])(?P<year>(?:19|20)[0-9]{2})(?![0-9])|'(?P<yy>[0-9]{2})(?![0-9])"
    r"|(?<![0-9])[0-9]{1,2}[./-][0-9]{1,2}[./-](?P<yy2>[0-9]{2})(?![0-9]))"
)
_BORN_AGO = re.compile(rf"(?<![{_LETTER}])born\s+(?P<n1>{INTEGER_DIGITS})\s+years?\s+ago")
_CLASS_OF = re.compile(r"(?<![a-z])class\s+of\s+(?:(?P<year>(?:19|20)[0-9]{2})|'(?P<yy>[0-9]{2}))(?![0-9])")

# Adult ages stated without a number next to a marker: decades, "-something", "over N".
_ADULT_DECADES = re.compile(
    rf"(?<![{_LETTER}0-9])(?:"
    r"(?:in\s+(?:her|his|their|my|your)\s+(?:(?:early|mid|late)[\s-]*)?|(?:early|mid|late)[\s-]*)"
    r"(?:[2-9]0\s*'?\s*s|twenties|thirties|forties|fifties|sixties|seventies)"
    r"|(?:[2-9]0|twenty|thirty|forty|fifty)[\s-]*something"
    r"|(?:la\s+)?(?:vingtaine|trentaine|quarantaine|cinquantaine)"
    r"|(?:mitte|anfang|ende)\s+(?:zwanzig|dreissig|vierzig|funfzig|fuenfzig|[2-5]0)"
    r"|(?:veinte|treinta|cuarenta)\s*(?:y\s*)?(?:tantos|pocos)|veintitantos|treintanera|cuarentona"
    r"|(?:sulla|sui|nella)\s+(?:ventina|trentina|quarantina)|(?:ventenne|trentenne|quarantenne)"
    rf")(?![{_LETTER}])"
)
_OVER = re.compile(
    rf"(?<![{_LETTER}])(?:over|older\s+than|above|plus\s+de|mas\s+de|mehr\s+als|(?:u|ue)ber|piu\s+di|mais\s+de)"
    rf"\s+(?P<n1>{INTEGER_DIGITS})(?!{_NOT_AN_AGE_AFTER})"
)

# Italian "-enne" ages: "sedicenne" is a sixteen-year-old.
_IT_ENNE_VALUES = {
    "dec": 10,
    "undic": 11,
    "dodic": 12,
    "tredic": 13,
    "quattordic": 14,
    "quindic": 15,
    "sedic": 16,
    "diciassett": 17,
    "diciott": 18,
    "diciannov": 19,
}
_AGE_IT_ENNE = re.compile(rf"(?<![{_LETTER}])(?P<stem>{'|'.join(_IT_ENNE_VALUES)})enn(?:e|i)(?![{_LETTER}])")


def _birth_age(match: re.Match[str], year: int) -> int:
    """The age in `year` of someone born in the matched year (two-digit years: the most recent century)."""
    if match.group("year"):
        born = int(match.group("year"))
    else:
        two = int(match.groupdict().get("yy") or match.groupdict().get("yy2") or 0)
        born = 2000 + two if 2000 + two <= year else 1900 + two
    return year - born


def _has(view: str, hints: tuple[str, ...]) -> bool:
    """Cheap pre-check: whether any of the literal `hints` a pattern needs is in the view."""
    return any(hint in view for hint in hints)


def _ages_before_markers(view: str) -> Iterator[Age]:
    """Numbers right before an age marker ("17 years old", "15 ans", "16 sai", "XVI anni")."""
    for marker in _AFTER_MARKER.finditer(view):
        start = max(0, marker.start() - _WINDOW)
        head = view[start : marker.start()]
        strong = _STRONG_MARKER.fullmatch(marker.group(0)) is not None
        if not strong and _ROMANISED_MARKER.fullmatch(marker.group(0)):
            match = _ROMANISED_BEFORE_MARKER.search(head)
        else:
            match = _NUMBER_BEFORE_MARKER.search(head)
            if match is None and marker.group(0).startswith(_ROMAN_MARKERS):
                roman = _ROMAN_BEFORE_MARKER.search(head)
                if roman:
                    yield Age(roman_value(roman.group("n1")), roman.group("n1"))
                continue
        if match is None:
            continue
        number_start = start + match.start()
        before = view[max(0, number_start - 16) : number_start]
        if marker.group(0).startswith("ano") and _PT_AGO.search(before):
            continue  # Portuguese "há 5 anos" is "5 years ago" (Italian "ha 5 anni" is "is 5")
        if not strong and (_DURATION_BEFORE.search(before) or _DURATION_AFTER.match(view, marker.end())):
            continue
        for group in ("n1", "n2"):
            number = match.groupdict().get(group)
            if number:
                yield Age(number_value(number), str(number_value(number)))


# Patterns read only when one of their literal hints is in the view.
_NUMBER_PATTERNS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (_AGE_BEFORE, ()),
    (_AGE_AFTER_NOUN, ()),
    (_AGE_MIT_JAHREN, ("mit",)),
    (_BORN_AGO, ("born",)),
    (
        _AGE_HEDGED,
        (
            "only",
            "just",
            "merely",
            "still",
            "barely",
            "even",
            "could",
            "maybe",
            "probably",
            "more",
            "older",
            "most",
            "tiene",
            "tenia",
            "tem",
            "tinha",
            "ha",
            "a ",
        ),
    ),
    (_AGE_GOING_ON, ("going on",)),
    (_AGE_AND_A_HALF, ("half", "demi", "medio", "halb", "mezzo", "meio")),
)
_UNDER_HINTS = (
    "under", "below", "young", "less", "not ", "almost", "nearly", "older", "most", "menos", "menor", "casi",
    "moins", "presque", "encore", "unter", "nger", "fast", "noch", "sotto", "meno", "minore", "quasi",
    "ancora", "abaixo", "quase", "ainda", "u1", "u2", "u-", "sub",
)  # fmt: skip
_BIRTHDAY_HINTS = ("birth", "bday", "b-day", "b day", "anniv", "cumple", "geburtstag", "compleanno", "aniversario")
_BIRTH_HINTS = (
    "born", "dob", "d.o.b", "birth", "ne ", "nee", "naiss", "nac", "geb", "jahrgang", "nat", "classe", "nasc", "b.",
)  # fmt: skip


def latin_ages(view: str, year: int) -> Iterator[Age]:
    """Every age stated in one Latin view of the text."""
    yield from _ages_before_markers(view)
    for pattern, hints in _NUMBER_PATTERNS:
        if not hints or _has(view, hints):
            for match in pattern.finditer(view):
                value = number_value(match.group("n1"))
                yield Age(value, str(value))
    yield from _ages_alone(view)
    if "enn" in view:
        for match in _AGE_IT_ENNE.finditer(view):
            value = _IT_ENNE_VALUES[match.group("stem")]
            yield Age(value, str(value))
    yield from _special_ages(view, year)


def _ages_alone(view: str) -> Iterator[Age]:
    """Numbers standing alone as a phrase ("Lisa, 15, blonde") or in brackets after a word ("Mia (15)")."""
    alone = [*_AGE_ALONE.finditer(view)]
    at_start = _AGE_ALONE_AT_START.match(view)
    if at_start:
        alone.append(at_start)
    for match in _AGE_IN_BRACKETS.finditer(view):
        if view[: match.start()].rstrip()[-1:].isalpha():
            alone.append(match)
    for match in alone:
        value = number_value(match.group("n1"))
        yield Age(value, str(value))


def _special_ages(view: str, year: int) -> Iterator[Age]:
    """Ages written as "under N", birthdays, ordinal years, birth years and graduating classes."""
    if _has(view, _UNDER_HINTS):
        for match in _AGE_UNDER.finditer(view):
            value = number_value(match.group("n1") or match.group("n2"))
            yield Age(value - 1, f"under {value}")
    if _has(view, _BIRTHDAY_HINTS):
        for match in _AGE_BIRTHDAY.finditer(view):
            number = match.group("card") or match.group("after")
            value = number_value(number) if number else ordinal_value(match)
            yield Age(value, f"birthday {value}")
    if "year" in view:
        for match in _AGE_NTH_YEAR.finditer(view):
            yield Age(ordinal_value(match) - 1, f"in her year {ordinal_value(match)}")
    if _has(view, _BIRTH_HINTS):
        for match in _BIRTH_YEAR.finditer(view):
            age = _birth_age(match, year)
            yield Age(age, f"born {year - age} ({age} in {year})")
    if "class of" in view:
        for match in _CLASS_OF.finditer(view):
            years_since = _birth_age(match, year)  # years since graduation; at graduation one is about 22
            yield Age(22 + years_since, f"class of {year - years_since}")


def adult_stated(view: str) -> bool:
    """Whether the view states an adult age without a number next to an age marker (decades, "over 25")."""
    if _ADULT_DECADES.search(view):
        return True
    return any(number_value(m.group("n1")) >= AGE_FLOOR - 1 for m in _OVER.finditer(view))
