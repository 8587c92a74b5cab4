"""Telegram channel: platform limits now; the adapter (webhook route, parsing, sending) builds on them.

Limits from python-telegram-bot 22.8 constants (LIBRARY-NOTES): text 4096 characters, callback data 1-64 bytes.
Telegram refuses URL buttons to local hosts (and we only send https links as buttons).
"""

from __future__ import annotations

from core.ports import ChannelCapabilities

TELEGRAM = "telegram"

TELEGRAM_CAPABILITIES = ChannelCapabilities(
    max_text_chars=4096,
    max_body_chars=4096,
    # Inline keyboards hold up to 100 buttons; more than a handful is unreadable on a phone, so longer choice
    # sets become a numbered list in the text.
    max_buttons=8,
    max_button_label_chars=64,
    list_rows=0,
    url_buttons=True,
    url_button_label_chars=64,
    url_button_https_only=True,
    url_button_local_hosts=False,
    inline_images=False,
    max_choice_data_bytes=64,
)
