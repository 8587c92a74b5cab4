"""The pure reply renderer against Telegram's and WhatsApp's real capabilities."""

from __future__ import annotations

import random
import string

import pytest

from channels.telegram import TELEGRAM_CAPABILITIES
from channels.whatsapp import WHATSAPP_CAPABILITIES
from core.messages import Choice, ChoicesReply, LinkReply, PhotoReady, TextReply
from core.ports import ChannelCapabilities
from core.render import (
    ButtonsPart,
    ImagePart,
    ListPart,
    RenderedPart,
    TextPart,
    UrlButtonPart,
    numbered_choice,
    render,
    shorten,
    split_text,
    uses_numbered_list,
)

TG = TELEGRAM_CAPABILITIES
WA = WHATSAPP_CAPABILITIES
WEB = ChannelCapabilities(max_text_chars=20_000, max_body_chars=20_000, max_buttons=12, inline_images=True)

KEEP_LABEL = "Keep: long dark hair, green eyes, freckles and…"
PERSONALITIES = ("Playful", "Dominant", "Shy", "Caring", "Intellectual", "Adventurous")
SETUP_CHOICES = (Choice(KEEP_LABEL, "keep"), *(Choice(p, p.lower()) for p in PERSONALITIES))
SETUP_QUESTION = ChoicesReply("What is her personality like? Pick one or describe it in your own words.", SETUP_CHOICES)

PORTAL_URL = "https://ava.example/portal/photos/42?sig=3f9a1c0de2b7"
LOCAL_URL = "http://127.0.0.1:8080/portal/photos/42?sig=3f9a1c0de2b7"


def _texts(parts: tuple[RenderedPart, ...]) -> list[str]:
    """The text each part shows, in order."""
    out: list[str] = []
    for part in parts:
        match part:
            case TextPart(text=text) | ButtonsPart(text=text) | ListPart(text=text) | UrlButtonPart(text=text):
                out.append(text)
            case ImagePart(caption=caption):
                out.append(caption)
    return out


def _assert_split(text: str, chunks: list[str], limit: int) -> None:
    """split_text's invariants: chunks fit, none empty, words whole and in order (over-long words only cut)."""
    assert all(0 < len(chunk) <= limit for chunk in chunks)
    assert all(chunk == chunk.strip() for chunk in chunks)
    pieces = " ".join(chunks).split()
    at = 0
    for word in text.split():
        if len(word) <= limit:
            assert pieces[at] == word, f"word {word!r} cut or lost"
            at += 1
        else:  # only a word longer than the limit may be cut, and its pieces come in order
            joined = ""
            while joined != word:
                joined += pieces[at]
                at += 1
                assert word.startswith(joined)
    assert at == len(pieces)


def _words(rng: random.Random, n: int) -> list[str]:
    return ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 12))) for _ in range(n)]


# --- the setup question -------------------------------------------------------------------------------------------


def test_setup_question_on_whatsapp_is_a_list_within_limits() -> None:
    """Seven setup choices on WhatsApp make one list message within every WhatsApp limit, data kept in order."""
    parts = render(SETUP_QUESTION, WA)
    assert len(parts) == 1
    part = parts[0]
    assert isinstance(part, ListPart)
    assert len(part.rows) <= 10
    assert all(len(row.title) <= 24 for row in part.rows)
    assert all(row.description is None or len(row.description) <= 72 for row in part.rows)
    assert 0 < len(part.button_label) <= 20
    assert 0 < len(part.text) <= 1024
    assert [row.data for row in part.rows] == [c.data for c in SETUP_CHOICES]
    keep = part.rows[0]
    assert keep.title.endswith("…") and keep.title != KEEP_LABEL
    assert KEEP_LABEL in part.text or keep.description == KEEP_LABEL
    assert [row.title for row in part.rows[1:]] == list(PERSONALITIES)
    assert all(row.description is None for row in part.rows[1:])


def test_setup_question_on_telegram_is_buttons() -> None:
    """On Telegram the same seven choices are buttons with full labels (all within 64 characters)."""
    parts = render(SETUP_QUESTION, TG)
    assert len(parts) == 1
    part = parts[0]
    assert isinstance(part, ButtonsPart)
    assert part.text == SETUP_QUESTION.text
    assert all(len(b.label) <= 64 for b in part.buttons)
    assert [(b.label, b.data) for b in part.buttons] == [(c.label, c.data) for c in SETUP_CHOICES]


