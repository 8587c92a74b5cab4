"""Latin-script words and phrases for `imaging.safety`'s term rules: EN, FR, ES, DE, IT, PT and romanised slang.

Each tuple is a list of regex alternatives in folded form (`imaging.safety.normalise.fold`: lowercase, no
diacritics, ``ñ`` kept). They are matched as whole words against every view of the text, and against
adjacent short fragments glued (``te en``). Common misspellings and phonetic spellings are written into the
alternatives through the fragments below (``skool gurl``, ``chyld``, ``barley legal``, ``teeneger``);
leetspeak, spacing, homoglyphs and the like are the normaliser's job.
"""

from __future__ import annotations

from imaging.safety.verdict import RULE_AGE_PLAY, RULE_BORDERLINE, RULE_MINOR, RULE_SCHOOL, RULE_YOUTH_BODY

_LETTER = "a-z\u00f1"
_N = "(?:\u00f1|n|ny|nh)"  # Spanish n-tilde, also as typed without it
_SEP = r"[\s-]*"
#: Optional separator between the parts of a compound ("baby-face", "baby face", "babyface").
SEP = _SEP

GIRL = r"(?:girl|gurl|grl|gurrl|gyrl|gal|girlie)"
BOY = r"(?:boy|boi)"
TEEN = r"t(?:ee|ea)n"
SCHOOL = r"(?:school|skool|skewl|skul|shool|scool)"
_GRADE_NUMBER = "(?:10|11|12|1|2|3|4|5|6|7|8|9)"  # spelt out, so that every alternative opens with a literal
_ORDINAL_WORDS = "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth"
_DE_ORDINALS = "erste|zweite|dritte|vierte|funfte|fuenfte|sechste|siebte|achte|neunte|zehnte"
_MINOR_ADJECTIVE_USES = (
    "details?|scars?|flaws?|imperfections?|blemish(?:es)?|changes?|edits?|tweaks?|adjustments?|keys?|"
    "chords?|roles?|characters?|injur(?:y|ies)|issues?|marks?|wrinkles?|asymmetr(?:y|ies)|touch(?:es)?|"
    "league|differences?|variations?|freckles?|moles?|tattoos?"
)
_DE_DETERMINERS = "ein|das|dem|des|kleines|kleine|kleinen|junges|mein|dein|ihr|sein|unser|wie ein"

_COMPOUND_MINOR = "teen|loli|kid|child|shota|schoolgirl|tween"
_COMPOUND_BEFORE = (
    "young|yung|hot|sexy|petite|cute|tiny|little|lil|small|horny|naughty|nude|naked|real|amateur|barely|innocent|"
    "sweet|virgin|busty|skinny|asian|russian|latina|ebony|blonde|brunette|redhead|japanese|chinese|perfect"
)
_COMPOUND_AFTER = (
    "porn|sex|xxx|nude|nudes|naked|pussy|ass|tits|boobs|girls?|boys?|models?|slut|fuck|babes?|pics|cams?|body|"
    "bikini|feet|hentai|love|lover|nsfw"
)

YOUTH_BODY = (
    rf"child{_SEP}like|kid{_SEP}like",
    rf"(?:un|under|not{_SEP}fully|barely|still){_SEP}developed\s+(?:body|breasts?|chest|figure|hips|frame)",
    r"developing\s+(?:body|breasts?|chest|figure)",
    r"budding\s+(?:breasts?|chest|body|figure|curves)",
    r"training\s+bras?",
    r"pubescen(?:t|ts|ce)",
    rf"pre+{_SEP}pubescen(?:t|ts|ce)",
    r"pubert[a-z]*|puberdade|puber(?:es)?|impuber(?:es)?|prepuber(?:es)?",
    r"enfantin(?:e|es|s)?",
    r"infantil(?:e|es|i)?",
    rf"ani{_N}ad(?:a|o|as|os)",
    r"kindlich(?:e|er|en|em|es)?",
    r"kindfrau(?:en)?",
)

