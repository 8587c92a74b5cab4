# ruff: noqa: RUF001  (deliberately holds other scripts, homoglyphs and full-width forms)
"""Number words for `imaging.safety`'s age rules, per language, as regex fragments and values.

Every table is written in folded form (`imaging.safety.normalise`): lowercase, no diacritics (``ñ`` kept),
Arabic letter variants unified. Numbers of 20 and more are matched whole (``twenty-five``,
``двадцать пять``, ``二十五``, ``خمس وعشرون``) so that their last part is never read as an age of its own;
their value is only known to be >= 20.
"""

from __future__ import annotations

import re

from imaging.safety.patterns import alternation
from imaging.safety.verdict import AGE_FLOOR

_LETTER = "a-z\u00f1"
_N = "(?:\u00f1|n|ny|nh)"  # Spanish n-tilde, also as typed without it
SEP = r"[\s-]*"  # between the parts of a compound: nothing, spaces or hyphens

# --------------------------------------------------------------------------------------------------
# Latin-script languages (EN FR ES DE IT PT) and romanised Japanese, Chinese, Russian, Arabic
# --------------------------------------------------------------------------------------------------

UNDER_20_WORDS: dict[int, tuple[str, ...]] = {
    1: ("one", "un", "une", "uno", "una", "ein", "eins", "um", "uma"),
    2: ("two", "deux", "dos", "zwei", "zwo", "due", "dois", "duas"),
    3: ("three", "trois", "tres", "drei", "tre"),
    4: ("four", "quatre", "cuatro", "vier", "quattro", "quatro"),
    5: ("five", "cinq", "cinco", "funf", "fuenf", "cinque"),
    6: ("six", "seis", "sechs", "sei"),
    7: ("seven", "sept", "siete", "sieben", "sette", "sete"),
    8: ("eight", "huit", "ocho", "acht", "otto", "oito"),
    9: ("nine", "neuf", "nueve", "neun", "nove"),
    10: ("ten", "dix", "diez", "zehn", "dieci", "dez"),
    11: ("eleven", "onze", "once", "elf", "undici"),
    12: ("twelve", "douze", "doce", "zwolf", "zwoelf", "dodici", "doze"),
    13: ("thirteen", "treize", "trece", "dreizehn", "tredici", "treze"),
    14: ("fourteen", "quatorze", "catorce", "vierzehn", "quattordici", "catorze"),
    15: ("fifteen", "quinze", "quince", "funfzehn", "fuenfzehn", "quindici"),
    16: ("sixteen", "seize", "dieciseis", "diez y seis", "sechzehn", "sedici", "dezesseis", "dezasseis"),
    17: (
        "seventeen",
        "dix sept",
        "diecisiete",
        "diez y siete",
        "siebzehn",
        "siebenzehn",
        "diciassette",
        "dezessete",
        "dezassete",
        "dezesete",
    ),
    18: ("eighteen", "dix huit", "dieciocho", "diez y ocho", "achtzehn", "diciotto", "dezoito"),
    19: ("nineteen", "dix neuf", "diecinueve", "diez y nueve", "neunzehn", "diciannove", "dezenove", "dezanove"),
}
# Romanised Japanese (romaji), Chinese (pinyin), Russian and Arabic (arabizi) number words below 20; read as
# ages only before their own age words (``sai``, ``sui``, ``let``, ``sana``).
_RO_UNITS = {
    1: "ichi|yi|odin|odna|wahid|wa7ed",
    2: "ni|er|liang|dva|dve|ithnan|itnen|etnen",
    3: "san|tri|thalatha|talata|tlata",
    4: "yon|shi|si|chetyre|arba3a|arba3",
    5: "go|wu|pyat|piat|khamsa|5amsa",
    6: "roku|liu|shest|sitta|seta",
    7: "nana|shichi|qi|sem|sab3a",
    8: "hachi|ba|vosem|thamania|tamanya|tamania",
    9: "kyu|kyuu|ku|jiu|devyat|tis3a",
}
_RO_TEENS = {
    10: "ju|juu|jyu|jyuu|shi|desyat|3ashara|ashara|3ashra",
    11: "odinnadtsat|odinnadcat|7idashar|hidashar|hda3sh",
    12: "dvenadtsat|dvenadcat|itnashar|etnashar|itna3sh",
    13: "trinadtsat|trinadcat|talatta3shar|talatta3sh|tlatta3sh",
    14: "chetyrnadtsat|chetyrnadcat|arba3ta3shar|arba3ta3sh|arbata3sh",
    15: "pyatnadtsat|pyatnadcat|khamasta3shar|khamasta3sh|5amasta3sh|khamsta3sh",
    16: "shestnadtsat|shestnadcat|sitta3shar|sitta3sh|seta3sh|sitash",
    17: "semnadtsat|semnadcat|saba3ta3shar|sab3ata3sh|saba3ta3sh|sabata3sh",
    18: "vosemnadtsat|vosemnadcat|tamanta3shar|tamanta3sh|tmanta3sh",
    19: "devyatnadtsat|devyatnadcat|tisa3ta3shar|tis3ata3sh|tisata3sh",
}
_RO_TENS_PREFIX = r"(?:ni|san|yon|go|roku|nana|hachi|kyuu?|er|si|wu|liu|qi|ba|jiu)[\s-]?(?:ju|juu|jyuu?|shi)"
_RO_ADULT = (
    rf"{_RO_TENS_PREFIX}(?:[\s-]?(?:{'|'.join(_RO_UNITS.values())}))?",
    r"dvadtsat|dvadcat|tridtsat|tridcat|sorok|pyatdesyat|shestdesyat|3ishrin|ishrin|3eshrin|talatin|arba3in|khamsin",
)

