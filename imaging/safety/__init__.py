"""Prompt safety: blocks text that depicts, sexualises or suggests a minor, before any image is made.

``check_prompt(text)`` checks a whole image prompt; ``check_field(field, text)`` checks one avatar setup
field ALONE (``gender``, ``nationality``, ``appearance``, ``name``, ``personality``, ``scene``; ``prompt`` is
``check_prompt``). Callers check every field and the scene on their own, because the composed prompt always
states "a N-year-old adult", which would otherwise disarm the borderline rule below. Both return a
`SafetyVerdict`: ``allowed``, and when blocked a short ``reason`` ``"<rule>: <detail>"``
(``"minor-term: 'teen'"``, ``"age-under-20: 17"``, ``"age-under-20: born 2009 (17 in 2026)"``); ``code`` is the
rule part; both are None when allowed. Checks are deterministic given ``year`` (the current year, for birth
years; default: the UTC clock), read no settings, and compile their patterns once at import.

Normalisation first (`imaging.safety.normalise`): NFKC, zero-width and other invisible characters
removed, casefold, diacritics stripped, homoglyphs of other scripts mapped, digits of every script made
ASCII, a capital I read as l too; then every rule is matched against several spellings: punctuation inside
words turned into spaces or removed, spaced-out letters glued, repeated letters squeezed, leetspeak
(``t33n``, ``l0li``, ``$choolgirl``, only in words holding a letter, so numbers stay numbers), short
fragments glued pairwise (``te en``), long stems in the text without spaces (``sch ool girl``), and a
second, native fold for Russian, Arabic, Japanese and Chinese. Languages: English, Spanish, French, German,
Italian, Portuguese, Russian, Japanese, Chinese, Arabic, and romanised Japanese, Chinese, Russian and
Arabic slang. The first rule that matches, in this order, gives the reason:

``age-under-20``
    Any stated age below 20 (the product's floor is 20, not 18), written any way: digits of any script,
    number words in every language, Roman numerals, ranges (lower end), ``looks/seems/appears N``,
    ``she's like 15``, ``only 14``, ``could be 16``, a bare ``17 yrs``/``17 years`` (but not ``for 15
    years``, ``15 years ago``, ``10 years of experience``), a number standing alone in a description
    (``Lisa, 15, blonde``, ``Mia (15)``), ``under/below/almost N`` (N-1: ``under 20`` blocks, ``under 21`` does not),
    ``u18``, birthdays (``16th birthday``, ``seizième anniversaire``, ``16. Geburtstag``), birth years
    (``born in 2009``, ``DOB 03/05/10``, ``née en 2010``, ``Jahrgang 2009``, ``родилась в 2010``,
    ``2009年生まれ``, ``平成21年生まれ``, ``10后``, ``مواليد 2010``: current year minus birth year), ``N歳``,
    ``十代`` (teens), ``ей 16 лет``, ``عمرها ١٦ سنة``. A number is an age only in an age construction, so
    ``19th century``, ``size 14``, ``5'4``, ``18+``, ``married for 15 years``, ``under 5 feet`` are not
    (details in `imaging.safety.ages` and `imaging.safety.ages_world`). In the ``name`` field any number
    under 20 is an age (``Mia 15``). ``Baby Girl 15``/``a girl, 14`` (a person noun, then a number ending
    the phrase) are ages everywhere.
``youth-body``
    A child's or pubescent body: childlike, (under)developed body/breasts, budding breasts, training bra,
    pubescent/prepubescent, puberty, enfantin, infantil, aniñada, kindlich, Kindfrau, пубертат, 思春期,
    طفولي.
``minor-term``
    Words, slang and euphemisms that name a child or a teen, in every language (child, kid, minor, teen,
    preteen, tween, loli, shota, jailbait, little girl, barely legal, not yet legal, below the age of
    consent, gen alpha, pedo, niña, enfant, Kind, bambina, criança, novinha, девочка, малолетка, 子供,
    ロリ, 萝莉, 幼女, 未成年, طفلة, قاصر, مراهقة, romanised luoli, younv, devochka, tifla...), with
    phonetic spellings (``chyld``, ``lil gurl``, ``barley legal``, ``teeneger``), tag-style compounds
    (``youngteen``, ``teenporn``, ``lolihentai``), and emoji of children (👶 🧒 👦 👧 🚸, family emoji with a
    child). A child may not appear in an adult image at all, even as a bystander (``two kids' toys``,
    ``mother of two kids``); ``child-free`` and the ``teenie-weenie bikini`` pass.
``age-play``
    Age-play wording: ageplay, age regression, little space, DDLG/MDLG/CGL, ABDL, adult baby, diaper,
    pacifier, sippy cup, daddy's little girl, baby talk, tétine, pañal, chupete, Windel, Schnuller,
    pannolino, ciuccio, fralda, подгузник, おむつ, 奶嘴, حفاض, 🍼.
``school-context``
    School pupils and settings, in every language: schoolgirl (``skool gurl``), school uniform, high/middle/
    elementary school, junior high, kindergarten, grade 8 / 8th grade / ninth-grader / year 10 student,
    collégienne, en 3e, colegiala, alumna de la ESO, Schülerin, Achtklässlerin, scolaretta, terza media,
    oitavo ano, школьница, ученица 9 класса, 女子高生, JK, 中学生, 高中, 初二, 五年级, 校服, ランドセル,
    セーラー服, تلميذة, زي مدرسي, 🏫 🎒. ``student``, ``college``, ``university``, ``law school``,
    ``schoolteacher`` are adult and pass; a school setting blocks even around an adult (``high school
    teacher``): it would put a school, so pupils, into a sexual image.
``youth-borderline``
    Terms that can describe an adult but lean young: youthful, young-looking, looks young, very young,
    young girl, baby face, girlish, childish, flat-chested, tiny girl, jeune fille, jovencita, nena,
    Mädchen, blutjung, fanciulla, menina, mocinha, юная, малышка, 少女, 童顔, 童颜,
    تبدو صغيرة, 👼 🧸. **Allowed only when the same text states an adult age >= 20** (``25 years old``,
    ``in her twenties``, ``mid-20s``, ``born in 1995``, ``二十代``, ``за тридцать``); otherwise blocked. A
    field checked alone states no age of its own, so there the rule blocks unless the field itself states
    one (``youthful 35-year-old`` passes, ``very young girl with a baby face`` does not). A stated age never
    licenses child-like terms (``very young``, ``young girl``/``boy``/``body``, ``tiny girl``), three or more
    separate young-looking terms piled up (``aged 40, baby-faced, flat-chested, girlish``), or any of them in
    a ``scene`` (a scene sets no age: the avatar's is fixed, so an age written there is a dodge). Harmless
    wording is not borderline: ``young at heart``, ``youthful energy``, ``young woman``, ``young
    professional``. A one-word ``name`` is a name, not a description, and skips this rule (``Nena``).

Fine on their own (documented choices): ``girl``, ``young woman``, ``petite``, ``small``, ``tiny``,
``freckles``, ``pigtails``, ``student``, ``baby girl`` (a pet name), ``teeny`` (tiny), English
``kind``/``kinder``, nationality and language names, number words without an age marker (``seventeen
magazine``), French ``fille``/``petite``, Spanish ``chica``, Italian ``ragazza``, Portuguese ``garota``/
``moça``, Japanese ``女の子``, Chinese ``女孩``/``女孩子``. Known limits: ``lolita`` blocks also as a fashion
style (``ゴスロリ`` too), and ``Shota`` also as a Japanese given name; ``JK``/``JC`` block only next to a
word that makes them school slang (``JK uniform``, ``JKの制服``), as alone they are initials.
"""

from __future__ import annotations

from imaging.safety.check import check_field, check_prompt
from imaging.safety.verdict import (
    AGE_FLOOR,
    FIELDS,
    RULE_AGE,
    RULE_AGE_PLAY,
    RULE_BORDERLINE,
    RULE_MINOR,
    RULE_SCHOOL,
    RULE_YOUTH_BODY,
    RULES,
    Field,
    SafetyVerdict,
)

__all__ = [
    "AGE_FLOOR",
    "FIELDS",
    "RULES",
    "RULE_AGE",
    "RULE_AGE_PLAY",
    "RULE_BORDERLINE",
    "RULE_MINOR",
    "RULE_SCHOOL",
    "RULE_YOUTH_BODY",
    "Field",
    "SafetyVerdict",
    "check_field",
    "check_prompt",
]
