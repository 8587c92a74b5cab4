"""Portal URLs: placeholders the conversation stores, and the signed, expiring links they become when sent.

A sign-in link must never rest in the database, so the engine never gets one: `sign_in_url`,
`subscribe_url`, `gallery_url` and `photo_url` answer placeholders that carry no secret
(`ava-link:/portal/sign-in/?u=7&next=/subscribe`, `ava-link:/photos/5?u=7`), and those are what outbound
message rows store. `for_sending` (called by `core.delivery.Deliverer` right before the platform send) turns a
placeholder into the real signed URL, so a token exists only in the message the platform receives. The web
chat shows a placeholder as a plain link to its page (`local_href`): its reader is signed in already.

Tokens are itsdangerous `URLSafeTimedSerializer` payloads with one salt per purpose (a sign-in token never
verifies as a photo token). Each carries the user's `auth_epoch`: "sign out everywhere" bumps it and erasure
deletes the user, so every link issued before dies (`sign_in_grant`, `photo_viewer`). A sign-in token also
carries a nonce (each link is distinct and used once: `portal.auth`) and the local path it opens.
Implements `core.ports.Links` structurally.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from core.inbox import _sql
from portal.errors import LinkExpired, LinkInvalid

_SIGN_IN_SALT = "ava.portal.sign-in.v2"
_PHOTO_SALT = "ava.portal.photo.v2"
#: Marks a URL as a placeholder for a link minted at send time.
PLACEHOLDER = "ava-link:"
_SIGN_IN_PATH = "/portal/sign-in/"
DEFAULT_NEXT = "/chat"
MAX_NEXT_CHARS = 512
_USER_EPOCH = "SELECT auth_epoch FROM users WHERE id = $1"

#: Reads a user's current `auth_epoch` (None: no such user).
EpochLookup = Callable[[int], Awaitable[int | None]]


async def user_epoch(user_id: int) -> int | None:
    """The user's `auth_epoch`, or None when the user does not exist (erased). Plain SQL: every link sent and every
    link opened reads it, and the ORM's query building cost about twice the statement's own round trip."""
    rows = await _sql(_USER_EPOCH, [user_id])
    return int(rows[0]["auth_epoch"]) if rows else None


def safe_next(value: object, default: str = DEFAULT_NEXT) -> str:
    """`value` when it is a path on this site (never another host: no open redirect), else `default`."""
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_NEXT_CHARS:
        return default
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return default  # `//host` and `/\host` are other hosts to a browser; controls can hide either
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


@dataclass(frozen=True, slots=True)
class SignInGrant:
    """What a genuine sign-in token says: whom it signs in, at which epoch, and where to go afterwards."""

    user_id: int
    epoch: int
    next: str


class _ClockSigner(TimestampSigner):
    """A timestamp signer reading time from an injected clock (tests move time without sleeping)."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


