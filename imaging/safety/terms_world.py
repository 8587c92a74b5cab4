# ruff: noqa: RUF001, RUF002  (deliberately holds other scripts, homoglyphs and full-width forms)
"""Russian, Arabic, Japanese and Chinese words, and emoji, for `imaging.safety`'s term rules.

Russian and Arabic are matched as words in the native fold (`imaging.safety.normalise.fold_native`:
``ё`` -> ``е``, ``й`` -> ``и``, ``ة`` -> ``ه``, ``أ``/``ئ`` -> ``ا``/``ي``): each alternative starts a word (Arabic
after its attached prefixes ``و ف ب ل ك`` and ``ال``) and says itself how it ends (``[а-я]*`` for a stem).
Long Russian and Arabic stems are also matched with every space removed (``ш к о л ь н и ц а``, ``ط ف ل ة``).
Japanese and Chinese have no word spaces and are matched in the text with every space and punctuation
removed (``萝 莉``); where a short term is part of harmless words, the pattern says so (``カロリー`` and
``フロリダ`` are not ``ロリ``; ``集中学习`` is not ``中学``; ``女孩子`` is a young woman, not ``孩子``).
Emoji are matched in the raw text, skin tones and variation selectors removed; a person emoji joined to
``🏫`` is a teacher, not a school.
"""

from __future__ import annotations

from imaging.safety.verdict import RULE_AGE_PLAY, RULE_BORDERLINE, RULE_MINOR, RULE_SCHOOL, RULE_YOUTH_BODY

CYRILLIC = "\u0430-\u044f"
ARABIC = "\u0621-\u064a"
_CYR_STEM = f"[{CYRILLIC}]*"
_CYR_END = f"(?![{CYRILLIC}])"
_AR_END = f"(?![{ARABIC}])"
_KATAKANA = "\u30a1-\u30fa"

_RU_MINOR_STEMS = (
    "девочк", "девчушк", "малолет", "несовершеннолет", "подрост", "лолит", "тинеиджер", "тиныч", "младен",
    "мальчик", "мальчишк", "дочурк", "педофил", "ребятишк", "детишк", "детск",
)  # fmt: skip

RUSSIAN: dict[str, tuple[str, ...]] = {
    RULE_YOUTH_BODY: (f"препубертат{_CYR_STEM}", f"пубертат{_CYR_STEM}"),
    RULE_MINOR: (
        *(f"{stem}{_CYR_STEM}" for stem in _RU_MINOR_STEMS),
        f"(?:ребен(?:ок|ка|ку|ком|ке)|дет(?:и|еи|ям|ьми|ях)|лоли|лоликон|шота|шотакон){_CYR_END}",
    ),
    RULE_AGE_PLAY: (f"подгузник{_CYR_STEM}", f"пустышк{_CYR_STEM}", f"памперс{_CYR_STEM}"),
    RULE_SCHOOL: (
        f"школьниц{_CYR_STEM}",
        f"школьник{_CYR_STEM}",
        f"старшекласс{_CYR_STEM}",
        f"пионерк{_CYR_STEM}",
        f"детсад{_CYR_STEM}",
        rf"школьн{_CYR_STEM}\s+форм{_CYR_STEM}",
        f"(?:перво|второ|третье|четверо|пяти|шести|семи|восьми|девяти|десяти|одиннадцати)класс{_CYR_STEM}",
        rf"(?<![0-9])(?:[1-9]|1[01])\s*-?\s*(?:го\s+|и\s+|ом\s+)?класс(?:е|а|ниц{_CYR_STEM}){_CYR_END}",
        r"ученица\s+(?:[0-9]|школ)",
    ),
    RULE_BORDERLINE: (
        f"(?:юн(?:ая|ыи|ое|ую|ои|ые|ых|енькая)|девич(?:ии|ья|ье|ьи)){_CYR_END}",
        f"молоденьк{_CYR_STEM}",
        f"малышк{_CYR_STEM}",
        f"девч[ео]нк{_CYR_STEM}",
        rf"совсем\s+молод{_CYR_STEM}",
        r"выглядит\s+(?:очень\s+|совсем\s+)?молодо",
    ),
}

