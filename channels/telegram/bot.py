"""Building the Bot API client and registering the webhook and the command menu (`ava-bot telegram set-webhook`).

The API base URL is a setting (`TELEGRAM_API_BASE_URL`) so tests and self-hosted Bot API servers work; the bot
token becomes part of every request URL, so never log those URLs (httpx is kept at WARNING by the logging setup).
"""

from __future__ import annotations

import logging
import re

from telegram import Bot, BotCommand

logger = logging.getLogger(__name__)

#: The update kinds the webhook handles; everything else Telegram does not even send.
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")

#: The command menu shown in Telegram clients (the engine interprets the commands).
BOT_COMMANDS = (
    BotCommand("start", "Start chatting with Ava"),
    BotCommand("help", "What Ava can do"),
    BotCommand("portal", "Sign-in link to your portal"),
    BotCommand("subscribe", "Plans and subscription"),
    BotCommand("avatar", "Change how Ava looks"),
    BotCommand("mode", "Switch between secretary and intimate mode"),
)

# Telegram's rule for secret_token: 1-256 characters, letters, digits, "_" and "-".
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def check_webhook_secret(secret: str) -> str:
    """`secret` if Telegram accepts it as a webhook secret token, else a ValueError (never showing it)."""
    if not _SECRET.fullmatch(secret):
        raise ValueError("the Telegram webhook secret must be 1-256 characters of A-Z, a-z, 0-9, '_' and '-'")
    return secret


def build_bot(token: str, base_url: str = "https://api.telegram.org") -> Bot:
    """A `telegram.Bot` talking to the Bot API at `base_url` (no trailing `/bot`); initialise it before use."""
    base = base_url.rstrip("/")
    return Bot(token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")


async def set_webhook(bot: Bot, url: str, secret: str) -> None:
    """Point Telegram at our webhook `url` with the secret-token header, and publish the command menu."""
    await bot.set_webhook(url=url, secret_token=check_webhook_secret(secret), allowed_updates=list(ALLOWED_UPDATES))
    await bot.set_my_commands(list(BOT_COMMANDS))
    logger.info("telegram webhook registered for %s updates", ", ".join(ALLOWED_UPDATES))