MINOR = (
    # English, with phonetic spellings
    r"(?:ch|kh)(?:i|y)ld(?:ren|s|z|dren)?(?![\s-]*free)",
    r"k(?:i|y)dd?(?:s|z|do|dos|die|dies|dy|ie|ies)?",
    rf"minors?(?!\s+(?:{_MINOR_ADJECTIVE_USES})(?![{_LETTER}]))",
    rf"{TEEN}(?:s|z|ager|agers|ajer|ajers|eger|egers|aiger|age|aged|agr)?",
    rf"{TEEN}ies?(?![\s-]*(?:w(?:ee|ei)n(?:ie|y)|bikini))",  # not the teenie-weenie bikini
    rf"{TEEN}(?:y|ie)?{_SEP}boppers?",
    rf"pre+{_SEP}{TEEN}(?:s|ager|agers|age)?",
    r"tw(?:ee|ea)n(?:s|ager|agers|ie|ies)?",
    rf"und(?:er|a|ah|r){_SEP}(?:aged?|aje|ajed)",
    r"lol(?:i|ee|ie)(?:s|z|con|kon|ta|tas|bait|chan|core)?|rori(?:kon|con)?",
    r"shota(?:s|con|kon)?",
    rf"(?:jail|jale|jayl|gaol){_SEP}(?:bait|bate|bayt)s?",
    rf"(?:little|lil'?|lttle|litle){_SEP}(?:{GIRL}|{BOY})s?",
    rf"(?:barely|barley|barly|bearly|barelly|just|newly|freshly){_SEP}(?:legal|leagal|legel|ligal)",
    r"not\s+(?:yet\s+)?(?:legal|of\s+(?:legal\s+)?age)",
    r"(?:below|under|before|beneath)\s+(?:the\s+)?(?:legal\s+age|age\s+of\s+(?:consent|majority))",
    r"toddlers?|infants?|newborns?|youngsters?|younglings?",
    r"nymphets?|nymphettes?",
    r"adolescen(?:t|ts|te|tes|ce|cia|za|z)",
    r"adoleszen(?:t|ten|tin|z)",
    rf"gen(?:eration)?{_SEP}alpha",
    r"p(?:a)?edo(?:s|phil[a-z]*|bear)?|nepiophil[a-z]*|hebephil[a-z]*|ephebophil[a-z]*",
    rf"(?:{GIRL}|{BOY}|cub){_SEP}scouts?",
    # Tag-style compounds: "youngteen", "teenporn", "lolihentai", "kidmodel"
    rf"(?:{_COMPOUND_BEFORE})(?:{_COMPOUND_MINOR})s?",
    rf"(?:{_COMPOUND_MINOR})s?(?:{_COMPOUND_AFTER})",
    # French
    r"enfants?",
    r"fillettes?",
    rf"petites?{_SEP}filles?",
    r"gamins?",
    r"(?:une|la|cette|petite)\s+gamines?",
    r"(?:une?|les|des|la|le|petite?s?|sale)\s+(?:gosses?|momes?)",
    r"bambins?",
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
    r"escuincl(?:e|a|es|as)|nenit(?:a|o|as|os)|chamaquit(?:a|o|as|os)|carajit(?:a|o|as|os)",
    r"chibolit(?:a|o|as|os)|menorcit(?:a|o|as|os)",
    r"(?:una|un|la|el|esta|esa|las|los)\s+cri(?:a|o|as|os)",
    # German
    rf"(?:{_DE_DETERMINERS})\s+kind(?:es|er|ern)?",
    r"(?:die|den|der|keine|kleine|kleinen|viele|zwei|drei|meine|deine|ihre)\s+kinder(?:n)?",
    r"kinder(?!garten)[a-z]{3,}",
    r"minderj(?:a|ae)hrig(?:e|er|en|em|es)?",
    r"backfisch(?:e)?",
    r"(?:kleines|kleine|kleinen)\s+m(?:a|ae)dchen",
    r"knirps(?:e)?",
    # Portuguese
    r"criancas?",
    r"garotinh(?:a|o|as|os)",
    r"menininh(?:a|o|as|os)",
    r"novinh(?:a|o|as|os)",
    r"ninfet[a-z]*",
    r"pirralh(?:a|o|as|os)",
    r"molequinh(?:a|o|as|os)|nenem",
    # Italian
    r"bambin(?:a|o|e|i)",
    r"minorenn(?:e|i)",
    r"ragazzin(?:a|o|e|i)",
    r"minore\s+(?:d\s*'?\s*eta|di\s+eta)",
    r"(?:i|dei|ai|coi|con|per|tra)\s+minori",
    r"pischellett(?:a|e)|bimbett(?:a|e)|fanciullett(?:a|e)",
    # Romanised Japanese, Chinese, Russian and Arabic slang
    rf"kodomo|yo+jo|youjo|luo{_SEP}li|xiao{_SEP}luo{_SEP}li|zheng{_SEP}tai|youn(?:v|u|yu)|you\s+nv|er{_SEP}tong",
    rf"xiao{_SEP}hai(?:zi)?|wei{_SEP}cheng{_SEP}nian|xiao{_SEP}mei{_SEP}mei|you{_SEP}chi",
    r"devochk[a-z]*|devchonk[a-z]*|malolet[a-z]*|podrost(?:ok|ki|ka|kovaya)|reb(?:e|yo|io)nok|nesovershennolet[a-z]*",
    r"(?:6|t)ifl(?:a|ah|eh)?|(?:6|t)efl(?:a|ah|eh)|qaasir(?:a|ah|eh)?|2a{1,2}s(?:i|e)?r(?:a|ah|eh)?",
    r"mura(?:h|7)i?q(?:a|ah|eh)?|mrah?(?:8|q)a",
    r"bin?t\s+(?:s(?:a|o|u)?(?:gh|3'|8)(?:i|ee|a|ay|aya)?r(?:a|ah|eh)|zghira)",
)