# Matched after optional attached prefixes (و ف ب ل ك, then ال).
ARABIC_WORDS: dict[str, tuple[str, ...]] = {
    RULE_YOUTH_BODY: (f"طفولي(?:ه)?{_AR_END}",),
    RULE_MINOR: (
        f"(?:طفل(?:ه|ين|ان|تي|ي|ها)?|اطفال|قاصر(?:ه|ات|ين)?|مراهق(?:ه|ين|ات)?|لوليتا|رضيع(?:ه)?){_AR_END}",
        rf"(?:بنت|فتاه|طفله)\s+صغيره{_AR_END}",
        rf"صغيره\s+(?:في\s+)?السن{_AR_END}",
    ),
    RULE_AGE_PLAY: (f"(?:حفاض(?:ات|ه)?|لهايه){_AR_END}",),
    RULE_SCHOOL: (
        f"تلميذ(?:ه|ات)?{_AR_END}",
        rf"زي\s+(?:ال)?مدرسي{_AR_END}",
        rf"مدرسه\s+(?:ال)?(?:ابتداييه|اعداديه|ثانويه|متوسطه){_AR_END}",
        rf"صف\s+(?:ال)?(?:اول|ثاني|ثالث|رابع|خامس|سادس|سابع|ثامن|تاسع|عاشر|حادي){_AR_END}",
    ),
    RULE_BORDERLINE: (f"(?:صبيه|بنوته){_AR_END}",),
}
# Matched as they stand (their first word takes no prefix).
ARABIC_PHRASES: dict[str, tuple[str, ...]] = {
    RULE_YOUTH_BODY: (rf"(?:سن|قبل)\s+البلوغ{_AR_END}",),
    RULE_SCHOOL: (rf"(?:في|طالبه|طالب)\s+(?:ال)?(?:ابتداييه|اعداديه|ثانويه|متوسطه){_AR_END}",),
    RULE_BORDERLINE: (rf"تبدو\s+(?:صغيره|اصغر){_AR_END}",),
}

# Japanese and Chinese, and long Russian and Arabic stems, in the native text without spaces.
GLUED: dict[str, tuple[str, ...]] = {
    RULE_YOUTH_BODY: ("思春期|青春期|発育途上|发育中|幼い(?:体|身体|からだ)|幼児体型|幼儿体型",),
    RULE_MINOR: (
        "子供|子ども|こども|児童|兒童|儿童|幼女|幼児|幼儿|幼兒|女児|男児|女童|男童|幼童|未成年|少年|小孩|小女孩|小男孩",
        "小妹妹|赤ちゃん|赤ん坊|婴儿|嬰兒|園児|キッズ|青少年|幼齿|幼齒|雏妓|雛妓|萝莉|蘿莉|ゴスロリ|正太(?!郎)|(?<![女男])孩子",
        f"(?<![{_KATAKANA}])(?:ロリ|ショタ|ガキ|ティーン|ペド(?!ロ))",
        "童女",
        "малолетк|несовершеннолетн|девочк|طفله|مراهقه",
    ),
    RULE_AGE_PLAY: ("おむつ|オムツ|おしゃぶり|赤ちゃんプレイ|幼児プレイ|尿布|纸尿裤|紙尿褲|奶嘴",),
    RULE_SCHOOL: (
        "女子高生|女子高校生|女子校生|高校生|中学生|小学生|初中|幼稚園|幼稚园|幼儿园|幼兒園|保育園|ランドセル|セーラー服|校服",
        "学生妹|學生妹|水手服|红领巾|紅領巾|(?<![提最])高中(?!低)",
        "(?:中学|中學|小学|小學)(?:生|校|時代|时代|时|時|的|里|裡|女|男|制服|老师|老師|[0-9一二三四五六]年)",
        "(?:小学|中学|高校)[0-9一二三四五六]年",
        "(?<![身个個])(?:初|高)[一二三](?:学生|學生|女生|生|年级|年級|女孩|妹)|(?:读|讀|上)(?:初|高)[一二三]",
        "(?<![0-9])(?:中|高)[1-3](?:の|女子|男子|生)",
        "(?<![年月])初[一二三](?![日号號])",
        "(?<!大学)(?<!大學)(?<![0-9])[一二三四五六七八九1-9]年(?:级|級)",
        "школьниц|старшеклассниц|تلميذه",
    ),
    RULE_BORDERLINE: (
        "少女|童顔|童颜|童顏|幼い|幼稚(?![园園])|若く見える|看起来很年轻|看起來很年輕|显小|顯小|嫩妹|妹妹|小姑娘",
        "貧乳|贫乳|平胸|ロリ顔",
    ),
}

_PERSON_ZWJ = "[\U0001f468\U0001f469\U0001f9d1]\u200d"
EMOJI: dict[str, tuple[str, ...]] = {
    RULE_MINOR: ("[\U0001f476\U0001f9d2\U0001f466\U0001f467\U0001f6b8]",),
    RULE_AGE_PLAY: ("\U0001f37c",),
    RULE_SCHOOL: (f"(?<!{_PERSON_ZWJ})\U0001f3eb", "\U0001f392"),
    RULE_BORDERLINE: ("[\U0001f47c\U0001f9f8]",),
}
