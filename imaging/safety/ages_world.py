# ruff: noqa: RUF001, RUF002  (deliberately holds other scripts, homoglyphs and full-width forms)
"""Stated ages in Russian, Japanese, Chinese and Arabic script, for `imaging.safety`.

Runs on the native fold (`imaging.safety.normalise.fold_native`: digits of every script are ASCII,
``ё`` is ``е``, ``й`` is ``и``, Arabic ``ة`` is ``ه``, ``أ`` is ``ا``).

* Russian: a number (digits, words, genitive stems) with ``лет``/``год(а)``/``-летняя``/``-летка``/``-летие``
  (bare ``лет`` is not an age after ``назад``, ``опыта``, ``стажа``... or ``в течение``, ``за``, ``через``);
  ``ей``/``мне``/``возраст``/``исполнилось``/``выглядит на``/``на вид`` before it; ``младше``/``моложе``/
  ``почти`` N at the end of a phrase (N-1); a birth year (``родилась в 2010``, ``2010 года рождения``).
* Japanese and Chinese: a number in digits or CJK numerals with ``歳``/``才``/``岁``/``歲``/``周岁`` or the
  kana ``さい``; ``N歳未満``/``未满N岁``/``不到N岁`` (N-1) and ``N岁以下`` (N); teens (``十代``, ``10代``,
  ``十几岁``); birth years (``2009年生まれ``, ``2010年出生``, ``出生于2010``, ``平成21年生まれ``) and
  Chinese birth cohorts (``10后``: born 2010 or later).
* Arabic: a number (digits, words, colloquial ``ستاشر``, ordinals ``السادسة عشرة``) with ``سنة``/``سنوات``/
  ``عام``/``من العمر``, unless a duration (``منذ``, ``لمدة``, ``خلال``, ``قبل``, ``خبرة``); ``عمرها``/``بعمر``/
  ``سن``/``تبلغ`` before it; ``أقل من``/``دون``/``تحت``/``أصغر من`` N (N-1); ``مواليد 2010``/``ولدت عام 2010``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from imaging.safety.ages import Age
from imaging.safety.numbers import AR_NUMBER, CJK_NUMBER, RU_NUMBER, ar_value, cjk_value, ru_value
from imaging.safety.verdict import AGE_FLOOR

_CYR = "\u0430-\u044f"
_AR = "\u0621-\u064a"
_YEAR = r"(?<![0-9])(?P<year>(?:19|20)[0-9]{2})(?![0-9])"
_YEAR2 = _YEAR.replace("<year>", "<year2>")
_PHRASE_END = r"(?=\s*(?:$|[^\w\s]))"

# --- Russian -------------------------------------------------------------------------------------------
_RU_AFTER = re.compile(
    rf"{RU_NUMBER}\s*-?\s*(?:(?:ти|х|ми|и)\s*-?\s*)?"
    rf"(?:(?P<strong>года?|годик[а-я]*|летн[{_CYR}]*|летк[{_CYR}]*|лети[ея])|(?P<bare>лет))"
    rf"(?![{_CYR}])"
)
_RU_DURATION_BEFORE = re.compile(r"(?:течение|за|через|более|спустя|протяжении|последние|уже\s+как)\s*$")
_RU_DURATION_AFTER = re.compile(r"\s*(?:назад|спустя|опыта|стажа|работы|брака|вместе|подряд|тому)(?![а-я])")
_RU_BEFORE = re.compile(
    rf"(?<![{_CYR}])(?:еи|ему|мне|тебе|возраст(?:ом)?|в\s+возрасте|исполнилось|исполнится|выглядит\s+на|"
    rf"на\s+вид|вид\s+на)\s*[:=]?\s*{RU_NUMBER}(?![{_CYR}0-9])"
)
_RU_UNDER = re.compile(rf"(?<![{_CYR}])(?:младше|моложе|почти|не\s+старше|нет\s+и)\s+{RU_NUMBER}{_PHRASE_END}")
_RU_BIRTH = re.compile(
    rf"(?<![{_CYR}])(?:родил(?:ась|ся|ись)|рожден[{_CYR}]*|дата\s+рождения|год\s+рождения)[^.;!?\n]{{0,16}}?{_YEAR}"
    rf"|{_YEAR2}\s*(?:года?|г\.?)\s*(?:рождения|р\.)"
)
_RU_ADULT = re.compile(rf"(?<![{_CYR}])за\s+(?:двадцать|тридцать|сорок|пятьдесят)(?![{_CYR}])")

# --- Japanese and Chinese ------------------------------------------------------------------------------
_CJK_AGE = re.compile(rf"{CJK_NUMBER}\s*(?:周|週|満|满)?\s*(?:歳|才|岁|歲)")
_CJK_UNDER = re.compile(
    rf"{CJK_NUMBER}\s*(?:歳|才|岁|歲)?\s*(?P<kind>未満|未滿|以下|不到)"
    rf"|(?P<pre>未满|未滿|不满|不滿|不足|未到|不到)\s*(?P<cjk2>[0-9]{{1,3}}|[〇零一二两兩三四五六七八九十]+)"
)
_CJK_DECADE = re.compile(rf"{CJK_NUMBER}\s*代(?!目)")
_CJK_TEENS = re.compile(r"十(?:几|幾|多|来|來)\s*(?:岁|歲)")
_KANA_AGE = re.compile(
    r"(?<![\u3041-\u3096])(?P<tens>じゅう|じゅっ|じっ)?(?P<unit>いっ|いち|に|さん|よん|ご|ろっ|ろく|なな|しち|はっ|はち|きゅう)?"
    r"さい"
)
_KANA_UNITS = {"いっ": 1, "いち": 1, "に": 2, "さん": 3, "よん": 4, "ご": 5, "ろっ": 6, "ろく": 6, "なな": 7}
_KANA_UNITS |= {"しち": 7, "はっ": 8, "はち": 8, "きゅう": 9}
_CJK_BIRTH = re.compile(
    rf"{_YEAR}\s*年\s*(?:生まれ|生|出生|出世)"
    rf"|(?:出生于|出生於|生于|生於|生年月日|出生日期|出生年份|出生年)\s*[:：]?\s*{_YEAR2}"
)
_JA_ERA_BIRTH = re.compile(r"(?P<era>平成|令和)\s*(?P<n>元|[0-9]{1,2})\s*年\s*(?:生まれ|生)")
_ZH_COHORT = re.compile(r"(?<![0-9〇零一二三四五六七八九])(?P<yy>[0-9〇零一二三四五六七八九]{2})\s*(?:后|後)")
_CJK_ADULT = re.compile(
    r"アラサー|アラフォー|三十路|四十路|(?:[二三四五六七八九]十|[2-9]0)\s*(?:多|几|幾|来|來)\s*(?:岁|歲)"
)

# --- Arabic --------------------------------------------------------------------------------------------
_AR_AFTER = re.compile(
    rf"{AR_NUMBER}\s*(?:(?P<strong>من\s+(?:ال)?عمر[{_AR}]*)|(?P<bare>سنه|سنوات|سنين|سنتين|عام|عاما|اعوام))"
    rf"(?![{_AR}])"
)
_AR_DURATION_BEFORE = re.compile(r"(?:منذ|لمده|خلال|قبل|بعد|طوال|حوالي|مده)\s*$")
_AR_DURATION_AFTER = re.compile(r"\s*(?:مضت|مضي|خبره|من\s+الخبره|من\s+الزواج|زواج)")
_AR_BEFORE = re.compile(
    rf"(?<![{_AR}])(?:عمر|عمرها|عمره|عمري|عمرك|بعمر|العمر|سن|سنها|بسن|تبلغ|يبلغ|بلغت)\s*[:=]?\s*(?:من\s+)?"
    rf"(?:العمر\s+)?{AR_NUMBER}"
)
_AR_UNDER = re.compile(rf"(?<![{_AR}])(?:اقل\s+من|دون|تحت|اصغر\s+من|لم\s+تبلغ|لم\s+يبلغ)\s+(?:سن\s+|ال)?{AR_NUMBER}")
_AR_BIRTH = re.compile(
    rf"(?<![{_AR}])(?:مواليد|ولدت|ولد|مولوده|مولود|تاريخ\s+الميلاد|سنه\s+الميلاد)\s*(?:في|عام|سنه)?\s*[:=]?\s*{_YEAR}"
)
_AR_ADULT = re.compile(rf"(?<![{_AR}])(?:في\s+)?(?:ال)?(?:عشرين|ثلاثين|اربعين|خمسين)(?:ات|يات)(?![{_AR}])")


def _bare_is_duration(text: str, match: re.Match[str], before: re.Pattern[str], after: re.Pattern[str]) -> bool:
    return bool(before.search(text[max(0, match.start() - 16) : match.start()]) or after.match(text, match.end()))


def _has(text: str, hints: str | tuple[str, ...]) -> bool:
    """Cheap pre-check: whether any literal hint a pattern needs is in the text (a str: any of its characters)."""
    return any(hint in text for hint in hints)


_RU_SCRIPT = re.compile(f"[{_CYR}]")
_AR_SCRIPT = re.compile(f"[{_AR}]")
_CJK_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")


def _ru_ages(text: str, year: int) -> Iterator[Age]:
    if _has(text, ("лет", "год")):
        for match in _RU_AFTER.finditer(text):
            if match.group("bare") and _bare_is_duration(text, match, _RU_DURATION_BEFORE, _RU_DURATION_AFTER):
                continue
            yield Age(ru_value(match), str(ru_value(match)))
    if _has(text, ("еи", "ему", "мне", "тебе", "возраст", "исполн", "выгляд", "вид")):
        for match in _RU_BEFORE.finditer(text):
            yield Age(ru_value(match), str(ru_value(match)))
    if _has(text, ("младше", "моложе", "почти", "старше", "нет и")):
        for match in _RU_UNDER.finditer(text):
            yield Age(ru_value(match) - 1, f"under {ru_value(match)}")
    if _has(text, ("родил", "рожден")):
        for match in _RU_BIRTH.finditer(text):
            born = int(match.group("year") or match.group("year2"))
            yield Age(year - born, f"born {born} ({year - born} in {year})")


def _cjk_ages(text: str, year: int) -> Iterator[Age]:
    if _has(text, "歳才岁歲"):
        for match in _CJK_AGE.finditer(text):
            value = cjk_value(match.group("cjk"))
            yield Age(value, str(value))
    if _has(text, ("未満", "未滿", "以下", "不到", "未满", "不满", "不滿", "不足", "未到")):
        for match in _CJK_UNDER.finditer(text):
            value = cjk_value(match.group("cjk") or match.group("cjk2"))
            inclusive = match.group("kind") == "以下"
            yield Age(value if inclusive else value - 1, f"under {value}")
    if "代" in text:
        for match in _CJK_DECADE.finditer(text):
            value = cjk_value(match.group("cjk"))
            if value % 10 == 0 and value >= 10:
                yield Age(value, "teens" if value < AGE_FLOOR else f"{value}s")
    if "十" in text:
        for _ in _CJK_TEENS.finditer(text):
            yield Age(10, "teens")
    if "さい" in text:
        for match in _KANA_AGE.finditer(text):
            if match.group("tens") or match.group("unit"):
                value = (10 if match.group("tens") else 0) + _KANA_UNITS.get(match.group("unit") or "", 0)
                yield Age(value, str(value))
    yield from _cjk_birth_years(text, year)


def _cjk_birth_years(text: str, year: int) -> Iterator[Age]:
    if "生" in text:
        for match in _CJK_BIRTH.finditer(text):
            born = int(match.group("year") or match.group("year2"))
            yield Age(year - born, f"born {born} ({year - born} in {year})")
        for match in _JA_ERA_BIRTH.finditer(text):
            n = 1 if match.group("n") == "元" else int(match.group("n"))
            born = (1988 if match.group("era") == "平成" else 2018) + n
            yield Age(year - born, f"born {born} ({year - born} in {year})")
    if _has(text, "后後"):
        for match in _ZH_COHORT.finditer(text):
            two = cjk_value(match.group("yy"))  # the cohort's first year: "10后" born 2010 or later
            born = 2000 + two if 2000 + two <= year else 1900 + two
            yield Age(year - born, f"born {born} or later")


def _ar_ages(text: str, year: int) -> Iterator[Age]:
    if _has(text, ("سن", "عام", "اعوام", "عمر")):
        for match in _AR_AFTER.finditer(text):
            if match.group("bare") and _bare_is_duration(text, match, _AR_DURATION_BEFORE, _AR_DURATION_AFTER):
                continue
            yield Age(ar_value(match), str(ar_value(match)))
    if _has(text, ("عمر", "سن", "بلغ")):
        for match in _AR_BEFORE.finditer(text):
            yield Age(ar_value(match), str(ar_value(match)))
    if _has(text, ("اقل", "دون", "تحت", "اصغر", "لم ")):
        for match in _AR_UNDER.finditer(text):
            yield Age(ar_value(match) - 1, f"under {ar_value(match)}")
    if _has(text, ("مواليد", "ولد", "مولود", "الميلاد")):
        for match in _AR_BIRTH.finditer(text):
            born = int(match.group("year"))
            yield Age(year - born, f"born {born} ({year - born} in {year})")


def native_ages(native: str, year: int) -> Iterator[Age]:
    """Every age stated in natively folded text."""
    if _RU_SCRIPT.search(native):
        yield from _ru_ages(native, year)
    if _CJK_SCRIPT.search(native):
        yield from _cjk_ages(native, year)
    if _AR_SCRIPT.search(native):
        yield from _ar_ages(native, year)


def native_adult_stated(native: str) -> bool:
    """Whether the text states an adult age in words without a number next to a marker (``アラサー``...)."""
    return any(p.search(native) for p in (_RU_ADULT, _CJK_ADULT, _AR_ADULT))
