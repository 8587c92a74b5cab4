"""Password rules (length and zxcvbn strength, with the email as a hint) and argon2id hashing."""

from __future__ import annotations

import pytest

from core.models import User
from portal.passwords import Passwords, password_problem
from tests.portal.conftest import Portal, page_token


@pytest.mark.parametrize("password", [" " * 10, "password12", "aaaaaaaaaa", "1234567890", "qwertyuiop", "a" * 100])
async def test_weak_passwords_are_refused_with_advice(password: str) -> None:
    """Guessable passwords of valid length are refused with a sentence saying why and what would do."""
    problem = await password_problem(password, "hana@example.com")
    assert problem is not None and problem.startswith("That password is too easy to guess.")
    assert len(problem) > len("That password is too easy to guess. ")


async def test_the_email_counts_as_a_guess() -> None:
    """A password built from the account's own email is refused (zxcvbn gets the email as user input)."""
    assert await password_problem("hanakoyamada2024", "hanakoyamada@example.com") is not None
    assert await password_problem("hanakoyamada2024", "someone@example.com") is None


@pytest.mark.parametrize("password", ["correct horse battery", "Tr0ub4dor&3x-staple", "glacier minnow tulip"])
async def test_strong_passwords_pass(password: str) -> None:
    """Passphrases and long random strings are accepted."""
    assert await password_problem(password, "hana@example.com") is None


async def test_length_bounds() -> None:
    """Under 10 or over 1024 characters is refused before the strength check; long strong ones pass."""
    assert "at least 10" in str(await password_problem("Xk9!q", ""))
    assert "at most 1024" in str(await password_problem("correct horse " * 100, ""))
    assert await password_problem("correct horse battery " * 20, "") is None


@pytest.mark.parametrize("password", [" " * 10, "password12", "aaaaaaaaaa"])
async def test_sign_up_refuses_a_weak_password(portal: Portal, password: str) -> None:
    """The sign-up form re-renders with the advice and creates nobody."""
    token = await page_token(portal.client, "/signup")
    response = await portal.client.post(
        "/signup", data={"email": "ivy@example.com", "password": password, "csrf_token": token}
    )
    assert response.status == 400
    assert "too easy to guess" in await response.text()
    assert not await User.exists(email="ivy@example.com")


async def test_hashes_verify_and_unknown_accounts_cost_the_same_and_fail() -> None:
    """Hashes are argon2id and verify; a wrong password or no stored hash (unknown email) never verifies."""
    passwords = Passwords(concurrency=1)
    stored = await passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert await passwords.verify(stored, "correct horse battery")
    assert not await passwords.verify(stored, "correct horse battery!")
    assert not await passwords.verify(None, "correct horse battery")
    assert not await passwords.verify("not a hash", "correct horse battery")
    assert not passwords.needs_rehash(stored)


def test_concurrency_must_be_positive() -> None:
    """A bound of zero would block every sign-in for ever: refused at construction."""
    with pytest.raises(ValueError, match="at least 1"):
        Passwords(concurrency=0)
