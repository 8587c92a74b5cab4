"""imaging.safety.check_prompt against the corpus in safety_corpus.yaml, plus the verdict type."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from imaging.safety import (
    RULE_AGE,
    RULE_BORDERLINE,
    RULE_MINOR,
    RULE_SCHOOL,
    RULE_YOUTH_BODY,
    SafetyVerdict,
    check_prompt,
)

CORPUS_PATH = Path(__file__).with_name("safety_corpus.yaml")
SAFETY_RULES = {RULE_AGE, RULE_MINOR, RULE_YOUTH_BODY, RULE_SCHOOL, RULE_BORDERLINE}


def _load_groups() -> list[dict[str, Any]]:
    with CORPUS_PATH.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    groups: list[dict[str, Any]] = data["groups"]
    return groups


GROUPS = _load_groups()
CASES = [(case, group["expect"], group["rule"]) for group in GROUPS for case in group["cases"]]
BLOCKED = [(text, rule) for text, expect, rule in CASES if expect == "blocked"]
ALLOWED = [text for text, expect, _ in CASES if expect == "allowed"]


def test_corpus_shape() -> None:
    """The corpus holds at least 200 phrasings, roughly half blocked, every group stating its rule."""
    assert len(CASES) >= 200
    assert 0.4 <= len(BLOCKED) / len(CASES) <= 0.6
    for group in GROUPS:
        assert group["expect"] in {"blocked", "allowed"}
        assert group["description"].strip()
        assert group["cases"]
        if group["expect"] == "blocked":
            assert group["rule"] in SAFETY_RULES
    assert {rule for _, rule in BLOCKED} == SAFETY_RULES


@pytest.mark.parametrize(("text", "expect", "rule"), CASES, ids=[case for case, _, _ in CASES])
def test_corpus_verdict(text: str, expect: str, rule: str) -> None:
    """Each corpus phrasing gets the expected verdict; blocked ones name the group's rule first."""
    verdict = check_prompt(text)
    if expect == "blocked":
        assert not verdict.allowed, text
        assert verdict.reason is not None
        assert verdict.reason.startswith(f"{rule}: "), verdict.reason
    else:
        assert verdict.allowed, verdict.reason
        assert verdict.reason is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("teen", "minor-term: 'teen'"),
        ("17 years old", "age-under-20: 17"),
        ("seventeen", None),
        ("quince años", "age-under-20: 15"),
        ("t e e n", "minor-term: 'teen'"),
        ("youthful", "youth-borderline: 'youthful' (no adult age >= 20 stated)"),
    ],
)
def test_reason_text(text: str, reason: str | None) -> None:
    """Reasons are short "<rule>: <detail>" strings naming the matched term or the age, None when allowed."""
    assert check_prompt(text).reason == reason


def test_lowest_age_is_reported() -> None:
    """When several ages are stated and one is under 20, the reason gives the lowest."""
    assert check_prompt("a 25 year old and a 16 year old").reason == "age-under-20: 16"


def test_empty_and_blank_text_allowed() -> None:
    """Empty or blank text (or text of only invisible characters) is allowed."""
    for text in ("", "   ", "\u200b\u200d"):
        assert check_prompt(text) == SafetyVerdict(allowed=True, reason=None)


def test_verdict_is_frozen_and_slotted() -> None:
    """SafetyVerdict is an immutable slotted dataclass."""
    verdict = check_prompt("teen")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.allowed = True  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        verdict.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(verdict, "__dict__")
    assert dataclasses.is_dataclass(verdict)


def test_deterministic() -> None:
    """The same text always gets the same verdict."""
    text = "petite and flat-chested, 24 years old, t33n"
    assert {check_prompt(text) for _ in range(5)} == {check_prompt(text)}


def test_long_prompt_is_checked_whole() -> None:
    """A blocked term at the end of a long, otherwise adult prompt still blocks."""
    text = "a 30 year old woman with freckles, soft light, 35mm, " * 40 + "school uniform"
    verdict = check_prompt(text)
    assert not verdict.allowed
    assert verdict.reason == "school-context: 'school uniform'"
