"""WhatsApp channel (Cloud API through pywa_async with `server=None`).

- `parse`: platform limits (`WHATSAPP_CAPABILITIES`) and pure webhook parsing (`parse_webhook`, `parse_statuses`);
- `client`: `build_whatsapp`, the pywa client with the Graph API base URL settable (tests, proxies);
- `channel`: `WhatsAppChannel`, the core `Channel` port (sending, typing) and the Graph error mapping;
- `webhook`: `setup_whatsapp_webhook`, the signed webhook routes feeding the `Inbox`.

The names below are loaded from their module on first use: a process without WhatsApp configured can import
`channels.whatsapp.parse` (the channel's name) without loading pywa.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from channels.whatsapp.channel import WhatsAppChannel, to_delivery_error
    from channels.whatsapp.client import DEFAULT_GRAPH_URL, GraphRedirectTransport, build_whatsapp, graph_session
    from channels.whatsapp.parse import WHATSAPP, WHATSAPP_CAPABILITIES, parse_statuses, parse_webhook
    from channels.whatsapp.webhook import WHATSAPP_WEBHOOK, StatusHandler, setup_whatsapp_webhook

#: Each public name and the module that defines it.
_MODULES = {
    "WhatsAppChannel": "channel",
    "to_delivery_error": "channel",
    "DEFAULT_GRAPH_URL": "client",
    "GraphRedirectTransport": "client",
    "build_whatsapp": "client",
    "graph_session": "client",
    "WHATSAPP": "parse",
    "WHATSAPP_CAPABILITIES": "parse",
    "parse_statuses": "parse",
    "parse_webhook": "parse",
    "WHATSAPP_WEBHOOK": "webhook",
    "StatusHandler": "webhook",
    "setup_whatsapp_webhook": "webhook",
}

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


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (PEP 562)."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
