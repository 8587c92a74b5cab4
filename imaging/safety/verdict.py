"""The verdict type, rule codes and field names of `imaging.safety`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

RULE_AGE = "age-under-20"
RULE_YOUTH_BODY = "youth-body"
RULE_MINOR = "minor-term"
RULE_AGE_PLAY = "age-play"
RULE_SCHOOL = "school-context"
RULE_BORDERLINE = "youth-borderline"

#: Every rule, in the order they are tried: the first that matches names the reason.
RULES = (RULE_AGE, RULE_YOUTH_BODY, RULE_MINOR, RULE_AGE_PLAY, RULE_SCHOOL, RULE_BORDERLINE)

#: The product's hard age floor: any stated age below it blocks.
AGE_FLOOR = 20

#: The avatar setup fields `check_field` knows; "prompt" is a whole image prompt (`check_prompt`).
Field = Literal["gender", "nationality", "appearance", "name", "personality", "scene", "prompt"]
FIELDS: tuple[Field, ...] = get_args(Field)


@dataclass(frozen=True, slots=True)
class SafetyVerdict:
    """Outcome of a check: allowed, or blocked with a short ``"<rule>: <detail>"`` reason."""

    allowed: bool
    reason: str | None = None

    @property
    def code(self) -> str | None:
        """The rule part of the reason (``"minor-term"``), None when allowed."""
        if self.reason is None:
            return None
        return self.reason.split(": ", 1)[0]


ALLOWED = SafetyVerdict(allowed=True, reason=None)


def blocked(rule: str, detail: str) -> SafetyVerdict:
    """A refusal by `rule`, with a short detail (the matched words or the age)."""
    return SafetyVerdict(allowed=False, reason=f"{rule}: {detail}")
