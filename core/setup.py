"""Avatar setup as a conversation: the questions, their choices and the summary, validated answers, drafts.

Steps (stored in `User.setup_step`): gender -> age -> nationality -> appearance -> name -> personality ->
summary (every answer, "looks good" or "change X") -> reference photo requested -> review (keep / regenerate).
Every question says where it is ("Step 3 of 6") and, after the first, offers "← Back"; a question answered
before offers its answer as the default ("Keep: …"). `/avatar` starts at the summary with the current values.
The flow itself (what happens on an answer) is `core.setup_flow`; reading typed answers is `core.answers`.

The age floor (20) is enforced here, again by the model validator and again by a database CHECK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.answers import (
    GENDERS,
    PERSONALITIES,
    clean,
    parse_age,
    parse_appearance,
    parse_gender,
    parse_name,
    parse_nationality,
    parse_personality,
)
from core.errors import UnsafeAnswer, ValidationFailed
from core.messages import Choice, ChoicesReply, Reply, TextReply
from core.models import MAX_APPEARANCE_CHARS, MIN_AVATAR_AGE, SetupStep, User
from core.outcome import Outcome
from core.ports import TextSafety

KEEP = "keep"
BACK = "back"
CONFIRM = "setup:confirm"
CHANGE_PREFIX = "change:"
BACK_LABEL = "← Back"
CONFIRM_LABEL = "Looks good — take my photo"

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
    SetupStep.AGE: f'How old should I be? {MIN_AVATAR_AGE} or more, as a number or in words ("twenty-five").',
    SetupStep.NATIONALITY: "What nationality or ethnicity should I have? (e.g. Italian, Korean, Brazilian, mixed)",
    SetupStep.APPEARANCE: (
        "Describe how I look, in your own words: hair, eyes, body type, style, anything you like "
        f"(up to {MAX_APPEARANCE_CHARS} characters)."
    ),
    SetupStep.NAME: "What's my name?",
    SetupStep.PERSONALITY: 'Last one: what\'s my personality? Pick one or say it your way, like "funny and sweet".',
}

#: The question again, short, after an answer that could not be used (same bubble as the explanation).
SHORT_QUESTIONS: dict[SetupStep, str] = {
    SetupStep.GENDER: "Should I be a woman, a man, or something else?",
    SetupStep.AGE: "How old should I be?",
    SetupStep.NATIONALITY: "What nationality or ethnicity should I have?",
    SetupStep.APPEARANCE: "How should I look?",
    SetupStep.NAME: "What's my name?",
    SetupStep.PERSONALITY: "What's my personality?",
}

#: How each answer is named in the summary and its "Change …" choice.
FIELD_LABELS: dict[SetupStep, str] = {
    SetupStep.GENDER: "gender",
    SetupStep.AGE: "age",
    SetupStep.NATIONALITY: "nationality",
    SetupStep.APPEARANCE: "looks",
    SetupStep.NAME: "name",
    SetupStep.PERSONALITY: "personality",
}

#: Steps whose answers are free text that can reach an image or persona prompt: each is safety-checked alone.
FREE_TEXT_STEPS = (
    SetupStep.GENDER,
    SetupStep.NATIONALITY,
    SetupStep.APPEARANCE,
    SetupStep.NAME,
    SetupStep.PERSONALITY,
)
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
    SetupStep.PERSONALITY: "I'm a grown adult: describe my personality without anything about kids, teens or age.",
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


def draft_complete(user: User) -> bool:
    """Whether every question has an answer (the summary was reached, or an edit started from one)."""
    return all(draft_value(user, step) is not None for step in QUESTION_STEPS)


def first_unusable(user: User) -> tuple[SetupStep, str] | None:
    """The first question whose stored answer is missing or no longer valid, with why; None when all are usable."""
    for step in QUESTION_STEPS:
        value = draft_value(user, step)
        if value is None:
            return step, "I still need this answer."
        try:
            parse_answer(step, str(value))
        except ValidationFailed as problem:
            return step, problem.public_message
    return None


def parse_answer(step: SetupStep, text: str) -> str | int:
    """Validate the shape of the answer to `step`; raise `ValidationFailed` explaining what was wrong.

    Safety is not judged here: the flow checks every free-text answer on its own with both safety layers.
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


