"""Avatar setup as a conversation: one question at a time, validated answers, state in the database.

Steps (stored in `User.setup_step`): gender -> age -> nationality -> appearance -> name -> personality ->
reference photo requested -> review (keep / regenerate). `/avatar` runs the same questions again with the
current values offered as defaults and ends with a new reference photo (a new `Avatar` version).

The age floor (20) is enforced here, again by the model validator and again by a database CHECK.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import UnsafeAnswer, ValidationFailed
from core.messages import Choice, ChoicesReply, Reply, TextReply
from core.models import MAX_APPEARANCE_CHARS, MIN_AVATAR_AGE, SetupStep, User
from core.ports import TextSafety

MAX_AGE = 99
PERSONALITIES = ("playful", "dominant", "shy", "caring", "intellectual", "adventurous")
GENDERS = ("woman", "man", "non-binary")
KEEP = "keep"

#: The question steps in order; the value each stores in the draft has the same name.
QUESTION_STEPS = (
    SetupStep.GENDER,
    SetupStep.AGE,
    SetupStep.NATIONALITY,
    SetupStep.APPEARANCE,
    SetupStep.NAME,
    SetupStep.PERSONALITY,
)

QUESTIONS: dict[SetupStep, str] = {
    SetupStep.GENDER: "Let's create me! First: should I be a woman, a man, or something else? Pick one or type it.",
    SetupStep.AGE: f"How old should I be? Send a whole number, {MIN_AVATAR_AGE} or more.",
    SetupStep.NATIONALITY: "What nationality or ethnicity should I have? (e.g. Italian, Korean, Brazilian, mixed)",
    SetupStep.APPEARANCE: (
        "Describe how I look, in your own words: hair, eyes, body type, style, anything you like "
        f"(up to {MAX_APPEARANCE_CHARS} characters)."
    ),
    SetupStep.NAME: "What's my name?",
    SetupStep.PERSONALITY: "Last one: what's my personality?",
}


#: Steps whose answers are free text that can reach an image prompt: each is safety-checked on its own.
FREE_TEXT_STEPS = (SetupStep.GENDER, SetupStep.NATIONALITY, SetupStep.APPEARANCE, SetupStep.NAME)
#: Refused answers to one question before it offers its safe presets only (the flow never loops).
MAX_REFUSALS = 3
CHOICES_ONLY_PROMPT = "Let's keep it simple: pick one of these."

#: Safe answers per question: (label, stored value).
PRESETS: dict[SetupStep, tuple[tuple[str, str], ...]] = {
    SetupStep.GENDER: tuple((g.capitalize(), g) for g in GENDERS),
    SetupStep.AGE: tuple((str(a), str(a)) for a in (22, 25, 28, 32, 38, 45)),
    SetupStep.NATIONALITY: tuple(
        (n, n) for n in ("Italian", "Brazilian", "Japanese", "Korean", "French", "American", "Nigerian", "Mixed")
    ),
    SetupStep.APPEARANCE: (
        ("Long dark hair", "long dark hair, brown eyes, warm smile, elegant style"),
        ("Short blonde hair", "short blonde hair, blue eyes, athletic build, casual style"),
        ("Red curls", "curly red hair, green eyes, freckles, bohemian style"),
        ("Black bob", "black bob haircut, dark eyes, tall, minimalist style"),
    ),
    SetupStep.NAME: tuple((n, n) for n in ("Mia", "Luna", "Sofia", "Alex", "Leo", "Sam")),
    SetupStep.PERSONALITY: tuple((p.capitalize(), p) for p in PERSONALITIES),
}

#: What to change, per field, when a safety layer refused an answer.
REFUSED_ANSWER: dict[SetupStep, str] = {
    SetupStep.GENDER: "Just a word like woman, man or non-binary, please — nothing that suggests a young age.",
    SetupStep.NATIONALITY: "Just a nationality or ethnicity, please (like Italian or Korean) — nothing about age.",
    SetupStep.APPEARANCE: (
        "I'm always a grown adult, and nothing about me may suggest otherwise. Describe my hair, eyes, body and "
        "style without ages under 20 and without anything about kids, teens or school."
    ),
    SetupStep.NAME: "Please pick another name — one that doesn't suggest a child or a teen.",
}


@dataclass(frozen=True, slots=True)
class AvatarSpec:
    """A complete, validated set of avatar answers."""

    gender: str
    age: int
    nationality: str
    appearance: str
    name: str
    personality: str

    @classmethod
    def from_user(cls, user: User, safety: TextSafety) -> AvatarSpec:
        """Validate every stored draft answer again, shape and safety rules (defence in depth: the draft columns
        are plain storage, and an edit's defaults come from an older avatar)."""
        missing = [step.value for step in QUESTION_STEPS if draft_value(user, step) is None]
        if missing:
            raise ValidationFailed(f"setup answers missing: {', '.join(missing)}")
        spec = cls(
            gender=parse_gender(str(user.draft_gender)),
            age=parse_age(str(user.draft_age)),
            nationality=parse_nationality(str(user.draft_nationality)),
            appearance=parse_appearance(str(user.draft_appearance)),
            name=parse_name(str(user.draft_name)),
            personality=parse_personality(str(user.draft_personality)),
        )
        for step in FREE_TEXT_STEPS:
            verdict = safety(step.value, str(getattr(spec, step.value)))
            if not verdict.allowed:
                raise UnsafeAnswer(step, verdict.reason)
        return spec


def draft_value(user: User, step: SetupStep) -> str | int | None:
    """The stored draft answer of a question step (the `draft_<step>` column)."""
    value: str | int | None = getattr(user, f"draft_{step.value}")
    return value


def set_draft_value(user: User, step: SetupStep, value: str | int | None) -> None:
    """Store a draft answer of a question step."""
    setattr(user, f"draft_{step.value}", value)


def clear_draft(user: User) -> None:
    """Forget the draft answers and the avatar / reference being set up."""
    for step in QUESTION_STEPS:
        set_draft_value(user, step, None)
    user.setup_avatar_id = None
    user.setup_photo_id = None


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def parse_gender(text: str) -> str:
    """A short gender description (buttons or free text)."""
    value = _clean(text).lower()
    if not 2 <= len(value) <= 30 or any(ch.isdigit() for ch in value) or len(value.split()) > 3:
        raise ValidationFailed("Just a word or two, please: woman, man, non-binary, or your own word.")
    return value


def parse_age(text: str) -> int:
    """A whole number of years, at least 20 (hard floor)."""
    value = _clean(text).lower().removesuffix("years old").removesuffix("years").strip()
    if not re.fullmatch(r"\d{1,3}", value):
        raise ValidationFailed(f"Please send my age as a whole number, like 25 ({MIN_AVATAR_AGE} or more).")
    age = int(value)
    if age < MIN_AVATAR_AGE:
        raise ValidationFailed(
            f"I have to be at least {MIN_AVATAR_AGE}: that's a firm rule. Pick {MIN_AVATAR_AGE} or more."
        )
    if age > MAX_AGE:
        raise ValidationFailed(f"Let's keep it between {MIN_AVATAR_AGE} and {MAX_AGE}.")
    return age


def parse_nationality(text: str) -> str:
    """Free text, 2-128 characters."""
    value = _clean(text)
    if not 2 <= len(value) <= 128:
        raise ValidationFailed("Tell me a nationality or ethnicity in a few words (e.g. Italian, Japanese-Brazilian).")
    return value


def parse_appearance(text: str) -> str:
    """Free text of 3 to 2000 characters (its safety is checked by the caller, on its own)."""
    value = text.strip()
    if len(value) < 3:
        raise ValidationFailed("Describe me in a few words at least: hair, eyes, style…")
    if len(value) > MAX_APPEARANCE_CHARS:
        raise ValidationFailed(
            f"That's {len(value)} characters; please keep it under {MAX_APPEARANCE_CHARS}. Try a shorter description."
        )
    return value


def parse_name(text: str) -> str:
    """1-64 characters of name."""
    value = _clean(text)
    if not 1 <= len(value) <= 64 or value.startswith("/"):
        raise ValidationFailed("What should I be called? Send a name of up to 64 characters.")
    return value


def parse_personality(text: str) -> str:
    """One of the six personalities."""
    value = _clean(text).lower()
    if value not in PERSONALITIES:
        raise ValidationFailed("Pick one of these personalities: " + ", ".join(PERSONALITIES) + ".")
    return value


def parse_answer(step: SetupStep, text: str) -> str | int:
    """Validate the shape of the answer to `step`; raise `ValidationFailed` with a helpful re-ask text.

    Safety is not judged here: the engine checks every free-text answer on its own with both safety layers.
    """
    match step:
        case SetupStep.GENDER:
            return parse_gender(text)
        case SetupStep.AGE:
            return parse_age(text)
        case SetupStep.NATIONALITY:
            return parse_nationality(text)
        case SetupStep.APPEARANCE:
            return parse_appearance(text)
        case SetupStep.NAME:
            return parse_name(text)
        case SetupStep.PERSONALITY:
            return parse_personality(text)
    raise ValueError(f"{step} is not a question step")


def next_step(step: SetupStep) -> SetupStep:
    """The step after a question step (after personality: the reference photo)."""
    index = QUESTION_STEPS.index(step)
    return QUESTION_STEPS[index + 1] if index + 1 < len(QUESTION_STEPS) else SetupStep.REFERENCE_PENDING


def preset_choices(step: SetupStep) -> tuple[Choice, ...]:
    """The safe answers offered for `step` (for free-text steps: offered alone after repeated refusals)."""
    return tuple(Choice(label, value) for label, value in PRESETS[step])


def preset_value(step: SetupStep, text: str) -> str | None:
    """The preset `text` names (its value or, case-insensitively, its label), if any."""
    wanted = _clean(text).casefold()
    for label, value in PRESETS[step]:
        if wanted in (value.casefold(), label.casefold()):
            return value
    return None


def question(step: SetupStep, *, current: Any = None, choices_only: bool = False) -> Reply:
    """The question for `step`, with choices where natural and the current value as a default when editing.

    `choices_only` (after repeated refusals): the safe presets alone, so the flow can always move on.
    """
    text = QUESTIONS[step]
    options: list[Choice] = []
    if current is not None and not choices_only:
        shown = str(current) if len(str(current)) <= 40 else str(current)[:37] + "…"
        options.append(Choice(f"Keep: {shown}", KEEP))
    if choices_only:
        text = CHOICES_ONLY_PROMPT
        options += preset_choices(step)
    elif step in (SetupStep.GENDER, SetupStep.PERSONALITY):
        options += preset_choices(step)
    if options:
        return ChoicesReply(text, tuple(options))
    return TextReply(text)