AGE_PLAY = (
    rf"age{_SEP}play(?:ing|er|ers)?",
    rf"age{_SEP}regress(?:ion|ing|or|ed)?|agere",
    rf"littlespace|(?:in|into|enter(?:s|ing)?|her|my)\s+little{_SEP}space(?!\s+(?:in|on|at|of|for|between|under|near|by)"
    rf"(?![{_LETTER}]))",
    r"dd\s*/?\s*l[gb]|md\s*/?\s*l[gb]|cglr?e?|ab\s*/?\s*dl",
    rf"adult{_SEP}bab(?:y|ies)",
    r"diaper(?:s|ed)?|nappy|nappies|pa(?:\u00f1|ny|nh)al(?:es)?",
    rf"pacifiers?|binky|binkies|sippy{_SEP}cups?",
    r"dadd(?:y|ie)'?s?\s+(?:little|lil)\s+(?:girl|princess|one|angel|baby|babygirl|gurl)",
    rf"baby{_SEP}talk",
    r"tetines?|chupetes?|chupetas?|windeln?|schnuller|pannolin(?:o|i)|ciucci(?:o)?|fraldas?|fraldinhas?",
)

SCHOOL_CONTEXT = (
    # English
    rf"{SCHOOL}{_SEP}(?:{GIRL}|{BOY}|kid|child|children|uniform|outfit|skirt|pupil|student)s?",
    rf"(?:high|hi|middle|elementary|primary|grade|secondary|prep|junior|grammar){_SEP}{SCHOOL}(?:ers?)?",
    rf"(?:junior|jr){_SEP}\.?\s*high",
    r"hs\s+(?:student|girl|senior|junior|sophomore|freshman|cheerleader)s?",
    r"kindergart(?:en|ner|ener)s?|preschool(?:ers?)?|pre-k",
    r"sixth\s+form(?:ers?)?|gcses?|homeroom",
    rf"{_GRADE_NUMBER}\s*(?:st|nd|rd|th)\s+grade(?:rs?)?",
    rf"grade\s*{_GRADE_NUMBER}(?![0-9])",
    rf"(?:{_ORDINAL_WORDS}){_SEP}grade(?:rs?)?",
    r"in\s+year\s+(?:[1-9]|1[0-3])(?![0-9])(?!\s+of)|year\s+(?:[1-9]|1[0-3])\s+(?:student|pupil|girl|boy|class)s?",
    # French
    r"ecolier(?:e|es|s)?",
    r"collegien(?:ne|nes|s)?",
    r"lyceen(?:ne|nes|s)?",
    r"(?:au|en|du)\s+(?:college|lycee)",
    r"uniforme\s+scolaire",
    r"ecole\s+(?:primaire|elementaire|maternelle)",
    r"(?:eleve|classe)\s+de\s+(?:[3-6]\s*e(?:me)?|troisieme|quatrieme|cinquieme|sixieme|seconde|premiere|terminale)",
    r"en\s+(?:[3-6]\s*e(?:me)?|troisieme|quatrieme|cinquieme|sixieme|terminale|cm[12]|ce[12])(?![a-z0-9])",
    # Spanish (and Portuguese colegial)
    r"colegial(?:a|as|es|ita|itas)?",
    r"uniforme\s+(?:escolar|de\s+colegio|colegial)",
    r"(?:de|en|escuela|educacion)\s+(?:secundaria|primaria|bachillerato)",
    r"(?:una|un|la|el)\s+escolar",
    r"(?:la|de|en)\s+prepa(?:ratoria)?",
    r"(?:de|en)\s+la\s+eso",
    # German
    r"schul(?:m(?:a|ae)dchen|junge|jungen|uniform|uniformen|kind|kinder)",
    r"sch(?:u|ue)ler(?:in|innen)?",
    r"(?:grund|haupt|real|ober|gesamt)sch(?:u|ue)ler(?:in|innen)?",
    r"(?:grund|haupt|real|mittel|ober|gesamt)schule",
    r"gymnasiast(?:in|innen|en)?",
    rf"{_GRADE_NUMBER}\s*\.?\s*klasse",
    rf"klasse\s*{_GRADE_NUMBER}(?![0-9])",
    rf"(?:{_DE_ORDINALS})\s+klasse",
    r"(?:erst|zweit|dritt|viert|funft|sechst|siebt|acht|neunt|zehnt)kl(?:a|ae)ssler(?:in|innen)?",
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
    r"(?:sexto|setimo|oitavo|nono)\s+ano|(?:quinta|sexta|setima|oitava)\s+serie|(?:5|6|7|8|9)\s*\.?\s*o\s+ano",
    # Romanised Japanese, Chinese, Russian and Arabic
    rf"joshi{_SEP}(?:ko|kou|koo){_SEP}(?:sei)?|joshi{_SEP}chu+{_SEP}gakusei|(?:chu+|shou?){_SEP}gakusei",
    rf"kogal|ko{_SEP}gyaru|randoseru|sera{_SEP}fuku|seeraa?{_SEP}fuku|sailor{_SEP}fuku",
    r"j\s*[kc](?:[1-3]|\s+(?:uniform|girl|style|seifuku|cosplay|outfit|look|aesthetic|fashion|student)s?)",
    r"j[kcs](?=[\u3040-\u30ff\u3400-\u9fff])",
    rf"xue{_SEP}sheng{_SEP}mei|(?:xiao|zhong|chu{_SEP}zhong|gao{_SEP}zhong){_SEP}(?:xue{_SEP})?sheng",
    r"shkol'?ni(?:tsa|ca|tza|tsy|cy|k|ki)",
    r"til?m(?:ee|i)(?:za|tha|dha|zah)",
)

