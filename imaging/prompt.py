"""`build_prompt`: the image prompt for an avatar's reference portrait or for a photo of her in a scene.

Deterministic (same input, same prompt) and always explicit that the subject is an adult of a stated
age ("a 27-year-old adult woman"); an age under `MIN_AVATAR_AGE` raises even though the flow, the
model and the database already refuse it (defence in depth). The avatar's name is left out on purpose:
image models tend to render names as text in the picture, and the name adds nothing to the face.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from core.models import MIN_AVATAR_AGE

#: Longest prompt produced; appearance and scene are trimmed to fit, the age statement never is.
MAX_PROMPT_CHARS = 1500
# Caps on the short fields so the untrimmable part of the prompt always fits.
_SHORT_FIELD_CHARS = 80

PromptKind = Literal["reference", "photo"]

_WOMAN = frozenset({"woman", "female", "f", "w", "girl", "lady"})
_MAN = frozenset({"man", "male", "m", "boy", "guy"})

# Which free-text field gives way first when the prompt is too long, and down to how many characters.
_TRIM_STEPS: tuple[tuple[Literal["appearance", "scene"], int], ...] = (
    ("appearance", 400),
    ("scene", 400),
    ("appearance", 0),
    ("scene", 0),
)


@dataclass(frozen=True, slots=True)
class AvatarTraits:
    """The avatar fields a prompt needs; the caller maps its database row onto this."""

    name: str
    gender: str
    age: int
    nationality: str
    appearance: str
    personality: str


def build_prompt(avatar: AvatarTraits, scene: str | None, *, kind: PromptKind) -> str:
    """The image prompt: a neutral reference portrait, or the same person (reference image) in `scene`."""
    if avatar.age < MIN_AVATAR_AGE:
        raise ValueError(f"avatar age must be at least {MIN_AVATAR_AGE}, got {avatar.age}")
    if kind not in ("reference", "photo"):
        raise ValueError(f"unknown prompt kind {kind!r}")
    scene_text = _clean(scene or "")
    if kind == "reference" and scene_text:
        raise ValueError("a reference portrait is neutral and takes no scene")
    noun, possessive = _person(avatar.gender)
    parts = _Parts(
        kind=kind,
        subject=f"a {avatar.age}-year-old adult {noun}",
        noun=noun,
        possessive=possessive,
        nationality=_clean(avatar.nationality)[:_SHORT_FIELD_CHARS],
        personality=_clean(avatar.personality)[:_SHORT_FIELD_CHARS],
        appearance=_clean(avatar.appearance),
        scene=scene_text or "a natural, candid everyday moment",
    )
    prompt = parts.render()
    for field_name, floor in _TRIM_STEPS:
        excess = len(prompt) - MAX_PROMPT_CHARS
        if excess <= 0:
            break
        current = getattr(parts, field_name)
        trimmed = _truncate(current, max(floor, len(current) - excess))
        parts = replace(parts, appearance=trimmed) if field_name == "appearance" else replace(parts, scene=trimmed)
        prompt = parts.render()
    return prompt


@dataclass(frozen=True, slots=True)
class _Parts:
    kind: PromptKind
    subject: str
    noun: str
    possessive: str
    nationality: str
    personality: str
    appearance: str
    scene: str

    def render(self) -> str:
        nationality = f" Nationality: {self.nationality}." if self.nationality else ""
        appearance = f" Appearance: {self.appearance}." if self.appearance else ""
        if self.kind == "reference":
            text = (
                f"Photorealistic head-and-shoulders portrait photograph of {self.subject}.{nationality}{appearance}"
                " Neutral, relaxed expression, looking at the camera, soft even studio lighting,"
                " plain light grey background, sharp focus, natural skin texture. No text, no watermark."
            )
        else:
            personality = (
                f" {self.possessive.capitalize()} expression and pose suit a {self.personality} personality."
                if self.personality
                else ""
            )
            scene = f" Scene: {self.scene}." if self.scene else ""
            text = (
                f"Photorealistic photograph of the same {self.noun} as in the reference image, {self.subject};"
                f" keep {self.possessive} face and features identical.{nationality}{scene}{appearance}{personality}"
                " Natural lighting, realistic detail. No text, no watermark."
            )
        return _clean(text)


def _person(gender: str) -> tuple[str, str]:
    """The noun and possessive for a gender given as free text ("female" -> "woman", "her")."""
    value = _clean(gender).lower()[:_SHORT_FIELD_CHARS]
    if value in _WOMAN:
        return "woman", "her"
    if value in _MAN:
        return "man", "his"
    return (f"{value} person" if value else "person"), "their"


def _clean(text: str) -> str:
    return " ".join(text.split())


def _truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters at a word boundary, without trailing punctuation."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[:limit]
    if " " in cut and not text[limit].isspace():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:.")