_EN_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_FR_UNITS = "un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze|quinze|seize"
_ES_UNITS = "uno|un|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve"
_DE_UNITS = "ein|zwei|drei|vier|funf|fuenf|sechs|sieben|acht|neun"
_PT_UNITS = "um|uma|dois|duas|tres|quatro|cinco|seis|sete|oito|nove|poucos"
# Number words of 20 and more, with their compounds, so that "twenty-five" is never read as "five".
ADULT_NUMBER_WORDS = (
    rf"(?:twenty|thirty|forty|fourty|fifty|sixty|seventy|eighty|ninety)(?:{SEP}(?:{_EN_UNITS}))?",
    rf"(?:vingt|trente|quarante|cinquante|soixante|septante|huitante|octante|nonante|quatre{SEP}vingts?)"
    rf"(?:{SEP}(?:et{SEP})?(?:dix{SEP}(?:sept|huit|neuf)|{_FR_UNITS}))?",
    rf"veinti(?:{_ES_UNITS})|(?:veinte|treinta|cuarenta|cincuenta|sesenta|setenta|ochenta|noventa)"
    rf"(?:\s*y\s*(?:{_ES_UNITS}|tantos|pocos))?",
    rf"(?:{_DE_UNITS})\s*und\s*(?:zwanzig|dreissig|vierzig|funfzig|fuenfzig|sechzig|siebzig|achtzig|neunzig)",
    r"zwanzig|dreissig|vierzig|funfzig|fuenfzig|sechzig|siebzig|achtzig|neunzig",
    r"(?:venti|trenta|quaranta|cinquanta|sessanta|settanta|ottanta|novanta)[a-z]*"
    r"|(?:vent|trent|quarant|cinquant|sessant|settant|ottant|novant)(?:uno|otto)",
    rf"(?:vinte|trinta|quarenta|cinquenta|sessenta|setenta|oitenta|noventa)(?:\s+e\s+(?:{_PT_UNITS}))?",
)
_UNDER_20_PATTERNS = sorted(
    (w.replace(" y ", rf"{SEP}y{SEP}").replace(" ", SEP) for ws in UNDER_20_WORDS.values() for w in ws),
    key=len,
    reverse=True,
)
# A number word ends a word, or runs on into "jahr" (German compounds: "siebzehnjährige").
NUMBER_WORD = (
    rf"(?<![{_LETTER}])(?:{alternation((*ADULT_NUMBER_WORDS, *_UNDER_20_PATTERNS))})"
    rf"(?:(?=j(?:a|ae)hr)|(?![{_LETTER}]))"
)
ROMANISED_NUMBER_WORD = (
    rf"(?<![{_LETTER}])(?:"
    + alternation(
        (
            *_RO_ADULT,
            rf"(?:ju|juu|jyuu?|shi)[\s-]?(?:{'|'.join(_RO_UNITS.values())})",
            *_RO_TEENS.values(),
            *_RO_UNITS.values(),
        )
    )
    + rf")(?![{_LETTER}])"
)
ROMAN_NUMERAL = r"(?<![a-z0-9|!@$+])(?=[ivx])x?(?:ix|iv|v?i{0,3})(?![a-z])"