def test_list_row_label_longer_than_description_goes_in_the_body() -> None:
    """A label too long even for a row description (72) is shown in full in the list's body."""
    long_label = "Keep: " + "very long wavy auburn hair with a side parting, hazel eyes and a warm smile"
    reply = ChoicesReply("Her look?", (Choice(long_label, "keep"), *(Choice(p, p.lower()) for p in PERSONALITIES)))
    [part] = render(reply, WA)
    assert isinstance(part, ListPart)
    assert part.rows[0].description is not None and len(part.rows[0].description) <= 72
    assert part.text.startswith("Her look?\n\n")
    assert long_label in part.text


# --- buttons and numbered lists -----------------------------------------------------------------------------------


def test_three_choices_on_whatsapp_are_buttons_with_short_titles() -> None:
    """Three choices on WhatsApp are reply buttons with titles of at most 20; full labels are kept in the body."""
    choices = (Choice("Woman", "woman"), Choice("Man", "man"), Choice("Non-binary or something else", "nb"))
    [part] = render(ChoicesReply("Who is Ava?", choices), WA)
    assert isinstance(part, ButtonsPart)
    assert all(len(b.label) <= 20 for b in part.buttons)
    assert [b.data for b in part.buttons] == ["woman", "man", "nb"]
    assert [b.label for b in part.buttons][:2] == ["Woman", "Man"]
    assert part.buttons[2].label == "Non-binary or…"
    assert part.text == "Who is Ava?\n\n• Non-binary or something else"


def test_many_choices_on_whatsapp_are_a_numbered_list() -> None:
    """Eleven choices on WhatsApp (more than a list holds) become a numbered list; the typed number answers."""
    choices = tuple(Choice(f"Scene number {i} with a long description", f"scene:{i}") for i in range(1, 12))
    parts = render(ChoicesReply("Where should we go?", choices), WA)
    assert all(isinstance(p, TextPart) for p in parts)
    text = "\n".join(_texts(parts))
    assert text.startswith("Where should we go?\n\n1. Scene number 1 with a long description\n2. ")
    assert "11. Scene number 11 with a long description" in text
    assert uses_numbered_list(11, WA)
    assert numbered_choice("3", choices, WA) == "scene:3"
    assert numbered_choice(" 3. ", choices, WA) == "scene:3"
    assert numbered_choice("3)", choices, WA) == "scene:3"
    assert numbered_choice("11", choices, WA) == "scene:11"
    for typed in ("0", "12", "3x", "", "three", "-1", "3.5", None):
        assert numbered_choice(typed, choices, WA) is None


def test_numbered_choice_is_none_when_render_does_not_number() -> None:
    """A typed number is not an answer when the choices were shown as buttons or a list."""
    three = SETUP_CHOICES[:3]
    assert not uses_numbered_list(3, WA)
    assert numbered_choice("1", three, WA) is None
    assert numbered_choice("1", SETUP_CHOICES, WA) is None  # a list message on WhatsApp
    assert numbered_choice("1", SETUP_CHOICES, TG) is None  # buttons on Telegram


def test_telegram_numbers_more_than_eight_choices() -> None:
    """Telegram has no list messages: nine choices become a numbered list and the number is accepted."""
    choices = tuple(Choice(f"Option {i}", f"o{i}") for i in range(1, 10))
    parts = render(ChoicesReply("Pick one", choices), TG)
    assert [type(p) for p in parts] == [TextPart]
    assert numbered_choice("9", choices, TG) == "o9"


def test_uses_numbered_list_agrees_with_render() -> None:
    """`uses_numbered_list` is true exactly when render shows only text parts for the choices."""
    for caps in (TG, WA, WEB):
        for n in range(1, 16):
            choices = tuple(Choice(f"Choice {i}", str(i)) for i in range(n))
            parts = render(ChoicesReply("Pick", choices), caps)
            assert uses_numbered_list(n, caps) == all(isinstance(p, TextPart) for p in parts)


def test_choices_with_blank_question_never_have_an_empty_body() -> None:
    """A blank question still gives a non-empty body (WhatsApp refuses an empty one)."""
    for caps in (TG, WA):
        for reply in (ChoicesReply("  ", SETUP_CHOICES), ChoicesReply("", SETUP_CHOICES[:2])):
            assert all(text.strip() for text in _texts(render(reply, caps)))


def test_long_question_on_whatsapp_goes_before_the_interactive_part() -> None:
    """A 1,500-character question: leading text part(s), then buttons whose body fits WhatsApp's 1,024."""
    sentence = "Tell me a little more about the kind of evenings you enjoy most. "
    question = (sentence * 24).strip()
    assert len(question) >= 1500
    parts = render(ChoicesReply(question, SETUP_CHOICES[1:4]), WA)
    assert len(parts) >= 2
    assert all(isinstance(p, TextPart) for p in parts[:-1])
    last = parts[-1]
    assert isinstance(last, ButtonsPart)
    assert 0 < len(last.text) <= 1024
    assert last.text.startswith("Tell me") and last.text.endswith("most.")  # split between sentences
    assert " ".join(_texts(parts)).split() == question.split()


