"""Logging (readable in development, JSON in production), secret redaction and Sentry.

What never reaches a log line or a Sentry event: configured secrets (every SecretStr setting), password
hashes, passwords in DSNs, bearer tokens, bot tokens, Stripe keys, signed link tokens, session ids and e-mail
addresses (`redact`), and the text users write (only ever logged below INFO by our code, and the loggers that
would print it, with SQL parameters or URLs, are held at a safe level by `LOGGER_LEVELS` whatever LOG_LEVEL
says). `tests/logscan.py` checks the whole test suite's log at DEBUG against the same list.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import sentry_sdk
from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

from ava_bot import __version__
from ava_bot.settings import Settings

logger = logging.getLogger(__name__)

#: Loggers that print secrets or personal data below a level, and the level they are held at whatever LOG_LEVEL says.
LOGGER_LEVELS: dict[str, int] = {
    # Full request URLs: the Telegram Bot API puts the bot token in the path, portal links carry tokens.
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    # The openai client's own httpx fork: one INFO line per LLM request.
    "httpx2": logging.WARNING,
    "httpcore2": logging.WARNING,
    # Every signed S3 request's headers (the access key id) and signing steps at DEBUG.
    "botocore": logging.WARNING,
    "aiobotocore": logging.WARNING,
    "telegram.ext": logging.WARNING,
    "aiohttp.access": logging.WARNING,
    # python-telegram-bot prints its Bot API URLs, bot token included, at DEBUG.
    "telegram.Bot": logging.INFO,
    # Every SQL statement with its parameters (e-mail addresses, password hashes, message text) at DEBUG.
    "tortoise.db_client": logging.INFO,
    # Stripe's request and response bodies (customer e-mail addresses) at DEBUG.
    "stripe": logging.INFO,
    # pywa's Graph API calls with their JSON (message text, signed portal links) at DEBUG.
    "pywa": logging.INFO,
    "pywa_async": logging.INFO,
}

MASK = "***"
#: (pattern, replacement, needs): values that are secret whatever they are; replacements keep the harmless part.
#: `needs`: substrings of which a match holds at least one (checked with `in` first: most log lines, such as a
#: turn's `user=... duration_ms=...`, hold none of them, and the pattern is not run at all), or `CASELESS` for the
#: case-insensitive patterns, run only where `_CASELESS_WORDS` finds one of their words with the same flag.
CASELESS = ()
_SHAPES: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
    (re.compile(r"\$argon2(?:id|i|d)\$[^\s'\"]*|\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}"), MASK, ("$",)),
    (re.compile(r"\b([a-z][a-z0-9+.-]*://[^\s/:@]*):[^\s/@]+@"), rf"\1:{MASK}@", ("://",)),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), rf"\1{MASK}", CASELESS),
    (re.compile(r"(?i)\b(password[\"']?\s*[:=]\s*[\"']?)[^\s&\"',]+"), rf"\1{MASK}", CASELESS),
    (re.compile(r"\b\d{6,12}:AA[A-Za-z0-9_-]{31,}"), MASK, (":AA",)),  # Telegram bot tokens (`<bot id>:AA...`)
    (
        re.compile(r"\b(?:sk|rk)_(?:test|live)_[A-Za-z0-9]{8,}|\bwhsec_[A-Za-z0-9_]{8,}|\br8_[A-Za-z0-9_]{10,}"),
        MASK,
        ("k_test_", "k_live_", "whsec_", "r8_"),
    ),
    # Link tokens: `?t=...` / `&token=...` query values and magic sign-in paths.
    (re.compile(r"(?i)([?&](?:t|token|code|key|secret|signature)=)[^&\s\"'#]+"), rf"\1{MASK}", ("?", "&")),
    (re.compile(r"(/portal/sign-in/)[^/?\s\"'#]+"), rf"\1{MASK}", ("/portal/sign-in/",)),
    # itsdangerous URLSafeTimedSerializer values (payload.timestamp.signature), wherever they appear.
    (re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{5,8}\.[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])"), MASK, (".",)),
    # itsdangerous errors quote the signature they refused.
    (re.compile(r"(?i)(\bsignature b?['\"])[A-Za-z0-9_=+/-]{8,}(['\"])"), rf"\1{MASK}\2", CASELESS),
    # Session and CSRF ids (`secrets.token_urlsafe(32)`) when named as such.
    (
        re.compile(r"(?i)((?:session|csrf)[\w-]*[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9_-]{20,}"),
        rf"\1{MASK}",
        CASELESS,
    ),
    (re.compile(r"(?<![\w.+-])[\w.+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})\b"), rf"{MASK}@\1", ("@",)),
]
#: Every word a `CASELESS` pattern starts its match with, searched with the same flag (so `PASSWORD`, or a word
#: with the long s U+017F for `s`, count as they do in the patterns themselves).
_CASELESS_WORDS = re.compile(r"(?i)bearer|password|signature|session|csrf")


class Redactor:
    """Masks configured secret values and secret-shaped values in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """`text` with every secret masked."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        caseless: bool | None = None  # searched once, when a caseless pattern is first due
        for pattern, replacement, needs in _SHAPES:
            if needs is CASELESS:
                if caseless is None:
                    caseless = _CASELESS_WORDS.search(text) is not None
                if not caseless:
                    continue
            else:
                for part in needs:
                    if part in text:
                        break
                else:
                    continue
            text = pattern.sub(replacement, text)
        return text


class RedactSecrets(logging.Filter):
    """Mask secrets in a record's message and exception text (last line of defence before a handler writes)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[1] is not None:
            # Formatters prefer exc_info; replace it by its redacted text (both formatters print exc_text).
            record.exc_text = self._redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._redact(record.exc_text)
        return True


