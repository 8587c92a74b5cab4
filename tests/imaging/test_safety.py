"""imaging.safety: check_prompt against the corpus in safety_corpus.yaml, check_field, and the verdict type."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from imaging.safety import (
    FIELDS,
    RULE_AGE,
    RULE_AGE_PLAY,
    RULE_BORDERLINE,
    RULE_MINOR,
    RULE_SCHOOL,
    RULE_YOUTH_BODY,
    RULES,
    SafetyVerdict,
    check_field,
    check_prompt,
)

CORPUS_PATH = Path(__file__).with_name("safety_corpus.yaml")
SAFETY_RULES = {RULE_AGE, RULE_MINOR, RULE_YOUTH_BODY, RULE_AGE_PLAY, RULE_SCHOOL, RULE_BORDERLINE}
#: The clock the corpus is checked against (it holds birth years).
YEAR = 2026


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
    verdict = check_prompt(text, year=YEAR)
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


def test_rules_are_all_named() -> None:
    """The exported rule list is the corpus's rule set, age first and borderline last."""
    assert set(RULES) == SAFETY_RULES
    assert RULES[0] == RULE_AGE
    assert RULES[-1] == RULE_BORDERLINE


def test_code_is_the_rule_part_of_the_reason() -> None:
    """`code` is the rule of a refusal and None when allowed."""
    assert check_prompt("teen").code == RULE_MINOR
    assert check_prompt("ageplay").code == RULE_AGE_PLAY
    assert check_prompt("a red dress").code is None


def test_birth_years_use_the_given_year() -> None:
    """A birth year is an age in the given year: deterministic given the year, the clock by default."""
    assert check_prompt("born in 2009", year=2026).reason == "age-under-20: born 2009 (17 in 2026)"
    assert check_prompt("born in 2009", year=2029).allowed
    assert check_prompt("born in 2009") == check_prompt("born in 2009", year=datetime.now(UTC).year)


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "prompt"])
@pytest.mark.parametrize(
    "text",
    ["very young girl with a baby face", "teen girl", "young girl", "16 years old", "Lolita", "schoolgirl"],
)
def test_fields_are_checked_alone(field: str, text: str) -> None:
    """A field states no adult age of its own, so young-looking wording blocks in every field."""
    assert not check_field(field, text).allowed


def test_composed_prompt_age_disarms_borderline_but_the_field_check_does_not() -> None:
    """Why callers check fields alone: the composed prompt's adult age allows what the field alone refuses."""
    composed = "Photograph of a 27-year-old adult woman. Scene: baby-faced, in her bed."
    assert check_prompt(composed).allowed
    assert check_field("scene", "baby-faced, in her bed").code == RULE_BORDERLINE
    assert check_field("appearance", "youthful 35-year-old").allowed


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("appearance", "25 years old, very young girl with a baby face"),
        ("appearance", "age 25, tiny young girl"),
        ("appearance", "aged 40, baby-faced, flat-chested, girlish"),
        ("scene", "a 25-year-old, baby-faced"),
        ("scene", "youthful 35-year-old in bed"),
        ("prompt", "Photograph of a 27-year-old adult woman. Scene: very young girl with a baby face."),
    ],
)
def test_an_adult_age_does_not_license_child_like_or_stacked_young_wording(field: str, text: str) -> None:
    """Strong terms ("very young", "young girl"), three young-looking terms, or any in a scene block whatever age."""
    assert check_field(field, text).code == RULE_BORDERLINE


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("gender", "woman"),
        ("gender", "trans woman"),
        ("gender", "non-binary femme"),
        ("gender", "girl"),
        ("nationality", "Japanese"),
        ("nationality", "Russian"),
        ("nationality", "Chinese-Brazilian"),
        ("nationality", "Arabic"),
        ("name", "Nina"),
        ("name", "Lola"),
        ("name", "Mia"),
        ("name", "Kiki"),
        ("name", "Nena"),
        ("scene", "at a rooftop bar at night in a red dress"),
        ("personality", "young at heart"),
    ],
)
def test_ordinary_fields_pass(field: str, text: str) -> None:
    """Ordinary setup answers pass; a one-word name is a name, not a description (so "Nena" passes)."""
    assert check_field(field, text) == SafetyVerdict(allowed=True, reason=None)


@pytest.mark.parametrize(
    ("field", "text", "code"),
    [
        ("gender", "teen girl", RULE_MINOR),
        ("gender", "young girl", RULE_BORDERLINE),
        ("name", "Lolita", RULE_MINOR),
        ("name", "Loli", RULE_MINOR),
        ("name", "Teen", RULE_MINOR),
        ("name", "Baby Girl 15", RULE_AGE),
        ("name", "Mia 15", RULE_AGE),
        ("name", "Baby Face", RULE_BORDERLINE),
    ],
)
def test_field_refusals(field: str, text: str, code: str) -> None:
    """Genders and names that name or suggest a minor are refused; any number under 20 in a name is an age."""
    assert check_field(field, text).code == code


def test_prompt_field_is_check_prompt() -> None:
    """check_field("prompt", ...) is check_prompt."""
    for text in ("teen", "a 30 year old woman", "youthful", ""):
        assert check_field("prompt", text) == check_prompt(text)


def test_unknown_field_is_an_error() -> None:
    """A field name outside FIELDS raises ValueError rather than being checked loosely."""
    with pytest.raises(ValueError, match="unknown field"):
        check_field("hobby", "reading")