NUMBER_DIGITS = r"(?<![0-9.,:/'#$\u20ac\u00a3])[0-9]{1,3}(?:[.,][0-9]+)?(?![0-9]|[.,:/][0-9])"
INTEGER_DIGITS = r"(?<![0-9.,:/'#$\u20ac\u00a3])[0-9]{1,3}(?![0-9]|[.,:/][0-9])"
NUMBER = rf"(?:{NUMBER_DIGITS}|{NUMBER_WORD})"
INTEGER = rf"(?:{INTEGER_DIGITS}|{NUMBER_WORD})"

ORDINAL_WORDS: dict[int, str] = {
    1: "first|premier|premiere|primer|primero|primera|erste[nrs]?|primo|prima|primeiro|primeira",
    2: "second|deuxieme|segundo|segunda|zweite[nrs]?|secondo|seconda",
    3: "third|troisieme|tercer|tercero|tercera|dritte[nrs]?|terzo|terza|terceiro|terceira",
    4: "fourth|quatrieme|cuarto|cuarta|vierte[nrs]?|quarto|quarta",
    5: "fifth|cinquieme|quinto|quinta|funfte[nrs]?|fuenfte[nrs]?",
    6: "sixth|sixieme|sexto|sexta|sechste[nrs]?|sesto|sesta",
    7: "seventh|septieme|septimo|septima|siebte[nrs]?|settimo|settima|setimo|setima",
    8: "eighth|huitieme|octavo|octava|achte[nrs]?|ottavo|ottava|oitavo|oitava",
    9: "ninth|neuvieme|noveno|novena|neunte[nrs]?|nono|nona",
    10: "tenth|dixieme|decimo|decima|zehnte[nrs]?",
    11: "eleventh|onzieme|undecimo|decimo\\s*primer[oa]?|elfte[nrs]?|undicesim[oa]|decimo\\s+primeiro",
    12: "twelfth|douzieme|duodecimo|decimo\\s*segund[oa]|zwolfte[nrs]?|dodicesim[oa]|decimo\\s+segundo",
    13: "thirteenth|treizieme|decimo\\s*tercer[oa]?|dreizehnte[nrs]?|tredicesim[oa]|decimo\\s+terceiro",
    14: "fourteenth|quatorzieme|decimo\\s*cuart[oa]|vierzehnte[nrs]?|quattordicesim[oa]|decimo\\s+quarto",
    15: "fifteenth|quinzieme|decimo\\s*quint[oa]|funfzehnte[nrs]?|quindicesim[oa]",
    16: "sixteenth|seizieme|decimo\\s*sext[oa]|sechzehnte[nrs]?|sedicesim[oa]",
    17: "seventeenth|dix\\s*septieme|decimo\\s*septim[oa]|siebzehnte[nrs]?|diciassettesim[oa]|decimo\\s+setimo",
    18: "eighteenth|dix\\s*huitieme|decimo\\s*octav[oa]|achtzehnte[nrs]?|diciottesim[oa]|decimo\\s+oitavo",
    19: "nineteenth|dix\\s*neuvieme|decimo\\s*noven[oa]|neunzehnte[nrs]?|diciannovesim[oa]|decimo\\s+nono",
}
_ORDINAL_VALUES = [(re.compile(rf"(?:{words})"), value) for value, words in ORDINAL_WORDS.items()]
# An ordinal in digits: 16th, 16e, 16eme, 16o (Spanish/Portuguese 16º after NFKC), German "16.".
ORDINAL = (
    rf"(?:(?<![0-9])(?P<ordnum>[0-9]{{1,2}})\s*(?:st|nd|rd|th|e|eme|er|ere|o|a|\.o|\.a|\.)(?![{_LETTER}])"
    rf"|(?<![{_LETTER}])(?P<ordword>{alternation(ORDINAL_WORDS.values())})(?![{_LETTER}]))"
)

_WORD_VALUES: dict[str, int] = {w.replace(" ", ""): v for v, words in UNDER_20_WORDS.items() for w in words}
_RO_VALUES: dict[str, int] = {
    w: v for table in (_RO_UNITS, _RO_TEENS) for v, words in table.items() for w in words.split("|")
}
_ROMAN_VALUES = {"i": 1, "v": 5, "x": 10}


