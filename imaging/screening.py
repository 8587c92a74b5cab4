"""Screening a photo before any image is made: every input on its own, then the composed prompt.

Each avatar field (gender, nationality, appearance, name) is checked ALONE by the rules, the scene alone by
both layers, then the composed prompt by both layers. Checking a field alone matters: the composed prompt
always states "N-year-old adult", which would otherwise disarm the rules about young-looking descriptions.
The fields were checked by both layers when the user gave them; they are checked again here because an
avatar may be older than today's rules. The moderation layer fails closed (`ModerationUnavailable`).
"""

from __future__ import annotations

from core.models import Avatar
from core.safety import Refusal, SafetyChecker

#: Avatar fields that are free text and reach the prompt.
SCREENED_FIELDS = ("gender", "nationality", "appearance", "name")


async def screen_photo(safety: SafetyChecker, avatar: Avatar, scene: str | None, prompt: str) -> Refusal | None:
    """The first refusal among the avatar's fields, the scene and the composed prompt; None when all pass."""
    for field in SCREENED_FIELDS:
        refusal = safety.check_rules(field, str(getattr(avatar, field)))
        if refusal is not None:
            return refusal
    if scene:
        refusal = await safety.check("scene", scene)
        if refusal is not None:
            return refusal
    return await safety.check("prompt", prompt)
