"""Logging (readable in development, JSON in production), secret redaction and Sentry."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

import sentry_sdk
from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

from ava_bot import __version__
from ava_bot.settings import Settings

logger = logging.getLogger(__name__)

#: Loggers that print full request URLs (the Telegram Bot API puts the token in the path).
CHATTY_LOGGERS = ("httpx", "httpcore", "telegram.ext", "aiohttp.access")


class RedactSecrets(logging.Filter):
    """Replace every configured secret value in a log record with `***` (last line of defence)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "***")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def secret_values(settings: Settings) -> list[str]:
    """Every secret value held by `settings` (used to redact logs)."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
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
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def init_sentry(settings: Settings) -> bool:
    """Initialise Sentry with the aiohttp and arq integrations; an empty DSN disables it. True if enabled."""
    dsn = settings.sentry_dsn.get_secret_value().strip() if settings.sentry_dsn else ""
    if not dsn:
        logger.info("Sentry disabled (SENTRY_DSN empty)")
        return False
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration
    from sentry_sdk.integrations.arq import ArqIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=settings.ava_env,
        release=f"ava-bot@{__version__}",
        integrations=[AioHttpIntegration(), ArqIntegration()],
        send_default_pii=False,
        traces_sample_rate=0.0,
    )
    logger.info("Sentry enabled")
    return True