def step_number(step: SetupStep) -> int:
    """The 1-based position of a question step."""
    return QUESTION_STEPS.index(step) + 1


def step_label(step: SetupStep) -> str:
    """Where a question is in the setup: "Step 3 of 6"."""
    return f"Step {step_number(step)} of {len(QUESTION_STEPS)}"


def preset_choices(step: SetupStep) -> tuple[Choice, ...]:
    """The safe answers offered for `step` (for free-text steps: offered alone after repeated refusals)."""
    return tuple(Choice(label, value) for label, value in PRESETS[step])


def preset_value(step: SetupStep, text: str) -> str | None:
    """The preset `text` names (its value or, case-insensitively, its label), if any."""
    wanted = clean(text).casefold()
    for label, value in PRESETS[step]:
        if wanted in (value.casefold(), label.casefold()):
            return value
    return None


def shown(value: object, limit: int = 40) -> str:
    """A stored answer short enough for a button label."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "…"


def question(
    step: SetupStep,
    *,
    current: Any = None,
    choices_only: bool = False,
    back: bool = False,
    problem: str | None = None,
) -> Reply:
    """The question for `step` in one bubble: its step number, then the question, with choices where natural.

    `current`: the answer given before, offered as the default ("Keep: …"). `back`: offer "← Back".
    `problem`: why the last answer could not be used; the bubble explains it and asks again, shortly.
    `choices_only` (after repeated refusals): the safe presets alone, so the flow can always move on.
    """
    if choices_only:
        body = CHOICES_ONLY_PROMPT if problem is None else f"{problem} {CHOICES_ONLY_PROMPT}"
    else:
        body = QUESTIONS[step] if problem is None else f"{problem} {SHORT_QUESTIONS[step]}"
    options: list[Choice] = []
    if current is not None and not choices_only:
        options.append(Choice(f"Keep: {shown(current)}", KEEP))
    if choices_only or step in (SetupStep.GENDER, SetupStep.PERSONALITY):
        options += preset_choices(step)
    if back:
        options.append(Choice(BACK_LABEL, BACK))
    text = f"{step_label(step)} · {body}"
    return ChoicesReply(text, tuple(options)) if options else TextReply(text)


def summary(user: User, *, intro: str | None = None) -> ChoicesReply:
    """Every answer so far, with "Looks good — take my photo" and one "Change …" choice per answer."""
    lines = [f"• {FIELD_LABELS[step].capitalize()}: {draft_value(user, step)}" for step in QUESTION_STEPS]
    head = intro or "Here's me, as you made me:"
    text = f"{head}\n" + "\n".join(lines) + "\n\nShall I take my photo, or would you like to change something?"
    options = [Choice(CONFIRM_LABEL, CONFIRM)]
    options += [Choice(f"Change {FIELD_LABELS[step]}", CHANGE_PREFIX + step.value) for step in QUESTION_STEPS]
    return ChoicesReply(text, tuple(options))


def ask(user: User, step: SetupStep, *, problem: str | None = None) -> Reply:
    """The question for `step` as `user` stands: its earlier answer as the default, "← Back" after the first
    question (or when it was reached from the summary), its safe presets alone after too many refusals."""
    return question(
        step,
        current=draft_value(user, step),
        choices_only=user.setup_refusals >= MAX_REFUSALS,
        back=QUESTION_STEPS.index(step) > 0 or draft_complete(user),
        problem=problem,
    )


def refused(user: User, step: SetupStep, why: str) -> Outcome:
    """An answer was refused: one bubble saying what to change and asking again (presets only after too many)."""
    user.setup_refusals += 1
    return Outcome([ask(user, step, problem=why)])


def restart(user: User) -> Reply:
    """Start the questions from the first one (defensive: state that cannot go on)."""
    user.setup_step = SetupStep.GENDER
    return ask(user, SetupStep.GENDER)