def number_value(text: str) -> int:
    """The value of a matched number (digits, decimal or word); number words of 20 and more give 20."""
    if text[0].isdigit():
        return int(float(text.replace(",", ".")))
    key = re.sub(rf"[^{_LETTER}0-9]", "", text)
    if key in _WORD_VALUES:
        return _WORD_VALUES[key]
    if key in _RO_VALUES:
        return _RO_VALUES[key]
    for teen in ("ju", "juu", "jyu", "jyuu", "shi"):  # romaji and pinyin 11-19: "juuroku", "shiliu"
        if key.startswith(teen) and key[len(teen) :] in _RO_VALUES and key[len(teen) :] not in ("ju", "juu"):
            return 10 + _RO_VALUES[key[len(teen) :]]
    return AGE_FLOOR


def roman_value(text: str) -> int:
    """The value of a small Roman numeral (up to xix)."""
    total = 0
    for i, char in enumerate(text):
        value = _ROMAN_VALUES[char]
        total += -value if i + 1 < len(text) and _ROMAN_VALUES[text[i + 1]] > value else value
    return total


def ordinal_value(match: re.Match[str]) -> int:
    """The value of a match of `ORDINAL`."""
    if match.group("ordnum"):
        return int(match.group("ordnum"))
    word = match.group("ordword")
    for pattern, value in _ORDINAL_VALUES:
        if pattern.fullmatch(word):
            return value
    return AGE_FLOOR


# --------------------------------------------------------------------------------------------------
# Russian, Japanese/Chinese, Arabic (native script)
# --------------------------------------------------------------------------------------------------

RU_UNDER_20: dict[int, str] = {
    1: "один|одна|одно|одного",
    2: "два|две|двух",
    3: "три|трех",
    4: "четыре|четырех",
    5: "пять|пяти",
    6: "шесть|шести",
    7: "семь|семи",
    8: "восемь|восьми",
    9: "девять|девяти",
    10: "десять|десяти",
    11: "одиннадцать|одиннадцати",
    12: "двенадцать|двенадцати",
    13: "тринадцать|тринадцати",
    14: "четырнадцать|четырнадцати",
    15: "пятнадцать|пятнадцати",
    16: "шестнадцать|шестнадцати",
    17: "семнадцать|семнадцати",
    18: "восемнадцать|восемнадцати",
    19: "девятнадцать|девятнадцати",
}
_RU_TENS = "двадцат[ьи]|тридцат[ьи]|сорок[а]?|пятьдесят|пятидесяти|шестьдесят|шестидесяти|семьдесят|семидесяти"
_RU_TENS += "|восемьдесят|восьмидесяти|девяносто|девяноста"
_RU_UNITS = "один|одна|одно|одного|два|две|двух|три|трех|четыре|четырех|пять|пяти|шесть|шести|семь|семи|восемь"
_RU_UNITS += "|восьми|девять|девяти"
RU_NUMBER = (
    rf"(?<![а-я])(?:(?P<ruadult>(?:{_RU_TENS})(?:\s*(?:{_RU_UNITS}))?)|"
    rf"(?P<ruword>{'|'.join(sorted(RU_UNDER_20.values(), key=len, reverse=True))})|(?P<rudigits>{INTEGER_DIGITS}))"
)
_RU_VALUES = {w: v for v, words in RU_UNDER_20.items() for w in words.split("|")}

