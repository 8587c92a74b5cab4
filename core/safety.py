"""Safety of every text that can reach an image prompt: two layers, checked where the text enters.

Layer one is the rules (`TextSafety` port, implemented by `imaging.safety.check_field`), applied to each
field ALONE — an avatar field, a photo scene — so no clause around it (a composed prompt always says
"N-year-old adult") can disarm them. Layer two is the optional `Moderation` port (a model). Both must allow a
text. The moderation layer fails closed: `ModerationUnavailable` propagates, and the caller retries later
instead of accepting the text unchecked.

Every refusal is recorded in the append-only `SafetyRefusal` audit table (which field, which layer, the
reason code, the text), so an operator can review them (`ava-bot audit blocked`).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.models import SafetyRefusal, user_ref
from core.ports import Moderation, TextSafety

RULES_LAYER = "rules"
#: Longest refused text kept in the audit row.
MAX_AUDITED_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Refusal:
    """A text a safety layer refused: where it came from, who refused and why."""

    field: str
    layer: str
    code: str
    reason: str | None
    text: str


def reason_code(reason: str | None) -> str:
    """The rule part of a rules reason ("minor-term: 'teen'" -> "minor-term")."""
    return (reason or "refused").split(":", 1)[0].strip() or "refused"


class SafetyChecker:
    """Checks one text with the rules, then (when configured) the moderation model."""

    def __init__(self, rules: TextSafety, moderation: Moderation | None = None) -> None:
        self._rules = rules
        self._moderation = moderation

    @property
    def moderation(self) -> Moderation | None:
        """The model layer, if one is configured."""
        return self._moderation

    def check_rules(self, field: str, text: str) -> Refusal | None:
        """The rules alone (synchronous): a refusal, or None when they allow `text`."""
        verdict = self._rules(field, text)
        if verdict.allowed:
            return None
        return Refusal(field, RULES_LAYER, reason_code(verdict.reason), verdict.reason, text)

    async def check(self, field: str, text: str) -> Refusal | None:
        """Both layers: a refusal, or None when both allow `text`. Raises `ModerationUnavailable` (fail closed)."""
        refusal = self.check_rules(field, text)
        if refusal is not None or self._moderation is None:
            return refusal
        verdict = await self._moderation.check(text)
        if verdict.allowed:
            return None
        return Refusal(field, verdict.layer, verdict.reason or "flagged", verdict.reason, text)


async def record_refusal(
    user_id: int, refusal: Refusal, *, channel: str | None = None, photo_id: int | None = None
) -> None:
    """Write the refusal to the audit table (inside the caller's transaction)."""
    await SafetyRefusal.create(
        user_ref=user_ref(user_id),
        channel=channel,
        field=refusal.field,
        layer=refusal.layer,
        code=refusal.code[:64],
        reason=(refusal.reason or "")[:2000] or None,
        text=refusal.text[:MAX_AUDITED_CHARS],
        photo_id=photo_id,
    )
