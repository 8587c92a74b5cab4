# ruff: noqa: RUF001  (deliberately holds other scripts, homoglyphs and full-width forms)
"""Red-team suite for imaging.safety: must-block and must-allow cases kept as data in redteam_*.yaml."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from imaging.safety import FIELDS, check_field

HERE = Path(__file__).parent
#: Share of must-allow cases that must pass (the aim is all of them; over-blocking drives users away).
MIN_ALLOWED_SHARE = 0.95
LANGUAGES = {"en", "es", "fr", "de", "it", "pt", "ru", "ja", "zh", "ar"}


def _load(name: str) -> tuple[int, list[tuple[str, str, str, str]]]:
    """The file's year and its cases as (field, text, lang, trick)."""
    with (HERE / name).open(encoding="utf-8") as fh:
        data: dict[str, Any] = yaml.safe_load(fh)
    cases = [
        (group["field"], text, group["lang"], group["trick"]) for group in data["groups"] for text in group["cases"]
    ]
    return int(data["year"]), cases


BLOCK_YEAR, MUST_BLOCK = _load("redteam_block.yaml")
ALLOW_YEAR, MUST_ALLOW = _load("redteam_allow.yaml")


def test_suite_shape() -> None:
    """At least 200 must-block cases covering the ten languages, at least 100 must-allow, valid fields."""
    assert len(MUST_BLOCK) >= 200
    assert len(MUST_ALLOW) >= 100
    assert {lang for _, _, lang, _ in MUST_BLOCK} >= LANGUAGES
    assert {field for field, *_ in MUST_BLOCK + MUST_ALLOW} <= set(FIELDS)
    texts = [(field, text) for field, text, _, _ in MUST_BLOCK + MUST_ALLOW]
    assert len(texts) == len(set(texts)), "duplicate cases"


@pytest.mark.parametrize(
    ("field", "text", "lang", "trick"), MUST_BLOCK, ids=[f"{c[2]}:{c[0]}:{c[1]}" for c in MUST_BLOCK]
)
def test_must_block(field: str, text: str, lang: str, trick: str) -> None:
    """Every must-block case is refused, with a reason."""
    verdict = check_field(field, text, year=BLOCK_YEAR)
    assert not verdict.allowed, f"{lang}/{trick}: {text!r} ({field}) was allowed"
    assert verdict.reason and verdict.code and verdict.reason.startswith(f"{verdict.code}: ")


def test_must_allow_share(capsys: pytest.CaptureFixture[str]) -> None:
    """At least 95% of must-allow adult cases pass (prints both figures and every over-block)."""
    refused = [(field, text, check_field(field, text, year=ALLOW_YEAR)) for field, text, _, _ in MUST_ALLOW]
    refused = [(field, text, verdict) for field, text, verdict in refused if not verdict.allowed]
    blocked = sum(not check_field(field, text, year=BLOCK_YEAR).allowed for field, text, _, _ in MUST_BLOCK)
    allowed = len(MUST_ALLOW) - len(refused)
    with capsys.disabled():
        print(
            f"\nred team: must-block refused {blocked}/{len(MUST_BLOCK)};"
            f" must-allow allowed {allowed}/{len(MUST_ALLOW)} ({allowed / len(MUST_ALLOW):.1%})"
        )
        for field, text, verdict in refused:
            print(f"  over-block ({field}): {text!r} -> {verdict.reason}")
    assert allowed / len(MUST_ALLOW) >= MIN_ALLOWED_SHARE, refused


PROMPT_2000 = {
    "english": "a 30 year old woman with freckles, soft light, 35mm, wearing a red dress at a rooftop bar at night, ",
    "spanish": "una mujer de 30 años con pecas, luz suave, con un vestido rojo en un bar en la azotea de noche, ",
    "russian": "Женщина 30 лет с веснушками, мягкий свет, в красном платье на крыше бара ночью, улыбается. ",
    "chinese": "一位三十岁的女人，有雀斑，柔和的光线，穿着红色连衣裙，夜晚在屋顶酒吧。",
    "arabic": "امرأة عمرها 30 سنة مع نمش، ضوء ناعم، ترتدي فستانا أحمر في بار على السطح ليلا. ",
    "mixed": "a 30 year old woman, 35mm, дама в кафе, 東京の夜, امرأة في مقهى, Ｗｏｍａｎ 👠, It is late. ",
}
#: Generous bound for a busy CI machine; the target (and the figure measured on a quiet one) is under 5 ms.
MAX_CHECK_MS = 15


def test_check_speed(capsys: pytest.CaptureFixture[str]) -> None:
    """A 2,000-character prompt in any script is checked in a few milliseconds (best of several rounds)."""
    for name, phrase in PROMPT_2000.items():
        text = (phrase * (2000 // len(phrase) + 1))[:2000]
        check_field("prompt", text, year=2026)  # fills the lazy character tables
        best = min(_cpu_ms(text) for _ in range(5))
        with capsys.disabled():
            print(f"\ncheck of 2,000 chars ({name}): {best:.2f} ms")
        assert best < MAX_CHECK_MS, name


def _cpu_ms(text: str, rounds: int = 10) -> float:
    """Average CPU time of one check of `text`, in milliseconds (CPU time: other processes do not count)."""
    start = time.process_time()
    for _ in range(rounds):
        assert check_field("prompt", text, year=2026).allowed
    return (time.process_time() - start) / rounds * 1000
