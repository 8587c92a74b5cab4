"""Errors the channel adapters raise beyond `core.errors.DeliveryError`."""

from __future__ import annotations

from core.errors import DeliveryError


class WindowClosed(DeliveryError):
    """The platform's customer-service window is closed (WhatsApp 131047: no reply within 24 hours of the user's
    last message); only a template message can reach the user until they write again.

    Not permanent and never retried on a timer (that cannot help): `hold=True` makes the core hold this chat's
    replies until the user's next message reopens the window, then send them first, in order.
    """

    window_closed = True

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=False, retry_after=None, hold=True)
