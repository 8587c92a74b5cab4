"""The Telegram channel: update parsing, the webhook route, the `TelegramChannel` sender and Bot API setup.

- `parse`: platform limits (`TELEGRAM_CAPABILITIES`) and pure parsing of webhook updates.
- `webhook`: `setup_telegram_webhook` (secret token -> parse -> `Inbox` -> 200).
- `channel`: `TelegramChannel`, the core's `Channel` port (render -> paced `sendMessage` -> `DeliveryError`).
- `pacing`: `FloodPacer`, per-chat and global flood-control pacing.
- `bot`: `build_bot` and `set_webhook` (URL, secret, allowed updates, command menu).

python-telegram-bot is used as a Bot API client and for its types only: no `Application`, no handlers.
"""

from __future__ import annotations

from channels.telegram.bot import ALLOWED_UPDATES, BOT_COMMANDS, build_bot, check_webhook_secret, set_webhook
from channels.telegram.channel import TelegramChannel, delivery_error
from channels.telegram.pacing import FloodPacer
from channels.telegram.parse import (
    TELEGRAM,
    TELEGRAM_CAPABILITIES,
    is_blocked_update,
    parse_blocked_update,
    parse_update,
    unreadable_private_message,
)
from channels.telegram.webhook import (
    SECRET_HEADER,
    TELEGRAM_WEBHOOK,
    UNREADABLE_REPLY,
    OnBlocked,
    TelegramWebhook,
    setup_telegram_webhook,
)

__all__ = [
    "ALLOWED_UPDATES",
    "BOT_COMMANDS",
    "SECRET_HEADER",
    "TELEGRAM",
    "TELEGRAM_CAPABILITIES",
    "TELEGRAM_WEBHOOK",
    "UNREADABLE_REPLY",
    "FloodPacer",
    "OnBlocked",
    "TelegramChannel",
    "TelegramWebhook",
    "build_bot",
    "check_webhook_secret",
    "delivery_error",
    "is_blocked_update",
    "parse_blocked_update",
    "parse_update",
    "set_webhook",
    "setup_telegram_webhook",
    "unreadable_private_message",
]
