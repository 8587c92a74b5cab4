"""SECRET_KEY handling: a generated development key kept in a file, and the strength rules production applies.

Development without SECRET_KEY must not sign with a key everyone knows (anyone could forge links for any
user), so the first start generates a random key (`secrets.token_urlsafe(48)`) into a file readable only by
its owner (mode 0600, under the data folder) and every later start reuses it: sessions and links survive
restarts. Production never uses the file: a missing or weak SECRET_KEY stops start-up (`Settings.check`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from core.errors import ConfigError

#: Shorter keys are refused in every environment.
MIN_SECRET_CHARS = 32
#: Fewer different characters than this means a pattern ("x" * 48), not a random key.
MIN_DISTINCT_CHARS = 10
#: Fragments of the placeholders people leave in configuration files.
PLACEHOLDER_FRAGMENTS = (
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "change-this",
    "placeholder",
    "example",
    "secret-key",
    "secret_key",
    "secretkey",
    "your-",
    "your_",
    "insecure",
    "replace",
    "default",
    "password",
    "development",
)


def secret_key_problem(value: str) -> str | None:
    """Why `value` is not acceptable as a production SECRET_KEY, or None when it is."""
    if len(value) < MIN_SECRET_CHARS:
        return f"SECRET_KEY must be at least {MIN_SECRET_CHARS} characters long."
    lowered = value.lower()
    if any(fragment in lowered for fragment in PLACEHOLDER_FRAGMENTS):
        return "SECRET_KEY looks like a placeholder; generate a random one."
    if len(set(value)) < MIN_DISTINCT_CHARS:
        return "SECRET_KEY is too repetitive to be random; generate a random one."
    return None


def load_or_create_secret(path: Path) -> str:
    """The development secret stored at `path`, created (random, mode 0600) when the file does not exist yet.

    Creation is atomic (a temporary file hard-linked into place), so two processes starting together end up
    with the same key and neither ever reads a half-written file.
    """
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigError(f"{path} does not hold a usable development secret: delete it to generate a new one.")
    return value