def test_long_question_on_whatsapp_list() -> None:
    """A long question with a list keeps the list's body within 1,024 and loses no words."""
    question = "\n\n".join(f"Paragraph {i}. " + "word " * 80 for i in range(6)).strip()
    parts = render(ChoicesReply(question, SETUP_CHOICES), WA)
    last = parts[-1]
    assert isinstance(last, ListPart) and len(last.text) <= 1024
    assert last.text.startswith("Paragraph")  # the tail starts at a paragraph
    assert " ".join(_texts(parts)).split() == question.split()


# --- links and photos ---------------------------------------------------------------------------------------------


def test_local_link_on_telegram_is_plain_text() -> None:
    """Telegram refuses URL buttons to localhost: the link goes in the text, whole."""
    parts = render(LinkReply("Sign in to the portal.", "Sign in", LOCAL_URL), TG)
    assert parts == (TextPart(f"Sign in to the portal.\nSign in: {LOCAL_URL}"),)


def test_https_link_is_a_url_button() -> None:
    """An https link to a public host is a URL button, its label shortened to the platform's limit."""
    label = "Open your private photo gallery"
    assert render(LinkReply("Your gallery", label, PORTAL_URL), TG) == (
        UrlButtonPart("Your gallery", label, PORTAL_URL),
    )
    [part] = render(LinkReply("Your gallery", label, PORTAL_URL), WA)
    assert isinstance(part, UrlButtonPart)
    assert part.url == PORTAL_URL and part.label == "Open your private…" and len(part.label) <= 20


def test_long_link_text_is_limited_before_the_url_button() -> None:
    """A link message longer than WhatsApp's body limit sends leading text first."""
    text = " ".join(["Please read the terms before you subscribe."] * 40)
    parts = render(LinkReply(text, "Subscribe", PORTAL_URL), WA)
    assert isinstance(parts[-1], UrlButtonPart) and len(parts[-1].text) <= 1024
    assert " ".join(_texts(parts)).split() == text.split()


def test_photo_on_telegram_and_whatsapp_is_a_link() -> None:
    """A finished photo is never inline on Telegram or WhatsApp: a URL button, or a text link to localhost."""
    for caps in (TG, WA):
        assert render(PhotoReady(42, PORTAL_URL, "Here she is"), caps) == (
            UrlButtonPart("Here she is", "View photo", PORTAL_URL),
        )
        assert render(PhotoReady(42, LOCAL_URL, "Here she is"), caps) == (
            TextPart(f"Here she is\nView photo: {LOCAL_URL}"),
        )


def test_photo_is_never_inline_on_whatsapp() -> None:
    """WhatsApp never gets an image part, whatever the URL, caption or kind."""
    for url in (PORTAL_URL, LOCAL_URL, "https://localhost/p.jpg"):
        for caption in ("", "x" * 3000):
            for kind in ("photo", "reference"):
                parts = render(PhotoReady(1, url, caption, kind), WA)
                assert parts and not any(isinstance(p, ImagePart) for p in parts)


def test_photo_is_inline_where_the_channel_shows_images() -> None:
    """A channel with inline images shows the photo itself."""
    assert render(PhotoReady(7, LOCAL_URL, "Here she is"), WEB) == (ImagePart(LOCAL_URL, "Here she is", 7),)


# --- text splitting -----------------------------------------------------------------------------------------------


def test_text_reply_is_split_at_the_platform_limit() -> None:
    """A text reply longer than 4,096 characters is sent as several text parts within the limit."""
    text = " ".join(["Ava smiles."] * 800)
    parts = render(TextReply(text), TG)
    assert len(parts) == 3
    assert all(isinstance(p, TextPart) and len(p.text) <= 4096 for p in parts)
    assert " ".join(_texts(parts)) == text


def test_url_across_the_split_point_stays_whole() -> None:
    """A 5,000-character text with a URL across position 4,096: chunks fit, the URL is whole, no word is cut."""
    rng = random.Random(4096)
    url = "https://ava.example/portal/photos/123?sig=0123456789abcdef0123456789abcdef&exp=1700000000"
    before = " ".join(_words(rng, 2000))[:4060].rstrip()
    text = f"{before} {url} " + " ".join(_words(rng, 400))
    text = text[:5000].rsplit(" ", 1)[0]
    start = text.index(url)
    assert start < 4096 < start + len(url)
    chunks = split_text(text, 4096)
    assert len(chunks) == 2
    assert sum(url in chunk for chunk in chunks) == 1
    assert chunks[1].startswith(url)
    _assert_split(text, chunks, 4096)
    tokens = text.split()
    assert all(any(token in chunk.split() for chunk in chunks) for token in tokens)
    parts = render(TextReply(text), TG)
    assert [p.text for p in parts if isinstance(p, TextPart)] == chunks


