"""Small helpers for the portal's URLs: a database id taken from a path or query, and the way to sign in first.

Ids arrive as text from anywhere; only plain ASCII digits within PostgreSQL's BIGINT range are ids (a larger
number or a Unicode digit would otherwise reach the database and fail there, a 500 instead of a 404).
"""

from __future__ import annotations

import re
from urllib.parse import quote

from aiohttp import web

#: The largest id a BIGINT column holds.
MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(raw: str) -> int | None:
    """`raw` as a database id when it is plain ASCII digits within the 64-bit range, else None."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if value <= MAX_ID else None


def sign_in_first(request: web.Request) -> web.HTTPSeeOther:
    """A redirect to the sign-in form that comes back to this page afterwards."""
    return web.HTTPSeeOther(f"/signin?next={quote(request.path_qs, safe='')}")
