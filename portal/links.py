"""Signed, expiring portal URLs: magic sign-in links sent in chat and per-photo view links.

Tokens are itsdangerous `URLSafeTimedSerializer` payloads. Each purpose signs with its own salt, so a
sign-in token never verifies as a photo token and vice versa; a photo token also carries the photo id
it was issued for. Implements `core.ports.Links` structurally.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from portal.errors import LinkExpired, LinkInvalid

_SIGN_IN_SALT = "ava.portal.sign-in"
_PHOTO_SALT = "ava.portal.photo"


class _ClockSigner(TimestampSigner):
    """A timestamp signer reading time from an injected clock (tests move time without sleeping)."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


class PortalLinks:
    """Builds and verifies the portal's user-facing URLs."""

    def __init__(
        self,
        secret_key: str,
        base_url: str,
        *,
        photo_link_ttl: int = 7 * 24 * 3600,
        sign_in_ttl: int = 15 * 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret_key:
            raise ValueError("secret_key must not be empty")
        self._base = base_url.rstrip("/")
        self._photo_ttl = photo_link_ttl
        self._sign_in_ttl = sign_in_ttl
        signer_kwargs = {"clock": clock}
        self._sign_in = URLSafeTimedSerializer(
            secret_key, salt=_SIGN_IN_SALT, signer=_ClockSigner, signer_kwargs=signer_kwargs
        )
        self._photo = URLSafeTimedSerializer(
            secret_key, salt=_PHOTO_SALT, signer=_ClockSigner, signer_kwargs=signer_kwargs
        )

    def sign_in_url(self, user_id: int) -> str:
        """A magic link that signs the user in to the portal (valid for `sign_in_ttl` seconds)."""
        token = self._sign_in.dumps({"u": user_id, "n": secrets.token_urlsafe(8)})  # unique: used once
        return f"{self._base}/portal/sign-in/{token}"

    def verify_sign_in(self, token: str) -> int:
        """The user id a sign-in token was issued for; raise `LinkExpired` or `LinkInvalid`."""
        data = _loads(self._sign_in, token, self._sign_in_ttl)
        user_id = data.get("u")
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise LinkInvalid("sign-in token without a user id")
        return user_id

    def photo_url(self, user_id: int, photo_id: int) -> str:
        """A link to one photo, signed for this user and photo (valid for `photo_link_ttl` seconds)."""
        token = self._photo.dumps({"u": user_id, "p": photo_id})
        return f"{self._base}/photos/{photo_id}?t={token}"

    def verify_photo(self, token: str, photo_id: int) -> int:
        """The user id a photo token was issued to, if it was issued for `photo_id`; else raise."""
        data = _loads(self._photo, token, self._photo_ttl)
        user_id = data.get("u")
        if data.get("p") != photo_id or not isinstance(user_id, int) or isinstance(user_id, bool):
            raise LinkInvalid("photo token issued for another photo")
        return user_id

    def subscribe_url(self, user_id: int) -> str:
        """Where the user subscribes (the page itself requires a portal session)."""
        return f"{self._base}/subscribe"

    def gallery_url(self, user_id: int) -> str:
        """The user's gallery (the page itself requires a portal session)."""
        return f"{self._base}/gallery"


def _loads(serializer: URLSafeTimedSerializer, token: str, max_age: int) -> dict[str, Any]:
    try:
        data = serializer.loads(token, max_age=max_age)
    except SignatureExpired as exc:
        # itsdangerous checks the signature before the age, so an expired token was genuine.
        raise LinkExpired(str(exc)) from exc
    except BadData as exc:
        raise LinkInvalid(str(exc)) from exc
    if not isinstance(data, dict):
        raise LinkInvalid("token payload is not an object")
    return data