class PortalLinks:
    """Builds the portal's user-facing URLs: placeholders to store, signed links to send, and their checks."""

    def __init__(
        self,
        secret_key: str,
        base_url: str,
        *,
        photo_link_ttl: int = 7 * 24 * 3600,
        sign_in_ttl: int = 15 * 60,
        clock: Callable[[], float] = time.time,
        epochs: EpochLookup = user_epoch,
    ) -> None:
        if not secret_key:
            raise ValueError("secret_key must not be empty")
        self._base = base_url.rstrip("/")
        self._photo_ttl = photo_link_ttl
        self._sign_in_ttl = sign_in_ttl
        self._epochs = epochs
        signer_kwargs = {"clock": clock}
        self._sign_in = URLSafeTimedSerializer(
            secret_key, salt=_SIGN_IN_SALT, signer=_ClockSigner, signer_kwargs=signer_kwargs
        )
        self._photo = URLSafeTimedSerializer(
            secret_key, salt=_PHOTO_SALT, signer=_ClockSigner, signer_kwargs=signer_kwargs
        )

    # -- placeholders (what the engine gets and message rows store) ------------------------------------------

    def sign_in_url(self, user_id: int, next: str = DEFAULT_NEXT) -> str:
        """A placeholder for a one-time link that signs the user in and opens `next` (a local path)."""
        return f"{PLACEHOLDER}{_SIGN_IN_PATH}?u={user_id}&next={quote(safe_next(next), safe='/')}"

    def subscribe_url(self, user_id: int) -> str:
        """A placeholder for a sign-in link that opens the subscribe page."""
        return self.sign_in_url(user_id, next="/subscribe")

    def gallery_url(self, user_id: int) -> str:
        """A placeholder for a sign-in link that opens the gallery."""
        return self.sign_in_url(user_id, next="/gallery")

    def photo_url(self, user_id: int, photo_id: int) -> str:
        """A placeholder for a link to one photo."""
        return f"{PLACEHOLDER}/photos/{photo_id}?u={user_id}"

    async def for_sending(self, user_id: int, url: str) -> str:
        """`url` as it leaves in a message now: a placeholder becomes a freshly signed link, anything else stays.

        A placeholder of another user, or of a user who no longer exists, becomes the plain sign-in page.
        """
        parsed = parse_placeholder(url)
        if parsed is None:
            return url
        path, query = parsed
        epoch = await self._epochs(user_id)
        if epoch is None or query.get("u") != str(user_id):
            return f"{self._base}/signin"
        if path == _SIGN_IN_PATH:
            return self.signed_sign_in_url(user_id, epoch, next=query.get("next", DEFAULT_NEXT))
        photo_id = _photo_id_of(path)
        if photo_id is not None:
            return self.signed_photo_url(user_id, photo_id, epoch)
        return f"{self._base}/signin"

    # -- signed links ------------------------------------------------------------------------------------------

    def signed_sign_in_url(self, user_id: int, epoch: int, *, next: str = DEFAULT_NEXT) -> str:
        """A magic link signing `user_id` in (valid `sign_in_ttl` seconds, once, while the epoch holds)."""
        payload = {"u": user_id, "e": epoch, "x": safe_next(next), "n": secrets.token_urlsafe(12)}
        return f"{self._base}{_SIGN_IN_PATH}{self._sign_in.dumps(payload)}"

    def signed_photo_url(self, user_id: int, photo_id: int, epoch: int) -> str:
        """A link to one photo for `user_id` (valid `photo_link_ttl` seconds while the epoch holds)."""
        token = self._photo.dumps({"u": user_id, "p": photo_id, "e": epoch})
        return f"{self._base}/photos/{photo_id}?t={token}"

    def verify_sign_in(self, token: str) -> SignInGrant:
        """What a sign-in token grants, checking signature and age only; raise `LinkExpired` or `LinkInvalid`."""
        data = _loads(self._sign_in, token, self._sign_in_ttl)
        user_id, epoch = data.get("u"), data.get("e")
        if not isinstance(user_id, int) or not isinstance(epoch, int):
            raise LinkInvalid("sign-in token without a user id or epoch")
        return SignInGrant(user_id=user_id, epoch=epoch, next=safe_next(data.get("x")))

    async def sign_in_grant(self, token: str) -> SignInGrant:
        """`verify_sign_in`, and the user still exists at the token's epoch (else `LinkInvalid`)."""
        grant = self.verify_sign_in(token)
        if await self._epochs(grant.user_id) != grant.epoch:
            raise LinkInvalid(f"sign-in link of user {grant.user_id} from an old epoch or a deleted user")
        return grant

    def verify_photo(self, token: str, photo_id: int) -> int:
        """The user id a photo token was issued to, checking signature, age and photo only (see `photo_viewer`)."""
        return self._photo_claims(token, photo_id)[0]

    async def photo_viewer(self, token: str, photo_id: int) -> int:
        """The user a photo link may show `photo_id` to: `verify_photo`, and the token's epoch is the user's
        current one (a link from before "sign out everywhere", or of an erased user, raises `LinkInvalid`)."""
        user_id, epoch = self._photo_claims(token, photo_id)
        if await self._epochs(user_id) != epoch:
            raise LinkInvalid(f"photo link of user {user_id} from an old epoch or a deleted user")
        return user_id

    def _photo_claims(self, token: str, photo_id: int) -> tuple[int, int]:
        data = _loads(self._photo, token, self._photo_ttl)
        user_id, epoch = data.get("u"), data.get("e")
        if data.get("p") != photo_id or not isinstance(user_id, int) or not isinstance(epoch, int):
            raise LinkInvalid("photo token issued for another photo")
        return user_id, epoch


def parse_placeholder(url: str) -> tuple[str, dict[str, str]] | None:
    """The path and query of a placeholder URL, or None when `url` is not one."""
    if not url.startswith(PLACEHOLDER):
        return None
    parts = urlsplit(url.removeprefix(PLACEHOLDER))
    return parts.path, {key: values[0] for key, values in parse_qs(parts.query).items()}


def local_href(url: str) -> str | None:
    """Where a placeholder leads on the portal for a reader who is signed in (its page, no token); else None."""
    parsed = parse_placeholder(url)
    if parsed is None:
        return None
    path, query = parsed
    if path == _SIGN_IN_PATH:
        return safe_next(query.get("next"))
    photo_id = _photo_id_of(path)
    return f"/photos/{photo_id}" if photo_id is not None else None


def _photo_id_of(path: str) -> int | None:
    rest = path.removeprefix("/photos/")
    return int(rest) if rest != path and rest.isascii() and rest.isdigit() and len(rest) < 19 else None


def _loads(serializer: URLSafeTimedSerializer, token: str, max_age: int) -> dict[str, Any]:
    try:
        data = serializer.loads(token, max_age=max_age)
    except SignatureExpired as exc:
        # itsdangerous checks the signature before the age, so an expired token was genuine.
        raise LinkExpired(str(exc)) from exc
    except BadData as exc:
        # Never str(exc): itsdangerous quotes the refused signature, nearly a genuine one, and it gets logged.
        raise LinkInvalid(f"token refused ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise LinkInvalid("token payload is not an object")
    return data
