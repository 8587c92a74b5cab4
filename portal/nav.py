"""The signed-in header every portal page shows: Ava's picture and name, the current mode, the menu.

The picture is the current avatar's kept reference portrait (`/photos/{reference_photo_id}`), shown only when
this browser session passed the 18+ interstitial or the account confirmed 18+ in the chat's onboarding (the
rule `portal.photos` applies to inline photos); otherwise, and before an avatar exists, her initial.
The mode names the page theme too: `<body class="mode-secretary">` or `mode-intimate`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp_session import get_session

from core.engine import current_avatar
from core.models import Mode, User
from portal.sessions import CARRIED_OVER

#: The name shown before the user's avatar exists (during setup).
DEFAULT_NAME = "Ava"
#: The menu, in order: (path, label, `data-nav` key for tests and styling).
MENU = (
    ("/chat", "Chat", "chat"),
    ("/gallery", "Photos", "photos"),
    ("/account", "Account", "account"),
    ("/subscribe", "Subscription", "subscription"),
)


@dataclass(frozen=True, slots=True)
class Header:
    """What the header shows for a signed-in user."""

    name: str
    initial: str
    #: `/photos/{id}` of the kept reference, or None (no avatar yet, or no 18+ confirmation).
    picture: str | None
    mode: str
    #: Whether her setup is done (the mode switch is offered only then).
    ready: bool


async def header_for(request: web.Request, user: User) -> Header:
    """The header of `user`'s pages in this browser session."""
    avatar = await current_avatar(user)
    name = avatar.name if avatar is not None else DEFAULT_NAME
    picture = None
    if avatar is not None and avatar.reference_photo_id is not None and await _adult(request, user):
        picture = f"/photos/{avatar.reference_photo_id}"
    mode = str(Mode(user.mode))
    return Header(name=name, initial=(name[:1] or "A").upper(), picture=picture, mode=mode, ready=avatar is not None)


async def _adult(request: web.Request, user: User) -> bool:
    """Whether photos may be shown: the session passed the interstitial or the account confirmed 18+."""
    # The interstitial's session key (`portal.adult.ADULT_SESSION_KEY`; imported from its source to avoid a cycle).
    return (await get_session(request)).get(CARRIED_OVER[0]) is True or user.adult_confirmed_at is not None
