"""WhatsApp channel: platform limits now; the adapter (webhook route, parsing, sending) builds on them.

Limits from pywa 4.5 (LIBRARY-NOTES): text 4096; interactive body 1024; at most 3 reply buttons with titles of
at most 20 characters; list messages with at most 10 rows, row titles <= 24, the list button <= 20; CTA URL
button text <= 20. Never an inline image (PLAT-03): photos leave as signed portal links.
"""

from __future__ import annotations

from core.ports import ChannelCapabilities

WHATSAPP = "whatsapp"

WHATSAPP_CAPABILITIES = ChannelCapabilities(
    max_text_chars=4096,
    max_body_chars=1024,
    max_buttons=3,
    max_button_label_chars=20,
    list_rows=10,
    list_row_title_chars=24,
    list_button_label_chars=20,
    url_buttons=True,
    url_button_label_chars=20,
    url_button_https_only=True,
    url_button_local_hosts=False,
    inline_images=False,
    max_choice_data_bytes=256,
)