BORDERLINE = (
    # English
    r"youthful(?:ly|ness)?(?!\s+(?:energy|spirit|enthusiasm|outlook|attitude|optimism|curiosity|zest|passion|"
    r"vigou?r|exuberance|heart|soul|mind))",
    rf"young(?:er)?{_SEP}looking",
    r"look(?:s|ing)?\s+(?:very\s+|so\s+|really\s+|much\s+|quite\s+|super\s+)?young(?:er)?",
    r"(?:very|so|too|super|really)\s+young(?!\s+(?:at\s+heart|in\s+spirit))",
    rf"y(?:ou|u)ng\s+(?:{GIRL}|{BOY}|face|body)s?",
    rf"baby{_SEP}face(?:d|s)?",
    r"girlish(?:ly)?",
    r"childish(?:ly)?",
    r"gamines?",
    rf"flat{_SEP}chest(?:ed)?",
    rf"(?:tiny|small|smol|wee)\s+(?:{GIRL}|{BOY})s?",
    r"juvenil(?:e|es)?",
    # French
    rf"jeunes?{_SEP}filles?",
    r"(?:air|allure|visage)\s+(?:tres\s+|si\s+)?jeune",
    r"parai(?:t|s)\s+(?:tres\s+|si\s+)?jeune",
    r"(?:tres|si|toute)\s+jeune|jeunettes?|minettes?",
    # Spanish
    r"jovencit(?:a|as|o|os)",
    r"chiquill(?:a|as|o|os)",
    r"nenas?",
    r"(?:aspecto|cara)\s+(?:muy\s+)?(?:joven|juvenil)",
    r"(?:parece|aparenta)\s+(?:muy\s+|ser\s+|mas\s+)?joven",
    r"(?:muy|tan)\s+joven",
    r"morrit(?:a|as)|chavit(?:a|as)|pibit(?:a|as)",
    # German
    r"m(?:a|ae)dchen(?:haft|hafte|haften|hafter)?",
    r"jugendlich(?:e|er|en|em|es)?",
    r"blutjung(?:e|er|en|es)?|sehr\s+jung(?:e|er|en|es)?|jung\s+aussehend(?:e|er|en|es)?",
    # Italian
    r"fanciull(?:a|e|o|i)",
    r"bimb(?:a|e)",
    r"giovanil(?:e|i)",
    r"(?:aria|aspetto)\s+(?:molto\s+)?giovan(?:e|ile)",
    r"sembra\s+(?:molto\s+|piu\s+)?giovane",
    r"molto\s+giovane|giovanissim(?:a|e)|giovincell(?:a|e)|pischell(?:a|e)",
    # Portuguese
    r"menin(?:a|o|as|os)",
    r"(?:aparencia|cara|rosto)\s+(?:muito\s+)?jovem",
    r"(?:parece|aparenta)\s+(?:muito\s+|ser\s+|mais\s+)?jovem",
    r"muito\s+(?:jovem|nova|novinha)|bem\s+nova|jovenzinh(?:a|o)|mocinh(?:a|as)",
    # Romanised Japanese, Chinese, Russian
    rf"shou?jo|shao{_SEP}n(?:v|u)|tong{_SEP}yan|nen{_SEP}mei|malysh(?:ka)?|yunaya|junaja|molodenkaya",
)

WORDS: dict[str, tuple[str, ...]] = {
    RULE_YOUTH_BODY: YOUTH_BODY,
    RULE_MINOR: MINOR,
    RULE_AGE_PLAY: AGE_PLAY,
    RULE_SCHOOL: SCHOOL_CONTEXT,
    RULE_BORDERLINE: BORDERLINE,
}

# Spaced-out evasions (``a t e e n``) are matched without word boundaries, against these stems only.
SPACED_OUT: dict[str, tuple[str, ...]] = {
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
        r"novinh",
    ),
    RULE_YOUTH_BODY: (r"childlike", r"pubescen"),
    RULE_AGE_PLAY: (r"ageplay", r"ddlg", r"abdl", r"diaper"),
    RULE_SCHOOL: (r"schoolgirl", r"schoolboy", r"highschool", r"colegiala", r"scolaretta", r"schulm(?:a|ae)dchen"),
}

# Long, unambiguous stems are also looked for in the text with every space and punctuation removed, which
# catches arbitrary splits ("sch ool girl", "jail b ait").
DESPACED: dict[str, tuple[str, ...]] = {
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
    RULE_AGE_PLAY: (r"agere?gression",),
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