def test_paragraph_boundary_is_preferred() -> None:
    """Splitting prefers a paragraph break over a later sentence end or word boundary."""
    first = "First paragraph about the beach. It was sunny"
    second = "Second paragraph. More words follow here and there"
    chunks = split_text(f"{first}\n\n{second}", 80)
    assert chunks == [first, second]


def test_sentence_boundary_is_preferred_over_word() -> None:
    """Without a paragraph break, splitting prefers a sentence end over a later word boundary."""
    text = "We walked along the river for hours. Then it started raining and we ran home laughing"
    assert split_text(text, 60) == ["We walked along the river for hours.", text[37:]]


def test_boundary_too_early_is_not_used() -> None:
    """A paragraph break near the start does not make a tiny chunk when a word boundary fills the chunk."""
    text = "Hi!\n\n" + " ".join(["word"] * 40)
    chunks = split_text(text, 100)
    assert len(chunks[0]) > 50
    _assert_split(text, chunks, 100)


def test_only_an_over_long_url_is_cut() -> None:
    """A URL longer than the limit is cut hard; a URL that fits goes whole into the next chunk."""
    long_url = "https://ava.example/" + "a" * 200
    chunks = split_text(f"see {long_url} now", 50)
    assert all(len(c) <= 50 for c in chunks)
    assert "".join(chunks).replace(" ", "") == f"see{long_url}now"
    short_url = "https://ava.example/" + "b" * 25
    chunks = split_text("x" * 30 + " " + short_url, 50)
    assert chunks == ["x" * 30, short_url]


def test_split_text_edge_cases() -> None:
    """Short text is one chunk, blank text none, and a blank reply renders nothing (never an empty part)."""
    assert split_text("hello", 5) == ["hello"]
    assert split_text("  hello \n", 100) == ["hello"]
    assert split_text("", 10) == []
    assert split_text(" \n\n ", 10) == []
    assert render(TextReply("   "), TG) == ()
    with pytest.raises(ValueError):
        split_text("hello", 0)


def test_split_text_invariants_on_random_texts() -> None:
    """On many random texts: chunks fit and are non-empty, and words come back whole and in order."""
    separators = [" "] * 12 + ["\n", "\n\n", "  ", "\t", " \n \n "]
    for seed in range(300):
        rng = random.Random(seed)
        limit = rng.randint(40, 400)
        tokens: list[str] = []
        for _ in range(rng.randint(0, 300)):
            roll = rng.random()
            if roll < 0.05:
                tokens.append(
                    "https://ava.example/p/" + "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 17)))
                )
            elif roll < 0.15:
                tokens.append(_words(rng, 1)[0] + rng.choice(".!?…"))
            else:
                tokens.append(_words(rng, 1)[0])
            tokens.append(rng.choice(separators))
        text = "".join(tokens)
        chunks = split_text(text, limit)
        _assert_split(text, chunks, limit)
        assert " ".join(chunks).split() == text.split()


def test_split_text_invariants_with_over_long_words() -> None:
    """Random texts with words longer than the limit: only those words are cut, nothing is lost."""
    for seed in range(200):
        rng = random.Random(seed)
        limit = rng.randint(5, 60)
        words = [
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, limit * 3 if rng.random() < 0.1 else limit)))
            for _ in range(rng.randint(1, 80))
        ]
        text = "".join(word + rng.choice([" ", "\n", ". ", "\n\n"]) for word in words)
        chunks = split_text(text, limit)
        _assert_split(text, chunks, limit)


# --- shortening ---------------------------------------------------------------------------------------------------


def test_shorten_cuts_at_a_word_boundary() -> None:
    """Shortening ends at a word boundary with "…", drops trailing punctuation, and never exceeds the limit."""
    assert shorten("Playful", 20) == "Playful"
    assert shorten(KEEP_LABEL, 24) == "Keep: long dark hair…"
    assert shorten(KEEP_LABEL, 20) == "Keep: long dark…"
    assert shorten("Supercalifragilisticexpialidocious", 10) == "Supercali…"
    assert shorten("Hello", 1) == "…"
    assert shorten("Hello", 0) == ""


def test_shorten_never_exceeds_the_limit() -> None:
    """For random labels and limits the result fits and is the label itself when it already fits."""
    rng = random.Random(7)
    for _ in range(2000):
        label = " ".join(_words(rng, rng.randint(1, 8))) + rng.choice(["", ",", ".", " -"])
        limit = rng.randint(1, 40)
        short = shorten(label, limit)
        assert len(short) <= limit
        assert short == label if len(label) <= limit else short.endswith("…")
