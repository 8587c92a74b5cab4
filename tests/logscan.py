"""A pytest plugin that fails any test during which a log record carrying a secret was emitted, at any level.

For the whole session the root logger runs at DEBUG with a collecting handler, and the product's own per-logger
levels (`ava_bot.observability.apply_log_levels`, what `setup_logging` applies in production) hold, so the run
logs what a deployment at LOG_LEVEL=DEBUG would log. Every record is kept (message and formatted exception) and
scanned when its test phase ends, against:

* the secret values of every `Settings` the tests build (`remember_settings`, called by `make_settings`), the
  development SECRET_KEY those settings generate, the fixed secrets of `tests/fakes`, and any value a test
  hands to `register_secret` (e.g. a password it signs up with);
* shapes that are secret whatever their value (`PATTERNS`): password hashes, passwords in DSNs, bearer tokens,
  Telegram bot tokens, Stripe and Replicate keys, itsdangerous-signed tokens (magic and photo links), session
  and CSRF ids (`secrets.token_urlsafe(32)`), e-mail addresses.

A hit turns the phase's report into a failure naming the test, the logger and the record with the secret
masked; a hit outside any test fails the session. Records are scanned in one pass per phase (one joined
string per compiled pattern), which keeps the cost to a few percent of the suite.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ava_bot.observability import apply_log_levels, secret_values
from ava_bot.settings import Settings
from tests.fakes import stripe as fake_stripe
from tests.fakes import telegram as fake_telegram

#: Secret values shorter than this are not looked for (too likely to occur by chance).
MIN_SECRET_CHARS = 6


def _token_urlsafe_32(match: re.Match[str]) -> bool:
    # A random 43-character token has digits and both cases; identifiers and test names have not.
    value = match.group(0)
    return any(c.isdigit() for c in value) and any(c.isupper() for c in value) and any(c.islower() for c in value)


def _always(match: re.Match[str]) -> bool:
    return True


#: (kind, pattern, confirm): shapes that are secret whatever their value.
PATTERNS: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], bool]]] = [
    ("password hash", re.compile(r"\$argon2(?:id|i|d)\$[^\s'\"]*|\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}"), _always),
    ("DSN password", re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]*:(?!\*\*\*@)[^\s/@]+@"), _always),
    ("bearer token", re.compile(r"(?i)\bbearer\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}"), _always),
    ("password field", re.compile(r"(?i)\bpassword[\"']?\s*[:=]\s*[\"']?(?![*\"'&\s]|None\b)[^\s&\"',]{3,}"), _always),
    # `<bot id>:AA<33 more>`; a job id like `drain:<user id>:<hex>` is not one.
    ("Telegram bot token", re.compile(r"\b\d{6,12}:AA[A-Za-z0-9_-]{31,}"), _always),
    ("Stripe key", re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{8,}|\bwhsec_[A-Za-z0-9_]{8,}"), _always),
    ("Replicate token", re.compile(r"\br8_[A-Za-z0-9_]{10,}"), _always),
    # itsdangerous URLSafeTimedSerializer: payload.timestamp.HMAC-SHA1 (27 base64url characters).
    ("signed token", re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{5,8}\.[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])"), _always),
    # itsdangerous errors quote the signature they refused (a genuine one but for a few characters).
    ("link signature", re.compile(r"(?i)\bsignature b?['\"][A-Za-z0-9_=+/-]{8,}['\"]"), _always),
    ("session or CSRF id", re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"), _token_urlsafe_32),
    ("e-mail address", re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), _always),
]

#: Fixed secrets of the fake external services (every test that uses a fake uses these).
FIXED_SECRETS = (fake_stripe.API_KEY, fake_stripe.WEBHOOK_SECRET, fake_telegram.TOKEN)


@dataclass(frozen=True, slots=True)
class Finding:
    """One log record that carried a secret."""

    logger: str
    level: str
    kind: str
    masked: str


class SecretRegistry:
    """Secret values known to the run: fixed ones for the session; registered ones and those of every Settings
    built for the current test only (a value one test made up must not flag another test's data)."""

    def __init__(self, fixed: Iterable[str] = ()) -> None:
        self._fixed = {v for v in fixed if _plausible(v)}
        self._values: set[str] = set()
        self._key_files: set[Path] = set()
        self._lock = threading.Lock()

    def add(self, value: str | None) -> None:
        """Look for `value` until the current test ends (ignored when too short or too plain to be a secret)."""
        if value and _plausible(value):
            with self._lock:
                self._values.add(value)

    def add_settings(self, settings: Settings) -> None:
        """Every SecretStr of `settings`, and the development SECRET_KEY it will generate (read when it exists)."""
        for value in secret_values(settings):
            self.add(value)
        if settings.secret_key is None:
            with self._lock:
                self._key_files.add(settings.secret_key_file)

    def end_test(self) -> None:
        """Forget the current test's values."""
        with self._lock:
            self._values.clear()
            self._key_files.clear()

    def values(self) -> list[str]:
        """The known secret values, longest first (so a secret containing another is masked whole)."""
        with self._lock:
            for path in list(self._key_files):
                if path.exists():
                    self._add_unlocked(path.read_text().strip())
                    self._key_files.discard(path)
            return sorted(self._fixed | self._values, key=len, reverse=True)

    def _add_unlocked(self, value: str) -> None:
        if _plausible(value):
            self._values.add(value)


def _plausible(value: str) -> bool:
    # "xxxxxxxx" or "aaaa-bbbb" may be a test's made-up secret, but it also fills fuzzed text: not worth a finding.
    return len(value) >= MIN_SECRET_CHARS and len(set(value)) >= MIN_SECRET_CHARS


def scan(message: str, secrets: Iterable[str]) -> tuple[str, str] | None:
    """(kind, masked message) when `message` carries a known secret or a secret-shaped value, else None."""
    kinds: list[str] = []
    masked = message
    for value in secrets:
        if value in masked:
            masked = masked.replace(value, "[configured secret]")
            kinds.append("configured secret")
    for kind, pattern, confirm in PATTERNS:
        hits = [m for m in pattern.finditer(masked) if confirm(m)]
        for match in reversed(hits):
            masked = masked[: match.start()] + f"[{kind}]" + masked[match.end() :]
        if hits:
            kinds.append(kind)
    return (", ".join(kinds), masked) if kinds else None


class _Collector(logging.Handler):
    """Keeps (logger, level, text) of every record until the phase ends."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is the caller's bug, not a leak
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.records.append((record.name, record.levelname, text))

    def drain(self) -> list[tuple[str, str, str]]:
        with self.lock:  # type: ignore[union-attr]
            taken, self.records = self.records, []
        return taken


class LogScan:
    """The plugin object: collector on the root logger, registry, and the per-phase verdict."""

    def __init__(self) -> None:
        self.registry = SecretRegistry(FIXED_SECRETS)
        self.collector = _Collector()
        self.leftover: list[Finding] = []

    def findings(self) -> list[Finding]:
        """Scan and forget what was logged since the last call."""
        records = self.collector.drain()
        if not records:
            return []
        secrets = self.registry.values()
        # Fast path: one search over everything; only a phase with a hit is scanned record by record.
        joined = "\n".join(text for _, _, text in records)
        if scan(joined, secrets) is None:
            return []
        found = []
        for name, level, text in records:
            hit = scan(text, secrets)
            if hit is not None:
                found.append(Finding(logger=name, level=level, kind=hit[0], masked=hit[1]))
        return found


_PLUGIN = LogScan()


def register_secret(value: str) -> None:
    """Look for `value` in the log until the current test ends (for secrets a test makes up, e.g. a password)."""
    _PLUGIN.registry.add(value)


def remember_settings(settings: Settings) -> Settings:
    """Look for the secrets of `settings` in the log until the current test ends; answers `settings`."""
    _PLUGIN.registry.add_settings(settings)
    return settings


def describe(findings: list[Finding], where: str) -> str:
    """A failure text naming where, the logger and each record (secret masked)."""
    lines = [f"secret found in the log during {where} (tests/logscan.py):"]
    for f in findings[:20]:
        text = f.masked if len(f.masked) <= 500 else f.masked[:500] + " ..."
        lines.append(f"  logger {f.logger!r} {f.level} [{f.kind}]: {text}")
    if len(findings) > 20:
        lines.append(f"  ... and {len(findings) - 20} more")
    return "\n".join(lines)


def _attach() -> None:
    root = logging.getLogger()
    if _PLUGIN.collector not in root.handlers:
        root.addHandler(_PLUGIN.collector)
    if root.level != logging.DEBUG:
        root.setLevel(logging.DEBUG)


def pytest_configure(config: pytest.Config) -> None:
    # pytest's own capture handlers keep their old threshold (WARNING) so reports and caplog do not change.
    if config.getoption("log_level", None) is None and not config.getini("log_level"):
        config.option.log_level = "WARNING"
    _attach()
    apply_log_levels()  # the product's per-logger levels, as `setup_logging` applies them in production


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(_PLUGIN.collector)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    _attach()  # a test that replaced the root handlers (e.g. by calling setup_logging) must not blind the scan
    found = _PLUGIN.findings()
    if call.when == "teardown":
        _PLUGIN.registry.end_test()
    if not found:
        return
    text = describe(found, f"{item.nodeid} ({call.when})")
    if report.failed:
        report.sections.append(("logscan", text))
    else:
        report.outcome = "failed"
        report.longrepr = text


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _PLUGIN.leftover.extend(_PLUGIN.findings())
    if _PLUGIN.leftover:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _PLUGIN.leftover:
        terminalreporter.write_sep("=", "logscan: secrets logged outside any test", red=True)
        terminalreporter.write_line(describe(_PLUGIN.leftover, "the session (outside any test)"))
