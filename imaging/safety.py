"""Prompt safety: blocks text that depicts, sexualises or suggests a minor, before any image is made.

`check_prompt(text)` is applied to the avatar appearance description at setup and to every final image
prompt. It returns a `SafetyVerdict`: ``allowed`` and, when blocked, a short ``reason`` of the form
``"<rule>: <detail>"`` (``"minor-term: 'teen'"``, ``"age-under-20: 17"``); ``reason`` is None when allowed.
It is deterministic, reads no settings, and compiles its patterns once at import.

Normalisation (`imaging.safety_normalise`) comes first: NFKC, invisible characters removed, casefold,
diacritics stripped (``ñ`` kept), Cyrillic/Greek/other look-alikes mapped to ASCII, and every rule is
then matched against several spellings: as written, with in-word punctuation turned into spaces or
removed (``sch-ool-girl``, ``t.e.e.n``), with spaced-out letters glued (``t e e n``), and each of those
read as leetspeak (``t33n``, ``l0li``, ``sch00lgirl``; only in words that hold a letter, so numbers stay
numbers); long unambiguous stems (``schoolgirl``, ``jailbait``, ``teenager``…) are also looked for in the
text with all spaces removed (``sch ool girl``). Languages: English, French, Spanish, German, Portuguese,
Italian. The first rule that matches, in this order, gives the reason:

``age-under-20``
    Any stated age below 20 (the product's hard floor is 20, not 18). A number - digits, decimals or a
    number word in any of the six languages (``17``, ``seventeen``, ``dix-sept``, ``diecisiete``,
    ``siebzehn``, ``diciassette``, ``dezessete``) - is an age only next to an age marker:
    after it ``years old``, ``year-old``, ``yo``, ``y/o``, ``yrs old``, ``years of age``, ``months old``,
    ``Jahre alt``, ``-jährige``, ``años de edad``; or before it ``age``, ``aged``, ``age of``, ``âgée de``,
    ``edad``, ``Alter``, ``età``, ``idade``, ``turned``, ``turning``, ``barely``, ``sweet``, ``she is`` /
    ``I'm``, ``mit … Jahren``, ``woman/girl/femme/chica/Frau/ragazza/mulher… of/de/di/von``. The bare
    foreign forms ``15 ans``, ``15 años``, ``15 anos``, ``15 Jahre``, ``15 anni`` are ages too, unless a
    duration word stands right before the number (``depuis``, ``pendant``, ``il y a``, ``hace``,
    ``durante``, ``seit``, ``da``, ``per``, ``for``…) or a "years of"/"ago" word right after
    (``15 ans d'expérience``, ``tre anni fa``, ``15 Jahre lang``). English bare ``15 years`` is not an age
    (``married for 15 years``). Known over-block: Portuguese ``há 5 anos`` ("5 years ago") blocks, as it
    folds to Italian ``ha 5 anni`` ("is 5"); write ``faz 5 anos`` or ``durante``. A range blocks on its
    lower end (``17-19 years old``); Italian ``sedicenne`` (a 16-year-old) is an age. Numbers without a
    marker are never ages: ``19th century``, ``1920s``, ``size 14``, ``5 feet 4``, ``room 16``, ``18+``,
    ``16:9``; after ``she is``/``age``… a unit or ordinal (``5'4``, ``1.6 m``, ``5 ft``, ``19th``) also
    stops it.
``youth-body``
    A child's or pubescent body: childlike, (under)developed body/breasts, pubescent/prepubescent,
    puberty (all languages), enfantin, infantil/infantile, aniñada, kindlich, Kindfrau.
``minor-term``
    Words that name a child or a teen: child(ren), kid(s), minor(s) (not the adjective: ``minor scar``,
    ``minor detail``…), teen/teens/teenager/teenage/teenie, preteen, tween, underage, loli/lolita,
    lolicon, shota, jailbait, little girl/boy, barely legal, toddler, infant, youngster, nymphet,
    adolescent/adolescente/adolescence; FR enfant, fillette, petite fille, gamin, mineure, un/une ado,
    préado; ES niña/niño (with ñ, or ``nina``/``nino`` after an article, so the name Nina passes), niñita,
    menor de edad, una menor, quinceañera, infante; DE ein/das/kleines Kind, Kinder… (``kind`` alone is
    English), Kinderzimmer…, minderjährig, Backfisch, kleines Mädchen; PT criança, menor de idade,
    garotinha, menininha, novinha, ninfeta, pirralha; IT bambina/bambino, minorenne, ragazzina, minore
    d'età, i/dei minori, ninfetta. ``kid``/``child`` block even when the child is not the subject
    (``two kids' toys``, ``mother of two kids``): no child may appear in, or be referred to by, an adult
    image prompt.
``school-context``
    School pupils and school settings: schoolgirl/schoolboy, school uniform, high/middle/elementary/
    primary/grade/secondary/prep school, junior high, kindergarten, grade 8 / 8th grade / eighth grade;
    FR écolière, collégienne, lycéenne, au collège/lycée, uniforme scolaire, école primaire; ES colegiala,
    colegial, uniforme escolar, de secundaria/primaria/bachillerato, una escolar, la prepa; DE
    Schulmädchen, Schuluniform, Schülerin, Grund-/Haupt-/Realschule, Gymnasiastin, 8. Klasse; IT
    scolaretta, liceale, scuola media/medie/elementare, studentessa delle medie, divisa scolastica, terza
    media; PT colegial, ensino médio/fundamental, escola primária, aluna do ensino…. ``student``,
    ``college student``, ``university`` are adult and pass. A school setting blocks even around an adult
    (``high school teacher``, ``schoolgirl costume, 25 years old``): the picture would put a school, and
    so children or a pupil's look, into a sexual image.
``youth-borderline``
    Terms that can describe an adult but lean young: youthful, young-looking, looks young, very young,
    young girl/boy/face/body, baby face / baby-faced, girlish, childish, gamine, flat-chested, tiny/small
    girl, juvenile/juvenil; FR jeune fille, air jeune, paraît jeune; ES jovencita, chiquilla, nena,
    aspecto joven, parece joven; DE Mädchen, mädchenhaft, jugendlich; IT fanciulla, bimba, giovanile,
    aria giovane, sembra giovane; PT menina/menino, aparência jovem, parece jovem. **Rule: allowed only
    when the same text states an explicit adult age >= 20** (``25 years old``, ``aged 30``, ``a woman of
    45``, ``in her twenties``, ``mid-20s``, ``30-something``, ``la trentaine``, ``Mitte zwanzig``,
    ``veintitantos``); otherwise blocked. Every prompt on this service is a sexual context, so there is
    no separate "in sexual context" test. Any stated age counts, whoever it refers to.

Words that are fine on their own (documented choices):
    ``girl`` (``girl next door``, ``a 25 year old girl``), ``young woman``, ``petite``, ``small``,
    ``tiny``, ``freckles``, ``pigtails``, ``student``, ``baby girl`` (a pet name), ``teeny`` (tiny),
    English ``kind``/``kinder``, number words without an age marker (``seventeen magazine``), French
    ``fille``/``petite``, Spanish ``chica``, Italian ``ragazza``, Portuguese ``garota``/``moça``. They
    block only with an under-20 age or with a blocked word (``little girl``, ``schoolgirl``,
    ``petite fille``). German ``Mädchen`` is borderline
    (it is the ordinary word for a female child, but also used for young women), ``kleines Mädchen`` and
    ``Schulmädchen`` always block. Portuguese ``menina`` likewise is borderline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from imaging.safety_normalise import despaced, fold, spaced_runs, views

__all__ = [
    "RULE_AGE",
    "RULE_BORDERLINE",
    "RULE_MINOR",
    "RULE_SCHOOL",
    "RULE_YOUTH_BODY",
    "SafetyVerdict",
    "check_prompt",
]

RULE_AGE = "age-under-20"
RULE_MINOR = "minor-term"
RULE_YOUTH_BODY = "youth-body"
RULE_SCHOOL = "school-context"
RULE_BORDERLINE = "youth-borderline"

#: The product's hard age floor: any stated age below it blocks.
AGE_FLOOR = 20


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """Outcome of a prompt check: allowed, or blocked with a short ``"<rule>: <detail>"`` reason."""

    allowed: bool
    reason: str | None = None


_ALLOWED = SafetyVerdict(allowed=True, reason=None)

_LETTER = "a-z\u00f1"
_N = "(?:\u00f1|n|ny|nh)"  # Spanish n-tilde, also as typed without it
_SEP = r"[\s-]*"  # between the parts of a compound: nothing, spaces or hyphens


def _bounded(alternatives: Iterable[str]) -> re.Pattern[str]:
    """One regex of the alternatives, each a whole word (no letter right before or after)."""
    return re.compile(rf"(?<![{_LETTER}])(?:{'|'.join(alternatives)})(?![{_LETTER}])")


def _loose(alternatives: Iterable[str]) -> re.Pattern[str]:
    """One regex of the alternatives, anywhere (for glued spaced-out letters)."""
    return re.compile("|".join(alternatives))


# --------------------------------------------------------------------------------------------------
# minor-term
# --------------------------------------------------------------------------------------------------

_MINOR_ADJECTIVE_USES = (
    "details?|scars?|flaws?|imperfections?|blemish(?:es)?|changes?|edits?|tweaks?|adjustments?|keys?|"
    "chords?|roles?|characters?|injur(?:y|ies)|issues?|marks?|wrinkles?|asymmetr(?:y|ies)|touch(?:es)?|"
    "league|differences?|variations?|freckles?|moles?|tattoos?"
)
_DE_DETERMINERS = "ein|das|dem|des|kleines|kleine|kleinen|junges|mein|dein|ihr|sein|unser|wie ein"

_MINOR_TERMS = (
    # English
    r"child(?:ren|s)?",
    r"kid(?:s|do|dos|die|dies)?",
    rf"minors?(?!\s+(?:{_MINOR_ADJECTIVE_USES})(?![{_LETTER}]))",
    r"teen(?:s|ie|ies|ager|agers|age|aged)?",
    rf"pre{_SEP}teen(?:s|ager|agers|age)?",
    r"tween(?:s|ager|agers|ie|ies)?",
    rf"under{_SEP}aged?",
    r"loli(?:s|con|ta|tas)?",
    r"shota(?:s|con)?",
    rf"jail{_SEP}bait",
    rf"(?:little|lil|lttle){_SEP}(?:girl|boy)s?",
    rf"(?:barely|just){_SEP}legal",
    r"toddlers?",
    r"infants?",
    r"youngsters?",
    r"nymphets?|nymphettes?",
    r"adolescen(?:t|ts|te|tes|ce|cia|za|z)",
    r"adoleszen(?:t|ten|tin|z)",
    # French
    r"enfants?",
    r"fillettes?",
    rf"petites?{_SEP}filles?",
    r"gamins?",
    r"mineures?",
    r"(?:un|une|des|les|le|la|est|sont|etre|d|l)\s+mineurs?",
    r"(?:une?|les|des|cette|cet|jeune|petite?|l|d)\s+ados?",
    rf"pre{_SEP}ados?",
    # Spanish
    r"ni\u00f1(?:a|o|as|os|ita|ito|itas|itos)",
    rf"(?:una?|la|el|los|las|esta|este|esa|ese|pequ{_N}[ao]s?)\s+nin(?:a|o|as|os)",
    r"ninit(?:a|o|as|os)",
    r"menor(?:es)?\s+de\s+(?:edad|idade)",
    r"(?:una|un|uma|um)\s+menor",
    rf"quincea{_N}eras?",
    r"infantes?",
    # German
    rf"(?:{_DE_DETERMINERS})\s+kind(?:es|er|ern)?",
    r"(?:die|den|der|keine|kleine|kleinen|viele|zwei|drei|meine|deine|ihre)\s+kinder(?:n)?",
    r"kinder(?!garten)[a-z]{3,}",
    r"minderj(?:a|ae)hrig(?:e|er|en|em|es)?",
    r"backfisch(?:e)?",
    r"(?:kleines|kleine|kleinen)\s+m(?:a|ae)dchen",
    # Portuguese
    r"criancas?",
    r"garotinh(?:a|o|as|os)",
    r"menininh(?:a|o|as|os)",
    r"novinh(?:a|o|as|os)",
    r"ninfet(?:a|as|ta|te)",
    r"pirralh(?:a|o|as|os)",
    # Italian
    r"bambin(?:a|o|e|i)",
    r"minorenn(?:e|i)",
    r"ragazzin(?:a|o|e|i)",
    r"minore\s+(?:d\s*'?\s*eta|di\s+eta)",
    r"(?:i|dei|ai|coi|con|per|tra)\s+minori",
)

# --------------------------------------------------------------------------------------------------
# youth-body
# --------------------------------------------------------------------------------------------------

_YOUTH_BODY_TERMS = (
    rf"child{_SEP}like",
    rf"(?:un|under){_SEP}developed\s+(?:body|breasts?|chest|figure|hips|frame)",
    rf"(?:pre{_SEP})?pubescen(?:t|ts|ce)",
    r"pubert[a-z]*",
    r"puberdade",
    r"enfantin(?:e|es|s)?",
    r"infantil(?:e|es|i)?",
    rf"ani{_N}ad(?:a|o|as|os)",
    r"kindlich(?:e|er|en|em|es)?",
    r"kindfrau(?:en)?",
)

# --------------------------------------------------------------------------------------------------
# school-context
# --------------------------------------------------------------------------------------------------

_GRADE_NUMBER = r"(?:[1-9]|1[0-2])"
_ORDINAL_WORDS = "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
_DE_ORDINALS = "erste|zweite|dritte|vierte|funfte|fuenfte|sechste|siebte|achte|neunte|zehnte"

_SCHOOL_TERMS = (
    # English
    rf"school{_SEP}(?:girl|boy|kid|child|children|uniform)s?",
    rf"(?:high|middle|elementary|primary|grade|secondary|prep){_SEP}school(?:ers?)?",
    rf"(?:junior|jr){_SEP}\.?\s*high",
    r"kindergarten(?:er|ers)?",
    r"sixth\s+form(?:ers?)?",
    rf"{_GRADE_NUMBER}\s*(?:st|nd|rd|th)\s+grade(?:rs?)?",
    rf"grade\s*{_GRADE_NUMBER}(?![0-9])",
    rf"(?:{_ORDINAL_WORDS})\s+grade(?:rs?)?",
    # French
    r"ecolier(?:e|es|s)?",
    r"collegien(?:ne|nes|s)?",
    r"lyceen(?:ne|nes|s)?",
    r"(?:au|en|du)\s+(?:college|lycee)",
    r"uniforme\s+scolaire",
    r"ecole\s+(?:primaire|elementaire|maternelle)",
    # Spanish (and Portuguese colegial)
    r"colegial(?:a|as|es)?",
    r"uniforme\s+(?:escolar|de\s+colegio|colegial)",
    r"(?:de|en|escuela|educacion)\s+(?:secundaria|primaria|bachillerato)",
    r"(?:una|un|la|el)\s+escolar",
    r"(?:la|de|en)\s+prepa(?:ratoria)?",
    # German
    r"schul(?:m(?:a|ae)dchen|junge|jungen|uniform|uniformen|kind|kinder)",
    r"sch(?:u|ue)ler(?:in|innen)?",
    r"(?:grund|haupt|real|mittel|ober|gesamt)schule",
    r"gymnasiast(?:in|innen|en)?",
    rf"{_GRADE_NUMBER}\s*\.?\s*klasse",
    rf"klasse\s*{_GRADE_NUMBER}(?![0-9])",
    rf"(?:{_DE_ORDINALS})\s+klasse",
    # Italian
    r"scolarett(?:a|e)",
    r"liceal(?:e|i)",
    r"(?:al|del|nel)\s+liceo",
    r"scuol(?:a|e)\s+(?:media|medie|elementare|elementari|superiore|superiori|primaria|secondaria)",
    r"(?:studentess(?:a|e)|student(?:e|i)|alunn(?:a|o|e|i))\s+(?:delle|della|del|alle|alla|al)\s+"
    r"(?:medie|media|elementari|superiori|liceo)",
    r"(?:divisa|uniforme)\s+scolastic(?:a|o|he)",
    r"(?:prima|seconda|terza)\s+media",
    # Portuguese
    r"(?:ensino|escola)\s+(?:medio|fundamental|primaria|secundaria)",
    r"(?:alun(?:a|o)|estudante)\s+do\s+(?:ensino|colegio|primario|fundamental)",
)

# --------------------------------------------------------------------------------------------------
# youth-borderline
# --------------------------------------------------------------------------------------------------

_BORDERLINE_TERMS = (
    # English
    r"youthful(?:ly|ness)?",
    rf"young(?:er)?{_SEP}looking",
    r"look(?:s|ing)?\s+(?:very\s+|so\s+|really\s+|much\s+|quite\s+)?young(?:er)?",
    r"(?:very|so|too)\s+young",
    r"young\s+(?:girl|boy|face|body)s?",
    rf"baby{_SEP}face(?:d|s)?",
    r"girlish(?:ly)?",
    r"childish(?:ly)?",
    r"gamines?",
    rf"flat{_SEP}chest(?:ed)?",
    r"(?:tiny|small)\s+(?:girl|boy)s?",
    r"juvenil(?:e|es)?",
    # French
    rf"jeunes?{_SEP}filles?",
    r"(?:air|allure|visage)\s+(?:tres\s+|si\s+)?jeune",
    r"parai(?:t|s)\s+(?:tres\s+|si\s+)?jeune",
    # Spanish
    r"jovencit(?:a|as|o|os)",
    r"chiquill(?:a|as|o|os)",
    r"nenas?",
    r"(?:aspecto|cara)\s+(?:muy\s+)?(?:joven|juvenil)",
    r"(?:parece|aparenta)\s+(?:muy\s+|ser\s+|mas\s+)?joven",
    # German
    r"m(?:a|ae)dchen(?:haft|hafte|haften|hafter)?",
    r"jugendlich(?:e|er|en|em|es)?",
    # Italian
    r"fanciull(?:a|e|o|i)",
    r"bimb(?:a|e)",
    r"giovanil(?:e|i)",
    r"(?:aria|aspetto)\s+(?:molto\s+)?giovan(?:e|ile)",
    r"sembra\s+(?:molto\s+|piu\s+)?giovane",
    # Portuguese
    r"menin(?:a|o|as|os)",
    r"(?:aparencia|cara|rosto)\s+(?:muito\s+)?jovem",
    r"(?:parece|aparenta)\s+(?:muito\s+|ser\s+|mais\s+)?jovem",
)

# Spaced-out evasions (``a t e e n``) are matched without word boundaries, against these stems only.
_SPACED_OUT_TERMS: dict[str, tuple[str, ...]] = {
    RULE_MINOR: (
        r"teen",
        r"child",
        r"kid",
        r"loli",
        r"shota",
        r"minor",
        r"underage",
        r"jailbait",
        r"littlegirl",
        r"enfant",
        r"fillette",
        r"ni\u00f1[ao]",
        r"crianca",
        r"bambin[ao]",
        r"ragazzin[ao]",
        r"minorenn",
        r"minderj",
        r"adolescen",
    ),
    RULE_YOUTH_BODY: (r"childlike", r"pubescen"),
    RULE_SCHOOL: (r"schoolgirl", r"schoolboy", r"highschool", r"colegiala", r"scolaretta", r"schulm(?:a|ae)dchen"),
}

# Long, unambiguous stems are also looked for in the text with every space and punctuation removed, which
# catches arbitrary splits ("sch ool girl", "jail b ait").
_DESPACED_TERMS: dict[str, tuple[str, ...]] = {
    RULE_YOUTH_BODY: (r"childlike", r"prepubescen", r"kindlich"),
    RULE_MINOR: (
        r"teenager",
        r"preteen",
        r"jailbait",
        r"lolicon",
        r"shotacon",
        r"barelylegal",
        r"minorenn",
        r"minderj(?:a|ae)hrig",
        r"fillette",
        r"ragazzin[ao]",
    ),
    RULE_SCHOOL: (
        r"schoolgirl",
        r"schoolboy",
        r"schooluniform",
        r"highschool",
        r"middleschool",
        r"kindergarten",
        r"colegiala",
        r"scolarett[ae]",
        r"schulm(?:a|ae)dchen",
    ),
}

_TERM_RULES: tuple[tuple[str, re.Pattern[str], re.Pattern[str], re.Pattern[str]], ...] = tuple(
    (rule, _bounded(terms), _loose(_SPACED_OUT_TERMS[rule]), _loose(_DESPACED_TERMS[rule]))
    for rule, terms in (
        (RULE_YOUTH_BODY, _YOUTH_BODY_TERMS),
        (RULE_MINOR, _MINOR_TERMS),
        (RULE_SCHOOL, _SCHOOL_TERMS),
    )
)
_BORDERLINE = _bounded(_BORDERLINE_TERMS)

# --------------------------------------------------------------------------------------------------
# age-under-20: numbers next to age markers
# --------------------------------------------------------------------------------------------------

# Number words below 20, per value, in the six languages (after folding: no diacritics, ß -> ss).
_UNDER_20_WORDS: dict[int, tuple[str, ...]] = {
    1: ("one", "un", "uno", "ein", "eins", "um"),
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
_WORD_VALUES: dict[str, int] = {w.replace(" ", ""): v for v, words in _UNDER_20_WORDS.items() for w in words}

_EN_UNITS = "one|two|three|four|five|six|seven|eight|nine"
_FR_UNITS = "un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze|quinze|seize"
_ES_UNITS = "uno|un|una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve"
_DE_UNITS = "ein|zwei|drei|vier|funf|fuenf|sechs|sieben|acht|neun"
_PT_UNITS = "um|uma|dois|duas|tres|quatro|cinco|seis|sete|oito|nove|poucos"
# Number words of 20 and more: tens, with their compounds so that "twenty-five" is never read as "five".
_ADULT_NUMBER_WORDS = (
    rf"(?:twenty|thirty|forty|fourty|fifty|sixty|seventy|eighty|ninety)(?:{_SEP}(?:{_EN_UNITS}))?",
    rf"(?:vingt|trente|quarante|cinquante|soixante|septante|huitante|octante|nonante|quatre{_SEP}vingts?)"
    rf"(?:{_SEP}(?:et{_SEP})?(?:dix{_SEP}(?:sept|huit|neuf)|{_FR_UNITS}))?",
    rf"veinti(?:{_ES_UNITS})|(?:veinte|treinta|cuarenta|cincuenta|sesenta|setenta|ochenta|noventa)"
    rf"(?:\s*y\s*(?:{_ES_UNITS}|tantos|pocos))?",
    rf"(?:(?:{_DE_UNITS})\s*und\s*)?(?:zwanzig|dreissig|vierzig|funfzig|fuenfzig|sechzig|siebzig|achtzig|neunzig)",
    r"(?:venti|trenta|quaranta|cinquanta|sessanta|settanta|ottanta|novanta)[a-z]*"
    r"|(?:vent|trent|quarant|cinquant|sessant|settant|ottant|novant)(?:uno|otto)",
    rf"(?:vinte|trinta|quarenta|cinquenta|sessenta|setenta|oitenta|noventa)(?:\s+e\s+(?:{_PT_UNITS}))?",
)
_UNDER_20_WORD_PATTERNS = sorted(
    (w.replace(" y ", rf"{_SEP}y{_SEP}").replace(" ", _SEP) for ws in _UNDER_20_WORDS.values() for w in ws),
    key=len,
    reverse=True,
)
# A number word ends a word, or runs on into "jahr" (German compounds: "siebzehnjährige").
_NUMBER_WORD = (
    rf"(?<![{_LETTER}])(?:{'|'.join((*_ADULT_NUMBER_WORDS, *_UNDER_20_WORD_PATTERNS))})"
    rf"(?:(?=j(?:a|ae)hr)|(?![{_LETTER}]))"
)
_NUMBER_DIGITS = r"(?<![0-9.,:/'])[0-9]{1,3}(?:[.,][0-9]+)?(?![0-9]|[.,:/][0-9])"
_NUMBER = rf"(?:{_NUMBER_DIGITS}|{_NUMBER_WORD})"
_INTEGER = rf"(?:(?<![0-9.,:/'])[0-9]{{1,3}}(?![0-9]|[.,:/][0-9])|{_NUMBER_WORD})"

_JAHR = "j(?:a|ae)hr"
_ANO = f"a{_N}?(?:i)?o"  # anos, años, anios, ano
# Markers after the number that always make it an age.
_STRONG_AFTER = (
    r"(?:years?|yrs?|yr)\s*-?\s*(?:old|of\s+age|young)",
    r"(?:months?|weeks?|days?)\s*-?\s*old",
    r"y\s*[/.]?\s*o\.?",
    rf"{_JAHR}(?:e|en)?\s*-?\s*alt",
    rf"{_JAHR}ig(?:e|er|en|em|es)?",
    rf"{_ANO}s?\s+de\s+(?:edad|idade)",
    r"ann(?:i|o)\s+(?:d\s*'?\s*eta|di\s+eta)",
    r"ans\s+d\s*'?\s*age",
)
# Bare foreign "years" markers: an age unless the context says duration.
_BARE_AFTER = (r"ans", rf"{_ANO}s?", rf"{_JAHR}e?", r"ann(?:i|o)")
_RANGE = r"\s*(?:-|/|to|a|bis|al)\s*"
_HALF = r"(?:\s+(?:and\s+a\s+half|et\s+demi|y\s+medio|und\s+(?:ein\s*)?halb|e\s+mezzo|e\s+meio))?"
_AGE_AFTER = re.compile(
    rf"(?P<n1>{_NUMBER})(?:{_RANGE}(?P<n2>{_NUMBER}))?{_HALF}\s*-?\s*"
    rf"(?:(?P<strong>{'|'.join(_STRONG_AFTER)})|(?P<bare>{'|'.join(_BARE_AFTER)}))(?![{_LETTER}])"
)
_DURATION_BEFORE = re.compile(
    r"(?<![a-z\u00f1])(?:depuis|pendant|durant|en|dans|il\s+y\s+a|apres|tous\s+les|desde|hace|durante|por|cada|"
    r"tras|seit|vor|fur|fuer|nach|alle|uber|ueber|da|per|fra|tra|dopo|ogni|faz|em|apos|for|since|after|every|"
    r"over)\s*$"
)
_DURATION_AFTER = re.compile(
    r"^\s*(?:de(?!\s+(?:edad|idade))|d(?:\s*'|(?![a-z\u00f1]))|di(?!\s+eta)|du|des|do|da|fa|her|lang|spater|spaeter|zuvor|"
    r"erfahrung|later|despues|depois|dopo|apres|plus\s+tard|mas\s+tarde|mais\s+tarde|antes|avant|prima|"
    r"fruher|frueher|atras|auparavant|luego|ago)(?![a-z\u00f1])"
)

_PERSON_NOUNS = (
    "woman|man|lady|girl|boy|guy|female|male|femme|fille|mujer|chica|chico|frau|madchen|maedchen|donna|ragazza|"
    "ragazzo|mulher|garota|garoto|moca"
)
_BEFORE_MARKERS = (
    r"(?:at\s+the\s+)?age\s+of",
    r"ages?",
    r"aged",
    r"agee?s?(?:\s+de)?",
    r"edad(?:\s+de)?",
    r"(?:im\s+)?alter(?:\s+von)?",
    r"eta(?:\s+di)?",
    r"idade(?:\s+de)?",
    r"turned|turning|barely|sweet",
    r"(?:she|he|i|you)\s*(?:'?\s*s|is|am|'?\s*m|was|are|'?\s*re|were)",
    rf"(?:{_PERSON_NOUNS})\s+(?:of|de|di|von)",
)
# What follows a number that is not an age (units, ordinals, "18+", "1 of 3").
_NOT_AN_AGE_AFTER = (
    r"\s*(?:['\"+%]|(?:ft|feet|foot|inch|inches|cm|mm|m|meters?|metres?|kg|kilos?|lbs?|pounds?|stone|st|nd|rd|"
    r"th|x|k|p|hours?|hrs?|h|minutes?|mins?|seconds?|secs?|times?|of|out|more|percent|stars?|points?|dd|d|cups?|"
    r"degrees?|euros?|dollars?|usd|eur)(?![a-z]))"
)
_AGE_BEFORE = re.compile(
    rf"(?<![{_LETTER}])(?:{'|'.join(_BEFORE_MARKERS)})\s*[:=]?\s*(?P<n1>{_INTEGER})(?!{_NOT_AN_AGE_AFTER})"
)
_AGE_MIT_JAHREN = re.compile(rf"(?<![{_LETTER}])mit\s+(?P<n1>{_NUMBER})\s*{_JAHR}en(?![{_LETTER}])")

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

# Adult ages stated without a number next to a marker: decades and "-something".
_ADULT_DECADES = re.compile(
    rf"(?<![{_LETTER}0-9])(?:"
    r"(?:in\s+(?:her|his|their|my|your)\s+(?:(?:early|mid|late)[\s-]*)?|(?:early|mid|late)[\s-]*)"
    r"(?:[2-9]0\s*'?\s*s|twenties|thirties|forties|fifties|sixties|seventies)"
    rf"|(?:[2-9]0|twenty|thirty|forty|fifty){_SEP}something"
    r"|(?:la\s+)?(?:vingtaine|trentaine|quarantaine|cinquantaine)"
    r"|(?:mitte|anfang|ende)\s+(?:zwanzig|dreissig|vierzig|funfzig|fuenfzig|[2-5]0)"
    r"|(?:veinte|treinta|cuarenta)\s*(?:y\s*)?(?:tantos|pocos)|veintitantos|treintanera|cuarentona"
    r"|(?:sulla|sui|nella)\s+(?:ventina|trentina|quarantina)|(?:ventenne|trentenne|quarantenne)"
    r")(?![{_LETTER}])"
)


@dataclass(frozen=True, slots=True)
class _Age:
    value: int


def _number_value(text: str) -> int:
    """The value of a matched number (digits, decimal or word); number words of 20 and more give 20."""
    if text[0].isdigit():
        return int(float(text.replace(",", ".")))
    key = re.sub(rf"[^{_LETTER}]", "", text)
    return _WORD_VALUES.get(key, AGE_FLOOR)


def _ages(view: str) -> Iterator[_Age]:
    """Every stated age in one view of the text."""
    for match in _AGE_AFTER.finditer(view):
        if match.group("bare") and (
            _DURATION_BEFORE.search(view, 0, match.start()) or _DURATION_AFTER.match(view[match.end() :])
        ):
            continue
        for group in ("n1", "n2"):
            number = match.group(group)
            if number:
                yield _Age(_number_value(number))
    for pattern in (_AGE_BEFORE, _AGE_MIT_JAHREN):
        for match in pattern.finditer(view):
            yield _Age(_number_value(match.group("n1")))
    for match in _AGE_IT_ENNE.finditer(view):
        yield _Age(_IT_ENNE_VALUES[match.group("stem")])


def _blocked(rule: str, detail: str) -> SafetyVerdict:
    return SafetyVerdict(allowed=False, reason=f"{rule}: {detail}")


def check_prompt(text: str) -> SafetyVerdict:
    """Whether `text` may be used for an image of the user's adult character (see the module docstring)."""
    folded = fold(text)
    if not folded:
        return _ALLOWED
    spellings = views(folded)
    runs = spaced_runs(folded)
    glued = despaced(folded)

    ages = [age.value for view in spellings for age in _ages(view)]
    under = [value for value in ages if value < AGE_FLOOR]
    if under:
        return _blocked(RULE_AGE, str(min(under)))

    for rule, pattern, in_runs, in_glued in _TERM_RULES:
        for view in spellings:
            match = pattern.search(view)
            if match:
                return _blocked(rule, f"'{match.group(0)}'")
        for run in runs:
            if in_runs.search(run):
                return _blocked(rule, f"'{run}'")
        for text_glued in glued:
            match = in_glued.search(text_glued)
            if match:
                return _blocked(rule, f"'{match.group(0)}'")

    for view in spellings:
        match = _BORDERLINE.search(view)
        if match:
            adult = any(value >= AGE_FLOOR for value in ages) or any(_ADULT_DECADES.search(v) for v in spellings)
            if adult:
                return _ALLOWED
            return _blocked(RULE_BORDERLINE, f"'{match.group(0)}' (no adult age >= {AGE_FLOOR} stated)")
    return _ALLOWED
