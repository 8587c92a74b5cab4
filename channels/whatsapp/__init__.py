"""WhatsApp channel (Cloud API through pywa_async with `server=None`).

- `parse`: platform limits (`WHATSAPP_CAPABILITIES`) and pure webhook parsing (`parse_webhook`, `parse_statuses`);
- `client`: `build_whatsapp`, the pywa client with the Graph API base URL settable (tests, proxies);
- `channel`: `WhatsAppChannel`, the core `Channel` port (sending, typing) and the Graph error mapping;
- `webhook`: `setup_whatsapp_webhook`, the signed webhook routes feeding the `Inbox`.
"""

from __future__ import annotations

from channels.whatsapp.channel import WhatsAppChannel, to_delivery_error
from channels.whatsapp.client import DEFAULT_GRAPH_URL, GraphRedirectTransport, build_whatsapp, graph_session
from channels.whatsapp.parse import WHATSAPP, WHATSAPP_CAPABILITIES, parse_statuses, parse_webhook
from channels.whatsapp.webhook import WHATSAPP_WEBHOOK, StatusHandler, setup_whatsapp_webhook

__all__ = [
    "DEFAULT_GRAPH_URL",
    "WHATSAPP",
    "WHATSAPP_CAPABILITIES",
    "WHATSAPP_WEBHOOK",
    "GraphRedirectTransport",
    "StatusHandler",
    "WhatsAppChannel",
    "build_whatsapp",
    "graph_session",
    "parse_statuses",
    "parse_webhook",
    "setup_whatsapp_webhook",
    "to_delivery_error",
]