def secret_values(settings: Settings) -> list[str]:
    """Every secret value held by `settings` (used to redact logs and Sentry events)."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
    if settings.secret_key is None and settings.secret_key_file.exists():
        values.append(settings.secret_key_file.read_text().strip())  # the generated development key
    return values


def setup_logging(settings: Settings) -> None:
    """Configure the root logger once: JSON lines in production, readable text in development."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.is_production:
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactSecrets(secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    apply_log_levels()


def apply_log_levels() -> None:
    """Hold the loggers that would print secrets or personal data at their safe level (`LOGGER_LEVELS`)."""
    for name, level in LOGGER_LEVELS.items():
        logging.getLogger(name).setLevel(level)


#: Request headers that carry credentials, signatures or the session.
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-csrf-token",
        "x-telegram-bot-api-secret-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "stripe-signature",
    }
)


class SentryScrubber:
    """`before_send` / `before_breadcrumb` for Sentry: events keep the error and where it happened, never the
    request body, cookies, credentials, query strings, local variables, job arguments or a secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._redact = Redactor(secrets)

    def before_send(self, event: dict[str, Any], hint: Mapping[str, Any]) -> dict[str, Any]:
        """The event without personal data or secrets."""
        request = event.get("request")
        if isinstance(request, dict):
            for key in ("data", "cookies", "query_string", "env"):
                request.pop(key, None)
            headers = request.get("headers")
            if isinstance(headers, dict):
                request["headers"] = {k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS}
            if isinstance(request.get("url"), str):
                request["url"] = request["url"].split("?", 1)[0]
        for container in ("exception", "threads"):
            for value in (event.get(container) or {}).get("values") or []:
                for frame in (value.get("stacktrace") or {}).get("frames") or []:
                    frame.pop("vars", None)  # local variables hold message text and tokens
        job = (event.get("extra") or {}).get("arq-job")
        if isinstance(job, dict):
            event["extra"]["arq-job"] = {k: v for k, v in job.items() if k in ("task", "retry")}
        crumbs = (event.get("breadcrumbs") or {}).get("values")
        if isinstance(crumbs, list):
            event["breadcrumbs"]["values"] = [c for c in (self.before_breadcrumb(c, {}) for c in crumbs) if c]
        return self._scrub(event)  # type: ignore[no-any-return]

    def before_breadcrumb(self, crumb: dict[str, Any], hint: Mapping[str, Any]) -> dict[str, Any] | None:
        """The breadcrumb without query strings, request bodies or secrets."""
        data = crumb.get("data")
        if isinstance(data, dict):
            for key in ("http.query", "http.fragment", "body", "request_body", "args", "kwargs"):
                data.pop(key, None)
            if isinstance(data.get("url"), str):
                data["url"] = data["url"].split("?", 1)[0]
        return self._scrub(crumb)  # type: ignore[no-any-return]

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        return value


def init_sentry(settings: Settings) -> bool:
    """Initialise Sentry with the aiohttp and arq integrations; an empty DSN disables it. True if enabled."""
    dsn = settings.sentry_dsn.get_secret_value().strip() if settings.sentry_dsn else ""
    if not dsn:
        logger.info("Sentry disabled (SENTRY_DSN empty)")
        return False
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration
    from sentry_sdk.integrations.arq import ArqIntegration

    scrubber = SentryScrubber(secret_values(settings))
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.ava_env,
        release=f"ava-bot@{__version__}",
        integrations=[AioHttpIntegration(), ArqIntegration()],
        # Personal data stays off (the default: send_default_pii is deprecated in favour of data_collection).
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrubber.before_send,  # type: ignore[arg-type]
        before_breadcrumb=scrubber.before_breadcrumb,
        traces_sample_rate=0.0,
    )
    logger.info("Sentry enabled")
    return True