AR_UNDER_20: dict[int, str] = {
    1: "واحد|واحده",
    2: "اثنان|اثنين|اثنتان|اثنتين",
    3: "ثلاث|ثلاثه|تلات|تلاته",
    4: "اربع|اربعه",
    5: "خمس|خمسه",
    6: "ست|سته|سادس|سادسه",
    7: "سبع|سبعه|سابع|سابعه",
    8: "ثمان|ثماني|ثمانيه|تمن|تمنيه|ثامن|ثامنه",
    9: "تسع|تسعه|تاسع|تاسعه",
    10: "عشر|عشره|عاشر|عاشره",
    11: "حداشر|احداشر",
    12: "اطناشر|اتناشر",
    13: "تلتاشر|ثلطاشر",
    14: "اربعتاشر|اربعطاشر",
    15: "خمستاشر|خمسطاشر",
    16: "ستاشر|سطاشر|سيتاشر",
    17: "سبعتاشر|سبعطاشر",
    18: "تمنتاشر|تمنطاشر",
    19: "تسعتاشر|تسعطاشر",
}
_AR_TEEN_UNITS = (
    r"(?P<arunit>احد|احدي|حادي|حاديه|اثنا|اثني|اثنتا|اثنتي|ثاني|ثانيه|ثلاث|ثلاثه|ثالث|ثالثه|اربع|اربعه|رابع|رابعه"
    r"|خمس|خمسه|خامس|خامسه|ست|سته|سادس|سادسه|سبع|سبعه|سابع|سابعه|ثمان|ثماني|ثمانيه|ثامن|ثامنه|تسع|تسعه|تاسع|تاسعه)"
)
_AR_TENS = r"عشرون|عشرين|ثلاثون|ثلاثين|تلاتين|اربعون|اربعين|خمسون|خمسين|ستون|ستين|سبعون|سبعين|ثمانون|ثمانين|تسعون|تسعين"
_AR_UNIT_VALUES = {
    "احد": 1, "احدي": 1, "حادي": 1, "حاديه": 1, "اثنا": 2, "اثني": 2, "اثنتا": 2, "اثنتي": 2, "ثاني": 2,
    "ثانيه": 2, "ثلاث": 3, "ثلاثه": 3, "ثالث": 3, "ثالثه": 3, "اربع": 4, "اربعه": 4, "رابع": 4, "رابعه": 4,
    "خمس": 5, "خمسه": 5, "خامس": 5, "خامسه": 5, "ست": 6, "سته": 6, "سادس": 6, "سادسه": 6, "سبع": 7,
    "سبعه": 7, "سابع": 7, "سابعه": 7, "ثمان": 8, "ثماني": 8, "ثمانيه": 8, "ثامن": 8, "ثامنه": 8, "تسع": 9,
    "تسعه": 9, "تاسع": 9, "تاسعه": 9,
}  # fmt: skip
_AR_PREFIX = r"(?:ال)?"
AR_NUMBER = (
    rf"(?<![\u0621-\u064a])(?:(?P<aradult>(?:(?:[\u0621-\u064a]+)\s*و\s*)?(?:{_AR_TENS}))"
    rf"|{_AR_PREFIX}{_AR_TEEN_UNITS}\s+{_AR_PREFIX}عشر(?:ه)?"
    rf"|{_AR_PREFIX}(?P<arword>{'|'.join(sorted(AR_UNDER_20.values(), key=len, reverse=True))})"
    rf"|(?P<ardigits>{INTEGER_DIGITS}))(?![\u0621-\u064a])"
)
_AR_VALUES = {w: v for v, words in AR_UNDER_20.items() for w in words.split("|")}

_CJK_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7}
_CJK_DIGITS |= {"八": 8, "九": 9}
CJK_NUMBER = r"(?P<cjk>[0-9]{1,3}|[〇零一二两兩三四五六七八九十百]+)"


def cjk_value(text: str) -> int:
    """The value of a number in ASCII digits or CJK numerals (``十六`` 16, ``二十五`` 25, ``一六`` 16)."""
    if text.isdigit() and text.isascii():
        return int(text)
    if "十" not in text and "百" not in text:
        digits = "".join(str(_CJK_DIGITS.get(c, 0)) for c in text)
        return int(digits) if digits else AGE_FLOOR
    total, current = 0, 0
    for char in text:
        if char == "百":
            total += (current or 1) * 100
            current = 0
        elif char == "十":
            total += (current or 1) * 10
            current = 0
        else:
            current = _CJK_DIGITS.get(char, 0)
    return total + current


def ru_value(match: re.Match[str]) -> int:
    """The value of a match of `RU_NUMBER`."""
    if match.group("ruadult"):
        return AGE_FLOOR
    if match.group("rudigits"):
        return int(match.group("rudigits"))
    return _RU_VALUES.get(match.group("ruword"), AGE_FLOOR)


def ar_value(match: re.Match[str]) -> int:
    """The value of a match of `AR_NUMBER`."""
    if match.group("aradult"):
        return AGE_FLOOR
    if match.group("ardigits"):
        return int(match.group("ardigits"))
    if match.group("arunit"):
        return 10 + _AR_UNIT_VALUES.get(match.group("arunit"), 0)
    return _AR_VALUES.get(match.group("arword"), AGE_FLOOR)
