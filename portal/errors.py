"""Errors of the portal: refused signed links."""

from __future__ import annotations

from core.errors import AvaError


class LinkInvalid(AvaError):
    """A portal link was tampered with, malformed, or issued for something else."""

    http_status = 403
    public_title = "Link not valid"
    public_message = "This link is not valid."


class LinkExpired(LinkInvalid):
    """A portal link was genuine but is older than its lifetime."""

    public_title = "Link expired"
    public_message = "This link has expired. Ask in the chat for a new one."
