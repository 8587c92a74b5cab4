"""Log redaction (`ava_bot.observability.Redactor`): each secret shape is masked, and the quick checks that let most
log lines skip the patterns never skip one that would have matched."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ava_bot.observability import _SHAPES, MASK, Redactor

#: Pieces that make each pattern match, almost match, or match only case-insensitively (the long s U+017F is `s`
#: for the `re` module's IGNORECASE), joined in any order by the property test below.
PIECES = [
    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",
    "$2b$12$" + "a" * 53,
    "postgres://ava:",
    "hunter2pass@",
    "db:5432/ava",
    "Bearer ",
    "BEARER\t",
    "beaRer ",
    "password=",
    "PA\u017f\u017fWORD: ",
    "pass word=",
    '"password": "',
    "123456789:AA",
    "Ab1_" * 9,
    "sk_test_",
    "rk_live_",
    "whsec_",
    "r8_",
    "?t=",
    "&TOKEN=",
    "?code=",
    "/portal/sign-in/",
    "eyJ1IjoxfQ.aBcDeF.",
    "0123456789abcdefghijklmnopq",
    "signature b'",
    "SIGNATURE '",
    '\u017fignature b"',
    "session_id=",
    "CSRF-token: ",
    "\u017fe\u017f\u017fion=",
    "Zx9Qm2Lp7Rt4Vw1Ky8Nb3Hc6Jd5Fg0Sa_Ue-Io2PqWe",
    "someone",
    "@example.com",
    "@",
    ".",
    "'",
    '"',
    " ",
    "=",
    ":",
    "x",
    "turn user=12 message=345 attempt=1 duration_ms=3.2 outcome=done",
]


def every_pattern(text: str) -> str:
    """What redaction was before the quick checks: every pattern run on every line."""
    for pattern, replacement, _needs in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_the_quick_checks_never_skip_a_pattern_that_matches(text: str) -> None:
    assert Redactor()(text) == every_pattern(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_any_text_is_redacted_as_by_every_pattern(text: str) -> None:
    assert Redactor()(text) == every_pattern(text)


def test_caseless_words_are_found_as_the_patterns_find_them() -> None:
    """A key written with the long s U+017F (IGNORECASE takes it for `s`) is masked, as the pattern alone masks it."""
    line = "login PA\u017f\u017fWORD=letmein123 refused"
    assert Redactor()(line) == f"login PA\u017f\u017fWORD={MASK} refused"
    assert "letmein123" not in Redactor()("sent Bearer abcdefgh12345678 to the API")
    assert Redactor()("\u017fe\u017f\u017fion=Zx9Qm2Lp7Rt4Vw1Ky8Nb3Hc6Jd5Fg0Sa_Ue") == f"\u017fe\u017f\u017fion={MASK}"


def test_a_plain_line_is_left_as_it_is_and_configured_secrets_still_go() -> None:
    line = "turn user=12 message=345 attempt=1 duration_ms=3.2 outcome=done"
    assert Redactor()(line) == line
    assert Redactor(["outcome=done"])(line) == re.sub("outcome=done", MASK, line)
