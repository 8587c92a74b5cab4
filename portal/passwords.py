"""Passwords: strength rules for new ones, and argon2id hashing bounded per process.

Strength: 10 to 1024 characters, and zxcvbn must rate it at least "safely unguessable" (score 3 of 4), with
the email (and its local part) as words an attacker would try first. zxcvbn reads at most 72 characters:
longer passwords are rated on their first 72.

Hashing: each argon2id hash takes ~64 MB and ~0.1 s of a core, in a thread. Without a bound, 48 parallel
sign-ins would run 48 hashes at once, slowing every sign-in and multiplying the process's memory; an
`asyncio.Semaphore` lets `concurrency` hashes run and the others wait their turn. The dummy hash spent on
unknown emails (so timing does not reveal which emails have accounts) goes through the same bound.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

MIN_PASSWORD_CHARS = 10
#: Bounds the hashing work one request can cause.
MAX_PASSWORD_CHARS = 1024
#: zxcvbn's score of 0..4; 3 is "safely unguessable: moderate protection from offline slow-hash scenario".
MIN_STRENGTH = 3
_ZXCVBN_MAX_CHARS = 72


async def password_problem(password: str, email: str = "") -> str | None:
    """Why `password` may not be chosen (a sentence for the form), or None when it is strong enough."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"Choose a password of at least {MIN_PASSWORD_CHARS} characters."
    if len(password) > MAX_PASSWORD_CHARS:
        return f"Choose a password of at most {MAX_PASSWORD_CHARS} characters."
    user_inputs = [email, email.partition("@")[0]] if email else []
    # zxcvbn is pure Python (~20 ms for a long password): keep it off the event loop.
    result = await asyncio.to_thread(zxcvbn, password[:_ZXCVBN_MAX_CHARS], user_inputs=user_inputs)
    if result["score"] >= MIN_STRENGTH:
        return None
    feedback = result.get("feedback") or {}
    hints = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
    advice = " ".join(h.strip() for h in hints if isinstance(h, str) and h.strip())
    return "That password is too easy to guess. " + (advice or "Use a few uncommon words or a longer phrase.")


class Passwords:
    """argon2id hashing and verification, at most `concurrency` at a time in this process."""

    def __init__(self, *, concurrency: int = 2, hasher: PasswordHasher | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(concurrency)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        """An argon2id hash of `password`."""
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether `password` matches `stored_hash`; without a hash, spend the same work and answer False."""
        if stored_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("not-a-real-password")
            await self._verify(self._dummy, password)
            return False
        return await self._verify(stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether `stored_hash` was made with weaker parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False

    async def _verify(self, stored_hash: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self._check, stored_hash, password)

    def _check(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False
